"""Figures of a sweep (``falab plot``): a measure against an axis or against time, with the mean over seeds and
members and their range as a band, one line per ``hue`` value and one panel per ``facet`` value; or a heat map of
the final measure over two axes.

The input is the tidy table of :func:`falab.sweeps.load` (``cell``, axis columns, ``time, step, member, measure,
index, value``). "Final" is the value at a cell's last record; with ``threshold`` it is instead the first recorded
time at which the measure is ``<= threshold`` (missing when it never is: drawn as a gap, counted in the title).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import invalid
from .._io import atomic_write_bytes


def _measure(frame: Any, y: str) -> tuple[Any, str]:
    name, _, idx = y.partition(":")
    if idx and not idx.isdigit():
        raise invalid("--y", y, "a measure name, or measure:index with an integer index")
    measures = sorted(set(frame["measure"])) if len(frame) else []
    if name not in measures:
        raise invalid("--y", y, f"a recorded measure of the finished cells ({', '.join(measures) or 'none'})")
    sub = frame[(frame["measure"] == name) & (frame["index"] == int(idx or 0))]
    if not len(sub):
        raise invalid("--y", y, f"a component index that {name} has (0..{int(frame[frame.measure == name]['index'].max())})")
    return sub, name if not idx else f"{name}[{idx}]"


def final_values(sub: Any, threshold: float | None = None) -> Any:
    """One row per cell and member: the value at the last record, or with ``threshold`` the first time the value is
    at most ``threshold`` (NaN when it never is)."""
    import pandas as pd  # type: ignore[import-untyped]  # pandas ships no types and pandas-stubs is not installed

    keys = ["cell", "member"]
    if threshold is None:
        last = sub.loc[sub.groupby(keys)["time"].idxmax()]
        return last.rename(columns={"value": "final"})
    hit = sub[sub["value"] <= threshold]
    first = hit.groupby(keys)["time"].min().rename("final")
    base = sub.drop_duplicates(keys).drop(columns=["value", "time", "step"]).set_index(keys)
    return base.join(first).reset_index() if len(base) else pd.DataFrame(columns=[*keys, "final"])


def _log_if_wide(values: np.ndarray) -> bool:
    v = values[np.isfinite(values)]
    return bool(v.size and np.all(v > 0) and v.max() / v.min() >= 100)


def plot_sweep(frame: Any, axes: list[str], *, x: str, y: str, hue: str | None = None, facet: str | None = None,
               heat: str | None = None, threshold: float | None = None, out: str | Path) -> Path:
    """Draw the figure (see the module docstring) and write it atomically as a PNG; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for opt, value in (("--x", x), ("--hue", hue), ("--facet", facet), ("--heat", heat)):
        allowed = [*axes, "time"] if opt == "--x" else axes
        if value is not None and value not in allowed:
            raise invalid(opt, value, f"one of the sweep's axes ({', '.join(allowed)})")
    chosen = [v for v in (x, hue, facet, heat) if v is not None]
    if len(set(chosen)) != len(chosen):
        raise invalid("--x/--hue/--facet/--heat", chosen, "different axes")
    if x == "time" and (heat is not None or threshold is not None):
        raise invalid("--x", x, "an axis of the sweep for --heat and --threshold (they plot one value per cell)")
    if heat is not None and hue is not None:
        raise invalid("--hue", hue, "no --hue with --heat (the heat map's colour is the measure)")
    sub, label = _measure(frame, y)
    panels = [None] if facet is None else sorted(sub[facet].dropna().unique().tolist())
    fig, axs = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    missing = 0
    for ax, panel in zip(axs[0], panels):
        part = sub if panel is None else sub[sub[facet] == panel]
        title = "" if panel is None else f"{facet} = {panel}"
        if x == "time":
            groups = [(None, part)] if hue is None else list(part.groupby(hue, sort=True))
            for key, g in groups:
                stats = g.groupby("time")["value"].agg(["mean", "min", "max"])
                t = stats.index.to_numpy()
                line = ax.plot(t, stats["mean"], lw=1.4, label=None if key is None else f"{hue} = {key}")[0]
                ax.fill_between(t, stats["min"], stats["max"], color=line.get_color(), alpha=0.2, lw=0)
            ax.set_xlabel("time")
            if _log_if_wide(part["value"].to_numpy()):
                ax.set_yscale("log")
        else:
            finals = final_values(part, threshold)
            missing += int(finals["final"].isna().sum())
            if heat is not None:
                table = finals.groupby([heat, x])["final"].mean().unstack(x)
                vals = table.to_numpy(dtype=float)
                log = _log_if_wide(vals)
                shown = np.log10(vals) if log else vals
                im = ax.imshow(shown, origin="lower", aspect="auto", cmap="viridis")
                ax.set_xticks(range(table.shape[1]), [f"{v:.3g}" if isinstance(v, float) else str(v)
                                                       for v in table.columns], rotation=45)
                ax.set_yticks(range(table.shape[0]), [f"{v:.3g}" if isinstance(v, float) else str(v)
                                                       for v in table.index])
                ax.set_ylabel(heat)
                fig.colorbar(im, ax=ax, label=("log10 " if log else "") + ("time to " if threshold is not None
                                                                          else "final ") + label)
            else:
                groups = [(None, finals)] if hue is None else list(finals.groupby(hue, sort=True))
                numeric = np.issubdtype(np.asarray(finals[x].dropna()).dtype, np.number)
                cats = sorted(finals[x].dropna().unique().tolist())
                for key, g in groups:
                    stats = g.groupby(x)["final"].agg(["mean", "min", "max"])
                    xs = stats.index.to_numpy() if numeric else np.array([cats.index(v) for v in stats.index])
                    line = ax.plot(xs, stats["mean"], marker="o", lw=1.4,
                                   label=None if key is None else f"{hue} = {key}")[0]
                    ax.fill_between(xs, stats["min"], stats["max"], color=line.get_color(), alpha=0.2, lw=0)
                if not numeric:
                    ax.set_xticks(range(len(cats)), [str(c) for c in cats])
                elif _log_if_wide(np.asarray(cats, dtype=float)):
                    ax.set_xscale("log")
                if _log_if_wide(finals["final"].to_numpy(dtype=float)):
                    ax.set_yscale("log")
                ax.set_ylabel(("time to " + label + f" <= {threshold:g}") if threshold is not None else f"final {label}")
            ax.set_xlabel(x)
        if x == "time":
            ax.set_ylabel(label)
        if hue is not None and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        ax.set_title(title, fontsize=9)
    note = f" ({missing} cell-members never reached it)" if threshold is not None and missing else ""
    what = "mean over the other axes, seeds and members" if heat is not None else \
        "mean, band = range over seeds/members"
    fig.suptitle(f"{label}: {what}{note}", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    plt.close(fig)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, buf.getvalue())
    return target
