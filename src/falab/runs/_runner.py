"""Run a validated config: config -> result directory with manifest.json, metrics.csv and figures.

The metrics table is long-form (one row per time point, ensemble member, measure and component), written with
17 significant digits so that a rerun on the same machine is byte-identical (tested).
"""

from __future__ import annotations

import functools
import io
import json
import os
import platform
import subprocess
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from .._checks import FalabInputError, check_memory, invalid
from .._io import atomic_write_bytes, atomic_write_text, atomic_writer, check_out_dir, check_targets, make_out_dir
from ..dynamics import Diverged, Problem, Stop, Trajectory, simulate_discrete, simulate_flow
from ..models import MLP, AbstractTensorNet, DeepMatrixSensing, Params
from ..registry import DYNAMICS, LOSSES, make_feedback, make_measure, make_model, make_rule, predict
from ._config import RunConfig, check_run_size, parse_config

OUTPUT_FILES = ("manifest.json", "metrics.csv", "timing.json", "figures/loss.png", "figures/conserved.png")


def git_commit() -> str:
    """The commit of the source tree of the falab package actually imported (``unknown`` when that package is not a
    tracked file of a git checkout, e.g. an installed wheel inside some other repository); ``+dirty`` when the
    checkout has changes."""
    here = Path(__file__).resolve().parent
    package_file = Path(__file__).resolve().parents[1] / "__init__.py"
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return "unknown"
        # the enclosing repository must track this very package, not merely contain it (a venv inside a repo)
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(package_file)], cwd=here,
                                 capture_output=True, text=True, timeout=5)
        if tracked.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.lru_cache(maxsize=1)
def _package_versions() -> tuple[tuple[str, str], ...]:
    from importlib import metadata

    out: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            out[str(name).lower()] = str(dist.version)
    return tuple(sorted(out.items()))


def package_versions() -> dict[str, str]:
    """Name -> version of every installed distribution (what a sweep manifest records; read once per process)."""
    return dict(_package_versions())


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


