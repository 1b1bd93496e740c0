"""Run a validated config: config -> result directory with manifest.json, metrics.csv and figures.

The metrics table is long-form (one row per time point, ensemble member, measure and component), written with
17 significant digits so that a rerun on the same machine is byte-identical (tested).
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from .._checks import FalabInputError, invalid
from ..dynamics import Diverged, Euler, Problem, Trajectory, simulate_discrete, simulate_flow
from ..functional import get_activation, get_loss
from ..instruments import get_measures
from ..models import MLP, Params
from ..rules import (
    RULES,
    BatchRandomMagnitudeSignFeedback,
    CopyOfWeight,
    FixedRandomMagnitudeSignFeedback,
    Gaussian,
    ScaledLikeWeight,
    Uniform,
    UniformSignFeedback,
)
from ._config import RunConfig, parse_config


def git_commit() -> str:
    """The commit of the falab checkout (``unknown`` outside git); ``+dirty`` when the tree has changes."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict[str, Any]:
    """Versions and settings that a rerun must match to be bit-identical."""
    return {
        "falab": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "git_commit": git_commit(),
    }


def load_data(cfg: RunConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Build ``(X, Y)`` in float64 as the config says; checks widths and finiteness."""
    n_in, n_out = cfg.model.widths[0], cfg.model.widths[-1]
    d = cfg.data
    if d.kind == "teacher":
        x = torch.randn(d.n_samples, n_in, generator=generator, dtype=torch.float64)
        teacher = torch.randn(n_out, n_in, generator=generator, dtype=torch.float64) / n_in**0.5
        y = x @ teacher.T + d.noise * torch.randn(d.n_samples, n_out, generator=generator, dtype=torch.float64)
        if cfg.loss.name == "exponential":
            y = torch.where(y >= 0, 1.0, -1.0).to(torch.float64)
        if cfg.loss.name == "cross_entropy":
            y = torch.nn.functional.one_hot(y.argmax(-1), n_out).to(torch.float64)
        return x, y
    if d.kind in ("digits", "mnist1d"):
        if d.kind == "digits":
            from sklearn.datasets import load_digits

            ds = load_digits()
            x_np, labels = ds.data / 16.0, ds.target
        else:
            from mnist1d.data import get_dataset_args, make_dataset

            ds = make_dataset(get_dataset_args())
            x_np, labels = ds["x"], ds["y"]
        x = torch.as_tensor(np.asarray(x_np), dtype=torch.float64)[: d.n_samples]
        labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.long)[: d.n_samples]
        y = torch.nn.functional.one_hot(labels_t, 10).to(torch.float64)
    else:
        path = Path(d.path or "")
        if not path.is_file():
            raise invalid("data.path", str(path), "an existing .npz file with arrays X and y")
        arrays = np.load(path)
        if "X" not in arrays or "y" not in arrays:
            raise invalid("data.path", str(path), "an .npz file with arrays named X and y")
        x = torch.as_tensor(arrays["X"], dtype=torch.float64)
        y = torch.as_tensor(arrays["y"], dtype=torch.float64)
        if y.dim() == 1:
            y = y.unsqueeze(-1)
    if x.dim() != 2 or x.shape[1] != n_in:
        raise invalid("model.widths[0]", n_in, f"the data's input width {tuple(x.shape)[-1]} (data shape {tuple(x.shape)})")
    if y.shape[-1] != n_out:
        raise invalid("model.widths[-1]", n_out, f"the data's output width {y.shape[-1]}")
    for name, t in (("data X", x), ("data y", y)):
        if not bool(torch.isfinite(t).all()):
            raise invalid(name, f"{int((~torch.isfinite(t)).sum())} non-finite entries", "finite values only", quote=False)
    return x, y


def build_problem(cfg: RunConfig) -> tuple[Problem, Params]:
    """Model, rule, loss, data, initial parameters and feedback from a config (ensemble dim always present)."""
    g = torch.Generator().manual_seed(cfg.seed)
    x, y = load_data(cfg, g)
    act = cfg.model.activation
    acts = tuple(get_activation(a) for a in act) if isinstance(act, list) else get_activation(act)
    model = MLP(tuple(cfg.model.widths), acts, bias=cfg.model.bias)
    init = cfg.model.init
    params = model.init_params(g, ensemble=cfg.ensemble, scheme=init.scheme, std=init.std)
    for l in init.zero_layers:
        params[f"W{l}"] = torch.zeros_like(params[f"W{l}"])
    fb = cfg.rule.feedback
    feedback = {"gaussian": lambda: Gaussian(fb.std), "uniform": lambda: Uniform(fb.scale),
                "copy_of_weight": CopyOfWeight, "scaled_like_weight": ScaledLikeWeight, "usf": UniformSignFeedback,
                "frsf": FixedRandomMagnitudeSignFeedback, "brsf": BatchRandomMagnitudeSignFeedback}[fb.kind]()
    rule_cls = RULES[cfg.rule.name]
    rule = rule_cls() if cfg.rule.name == "bp" else rule_cls(feedback=feedback)
    loss = get_loss(cfg.loss.name, cfg.loss.reduction)
    state = rule.init(model, params, generator=g)
    return Problem(model, rule, loss, x, y, state), params


def _metric_rows(traj: Trajectory) -> list[tuple[float, int, int, str, int, float]]:
    rows = []
    for name, values in traj.metrics.items():
        for t, step, v in zip(traj.times, traj.steps, values):
            arr = v.detach().reshape(v.shape[0], -1) if v.dim() >= 1 else v.reshape(1, 1)
            for member in range(arr.shape[0]):
                for idx in range(arr.shape[1]):
                    rows.append((t, step, member, name, idx, float(arr[member, idx])))
    return rows


def write_metrics(traj: Trajectory, path: Path) -> None:
    """Long-form CSV: time, step, member, measure, index, value (17 significant digits)."""
    with path.open("w") as fh:
        fh.write("time,step,member,measure,index,value\n")
        for t, step, member, name, idx, value in _metric_rows(traj):
            fh.write(f"{t!r},{step},{member},{name},{idx},{value!r}\n")


def _figures(traj: Trajectory, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    figs_dir = out / "figures"
    figs_dir.mkdir(exist_ok=True)
    for name in ("loss", "conserved"):
        if name not in traj.metrics or not traj.times:
            continue
        v = traj.metric(name).reshape(len(traj.times), -1).numpy()
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(traj.times, v, lw=1)
        ax.set_xlabel("time t (flow) / eta * step (Euler)")
        ax.set_ylabel(name)
        if name == "loss" and np.all(v > 0):
            ax.set_yscale("log")
        ax.set_title(f"{name} (all members{', all pairs' if name == 'conserved' else ''})")
        fig.tight_layout()
        p = figs_dir / f"{name}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


@dataclass
class RunResult:
    out_dir: Path
    trajectory: Trajectory
    manifest: dict[str, Any]


def run(config: RunConfig | dict[str, Any], out_dir: str | Path,
        progress: Callable[[float], None] | None = None) -> RunResult:
    """Execute a run and write ``manifest.json``, ``metrics.csv`` and ``figures/``.

    On divergence (non-finite loss or solver failure) the metrics recorded so far are written, the manifest says
    ``status: diverged`` and :class:`~falab.dynamics.Diverged` is raised.
    """
    cfg = parse_config(config)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise invalid("out", str(out), f"a writable directory ({exc.strerror})") from None
    problem, params0 = build_problem(cfg)
    measures = get_measures(list(cfg.measures))
    started = time.time()
    dyn = cfg.dynamics
    if dyn.kind == "flow":
        ts = np.linspace(0.0, dyn.t_end, dyn.n_points).tolist()
        traj = simulate_flow(problem, params0, ts, rtol=dyn.rtol, atol=dyn.atol, method=dyn.method,
                             step_size=dyn.step_size, max_evaluations=dyn.max_evaluations, measures=measures,
                             keep_params=False, progress=progress)
    else:
        g = torch.Generator().manual_seed(cfg.seed + 1)
        traj = simulate_discrete(problem, params0, Euler(lr=dyn.lr), dyn.steps, record_every=dyn.record_every,
                                 batch_size=dyn.batch_size, generator=g if dyn.batch_size else None,
                                 measures=measures, keep_params=False, progress=progress)
    manifest = {
        "config": cfg.model_dump(mode="json"),
        "seed": cfg.seed,
        "environment": environment(),
        "status": traj.status,
        "message": traj.message,
        "records": len(traj.times),
        "solver": traj.info,
    }
    write_metrics(traj, out / "metrics.csv")
    figures = _figures(traj, out)
    manifest["figures"] = [str(p.relative_to(out)) for p in figures]
    manifest["wall_seconds"] = round(time.time() - started, 3)
    # The wall time differs between reruns; it lives in a separate file so that manifest.json is reproducible too.
    timing = {"wall_seconds": manifest.pop("wall_seconds")}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (out / "timing.json").write_text(json.dumps(timing) + "\n")
    if traj.status != "ok":
        raise Diverged(f"run {traj.status}: {traj.message}; {len(traj.times)} records kept in {out / 'metrics.csv'}")
    if progress:
        progress(1.0)
    return RunResult(out, traj, manifest)


__all__ = ["run", "RunResult", "build_problem", "load_data", "environment", "git_commit", "write_metrics",
           "FalabInputError"]
