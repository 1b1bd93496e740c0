"""Runs: a validated config (YAML or Python) -> a result directory (manifest.json, metrics.csv, figures)."""

from ._config import RunConfig, load_config, parse_config
from ._runner import RunResult, build_problem, environment, git_commit, load_data, run

__all__ = ["RunConfig", "load_config", "parse_config", "RunResult", "build_problem", "environment", "git_commit",
           "load_data", "run"]
