"""Sweeps: a base run config times axes, run as resumable cells on dask.distributed (``falab sweep``).

* :func:`load_sweep` / :func:`parse_sweep` expand and validate a sweep file (every cell before anything runs).
* :func:`run_sweep` runs the unfinished cells on a LocalCluster or any dask scheduler; each cell writes
  ``cells/<hash>.parquet`` and ``cells/<hash>.json`` atomically; ``sweep.json`` is the manifest.
* :func:`load` reads every finished cell as one tidy pandas DataFrame (or a pyarrow dataset); :func:`statuses` one
  row per cell.
"""

from ._cell import run_batch
from ._driver import SweepSummary, run_sweep
from ._spec import Cell, Sweep, batch_key, config_hash, load_sweep, make_batches, parse_sweep
from ._store import load, read_manifest, statuses

__all__ = ["Cell", "Sweep", "SweepSummary", "batch_key", "config_hash", "load", "load_sweep", "make_batches",
           "parse_sweep", "read_manifest", "run_batch", "run_sweep", "statuses"]
