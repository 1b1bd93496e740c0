"""The sweep driver: manifest, resume by cell hash, one writer per directory, tasks on dask.distributed."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._checks import invalid
from .._io import atomic_write_text, check_out_dir, check_targets, make_out_dir
from .._lock import output_lock
from ..runs._runner import FINISHED, environment, package_versions
from ._cell import run_batch, write_error
from ._spec import Cell, Sweep, axis_value, make_batches
from ._store import CELLS, MANIFEST, read_status

# How many tasks per worker are submitted ahead: enough to keep every worker busy, few enough that the driver holds
# (and a killed driver loses) only the cells in flight.
TASKS_PER_WORKER = 2


@dataclass
class SweepSummary:
    """What a sweep run did: cells total, skipped (finished before), run now, by status, and the failures."""

    out: Path
    total: int
    skipped: int = 0
    ran: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.failures)


def _cell_payload(sweep: Sweep, cell: Cell) -> dict[str, Any]:
    return {"index": cell.index, "hash": cell.hash, "config": cell.config_json,
            "axes": {a: axis_value(cell.axes[a], sweep.axis_kinds[a]) for a in sweep.axes},
            "axis_kinds": sweep.axis_kinds}


def _manifest(sweep: Sweep, previous: dict[str, Any] | None) -> dict[str, Any]:
    env = environment()
    history = list((previous or {}).get("history", []))
    history.append({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sweep_sha256": sweep.content_hash,
                    "git_commit": env["git_commit"], "falab": env["falab"]})
    return {
        "sweep_file": sweep.source,
        "sweep_text": sweep.text,
        "sweep_sha256": sweep.content_hash,
        "axes": sweep.axes,
        "axis_kinds": sweep.axis_kinds,
        "cells": [{"index": c.index, "hash": c.hash, "axes": {a: axis_value(c.axes[a], sweep.axis_kinds[a])
                                                              for a in sweep.axes}} for c in sweep.cells],
        "environment": env,
        "git_commit": env["git_commit"],
        "packages": package_versions(),
        "history": history,
    }


def _finished(out: Path, cell: Cell) -> bool:
    st = read_status(out, cell.hash)
    if st is None or st.get("status") not in FINISHED:
        return False  # never run, in flight when killed, or failed with an error (retried)
    return (out / CELLS / f"{cell.hash}.parquet").is_file()


@contextlib.contextmanager
def _client(workers: int, scheduler: str | None, client: Any) -> Iterator[Any]:
    """The dask client: the one given, one connected to ``scheduler``, or a LocalCluster of ``workers``
    single-threaded worker processes (no dashboard: several sweeps may run on one machine)."""
    if client is not None:
        yield client
        return
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            c = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise invalid("--scheduler", scheduler, f"the address of a running dask scheduler ({exc})") from None
        try:
            yield c
        finally:
            c.close()
        return
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "FALAB_THREADS": "1"}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL, env=env) as cluster, Client(cluster) as c:
        yield c


def run_sweep(sweep: Sweep, out_dir: str | Path, *, workers: int = 2, scheduler: str | None = None,
              client: Any = None, batch: int | None = None, resume_changed: bool = False,
              on_start: Callable[[int, int], None] | None = None,
              on_done: Callable[[dict[str, Any]], None] | None = None) -> SweepSummary:
    """Run every unfinished cell of ``sweep`` into ``out_dir`` and return the summary.

    ``out_dir/sweep.json`` records the sweep, every cell's hash, the environment, every installed package's version
    and the git commit of the imported falab. A directory made by a different sweep is refused unless
    ``resume_changed`` (its finished cells that are still in the sweep are kept). One writer per directory
    (``.falab.lock``). Cells whose status file says ok/diverged/stalled are skipped; the others (never run, in
    flight when a run was killed, failed with an error) run as tasks of at most ``batch`` cells. Each task writes its
    cells' files itself; the driver keeps only the statuses of the tasks in flight. ``on_start(total, todo)`` and
    ``on_done(status)`` feed a progress display.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise invalid("--workers", workers, "an integer >= 1")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise invalid("--batch", batch, "an integer >= 1 (cells per task)")
    out = check_out_dir(out_dir, "out")
    check_targets(out, files=(MANIFEST,), dirs=(CELLS,), name="out")
    make_out_dir(out)
    started = time.perf_counter()
    with output_lock(out, "out"):
        previous = None
        if (out / MANIFEST).exists():
            try:
                previous = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                previous = None
            if previous is None or not isinstance(previous, dict):
                raise invalid("out", str(out), f"a sweep directory with a readable {MANIFEST} (or a new --out)")
            if previous.get("sweep_sha256") != sweep.content_hash and not resume_changed:
                raise invalid("sweep file", sweep.source, f"the sweep that made {out} (it changed since: "
                              "--resume-changed keeps the finished cells still in it, or choose a new --out)")
        elif out.exists() and any(p.name != ".falab.lock" for p in out.iterdir()):
            raise invalid("out", str(out), "an empty or new directory, or one made by falab sweep (no sweep.json)")
        cells_dir = out / CELLS
        cells_dir.mkdir(exist_ok=True)
        for tmp in cells_dir.glob(".*.tmp"):  # left by a task killed mid-write; we hold the lock
            tmp.unlink(missing_ok=True)
        atomic_write_text(out / MANIFEST, json.dumps(_manifest(sweep, previous), indent=1, sort_keys=True,
                                                     allow_nan=False) + "\n")
        todo = [c for c in sweep.cells if not _finished(out, c)]
        summary = SweepSummary(out=out, total=len(sweep.cells), skipped=len(sweep.cells) - len(todo))
        for c in sweep.cells:
            if c not in todo:
                st = read_status(out, c.hash) or {}
                summary.counts[st.get("status", "ok")] = summary.counts.get(st.get("status", "ok"), 0) + 1
        if on_start is not None:
            on_start(summary.total, len(todo))
        if todo:
            batches = make_batches(todo, batch if batch is not None else sweep.batch)
            with _client(workers, scheduler, client) as c:
                _execute(c, sweep, batches, cells_dir, summary, on_done)
        summary.seconds = time.perf_counter() - started
    return summary


