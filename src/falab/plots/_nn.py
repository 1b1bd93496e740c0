"""Figures of the practice benchmark (falab.nn): learning curves and alignment angles per rule. Arrays in, PNG out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_COLORS = {"bp": "k", "fa": "tab:blue", "dfa": "tab:orange", "usf": "tab:green", "frsf": "tab:red",
           "brsf": "tab:purple"}


def _band(ax: Any, curves: list[list[float]], label: str, color: str) -> None:
    n = min(len(c) for c in curves)
    a = np.array([c[:n] for c in curves], dtype=float)
    ep = np.arange(1, n + 1)
    with np.errstate(all="ignore"):
        mean = np.nanmean(a, axis=0) if np.isfinite(a).any() else np.full(n, np.nan)
        std = np.nanstd(a, axis=0) if np.isfinite(a).any() else np.zeros(n)
    if not np.isfinite(mean).any():
        return
    ax.plot(ep, mean, color=color, label=label, lw=1.5)
    ax.fill_between(ep, mean - std, mean + std, color=color, alpha=0.15, lw=0)


def plot_learning_curves(runs: Sequence[dict[str, Any]], path: Path | str, *, title: str = "") -> Path:
    """Validation accuracy (left) and mean feedback angle of the informative layers (right) vs epoch; one line per
    rule, band = ± std over seeds. ``runs``: dicts with ``rule`` and ``curves`` (``val_acc``, ``angle``)."""
    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    rules = list(dict.fromkeys(r["rule"] for r in runs))
    for rule in rules:
        sel = [r["curves"] for r in runs if r["rule"] == rule]
        color = _COLORS.get(rule, None) or "gray"
        _band(axes[0], [c["val_acc"] for c in sel], rule, color)
        if rule != "bp":
            _band(axes[1], [c["angle"] for c in sel], rule, color)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("validation accuracy (%)")
    axes[0].legend(fontsize=8, ncol=2)
    axes[0].grid(alpha=0.3)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("angle(W, feedback used) (°)")
    axes[1].axhline(90, color="gray", lw=0.8, ls=":")
    axes[1].grid(alpha=0.3)
    if any(r != "bp" for r in rules):
        axes[1].legend(fontsize=8, ncol=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