def _low_rank(cfg: RunConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Matrix factorisation: ``X = I_n``, ``Y = U V^T / sqrt(rank)`` (n x m) + noise; deep matrix sensing: Gaussian
    ``A_i`` (rows ``vec(A_i)``), ``y_i = <A_i, M*>`` with ``M* = U V^T / sqrt(rank)`` (d x d) + noise."""
    d, m = cfg.data, cfg.model
    f64 = torch.float64
    if m.kind == "matrix_factorization":
        assert m.n is not None and m.m is not None
        rows, cols, n = m.n, m.m, m.n
    else:
        assert m.d is not None
        rows, cols, n = m.d, m.d, d.n_samples
    u = torch.randn(rows, d.rank, generator=generator, dtype=f64)
    v = torch.randn(cols, d.rank, generator=generator, dtype=f64)
    target = u @ v.T / d.rank**0.5
    if m.kind == "matrix_factorization":
        x, y = torch.eye(n, dtype=f64), target
    else:
        x = torch.randn(n, rows * cols, generator=generator, dtype=f64)
        y = x @ target.reshape(-1, 1)
    return x, y + d.noise * torch.randn(y.shape, generator=generator, dtype=f64)


def load_data(cfg: RunConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Build ``(X, Y)`` in float64 as the config says; checks widths and finiteness."""
    n_in, n_out = cfg.model.in_out
    d = cfg.data
    if d.kind == "low_rank":
        return _low_rank(cfg, generator)
    if d.kind in ("teacher", "sparse_teacher"):
        x = torch.randn(d.n_samples, n_in, generator=generator, dtype=torch.float64)
        teacher = torch.randn(n_out, n_in, generator=generator, dtype=torch.float64) / n_in**0.5
        if d.kind == "sparse_teacher":  # keep `sparsity` entries per output row (the rest exactly 0), unit scale
            k = min(d.sparsity, n_in)
            keep = torch.argsort(torch.rand(n_out, n_in, generator=generator, dtype=torch.float64), dim=-1)[:, :k]
            mask = torch.zeros(n_out, n_in, dtype=torch.bool).scatter_(1, keep, True)
            teacher = torch.where(mask, teacher * (n_in / k) ** 0.5, 0.0)
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
        x_np, y_np = load_npz(d.path or "")
        x = torch.as_tensor(x_np, dtype=torch.float64)
        y = torch.as_tensor(y_np, dtype=torch.float64)
        if y.dim() == 1:
            y = y.unsqueeze(-1)
    if x.shape[0] < 1:
        raise invalid("data X", f"shape {tuple(x.shape)}", "at least one sample", quote=False)
    if x.dim() != 2 or x.shape[1] != n_in:
        raise invalid("model.widths[0]" if cfg.model.widths else "model input width", n_in, f"the data's input width {tuple(x.shape)[-1]} (data shape {tuple(x.shape)})")
    if y.shape[-1] != n_out:
        raise invalid("model.widths[-1]" if cfg.model.widths else "model output width", n_out, f"the data's output width {y.shape[-1]}")
    for name, t in (("data X", x), ("data y", y)):
        if not bool(torch.isfinite(t).all()):
            raise invalid(name, f"{int((~torch.isfinite(t)).sum())} non-finite entries", "finite values only", quote=False)
    return x, y


def load_npz(path_str: str, name: str = "data.path") -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``X`` and ``y`` of an .npz file: numeric dtypes only (no pickled objects), shapes read from the headers
    and the float64 size checked against the available memory before anything is loaded."""
    path = Path(path_str)
    expected = "an .npz file with numeric arrays X and y"
    if not path.is_file():
        raise invalid(name, path_str, f"an existing file ({expected})")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if not {"X.npy", "y.npy"} <= names:
                raise invalid(name, path_str, f"{expected} (found {sorted(n.removesuffix('.npy') for n in names)[:6]})")
            n_values = 0
            for key in ("X", "y"):
                with zf.open(f"{key}.npy") as fh:
                    version = np.lib.format.read_magic(fh)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(fh)
                if dtype.hasobject or dtype.kind not in "biuf":
                    raise invalid(f"{name} array {key}", f"dtype {dtype}", "a numeric dtype (bool, int or float)",
                                  quote=False)
                n_values += int(np.prod(shape, dtype=np.float64))
        check_memory(name, 8.0 * n_values * 3, f"arrays X and y as float64, {n_values:,} values")
        with np.load(path, allow_pickle=False) as arrays:
            return np.asarray(arrays["X"]), np.asarray(arrays["y"])
    except FalabInputError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        reason = " ".join(str(exc).split())[:60] or type(exc).__name__
        raise invalid(name, path_str, f"{expected} ({reason})") from None


def _directions(cfg: RunConfig, model: AbstractTensorNet, g: torch.Generator) -> list[torch.Tensor]:
    """Unit initial directions ``vbar_l`` (P002 eq. 7): random Gaussian, all-ones, or the config's vectors."""
    sizes = model.param_sizes
    dirs = cfg.model.directions
    if isinstance(dirs, list):
        if len(dirs) != len(sizes):
            raise invalid("model.directions", f"{len(dirs)} vectors", f"{len(sizes)} (one per layer)", quote=False)
        vs = [torch.tensor(v, dtype=torch.float64) for v in dirs]
        for l, (v, k) in enumerate(zip(vs, sizes), start=1):
            if v.shape != (k,) or float(v.norm()) == 0:
                raise invalid(f"model.directions[{l - 1}] length", len(v), f"k_{l} = {k} entries, not all zero")
    elif dirs == "ones":
        vs = [torch.ones(k, dtype=torch.float64) for k in sizes]
    else:
        vs = [torch.randn(k, generator=g, dtype=torch.float64) for k in sizes]
    return [v / v.norm() for v in vs]


def build_model(cfg: RunConfig, g: torch.Generator) -> tuple[Any, Params]:
    """The model of the config (:func:`falab.registry.make_model`) and its initial parameters, ensemble dim first."""
    m = cfg.model
    k = cfg.ensemble
    if m.kind in ("mlp", "deep_linear", "matrix_factorization"):
        table: dict[str, dict[str, Any]] = {"mlp": {"widths": m.widths, "activation": m.activation, "bias": m.bias},
                                            "deep_linear": {"widths": m.widths, "bias": m.bias},
                                            "matrix_factorization": {"n": m.n, "r": m.r, "m": m.m}}
        model = make_model(m.kind, **table[m.kind])
        assert isinstance(model, MLP)  # these three families are MLPs
        params = model.init_params(g, ensemble=k, scheme=m.init.scheme, std=m.init.std)
        for l in m.init.zero_layers:
            params[f"W{l}"] = torch.zeros_like(params[f"W{l}"])
        return model, params
    if m.kind == "deep_matrix_sensing":
        model = make_model(m.kind, d=m.d, depth=m.depth)
        assert isinstance(model, DeepMatrixSensing)
        p = model.init_params(m.alpha)
        return model, {n: v.expand(k, *v.shape).contiguous() for n, v in p.items()}
    nets: dict[str, dict[str, Any]] = {"fully_connected": {"widths": m.widths}, "diagonal": {"d": m.d, "depth": m.depth},
                                       "circular_conv": {"d": m.d, "filters": m.filters}}
    net = make_model(m.kind, **nets[m.kind])
    assert isinstance(net, AbstractTensorNet)
    dirs = _directions(cfg, net, g)
    p = net.from_directions(dirs, m.alpha)
    return net, {n: v.expand(k, *v.shape).contiguous() for n, v in p.items()}


def _structured_feedback(cfg: RunConfig, model: AbstractTensorNet, params: Params,
                         g: torch.Generator) -> dict[str, torch.Tensor]:
    """FA feedback with each layer's structure: ``b_l`` drawn by the config's kind for a vector shaped like ``v_l``
    (per member), ``B_l = A_l(b_l)`` (the dense map of that layer: a diagonal, a circulant, the read-out row)."""
    kind = make_feedback(cfg.rule.feedback.kind, **cfg.rule.feedback.options())
    vectors = [kind.init(params[f"v{l}"].unsqueeze(-2), generator=g)[..., 0, :] for l in range(2, model.n_layers + 1)]
    return model.structured_feedback("fa", vectors)


def build_problem(cfg: RunConfig) -> tuple[Problem, Params]:
    """Model, rule, loss, data, initial parameters and feedback from a config (ensemble dim always present); every
    name goes through :mod:`falab.registry`."""
    g = torch.Generator().manual_seed(cfg.seed)
    x, y = load_data(cfg, g)
    model, params = build_model(cfg, g)
    fb = cfg.rule.feedback
    named = cfg.rule.name != "bp" and "feedback" in cfg.rule.model_fields_set
    feedback = make_feedback(fb.kind, **fb.options()) if named else None
    rule = make_rule(cfg.rule.name, feedback)
    loss = LOSSES[cfg.loss.name].make(reduction=cfg.loss.reduction)
    given = None
    if fb.structured:
        assert isinstance(model, AbstractTensorNet)  # checked by the config
        given = _structured_feedback(cfg, model, params, g)
    state = rule.init(model, params, generator=g, feedback=given)
    if cfg.dynamics.kind != "flow":  # per-parameter step sizes name the model's parameters: check before any output
        from ..dynamics._discrete import _step_sizes

        _step_sizes(cfg.dynamics.lr, params)
    return Problem(model, rule, loss, x, y, state), params


def build_measures(cfg: RunConfig, problem: Problem, params0: Params) -> dict[str, Any]:
    """The config's measures (:data:`falab.registry.MEASURES`); ``distance_to_predictor`` entries are recorded as
    ``distance_to_<predictor>`` against the predictor's map computed from the data (first member's init directions
    for theorem6)."""
    out: dict[str, Any] = {}
    for entry in cfg.measures:
        if isinstance(entry, str):
            out[entry] = make_measure(entry)
            continue
        x, y = problem.x.numpy(), problem.y.numpy()
        context: dict[str, Any] = {}
        if entry.predictor == "theorem6":
            model = problem.model
            assert isinstance(model, AbstractTensorNet)
            context = {"model": model, "alpha": cfg.model.alpha,
                       "directions": [(params0[f"v{l}"][0] / cfg.model.alpha).numpy()
                                      for l in range(1, model.n_layers + 1)]}
        ref = predict(entry.predictor, x, y, **context)
        out[f"distance_to_{entry.predictor}"] = make_measure("distance_to_predictor", reference=torch.as_tensor(ref))
    return out


def metric_columns(times: list[float], steps: list[int], metrics: dict[str, list[torch.Tensor]]
                   ) -> dict[str, np.ndarray]:
    """Long-form columns ``time, step, member, measure, index, value`` of recorded measures (one row per record,
    ensemble member, measure and component), record-major: every measure of record 0, then of record 1, ...

    A measure's value at one record has the ensemble on its leading dimension (a 0-d value is one member, one
    component). This is the one table layout of ``metrics.csv`` (falab run) and of the sweep cells' Parquet files.
    """
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("time", "step", "member", "measure", "index", "value")}
    for r, (t, step) in enumerate(zip(times, steps)):
        for name, values in metrics.items():
            v = values[r].detach()
            arr = (v.reshape(v.shape[0], -1) if v.dim() >= 1 else v.reshape(1, 1)).to(torch.float64).numpy()
            k, c = arr.shape
            cols["time"].append(np.full(k * c, float(t)))
            cols["step"].append(np.full(k * c, int(step), dtype=np.int64))
            cols["member"].append(np.repeat(np.arange(k, dtype=np.int64), c))
            cols["measure"].append(np.full(k * c, name, dtype=object))
            cols["index"].append(np.tile(np.arange(c, dtype=np.int64), k))
            cols["value"].append(arr.reshape(-1))
    empty = {"time": np.float64, "step": np.int64, "member": np.int64, "measure": object, "index": np.int64,
             "value": np.float64}
    return {k: np.concatenate(v) if v else np.zeros(0, dtype=empty[k]) for k, v in cols.items()}