def _execute(client: Any, sweep: Sweep, batches: list[list[Cell]], cells_dir: Path, summary: SweepSummary,
             on_done: Callable[[dict[str, Any]], None] | None) -> None:
    from distributed import as_completed

    n_workers = max(1, len(client.scheduler_info().get("workers", {})) or 1)
    window = TASKS_PER_WORKER * n_workers
    pending = iter(batches)
    in_flight: dict[Any, list[Cell]] = {}

    def submit() -> bool:
        b = next(pending, None)
        if b is None:
            return False
        fut = client.submit(run_batch, [_cell_payload(sweep, c) for c in b], str(cells_dir), pure=False,
                            key=f"falab-cells-{b[0].hash}-{os.getpid()}-{time.monotonic_ns()}")
        in_flight[fut] = b
        return fut

    ac = as_completed()
    for _ in range(window):
        fut = submit()
        if not fut:
            break
        ac.add(fut)
    for fut in ac:
        cells = in_flight.pop(fut)
        try:
            results = fut.result()
        except Exception as exc:  # the task itself failed (e.g. its workers kept dying): its cells are failures
            results = [write_error(cells_dir, _cell_payload(sweep, c), f"{type(exc).__name__}: {exc}")
                       for c in cells]
        fut.release()
        for st in results:
            summary.ran += 1
            summary.counts[st["status"]] = summary.counts.get(st["status"], 0) + 1
            if st["status"] != "ok":
                summary.failures.append(st)
            if on_done is not None:
                on_done(st)
        nxt = submit()
        if nxt:
            ac.add(nxt)
    summary.failures.sort(key=lambda st: st["index"])

