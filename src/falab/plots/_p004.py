"""P004 figures (Garg & Vempala): pure plotting functions, arrays in, PNG out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_COLORS = {"GD": "tab:blue", "FA": "tab:orange", "FA*": "tab:green"}


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def error_curves(path: Path, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, optimal: float,
                 fa_limit: float, title: str, xlabel: str = "step") -> Path:
    """Fig. 2: ``||Y - ZW||_F`` against steps (``name -> (steps, errors)``) for GD/FA/FA*, with the optimum and the
    Lemma 1 FA error as horizontal lines."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for name, (t, c) in curves.items():
        ax.plot(t, c, label=name, color=_COLORS.get(name))
    ax.axhline(optimal, color="k", ls="--", lw=1, label=f"optimal {optimal:.3g}")
    if abs(fa_limit - optimal) > 1e-9:
        ax.axhline(fa_limit, color="tab:red", ls=":", lw=1.5, label=f"Lemma 1 FA error {fa_limit:.3g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"$\|Y - ZW\|_F$")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def toy_example(path: Path, t: np.ndarray, loss_sim: np.ndarray, align_sim: np.ndarray, t_cf: np.ndarray,
                loss_cf: np.ndarray, align_cf: np.ndarray) -> Path:
    """Fig. 3a: FA* loss (rises, then falls) and alignment ``A = w b`` for Example 1, flow vs closed form."""
    fig, axs = plt.subplots(1, 2, figsize=(8.5, 3.3))
    axs[0].plot(t_cf, loss_cf, "k-", lw=1, label="closed form")
    axs[0].plot(t, loss_sim, "o", ms=3, color="tab:green", label="FA* flow (engine)")
    axs[0].set_ylabel("loss")
    axs[1].plot(t_cf, align_cf, "k-", lw=1, label="closed form")
    axs[1].plot(t, align_sim, "o", ms=3, color="tab:green", label="FA* flow (engine)")
    axs[1].axhline(0, color="grey", lw=0.5)
    axs[1].set_ylabel("alignment A = w b")
    for ax in axs:
        ax.set_xlabel("t")
        ax.legend(fontsize=8)
    fig.suptitle("P004 Example 1 (m = r = 1, A(0) < 0)", fontsize=10)
    return _save(fig, path)


def loss_and_rate(path: Path, t: np.ndarray, loss: np.ndarray, surrogate: np.ndarray, title: str) -> Path:
    """Fig. 3b: the FA* loss (non-monotone) and the surrogate loss ``0.5||R||^2`` (monotone when A is PSD)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.semilogy(t, loss, label=r"loss $\frac{1}{2}\|Y-ZW\|^2$", color="tab:green")
    ax.semilogy(t, surrogate, label=r"surrogate $\frac{1}{2}\|R\|^2$", color="tab:purple", lw=1)
    ax.set_xlabel("t")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def alignment_panels(path: Path, t: np.ndarray, quad_forms: np.ndarray, lam_min: np.ndarray) -> Path:
    """Fig. 4: (a) ``v^T A v`` for random unit v (non-decreasing), (b) ``lam_min`` of the symmetric part of A."""
    fig, axs = plt.subplots(1, 2, figsize=(8.5, 3.3))
    axs[0].plot(t, quad_forms, lw=0.7, alpha=0.7)
    axs[0].set_title(r"(a) $v^TAv$, $v$ uniform on the sphere", fontsize=10)
    axs[1].plot(t, lam_min, color="tab:red")
    axs[1].axhline(0, color="grey", lw=0.5)
    axs[1].set_title(r"(b) $\lambda_{\min}(A)$", fontsize=10)
    for ax in axs:
        ax.set_xlabel("t")
    return _save(fig, path)


def loss_curves(path: Path, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str,
                styles: Sequence[str] | None = None) -> Path:
    """Fig. 5 / appendix: loss curves of several runs on one time axis (log scale)."""
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for i, (name, (t, l)) in enumerate(curves.items()):
        ax.semilogy(t, l, styles[i] if styles else "-", label=name, lw=1.2)
    ax.set_xlabel("t = eta_Z k")
    ax.set_ylabel(r"$\frac{1}{2}\|Y-ZW\|_F^2$")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def histogram(path: Path, samples: Mapping[str, np.ndarray], thresholds: Mapping[str, float], title: str,
              xlabel: str) -> Path:
    """Monte-Carlo distributions (Theorems 3 and 4) with their pass thresholds."""
    fig, axs = plt.subplots(1, len(samples), figsize=(4.2 * len(samples), 3.2))
    axs = np.atleast_1d(axs)
    for ax, (name, s) in zip(axs, samples.items()):
        ax.hist(s, bins=50, color="tab:orange", alpha=0.8)
        if name in thresholds:
            ax.axvline(thresholds[name], color="k", ls="--", lw=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
