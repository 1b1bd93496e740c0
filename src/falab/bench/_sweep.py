"""Sweep throughput (issue 13): cells per second of one sweep of small flows (64 cells; 8 with ``quick``) through

* ``falab sweep`` (a subprocess: 2 single-threaded dask worker processes, cluster start and imports included,
  one cell per task, the command's default),
* a loop of ``falab run`` subprocesses (one interpreter, torch import and config per cell; 8 cells, 2 with ``quick``),
* in-process sequential :func:`falab.runs.run` calls (no process start at all),
* :func:`falab.sweeps.run_sweep` on an already running 2-worker cluster, one cell per task and 16 cells per task
  (batched as one ensemble; not in ``quick``),

and the gain from batching measured in-process (one task of 16 cells against 16 tasks of one cell, no dask).

The routes must agree before their rates mean anything: every cell run by ``falab run`` and in-process is compared
with the same cell of the ``falab sweep`` directory, value for value (``sweep_route_max_abs_diff``, 0 when they
agree bit for bit); a batched flow shares one adaptive step-size sequence, so its distance to the one-cell tasks is
reported separately (``batched_flow_max_rel_diff``, of the order of the solver tolerance).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

BASE: dict[str, Any] = {
    "model": {"widths": [6, 12, 1], "activation": "tanh", "init": {"scheme": "gaussian", "std": 0.3}},
    "data": {"kind": "teacher", "n_samples": 12},
    "rule": {"name": "fa", "feedback": {"kind": "gaussian", "std": 0.5}},
    "loss": {"name": "squared"},
    "dynamics": {"kind": "flow", "t_end": 5.0, "n_points": 11},
    "measures": ["loss", "layer_norms"],
}
SWEEP: dict[str, Any] = {"base": BASE, "grid": {"model.init.std": [0.1, 0.2, 0.3, 0.5], "seed": list(range(16))}}
QUICK_SWEEP: dict[str, Any] = {"base": BASE, "grid": {"model.init.std": [0.1, 0.3], "seed": list(range(4))}}
KEYS = ["time", "step", "member", "measure", "index"]


def _max_abs_diff(ref: Any, table: Any, cell_hash: str) -> float:
    """max |a - b| over the rows of one cell (NaN where both are NaN counts as equal; a missing row is inf)."""
    import numpy as np

    mine = table[table.cell == cell_hash]
    merged = ref.merge(mine, on=KEYS, suffixes=("_a", "_b"), how="outer", validate="one_to_one")
    if len(merged) != len(ref) or len(merged) != len(mine) or merged.value_a.isna().all():
        return float("inf")
    a, b = merged.value_a.to_numpy(float), merged.value_b.to_numpy(float)
    both_nan = np.isnan(a) & np.isnan(b)
    d = np.abs(a - b)[~both_nan]
    return float(np.nanmax(d, initial=0.0)) if not np.isnan(d).any() else float("inf")


def run_sweep_bench(quick: bool = False, echo: Callable[[str], None] = print) -> dict[str, float]:
    """The figures named in the module docstring (cells per second, the routes' agreement, the batching gain)."""
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped]  # pandas ships no types and pandas-stubs is not installed

    from ..runs import run
    from ..sweeps import load, parse_sweep, run_batch
    from ..sweeps._driver import _cell_payload

    sweep = parse_sweep(QUICK_SWEEP if quick else SWEEP)
    n = len(sweep.cells)
    n_proc = 2 if quick else 8  # ~3-5 s per falab run process: its rate is measured on a few cells
    size = min(16, n)
    results: dict[str, float] = {"sweep_cells": float(n)}
    env = {**os.environ, "FALAB_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "falab.cli"]
    with tempfile.TemporaryDirectory(prefix="falab-bench-sweep-") as tmp:
        root = Path(tmp)
        sweep_file = root / "sweep.yaml"
        sweep_file.write_text(yaml.safe_dump(QUICK_SWEEP if quick else SWEEP))
        t = time.perf_counter()
        proc = subprocess.run([*cmd, "sweep", str(sweep_file), "--out", str(root / "cli"), "--workers", "2"],
                              env=env, capture_output=True, text=True)
        cli_s = time.perf_counter() - t
        if proc.returncode != 0:
            echo(f"sweep bench: falab sweep failed: {proc.stderr.strip()[-300:]}")
            return {}
        results["sweep_cli_cells_per_s"] = n / cli_s
        table = load(root / "cli")
        diffs: list[float] = []
        t = time.perf_counter()
        for c in sweep.cells[:n_proc]:
            cfg = root / f"cell{c.index}.yaml"
            cfg.write_text(yaml.safe_dump(c.config_json))
            subprocess.run([*cmd, "run", str(cfg), "--out", str(root / f"run{c.index}")], env=env,
                           capture_output=True, check=True)
        results["run_loop_cells_per_s"] = n_proc / (time.perf_counter() - t)
        t = time.perf_counter()
        for c in sweep.cells:
            run(c.config, root / f"inproc{c.index}")
        results["inprocess_cells_per_s"] = n / (time.perf_counter() - t)
        for c in sweep.cells:  # after the timing: reading CSVs is no part of a route
            diffs.append(_max_abs_diff(pd.read_csv(root / f"inproc{c.index}" / "metrics.csv"), table, c.hash))
            if c.index < n_proc:
                diffs.append(_max_abs_diff(pd.read_csv(root / f"run{c.index}" / "metrics.csv"), table, c.hash))
        results["sweep_route_max_abs_diff"] = max(diffs)
        payloads = [_cell_payload(sweep, c) for c in sweep.cells]
        for name, k in (("batch1", 1), (f"batch{size}", size)):
            cells_dir = root / f"direct_{name}"
            cells_dir.mkdir()
            t = time.perf_counter()
            for i in range(0, n, k):
                run_batch(payloads[i:i + k], str(cells_dir))
            results[f"inprocess_{name}_cells_per_s"] = n / (time.perf_counter() - t)
        results[f"batching_gain_{size}"] = (results[f"inprocess_batch{size}_cells_per_s"]
                                            / results["inprocess_batch1_cells_per_s"])
        one = _frame(root / "direct_batch1", payloads)
        many = _frame(root / f"direct_batch{size}", payloads)
        merged = one.merge(many, on=["cell", *KEYS], validate="one_to_one")
        x, y = merged.value_x.to_numpy(float), merged.value_y.to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)
        results["batched_flow_max_rel_diff"] = float(np.max(np.abs(x[ok] - y[ok]) / np.maximum(np.abs(x[ok]), 1e-3)))
        if not quick:
            _warm(sweep, root, results, size)
    line = (f"sweep of {n} small flows, cells/s: falab sweep (2 workers, start included) "
            f"{results['sweep_cli_cells_per_s']:.2f}, loop of falab run processes {results['run_loop_cells_per_s']:.2f}"
            f" ({n_proc} cells), in-process runs {results['inprocess_cells_per_s']:.2f}")
    if not quick:
        line += (f", run_sweep on a running cluster {results['sweep_warm_batch1_cells_per_s']:.2f} (1 cell/task) / "
                 f"{results[f'sweep_warm_batch{size}_cells_per_s']:.2f} ({size} cells/task as one ensemble)")
    echo(line + f"; batching gain in-process x{results[f'batching_gain_{size}']:.2f} ({size} cells as one ensemble "
         f"vs 1 per task); routes agree to {results['sweep_route_max_abs_diff']:.1e} (max |diff|), batched flow to "
         f"{results['batched_flow_max_rel_diff']:.1e} (relative)")
    return results


def _frame(cells_dir: Path, payloads: list[dict[str, Any]]) -> Any:
    import pandas as pd

    frames = []
    for p in payloads:
        f = pd.read_parquet(cells_dir / f"{p['hash']}.parquet")
        f["cell"] = p["hash"]
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def _warm(sweep: Any, root: Path, results: dict[str, float], size: int) -> None:
    import importlib

    from distributed import Client, LocalCluster

    from ..sweeps import run_sweep

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL, env={"OMP_NUM_THREADS": "1", "FALAB_THREADS": "1"}) as cl, \
            Client(cl) as client:
        client.run(importlib.import_module, "falab.sweeps._cell")
        for name, k in (("warm_batch1", 1), (f"warm_batch{size}", size)):
            t = time.perf_counter()
            run_sweep(sweep, root / name, client=client, batch=k)
            results[f"sweep_{name}_cells_per_s"] = len(sweep.cells) / (time.perf_counter() - t)


__all__ = ["QUICK_SWEEP", "SWEEP", "run_sweep_bench"]
