"""Reading a sweep directory: ``sweep.json`` (the manifest), ``cells/<hash>.parquet`` and ``cells/<hash>.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._checks import invalid

MANIFEST = "sweep.json"
CELLS = "cells"


def read_manifest(out: str | Path) -> dict[str, Any]:
    """The sweep manifest of a sweep directory (one ``Invalid`` line when there is none)."""
    path = Path(out) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise invalid("sweep directory", str(out), f"a directory made by falab sweep (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise invalid("sweep directory", str(out), f"a readable {MANIFEST} ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("cells"), list):
        raise invalid("sweep directory", str(out), f"a {MANIFEST} with a list of cells")
    return manifest


def read_status(out: str | Path, cell_hash: str) -> dict[str, Any] | None:
    """A cell's status file, or None when the cell has not finished (missing or unreadable status)."""
    path = Path(out) / CELLS / f"{cell_hash}.json"
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def statuses(out: str | Path) -> Any:
    """One row per cell of the manifest: index, hash, axis values, status (``pending`` when not run yet), message,
    records, seconds (a pandas DataFrame)."""
    import pandas as pd  # type: ignore[import-untyped]  # pandas ships no types and pandas-stubs is not installed

    manifest = read_manifest(out)
    rows = []
    for cell in manifest["cells"]:
        st = read_status(out, cell["hash"]) or {"status": "pending", "message": "", "records": 0, "seconds": None}
        rows.append({"index": cell["index"], "hash": cell["hash"], **cell["axes"],
                     **{k: st.get(k) for k in ("status", "message", "records", "seconds")}})
    return pd.DataFrame(rows)


def load(out: str | Path, *, as_dataset: bool = False, statuses_of: tuple[str, ...] | None = None) -> Any:
    """Every finished cell's table of a sweep directory as one pandas DataFrame (tidy: ``cell``, the axis values,
    ``time, step, member, measure, index, value``), in sweep order; ``as_dataset=True`` returns a
    ``pyarrow.dataset.Dataset`` over the same files instead (for sweeps too large for memory).

    Only the cells of the manifest count (a cell of an earlier version of a changed sweep is not loaded); a cell
    without its status file (in flight when a run was killed) is not loaded. ``statuses_of`` keeps the cells whose
    status is in it (e.g. ``("ok",)``).
    """
    import pyarrow.dataset as ds

    manifest = read_manifest(out)
    files = []
    for cell in manifest["cells"]:
        st = read_status(out, cell["hash"])
        if st is None or (statuses_of is not None and st.get("status") not in statuses_of):
            continue
        path = Path(out) / CELLS / f"{cell['hash']}.parquet"
        if path.is_file():
            files.append(str(path))
    if not files:
        if as_dataset:
            raise invalid("sweep directory", str(out), "at least one finished cell with a table")
        import pandas as pd

        return pd.DataFrame(columns=["cell", *manifest.get("axes", []), "time", "step", "member", "measure",
                                     "index", "value"])
    dataset = ds.dataset(files, format="parquet")
    if as_dataset:
        return dataset
    return dataset.to_table().to_pandas()
