"""Sweep files: a base run config plus axes, expanded into validated cells before anything runs.

A sweep file (YAML)::

    base: ../quickstart_fa_flow.yaml      # a run config file (relative to the sweep file) or an inline mapping
    grid:                                 # Cartesian product, the last axis varying fastest
      model.init.std: [0.01, 0.1, 1.0]
      seed: [0, 1, 2]
    zip:                                  # groups of axes that advance together (each group multiplies the grid)
      - {rule.name: [bp, fa], rule.feedback.std: [null, 0.5]}
    batch: 8                              # cells per task, run as one ensemble where possible (--batch overrides)

An axis is a field path of the run config (``model.widths.1`` indexes a list); a value ``null`` removes the field
from the cell (the config's default applies, and a block such as ``rule.feedback`` may be left out for rule ``bp``).
Every cell is validated by :func:`falab.runs.parse_config` and the memory bound of ``falab run``; a bad cell is one
line naming its index, the axis values and the field.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._checks import FalabInputError, invalid, short_repr
from .._io import load_yaml, read_text
from ..runs import RunConfig, parse_config
from ..runs._config import check_run_size

MAX_CELLS = 100_000
SWEEP_KEYS = ("base", "grid", "zip", "batch")
# Fields that only change what build_problem draws (initial weights, feedback, data noise), not tensor shapes or the
# dynamics: cells differing only in these run as one ensemble. brsf redraws feedback from a per-run step generator,
# and minibatch SGD draws batches from a per-run generator, so neither can share an ensemble honestly.
BATCHABLE = ("seed", "ensemble", "model.init", "rule.feedback", "data.noise")


@dataclass(frozen=True)
class Cell:
    """One expanded cell: its index in the sweep, the axis values, the validated config and its hash."""

    index: int
    axes: dict[str, Any]
    config: RunConfig
    hash: str

    @property
    def config_json(self) -> dict[str, Any]:
        """The config as given (fields left at their defaults omitted): what :func:`~falab.runs.parse_config`
        accepts again (the full dump would set options the validators refuse, e.g. a uniform scale on a Gaussian
        feedback)."""
        return self.config.model_dump(mode="json", exclude_unset=True)


@dataclass
class Sweep:
    """A validated sweep: its source text, the axis names (in order) and every cell."""

    source: str
    text: str
    content_hash: str
    axes: list[str]
    cells: list[Cell]
    batch: int = 1
    axis_kinds: dict[str, str] = field(default_factory=dict)


def config_hash(cfg: RunConfig) -> str:
    """16 hex digits of the SHA-256 of the config's canonical JSON: a cell's identity across reruns."""
    text = json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set (or with ``None`` remove) ``path`` in a nested config dict; integers index lists. A block that a removal
    leaves empty is removed too (``rule.feedback.kind: null`` and ``rule.feedback.std: null`` leave no feedback
    block, as rule ``bp`` requires)."""
    _set(tree, path, value)
    if value is None:
        parts = path.split(".")
        for depth in range(len(parts) - 1, 0, -1):
            parent: Any = tree
            for part in parts[:depth - 1]:
                parent = parent.get(part) if isinstance(parent, dict) else None
            key = parts[depth - 1]
            if isinstance(parent, dict) and parent.get(key) == {}:
                del parent[key]


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node: Any = tree
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[:i]) or "the config"
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise invalid("sweep axis", path, f"an index below {len(node)} into the list {where}")
            if last:
                if value is None:
                    raise invalid("sweep axis", path, "a value for a list entry (null removes fields only)")
                node[int(part)] = value
                return
            node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                if value is None:
                    node.pop(part, None)
                else:
                    node[part] = value
                return
            if part not in node or node[part] is None:
                if value is None:
                    return  # removing a field of a block that is not there
                node[part] = {}
            node = node[part]
        else:
            raise invalid("sweep axis", path, f"a path into a block or list ({where} is the value {short_repr(node)})")