CSV_HEADER = "time,step,member,measure,index,value\n"


def _csv_lines(cols: dict[str, np.ndarray]) -> str:
    """CSV lines with 17 significant digits (``repr`` of the float): a rerun is byte-identical."""
    return "".join(f"{float(t)!r},{int(s)},{int(m)},{name},{int(i)},{float(v)!r}\n" for t, s, m, name, i, v in
                   zip(cols["time"], cols["step"], cols["member"], cols["measure"], cols["index"], cols["value"]))


def write_metrics(traj: Trajectory, path: Path) -> None:
    """Long-form CSV: time, step, member, measure, index, value (17 significant digits); written atomically."""
    with atomic_writer(path) as fh:
        fh.write(CSV_HEADER)
        fh.write(_csv_lines(metric_columns(traj.times, traj.steps, traj.metrics)))


class MetricsAppender:
    """Appends ``metrics.csv`` while a run records: the measures of every record are turned into rows at once and
    flushed at least every ``flush_seconds`` (default: every record), so a killed run keeps a readable file with
    what it recorded (every flushed chunk ends with a complete line).

    The hook is the measures themselves: :meth:`wrap` returns measures that compute the same values and hand each
    completed record to the appender (the dynamics evaluate the measures once per record, in order, right after the
    finiteness checks), so no change to the simulation loop is needed. A chunked ensemble flow evaluates its
    measures when the chunks are stitched, after integration: its rows arrive then.
    """

    def __init__(self, path: Path, flush_seconds: float = 0.0) -> None:
        self.path = path
        self.flush_seconds = flush_seconds
        self.records = 0
        self._fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
        self._fh.write(CSV_HEADER)
        self._fh.flush()
        self._last_flush = time.monotonic()
        self._pending: dict[str, torch.Tensor] = {}

    def wrap(self, measures: dict[str, Any]) -> dict[str, Any]:
        names = list(measures)
        if not names:
            return measures

        def make(name: str, fn: Any) -> Any:
            def measure(snap: Any) -> torch.Tensor:
                value = torch.as_tensor(fn(snap)).detach().clone()
                self._pending[name] = value
                if name == names[-1]:
                    self.append(float(snap.t), int(snap.step), self._pending)
                    self._pending = {}
                return value
            return measure

        return {n: make(n, f) for n, f in measures.items()}

    def append(self, t: float, step: int, values: dict[str, torch.Tensor]) -> None:
        cols = metric_columns([t], [step], {k: [v] for k, v in values.items()})
        self._fh.write(_csv_lines(cols))
        self.records += 1
        now = time.monotonic()
        if now - self._last_flush >= self.flush_seconds:
            self._fh.flush()
            self._last_flush = now

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


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
        buf = io.BytesIO()
        fig.savefig(buf, dpi=110, format="png")
        plt.close(fig)
        atomic_write_bytes(p, buf.getvalue())
        paths.append(p)
    return paths


