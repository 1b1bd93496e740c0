"""Figures of falab's own experiments (Beyond the papers): the sparse-recovery phase transition and the limit atlas."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .._io import atomic_write_bytes  # noqa: E402


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_phase_transition(ns: Sequence[int], curves: Mapping[str, Mapping[str, Sequence[tuple[float, float, float]]]],
                          labels: Mapping[str, str], d: int, k: int, path: Path) -> Path:
    """Recovery probability against n per rule, with 95% Wilson bands; ``curves[criterion][rule]`` holds
    ``(estimate, low, high)`` per n; one panel per criterion ('exact', 'support')."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5.2 * len(curves), 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    titles = {"exact": "exact recovery (rel. error <= 1e-2)", "support": "support recovery (top-k entries)"}
    for ax, (crit, per_rule) in zip(axes, curves.items()):
        for rule, pts in per_rule.items():
            arr = np.asarray(pts, dtype=float)
            line = ax.plot(ns, arr[:, 0], marker="o", ms=3, label=labels.get(rule, rule))[0]
            ax.fill_between(ns, arr[:, 1], arr[:, 2], color=line.get_color(), alpha=0.15)
        ax.axhline(0.5, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("samples n")
        ax.set_title(titles.get(crit, crit), fontsize=9)
    axes[0].set_ylabel(f"P(recovery), d = {d}, k = {k}")
    axes[0].legend(fontsize=8)
    fig.suptitle("Sparse recovery by the limits of GD, FA, uSF and DFA on diagonal networks", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return path


def plot_atlas(alphas: Sequence[float], dist: Mapping[str, Mapping[str, Sequence[float]]], labels: Mapping[str, str],
               path: Path) -> Path:
    """Median relative distance of each rule's limit to min-l1, min-l2 and its small-init l_q interpolator against
    the initial scale; ``dist[rule][target]`` holds one value per alpha."""
    fig, axes = plt.subplots(1, len(dist), figsize=(4.4 * len(dist), 3.6), sharey=True)
    axes = np.atleast_1d(axes)
    names = {"l1": "to min-l1", "l2": "to min-l2", "lq": "to small-init l_q"}
    for ax, (rule, per_target) in zip(axes, dist.items()):
        for target, vals in per_target.items():
            ax.loglog(alphas, np.maximum(np.asarray(vals, dtype=float), 1e-16), marker="o", ms=3,
                      label=names.get(target, target))
        ax.set_title(labels.get(rule, rule), fontsize=9)
        ax.set_xlabel("initial scale alpha")
    axes[0].set_ylabel("relative distance of the limit")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return path


__all__ = ["plot_phase_transition", "plot_atlas"]


def plot_classification_angles(times: Sequence[float], angles: Mapping[str, Mapping[str, Sequence[float]]],
                               path: Path) -> Path:
    """Median angle (radians) of beta(t) to the weighted-l_{4/3}, min-l1 and min-l2 max-margin directions against t
    (log axis); ``angles[rule][target]`` holds one value per time (rules 'fa', 'gd')."""
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    names = {"l43": "weighted l_4/3 max margin (FA prediction)", "l1": "l1 max margin", "l2": "l2 max margin"}
    styles = {"fa": "-", "gd": "--"}
    colours = {"l43": "C0", "l1": "C1", "l2": "C2"}
    for rule, per_target in angles.items():
        for target, vals in per_target.items():
            ax.semilogx(times, vals, ls=styles.get(rule, "-"), color=colours.get(target), marker="o", ms=2,
                        label=f"{rule.upper()} to {names.get(target, target)}")
    ax.set_xlabel("t (exact flow, exponential loss)")
    ax.set_ylabel("median angle (rad)")
    ax.set_ylim(bottom=0.0)
    ax.legend(fontsize=7)
    ax.set_title("Direction of beta(t) on a 2-layer diagonal net: FA (zero init) and GD", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return path
