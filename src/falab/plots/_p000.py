"""P000 figures: Fig. 1 (conservation ratio), Fig. 2 (loss curves), min-norm comparison, law table. Arrays in, PNG out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_STYLES: dict[tuple[str, ...], str] = {("var", "copy"): "-", ("var", "indep"): "--", ("std", "copy"): "-.", ("std", "indep"): ":"}


def _label(reading: tuple[str, str]) -> str:
    sc = "Var(W1)=0.1" if reading[0] == "var" else "std(W1)=0.1"
    return f"{sc}, B {'= W2(0)' if reading[1] == 'copy' else 'indep.'}"


def plot_fig1_ratio(lin: Any, relu: Any, readings: Sequence[tuple[str, str]], path: Path) -> Path:
    """Fig. 1: (<W_2,B> - 0.5||W_1||^2)(t) / (...)(0) vs time, Euler (lines) and flow (dots), linear and ReLU."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
    for ax, runs, title in zip(axes, (lin, relu), ("2-layer linear", "2-layer ReLU")):
        for i, rd in enumerate(readings):
            ax.plot(runs.t_euler, runs.q_euler[:, i] / runs.q_euler[0, i], _STYLES.get(tuple(rd), "-"),
                    label=f"Euler, {_label(rd)}")
            ax.plot(runs.t_flow, runs.q_flow[:, i] / runs.q_flow[0, i], ".", ms=3, color=ax.lines[-1].get_color())
        ax.set_title(f"{title} (dots: flow, {runs.solver})", fontsize=9)
        ax.set_xlabel("time t = eta k")
        ax.set_ylabel("ratio to t = 0")
        ax.ticklabel_format(useOffset=False, axis="y")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_fig2_loss(lin: Any, relu: Any, readings: Sequence[tuple[str, str]], eta: float, path: Path) -> Path:
    """Fig. 2: training loss vs iteration (log scale), linear and ReLU, the four initial readings."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, runs, title in zip(axes, (lin, relu), ("2-layer linear", "2-layer ReLU")):
        steps = np.rint(runs.t_euler / eta)
        for i, rd in enumerate(readings):
            ax.semilogy(steps, np.maximum(runs.loss_euler[:, i], 1e-300), _STYLES.get(tuple(rd), "-"), label=_label(rd))
        ax.set_title(title)
        ax.set_xlabel(f"iteration (Euler, eta = {eta:g})")
        ax.set_ylabel("training loss (mean squared)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_minnorm(r: Any, arms: Sequence[str], path: Path) -> Path:
    """||w(t) - X^+y|| / ||X^+y|| (flow and Euler) and the fraction of w outside span(X^T), per initialisation
    (first seed: members 0 .. len(arms) - 1)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, arm in enumerate(arms):
        line = axes[0].semilogy(r.flow_t, np.maximum(r.flow_rel[:, i], 1e-17), label=arm)[0]
        axes[0].semilogy(r.euler_t, np.maximum(r.euler_rel[:, i], 1e-17), ":", color=line.get_color())
        axes[1].semilogy(r.flow_t, np.maximum(r.flow_perp_fraction[:, i], 1e-17), color=line.get_color())
    axes[0].set_title("||w(t) - X^+ y|| / ||X^+ y||  (solid: flow, dotted: Euler)", fontsize=9)
    axes[1].set_title("||P_perp w(t)|| / ||w(t)||  (flow)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("time")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_law_table(table: dict, activations: Sequence[str], rules: Sequence[str], depths: Sequence[int],
                   path: Path) -> Path:
    """Heat map of log10 relative drift of each rule's law (DFA: last pair) per activation x (rule, depth)."""
    cols = [(r, d) for r in rules for d in depths]
    m = np.array([[np.log10(max(table[(a, r, d)]["last" if r == "dfa" else "all"], 1e-17)) for r, d in cols]
                  for a in activations])
    fig, ax = plt.subplots(figsize=(10, 3.6))
    im = ax.imshow(m, cmap="viridis", vmin=-16, vmax=0, aspect="auto")
    ax.set_xticks(range(len(cols)), [f"{r.upper()} L={d}" for r, d in cols], rotation=45, fontsize=8)
    ax.set_yticks(range(len(activations)), list(activations))
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", color="w" if m[i, j] < -6 else "k", fontsize=7)
    fig.colorbar(im, ax=ax, label="log10 relative drift (DFA: last pair)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
