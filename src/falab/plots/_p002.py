"""P002 figures (Yun, Krishnan & Mobahi, Figs. 1-2): coefficient trajectories ``beta(t) in R^2`` per architecture.

Pure functions: arrays in, PNG out. Never trains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_ARCH_TITLES = {"fc": "fully connected", "diag": "diagonal", "conv": "convolutional"}


def plot_regression_trajectories(
    path: Path,
    trajectories: Mapping[tuple[str, float], np.ndarray],
    predicted: Mapping[tuple[str, float], np.ndarray],
    x: np.ndarray,
    y: float,
    ideal: Mapping[str, np.ndarray],
    *,
    lim: float = 1.3,
    dynamics: str = "GD",
) -> Path:
    """P002 Fig. 1 / Fig. 2 top-left: one panel per (alpha, architecture); trajectories under ``dynamics`` of beta (lines), Theorem 6
    limits (crosses), the solution line ``x^T z = y`` and the alpha -> 0 ideal limit (star).

    ``trajectories[(arch, alpha)]``: ``(T, K, 2)``; ``predicted[(arch, alpha)]``: ``(K, 2)``.
    """
    archs = sorted({a for a, _ in trajectories}, key=list(_ARCH_TITLES).index)
    alphas = sorted({al for _, al in trajectories})
    fig, axes = plt.subplots(len(alphas), len(archs), figsize=(3.2 * len(archs), 3.0 * len(alphas)), squeeze=False)
    grid = np.linspace(-lim, lim, 2)
    for i, al in enumerate(alphas):
        for j, arch in enumerate(archs):
            ax = axes[i, j]
            tr = trajectories[(arch, al)]
            for k in range(tr.shape[1]):
                line, = ax.plot(np.clip(tr[:, k, 0], -lim, lim), np.clip(tr[:, k, 1], -lim, lim), lw=1.2)
                p = predicted[(arch, al)][k]
                ax.plot(p[0], p[1], "x", color=line.get_color(), ms=8, mew=2)
            ax.plot(grid, (y - x[0] * grid) / x[1], "k--", lw=0.8)
            ax.plot(*ideal[arch], "*", color="k", ms=9)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.set_title(f"{_ARCH_TITLES[arch]}, alpha={al:g}", fontsize=9)
            ax.grid(alpha=0.3)
    fig.suptitle(f"P002 regression: beta(t) under {dynamics} (lines), Theorem 6 limits (x), alpha->0 limit (*)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_classification_trajectories(
    path: Path,
    trajectories: Mapping[tuple[str, float], np.ndarray],
    theory_dirs: Mapping[str, np.ndarray],
    *,
    lim: float = 6.0,
) -> Path:
    """P002 Fig. 2 (classification panels): trajectories of beta(t) (``(T, K, 2)`` per (arch, alpha)) and the
    asymptotic max-margin direction of each architecture (dashed ray)."""
    archs = sorted({a for a, _ in trajectories}, key=list(_ARCH_TITLES).index)
    alphas = sorted({al for _, al in trajectories})
    fig, axes = plt.subplots(len(alphas), len(archs), figsize=(3.2 * len(archs), 3.0 * len(alphas)), squeeze=False)
    for i, al in enumerate(alphas):
        for j, arch in enumerate(archs):
            ax = axes[i, j]
            tr = trajectories[(arch, al)]
            for k in range(tr.shape[1]):
                ax.plot(tr[:, k, 0], tr[:, k, 1], lw=1.2)
                ax.plot(tr[-1, k, 0], tr[-1, k, 1], "o", ms=3, color="k")
            d = theory_dirs[arch]
            ax.plot([0, 2 * lim * d[0]], [0, 2 * lim * d[1]], "k--", lw=0.8)
            ax.set_xlim(-lim / 3, lim)
            ax.set_ylim(-lim / 3, lim)
            ax.set_aspect("equal")
            ax.set_title(f"{_ARCH_TITLES[arch]}, alpha={al:g}", fontsize=9)
            ax.grid(alpha=0.3)
    fig.suptitle("P002 classification: beta(t) up to t = 1000 (GD 2e6 steps x 5e-4); dashed = max-margin direction",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_alpha_sweep(path: Path, alphas: Sequence[float], curves: Mapping[str, Sequence[float]], *,
                     xlabel: str = "alpha", ylabel: str = "distance", title: str = "") -> Path:
    """Log-log curves of a distance against the initial scale alpha (Remark 4, Theorem 7)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    for name, vals in curves.items():
        ax.loglog(alphas, np.maximum(np.asarray(vals, dtype=float), 1e-16), "o-", label=name, ms=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_direction_convergence(path: Path, times: np.ndarray, curves: Mapping[str, Mapping[float, np.ndarray]], *,
                               floor: float = 1e-12, t_paper: float = 1e3) -> Path:
    """P002-T1 / C1-C3: ``1 - cos`` of the direction against log t, one panel per architecture (or quantity), one
    curve per alpha (the worst member over the initial directions). ``curves[name][alpha]``: ``(T,)``."""
    fig, axes = plt.subplots(1, len(curves), figsize=(3.4 * len(curves), 3.1), squeeze=False)
    t = np.asarray(times, dtype=float)
    keep = t > 0
    for ax, (name, by_alpha) in zip(axes[0], curves.items()):
        for al, g in sorted(by_alpha.items()):
            ax.loglog(t[keep], np.maximum(np.asarray(g)[keep], floor), lw=1.3, label=f"alpha={al:g}")
        ax.axvline(t_paper, color="k", lw=0.7, ls=":")
        ax.axhline(0.02, color="0.5", lw=0.7, ls="--")
        ax.set_title(_ARCH_TITLES.get(name, name), fontsize=9)
        ax.set_xlabel("t (flow; the paper's 2e6 GD steps = 1e3)", fontsize=8)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("1 - cos (worst initial direction)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("P002: distance of the direction to its predicted limit against log t (dashed: cos = 0.98)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