@dataclass
class RunResult:
    out_dir: Path
    trajectory: Trajectory
    manifest: dict[str, Any]
    resumed: bool = False  # True when --resume found the run already finished (nothing was rerun)


FINISHED = ("ok", "diverged", "stalled")


def _previous_run(out: Path) -> dict[str, Any] | None:
    """The manifest of a run already in ``out`` (``{}`` when it left outputs but no readable manifest), else None."""
    if not any((out / f).exists() for f in (*OUTPUT_FILES, "figures")):
        return None
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _clear_outputs(out: Path) -> None:
    for f in OUTPUT_FILES:
        (out / f).unlink(missing_ok=True)


def run(config: RunConfig | dict[str, Any], out_dir: str | Path,
        progress: Callable[[float], None] | None = None, *, allow_large: bool = False, resume: bool = False,
        overwrite: bool = False) -> RunResult:
    """Execute a run and write ``manifest.json``, ``metrics.csv`` and ``figures/``.

    Nothing is written before the config, the output directory and the data are valid and the estimated memory fits
    (``allow_large`` skips that bound). The output path is resolved once; symlinks among the files it writes are
    refused. One writer per directory: ``OUT/.falab.lock`` (a second run into it is refused, a lock left by a killed
    run is taken over). A directory holding an earlier run's outputs is refused unless ``overwrite`` (its outputs
    are replaced) or ``resume``: a finished run with the same config is kept as it is (``resumed=True``, nothing
    reruns), an interrupted one (manifest ``status: running``) is rerun from the start into the same files (runs are
    deterministic: the rows it had kept come out the same), a different config is refused.

    ``metrics.csv`` is appended record by record while the simulation runs (:class:`MetricsAppender`) and
    ``manifest.json`` says ``status: running`` until the end, so a killed run leaves its rows in a readable file and
    says it did not finish. On divergence (non-finite loss or solver failure) the manifest says ``status: diverged``
    and :class:`~falab.dynamics.Diverged` is raised.
    """
    from .._lock import output_lock

    cfg = parse_config(config)
    if resume and overwrite:
        raise invalid("--resume", "with --overwrite", "one of --resume (keep or finish the run in --out) and "
                      "--overwrite (replace it)", quote=False)
    check_run_size(cfg, allow_large=allow_large)
    out = check_out_dir(out_dir)
    check_targets(out, files=OUTPUT_FILES, dirs=("figures",))
    problem, params0 = build_problem(cfg)
    n_samples = problem.x.shape[-2]
    batch = getattr(cfg.dynamics, "batch_size", None)
    if batch is not None and batch > n_samples:
        raise invalid("dynamics.batch_size", batch, f"at most the number of samples ({n_samples})")
    measures = build_measures(cfg, problem, params0)
    config_json = cfg.model_dump(mode="json")
    make_out_dir(out)  # only now: a config rejected by the checks above leaves nothing behind
    with output_lock(out, "out"):
        previous = _previous_run(out)
        if previous is not None:
            if not (resume or overwrite):
                raise invalid("out", str(out), "a directory without an earlier run's outputs (it holds "
                              f"manifest.json/metrics.csv{' with status ' + str(previous.get('status')) if previous else ''}"
                              "; --resume keeps or finishes it, --overwrite replaces it)")
            if resume and previous.get("config") not in (None, config_json):
                raise invalid("--resume", str(out), "a directory holding a run of the same config (this one was made "
                              "by a different config; --overwrite replaces it, or choose another --out)")
            if resume and previous.get("status") in FINISHED:
                return RunResult(out, Trajectory(status=str(previous["status"]), message=str(previous.get("message", ""))),
                                 previous, resumed=True)
            _clear_outputs(out)
        return _execute(cfg, config_json, problem, params0, measures, out, progress)


