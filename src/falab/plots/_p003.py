"""P003 figures (Girotti, Mitliagkas & Gidel): pure functions from arrays to PNG files. Never trains."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


@dataclass
class Curve:
    """One line: x, y, matplotlib style keywords; optional band (lower, upper) drawn as a shaded region."""

    x: np.ndarray
    y: np.ndarray
    label: str | None = None
    style: dict = field(default_factory=dict)
    band: tuple[np.ndarray, np.ndarray] | None = None


@dataclass
class Panel:
    """One axes: curves, labels, optional horizontal reference lines and log axes."""

    curves: Sequence[Curve]
    title: str = ""
    xlabel: str = "t"
    ylabel: str = ""
    hlines: Sequence[float] = ()
    logx: bool = False
    logy: bool = False
    ylim: tuple[float, float] | None = None


def panels(path: Path, items: Sequence[Panel], *, suptitle: str = "", ncols: int | None = None) -> Path:
    """Draw the panels side by side (or in ``ncols`` columns) and save a PNG at ``path``."""
    n = len(items)
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.4 * nrows), squeeze=False)
    for ax, p in zip(axes.flat, items):
        for c in p.curves:
            ax.plot(c.x, c.y, label=c.label, **({"lw": 1.2} | c.style))
            if c.band is not None:
                ax.fill_between(c.x, c.band[0], c.band[1], alpha=0.2, color=ax.lines[-1].get_color())
        for h in p.hlines:
            ax.axhline(h, color="k", ls=":", lw=0.8)
        if p.logx:
            ax.set_xscale("log")
        if p.logy:
            ax.set_yscale("log")
        if p.ylim is not None:
            ax.set_ylim(*p.ylim)
        ax.set_title(p.title, fontsize=9)
        ax.set_xlabel(p.xlabel)
        ax.set_ylabel(p.ylabel)
        if any(c.label for c in p.curves):
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def phase_portrait(path: Path, trajectories: Sequence[np.ndarray], d: float, lam: float, *,
                   box: float = 5.0, title: str = "") -> Path:
    """Fig. 1a: trajectories ``(T, 2)`` in the (theta_1, theta_2) plane, the parabolas
    ``2 d theta_2 = theta_1^2 + 2 d K`` through their starts (dashed) and the hyperbola ``theta_1 theta_2 = lambda`` (dotted)."""
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    u = np.linspace(-box * 1.2, box * 1.2, 400)
    for tr in trajectories:
        k = tr[0, 1] - tr[0, 0] ** 2 / (2 * d)
        ax.plot(u, u * u / (2 * d) + k, color="0.8", lw=0.6, ls="--")
        ax.plot(tr[:, 0], tr[:, 1], lw=1.2)
        ax.plot(tr[0, 0], tr[0, 1], "o", ms=3, color="k")
        ax.plot(tr[-1, 0], tr[-1, 1], "*", ms=6, color="r")
    for sgn in (1, -1):
        v = sgn * np.linspace(lam / (box * 3), box * 1.2, 300)
        ax.plot(v, lam / v, "k:", lw=1.2)
    ax.set_xlim(-box * 1.2, box * 1.2)
    ax.set_ylim(-box * 1.2, box * 3)
    ax.set_xlabel(r"$\theta_1$")
    ax.set_ylabel(r"$\theta_2$")
    ax.set_title(title or f"FA phase portrait, d = {d}, lambda = {lam}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
