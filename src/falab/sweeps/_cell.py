"""One task of a sweep: run a batch of cells (as one ensemble when they allow it) and write each cell's files.

Each cell writes ``cells/<hash>.parquet`` (tidy long form: ``cell``, the axis values, ``time, step, member, measure,
index, value``) and then ``cells/<hash>.json`` (its status: ``ok`` / ``diverged`` / ``stalled`` / ``error`` with the
message), both atomically (temporary file + ``os.replace``): the status file is written last, so a cell with a status
file has its complete table, and a task killed mid-write leaves at most a temporary file that the next run removes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_write_text, atomic_writer
from ..dynamics import Problem, Trajectory
from ..instruments import get_measures
from ..runs import _runner, parse_config
from ..runs._runner import build_problem, metric_columns, simulate_config

TABLE_COLUMNS = ("time", "step", "member", "measure", "index", "value")


def _types() -> tuple[dict[str, Any], dict[str, Any]]:
    import pyarrow as pa

    axis = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string(), "json": pa.string()}
    cols = {"time": pa.float64(), "step": pa.int64(), "member": pa.int64(), "measure": pa.string(),
            "index": pa.int64(), "value": pa.float64()}
    return axis, cols


AXIS_TYPES, COLUMN_TYPES = _types()


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become None (JSON has no NaN/Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "item"):
        return _clean(value.item())
    return str(value)


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _stack(problems: list[tuple[Problem, dict[str, torch.Tensor]]]) -> tuple[Problem, dict[str, torch.Tensor]] | None:
    """Several cells' problems as one ensemble on the leading dimension (parameters, feedback, and the data when it
    differs between cells); None when their tensors do not stack (then each cell runs alone)."""
    first, params0 = problems[0]
    try:
        sizes = [next(iter(p.values())).shape[0] for _, p in problems]
        params = {k: torch.cat([p[k] for _, p in problems]) for k in params0}
        if set(first.state) != set().union(*[set(q.state) for q, _ in problems]):
            return None
        state = {k: torch.cat([q.state[k] for q, _ in problems]) for k in first.state}
        same_data = all(q.x.shape == first.x.shape and torch.equal(q.x, first.x) and torch.equal(q.y, first.y)
                        for q, _ in problems)
        if same_data:
            x, y = first.x, first.y
        else:
            if any(q.x.dim() != 2 or q.y.dim() != 2 or q.x.shape != first.x.shape for q, _ in problems):
                return None
            x = torch.cat([q.x.expand(k, *q.x.shape) for (q, _), k in zip(problems, sizes)])
            y = torch.cat([q.y.expand(k, *q.y.shape) for (q, _), k in zip(problems, sizes)])
        if any(v.shape[0] != sum(sizes) for v in (*params.values(), *state.values())):
            return None
    except (RuntimeError, StopIteration, IndexError):
        return None
    return dataclasses.replace(first, x=x, y=y, state=state), params


def _split(traj: Trajectory, sizes: list[int]) -> list[Trajectory]:
    """The members of a stacked trajectory, cell by cell."""
    parts, start = [], 0
    for k in sizes:
        part = Trajectory(times=list(traj.times), steps=list(traj.steps), status=traj.status, message=traj.message,
                          info=dict(traj.info))
        part.metrics = {name: [v[start:start + k] for v in values] for name, values in traj.metrics.items()}
        parts.append(part)
        start += k
    return parts


def _measures(cfg: Any, problem: Problem, params0: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The config's measures as ``falab run`` builds them (predictor distances need the data)."""
    build = getattr(_runner, "build_measures", None)
    if build is not None:
        return dict(build(cfg, problem, params0))
    return get_measures(list(cfg.measures))


def _write_cell(cells_dir: Path, cell: dict[str, Any], traj: Trajectory | None, status: str, message: str,
                seconds: float, batched: int) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    h = cell["hash"]
    records = 0
    if traj is not None:
        cols = metric_columns(traj.times, traj.steps, traj.metrics)
        n = len(cols["value"])
        arrays = [pa.array([h] * n, pa.string())]
        names = ["cell"]
        kinds = cell.get("axis_kinds", {})
        for axis, value in cell["axes"].items():
            arrays.append(pa.array([value] * n, AXIS_TYPES[kinds.get(axis, "json")]))
            names.append(axis)
        for name in TABLE_COLUMNS:
            col = cols[name]
            arrays.append(pa.array(col.tolist() if name == "measure" else col, COLUMN_TYPES[name]))
            names.append(name)
        with atomic_writer(cells_dir / f"{h}.parquet", "wb") as fh:
            pq.write_table(pa.Table.from_arrays(arrays, names=names), fh)
        records = len(traj.times)
    info = {"hash": h, "index": cell["index"], "axes": cell["axes"], "status": status, "message": _one_line(message),
            "records": records, "seconds": round(seconds, 4), "batched_with": batched,
            "solver": traj.info if traj is not None else {}, "worker": f"{socket.gethostname()}:{os.getpid()}"}
    atomic_write_text(cells_dir / f"{h}.json", json.dumps(_clean(info), indent=1, sort_keys=True, allow_nan=False))
    return {k: info[k] for k in ("hash", "index", "status", "message", "records", "seconds")}


def write_error(cells_dir: Path, cell: dict[str, Any], message: str) -> dict[str, Any]:
    """The status file of a cell whose task failed outside the cell's own code (its workers kept dying)."""
    return _write_cell(cells_dir, cell, None, "error", message, 0.0, 1)


def _run_alone(cells_dir: Path, cell: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    traj = None
    try:
        cfg = parse_config(cell["config"])
        problem, params0 = build_problem(cfg)
        traj = simulate_config(cfg, problem, params0, _measures(cfg, problem, params0))
        status, message = traj.status, traj.message
    except Exception as exc:  # a failed cell never stops the others: its status says why
        status, message = "error", f"{type(exc).__name__}: {exc}" if str(exc) else traceback.format_exc(limit=1)
        traj = None
    return _write_cell(cells_dir, cell, traj, status, message, time.perf_counter() - started, 1)


def run_batch(cells: list[dict[str, Any]], cells_dir: str, threads: int = 1) -> list[dict[str, Any]]:
    """Run cells (each ``{index, hash, axes, config}``) and write their files; returns their small statuses.

    Two or more cells are stacked as one ensemble (they share model, rule, loss and dynamics: see
    :func:`~falab.sweeps.make_batches`) and integrated in one solver run; if they do not stack, or the stacked run
    does not finish (one member diverging or stalling stops an ensemble), each cell reruns alone so that its status
    is its own.
    """
    torch.set_num_threads(threads)
    out = Path(cells_dir)
    if len(cells) > 1:
        started = time.perf_counter()
        try:
            cfgs = [parse_config(c["config"]) for c in cells]
            built = [build_problem(cfg) for cfg in cfgs]
            stacked = _stack(built)
        except Exception:
            stacked = None
        if stacked is not None:
            sizes = [next(iter(p.values())).shape[0] for _, p in built]
            try:
                traj = simulate_config(cfgs[0], stacked[0], stacked[1], _measures(cfgs[0], stacked[0], stacked[1]))
            except Exception:
                traj = None
            if traj is not None and traj.status == "ok":
                seconds = (time.perf_counter() - started) / len(cells)
                return [_write_cell(out, c, part, "ok", "", seconds, len(cells))
                        for c, part in zip(cells, _split(traj, sizes))]
    return [_run_alone(out, c) for c in cells]
