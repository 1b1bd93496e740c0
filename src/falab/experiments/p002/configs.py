"""P002 experiment configurations (frozen): the paper's setting, and the quick mode's shrunk horizons and sizes.

Quick mode shrinks horizons and sizes only; every decision and tolerance is the same in both modes (claims.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ARCHS = ("fc", "diag", "conv")
X_REG = np.array([1.0, 2.0])  # EXP-P002-1: one point x = (1, 2), y = 1
Y_REG = 1.0
X_CLS = np.array([[1.0, 2.0], [0.0, -3.0]])  # EXP-P002-2: ((1, 2), +1), ((0, -3), -1)
Y_CLS = np.array([1.0, -1.0])


@dataclass(frozen=True)
class RegressionToy:
    """EXP-P002-1 (Fig. 1): 3 architectures x alphas x 4 random zbar per seed; GD eta = 1e-3, 5000 steps."""

    alphas: tuple[float, ...] = (0.01, 0.5, 1.0)
    n_dirs: int = 4
    lr: float = 1e-3
    steps: int = 5000
    t_flow: float = 60.0
    gd_archs: tuple[str, ...] = ARCHS


@dataclass(frozen=True)
class ClassificationToy:
    """EXP-P002-2 (Fig. 2): exponential loss, flow to ``t_end`` (the paper's 2e6 GD steps of 5e-4 are t = 1000)."""

    alphas: tuple[float, ...] = (0.01, 0.5, 1.0)
    n_dirs: int = 4
    t_paper: float = 1000.0
    t_end: float = 1e12
    t_trend: float = 1e6  # the asymptotic trend is measured from t = 1e6 to t_end
    flow_rtol: float = 1e-8  # direction claims need ~1e-3; the Theorem 2/3 loss bounds are checked above 1e-8 relative
    depth3_alpha: float = 0.1
    t3_alpha: float = 0.5
    t3_small_alpha: float = 0.01
    t3_lr: float = 1e-3
    t3_steps: int = 5000
    c4_alpha: float = 0.01

    def times(self) -> np.ndarray:
        """Log-spaced record times: 5 per decade to t = 1e3, then 1 per decade to ``t_end``."""
        n_hi = int(round(np.log10(self.t_end))) - 3
        return np.concatenate([[0.0], np.logspace(-2, 3, 26), np.logspace(3, np.log10(self.t_end), n_hi + 1)[1:]])


@dataclass(frozen=True)
class RegressionExtra:
    """EXP-P002-3: Lemma 4, Theorem 5 (diagonal L = 3, n = 2, d = 4), Remark 4, Corollaries 2, 3, 5, Theorem 7."""

    t5_alphas: tuple[float, ...] = (0.1, 0.5, 1.0)
    t5_lr: float = 1e-3
    t5_gd_max_steps: int = 400_000
    t5_gd_loss_tol: float = 1e-14  # GD runs until its loss is below this (a horizon, not a decision)
    loss_floor: float = 1e-12  # below it (x tighten^2) a converged member's loss in an ensemble flow is solver noise
    r4_alphas: tuple[float, ...] = tuple(np.logspace(-3, 2, 11))
    c5_depths: tuple[int, ...] = (2, 3)
    c5_alphas: tuple[float, ...] = (0.3, 1.0)
    c6_depths: tuple[int, ...] = (2, 3)
    c7_depths: tuple[int, ...] = (2, 3)
    c7_alphas: tuple[float, ...] = (0.1, 1.0)
    t7_alphas: tuple[float, ...] = (1e-1, 5e-2, 3e-2, 2e-2, 1e-2)


def regression_toy(quick: bool) -> RegressionToy:
    return RegressionToy(t_flow=30.0, gd_archs=("diag",)) if quick else RegressionToy()


def classification_toy(quick: bool) -> ClassificationToy:
    return ClassificationToy(t3_steps=2000) if quick else ClassificationToy()


def regression_extra(quick: bool) -> RegressionExtra:
    if quick:
        return RegressionExtra(t5_alphas=(0.5, 1.0), t5_gd_loss_tol=1e-10, c5_depths=(3,), c5_alphas=(1.0,),
                               c6_depths=(3,), c7_depths=(3,), c7_alphas=(1.0,), t7_alphas=(1e-1, 3e-2, 1e-2))
    return RegressionExtra()