def _axis_kind(values: list[Any]) -> str:
    """The column type of an axis in the cells' tables: int, float, bool, str, or json (anything else, encoded)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float"
    if present and all(isinstance(v, str) for v in present):
        return "str"
    return "json"


def axis_value(value: Any, kind: str) -> Any:
    """An axis value as stored in the tables (floats for a float axis, JSON text for non-scalar values)."""
    if value is None:
        return None
    if kind == "float":
        return float(value)
    if kind == "json":
        return json.dumps(value, sort_keys=True)
    return value


def _axes(doc: dict[str, Any]) -> tuple[list[list[tuple[str, list[Any]]]], list[str]]:
    """Axis groups (the grid's axes one by one, then each zipped group) and the axis names in order."""
    groups: list[list[tuple[str, list[Any]]]] = []
    grid = doc.get("grid") or {}
    if not isinstance(grid, dict):
        raise invalid("sweep grid", grid, "a mapping of field path -> list of values")
    zips = doc.get("zip") or []
    if isinstance(zips, dict):
        zips = [zips]
    if not isinstance(zips, list) or not all(isinstance(z, dict) for z in zips):
        raise invalid("sweep zip", zips, "a list of mappings of field path -> list of values (one per zipped group)")
    names: list[str] = []

    def checked(path: Any, values: Any, where: str) -> tuple[str, list[Any]]:
        if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
            raise invalid(f"sweep {where} axis", path, "a field path such as model.init.std or model.widths.1")
        if not isinstance(values, list):
            raise invalid(f"sweep axis {path}", values, "a list of values")
        if not values:
            raise invalid(f"sweep axis {path}", values, "a non-empty list of values")
        if path in names:
            raise invalid("sweep axis", path, "each field path once (it appears twice)")
        names.append(path)
        return path, values

    for path, values in grid.items():
        groups.append([checked(path, values, "grid")])
    for g, z in enumerate(zips):
        if not z:
            raise invalid(f"sweep zip group {g}", z, "at least one axis")
        group = [checked(path, values, "zip") for path, values in z.items()]
        lengths = {p: len(v) for p, v in group}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{p} has {n}" for p, n in lengths.items())
            raise invalid(f"sweep zip group {g}", shown, "zipped axes of one length", quote=False)
        groups.append(group)
    if not groups:
        raise invalid("sweep axes", "none", "at least one axis under grid or zip", quote=False)
    return groups, names


def _cell_error(index: int, axes: dict[str, Any], exc: FalabInputError) -> FalabInputError:
    msg = str(exc)
    shown = ", ".join(f"{k}={short_repr(v, 30)}" for k, v in axes.items())
    if msg.startswith("Invalid ") and ": " in msg:
        name, rest = msg[len("Invalid "):].split(": ", 1)
        return FalabInputError(f"Invalid {name} in sweep cell {index} ({shown}): {rest}")
    return FalabInputError(f"Invalid sweep cell {index} ({shown}): {msg}")


def parse_sweep(doc: Any, *, source: str = "sweep", text: str = "", base_dir: Path | None = None,
                allow_large: bool = False) -> Sweep:
    """Expand and validate a sweep document (see the module docstring)."""
    if not isinstance(doc, dict) or not doc:
        raise invalid("sweep file", source, "a mapping with keys base and grid and/or zip")
    unknown = [k for k in doc if k not in SWEEP_KEYS]
    if unknown:
        raise invalid("sweep key", unknown[0], f"one of {', '.join(SWEEP_KEYS)}")
    base = doc.get("base")
    if isinstance(base, str):
        base_path = (base_dir or Path(".")) / base
        base = load_yaml(read_text(base_path, "sweep base"), source=base_path.name)
    if not isinstance(base, dict) or not base:
        raise invalid("sweep base", short_repr(doc.get("base")), "a run config mapping or the path of a run config "
                      "file", quote=False)
    batch = doc.get("batch", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise invalid("sweep batch", batch, "an integer >= 1 (cells per task)")
    groups, names = _axes(doc)
    sizes = [len(g[0][1]) for g in groups]
    total = 1
    for n in sizes:
        total *= n
    if total > MAX_CELLS:
        raise invalid("sweep size", f"{total:,} cells", f"at most {MAX_CELLS:,} cells", quote=False)
    kinds = {p: _axis_kind(v) for g in groups for p, v in g}
    cells: list[Cell] = []
    seen: dict[str, int] = {}
    for index, choice in enumerate(itertools.product(*[range(n) for n in sizes])):
        axes = {p: v[i] for g, i in zip(groups, choice) for p, v in g}
        tree = copy.deepcopy(base)
        try:
            for p, v in axes.items():
                _set_path(tree, p, copy.deepcopy(v))
            cfg = parse_config(tree)
            check_run_size(cfg, allow_large=allow_large)
        except FalabInputError as exc:
            raise _cell_error(index, axes, exc) from None
        h = config_hash(cfg)
        if h in seen:
            raise invalid(f"sweep cell {index}", ", ".join(f"{k}={short_repr(v, 30)}" for k, v in axes.items()),
                          f"a run config different from every other cell's (cell {seen[h]} is the same run)",
                          quote=False)
        seen[h] = index
        cells.append(Cell(index, axes, cfg, h))
    canonical = json.dumps({"base": base, **{k: doc[k] for k in ("grid", "zip") if k in doc}}, sort_keys=True)
    return Sweep(source=source, text=text, content_hash=hashlib.sha256(canonical.encode()).hexdigest(),
                 axes=names, cells=cells, batch=batch, axis_kinds=kinds)


def load_sweep(path: str | Path, *, allow_large: bool = False) -> Sweep:
    """Read (hardened YAML, at most 1 MB), expand and validate a sweep file."""
    p = Path(path)
    text = read_text(p, "sweep path")
    doc = load_yaml(text, "sweep YAML", source=p.name)
    return parse_sweep(doc, source=str(p), text=text, base_dir=p.parent, allow_large=allow_large)


def batch_key(cell: Cell) -> str | None:
    """Cells with the same key can run as one ensemble (None: this cell runs alone)."""
    cfg = cell.config
    if cfg.dynamics.kind == "sgd" or "brsf" in (cfg.rule.name, cfg.rule.feedback.kind):
        return None
    if any(not isinstance(m, str) for m in cfg.measures):
        return None  # a predictor distance's reference is computed from one cell's data
    tree = cell.config.model_dump(mode="json")
    for path in BATCHABLE:
        parts = path.split(".")
        node = tree
        for part in parts[:-1]:
            node = node[part]
        node.pop(parts[-1], None)
    return json.dumps(tree, sort_keys=True)


def make_batches(cells: list[Cell], batch: int) -> list[list[Cell]]:
    """Consecutive groups of at most ``batch`` cells with one :func:`batch_key` (sweep order kept within a key)."""
    if batch <= 1:
        return [[c] for c in cells]
    by_key: dict[str, list[Cell]] = {}
    batches: list[list[Cell]] = []
    for c in cells:
        key = batch_key(c)
        if key is None:
            batches.append([c])
            continue
        group = by_key.setdefault(key, [])
        group.append(c)
        if len(group) == batch:
            batches.append(group)
            by_key[key] = []
    batches.extend(g for g in by_key.values() if g)
    return sorted(batches, key=lambda b: b[0].index)