def simulate_config(cfg: RunConfig, problem: Problem, params0: Params, measures: dict[str, Any],
                    progress: Callable[[float], None] | None = None) -> Trajectory:
    """The simulation a config asks for (flow or Euler/SGD steps) on a built problem, recording ``measures``; the one
    route of ``falab run`` and of the cells of ``falab sweep`` (which may pass several cells stacked as one
    ensemble)."""
    dyn = cfg.dynamics
    stop = None if dyn.stop is None else Stop(loss=dyn.stop.loss, update_norm=dyn.stop.update_norm)
    if dyn.kind == "flow":
        ts = np.linspace(0.0, dyn.t_end, dyn.n_points).tolist()
        return simulate_flow(problem, params0, ts, rtol=dyn.rtol, atol=dyn.atol, method=dyn.method,
                             step_size=dyn.step_size, max_evaluations=dyn.max_evaluations, measures=measures,
                             keep_params=False, progress=progress, stop=stop)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    scheme = DYNAMICS[dyn.kind].make(lr=dyn.lr)
    return simulate_discrete(problem, params0, scheme, dyn.steps, record_every=dyn.record_every,
                             batch_size=dyn.batch_size, generator=g if dyn.batch_size else None,
                             measures=measures, keep_params=False, progress=progress, stop=stop)


