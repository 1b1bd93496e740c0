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


def _band(ax: Any, curves: list[list[float]], label: str, color: Any, x: Sequence[float] | None = None) -> None:
    if not curves:
        return
    n = min(len(c) for c in curves)
    a = np.array([[np.nan if v is None else v for v in c[:n]] for c in curves], dtype=float)
    ep = np.arange(1, n + 1) if x is None else np.asarray(x[:n], dtype=float)
    with np.errstate(all="ignore"):
        mean = np.nanmean(a, axis=0) if np.isfinite(a).any() else np.full(n, np.nan)
        std = np.nanstd(a, axis=0) if np.isfinite(a).any() else np.zeros(n)
    if not np.isfinite(mean).any():
        return
    ax.plot(ep, mean, color=color, label=label, lw=1.5)
    ax.fill_between(ep, mean - std, mean + std, color=color, alpha=0.15, lw=0)


def plot_learning_curves(runs: Sequence[dict[str, Any]], path: Path | str, *, title: str = "") -> Path:
    """Validation accuracy (left; bits per character for a language model) and mean feedback angle of the informative
    layers (right) against training steps (epochs for epoch-based runs); one line per rule, band = ± std over seeds.
    ``runs``: dicts with ``rule`` and ``curves`` (``val_acc``, ``val_bpc``, ``angle``, optionally ``step``)."""
    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    rules = list(dict.fromkeys(r["rule"] for r in runs))
    lm = any(r.get("test_bpc") is not None for r in runs)
    steps = any(r["curves"].get("step") and r.get("steps") for r in runs)
    for rule in rules:
        sel = [r["curves"] for r in runs if r["rule"] == rule]
        x = sel[0].get("step") if steps else None
        color = _COLORS.get(rule, None) or "gray"
        _band(axes[0], [c["val_bpc" if lm else "val_acc"] for c in sel], rule, color, x)
        if rule != "bp":
            _band(axes[1], [c["angle"] for c in sel], rule, color, x)
    for ax in axes:
        ax.set_xlabel("step" if steps else "epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, ncol=2)
    axes[0].set_ylabel("validation bits / character" if lm else "validation accuracy (%)")
    axes[1].set_ylabel("angle(W, feedback used) (°)")
    axes[1].axhline(90, color="gray", lw=0.8, ls=":")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_layer_angles(runs: Sequence[dict[str, Any]], path: Path | str, *, title: str = "") -> Path:
    """Feedback angle of every informative layer against training steps, one panel per rule (mean over seeds):
    how each layer of a model aligns over training. ``runs``: dicts with ``rule`` and ``curves`` (``step``,
    ``layer_angles``)."""
    path = Path(path)
    rules = [r for r in dict.fromkeys(run["rule"] for run in runs) if r != "bp"]
    fig, axes = plt.subplots(1, max(1, len(rules)), figsize=(3.2 * max(1, len(rules)), 3.2), squeeze=False)
    for ax, rule in zip(axes[0], rules):
        sel = [r["curves"] for r in runs if r["rule"] == rule and r["curves"].get("layer_angles")]
        if sel:
            names = list(sel[0]["layer_angles"])
            cmap = plt.get_cmap("viridis", max(2, len(names)))
            for i, name in enumerate(names):
                _band(ax, [c["layer_angles"][name] for c in sel if name in c["layer_angles"]], name, cmap(i),
                      sel[0].get("step"))
        ax.set_title(rule)
        ax.axhline(90, color="gray", lw=0.8, ls=":")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("angle(W, feedback used) (°)")
    if rules and axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=5, ncol=1)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
