"""Experiments of the four papers (one package per paper) and the claims engine.

Importing this package registers every experiment. Import order is the order of the report.
"""

# Each paper module registers its experiments on import (order = report order).
from . import (
    nn_practice,  # noqa: E402,F401
    p000,  # noqa: E402,F401
    p002,  # noqa: E402,F401
    p003,  # noqa: E402,F401
    p004,  # noqa: E402,F401
)
from ._catalog import CLAIMS, PAPERS
from ._claims import Check, ClaimResult, ClaimSpec, Proportion, Slope, Statistic, decide
from ._engine import ExperimentRecord, run_experiment
from ._registry import (
    EXPERIMENTS,
    Experiment,
    Measured,
    PaperNumber,
    RunContext,
    experiments_for,
    register,
)

__all__ = ["CLAIMS", "PAPERS", "EXPERIMENTS", "Check", "ClaimResult", "ClaimSpec", "Proportion", "Slope",
           "Statistic", "decide", "ExperimentRecord", "run_experiment", "Experiment", "Measured",
           "PaperNumber", "RunContext", "experiments_for", "register"]

# falab's own results (FALAB claims, "Beyond the papers"): registered last, so reported after the papers.
from . import beyond  # noqa: E402,F401