def _execute(cfg: RunConfig, config_json: dict[str, Any], problem: Problem, params0: Params, measures: dict[str, Any],
             out: Path, progress: Callable[[float], None] | None) -> RunResult:
    """The simulation with its outputs, once the directory is ours."""
    started = time.time()
    env = environment()
    manifest: dict[str, Any] = {"config": config_json, "seed": cfg.seed, "environment": env, "status": "running",
                                "message": "", "records": 0, "solver": {}}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    appender = MetricsAppender(out / "metrics.csv")
    try:
        traj = simulate_config(cfg, problem, params0, appender.wrap(measures), progress)
    finally:
        appender.close()
    manifest.update(status=traj.status, message=traj.message, records=len(traj.times), solver=traj.info)
    figures = _figures(traj, out)
    manifest["figures"] = [str(p.relative_to(out)) for p in figures]
    # The wall time differs between reruns; it lives in a separate file so that manifest.json is reproducible too.
    timing = {"wall_seconds": round(time.time() - started, 3)}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    atomic_write_text(out / "timing.json", json.dumps(timing) + "\n")
    if traj.status != "ok":
        raise Diverged(f"run {traj.status}: {traj.message}; {len(traj.times)} records kept in {out / 'metrics.csv'}")
    if progress:
        progress(1.0)
    return RunResult(out, traj, manifest)


__all__ = ["run", "RunResult", "build_problem", "load_data", "load_npz", "environment", "git_commit", "write_metrics",
           "FalabInputError", "OUTPUT_FILES", "build_measures", "build_model", "MetricsAppender", "metric_columns", "package_versions", "FINISHED", "simulate_config"]
