"""P004 experiment configurations (quick and full), as frozen data.

Every size and horizon the experiments use is here; quick mode shrinks sizes and horizons only: the number of random
draws behind each stochastic check, and every tolerance (declared once, in :mod:`.claims`), are the same in both modes.
The paper's Appendix F lost every numeric value, so sizes follow the catalog's proposed parameters.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Fig2Config:
    """Fig. 2: GD / FA / FA* on ``Y = U diag(sigma) V^T`` (n x n); panel (a) k = r = 5, panel (b) k = 20 > r = 5."""

    n: int
    eta: float
    gd_steps: int
    fa_steps: int
    fa_star_steps: int
    max_factor: int          # FA/FA* continue (same Euler map) up to this many times their steps until stationary
    r: int = 5
    sigma0: float = 0.01
    t2_n: int = 30           # Theorem 2 extra draws: FA* on 30 x 30 targets of rank 3 = r
    t2_members: int = 3
    t2_steps: int = 1500
    t2_max_factor: int = 2

    @classmethod
    def of(cls, quick: bool) -> Fig2Config:
        if quick:
            return cls(n=40, eta=2e-2, gd_steps=1500, fa_steps=3500, fa_star_steps=1000, max_factor=4)
        return cls(n=100, eta=1e-2, gd_steps=10000, fa_steps=10000, fa_star_steps=5000, max_factor=3)


@dataclass(frozen=True)
class TheoremConfig:
    """Theorems 3 and 4: engine-trained draws of B (one ensemble over every seed) and formula Monte Carlos.

    Theorem 3 trains FA and GD on a long-tail instance (``t3_r`` singular values 1, a tail of ``t3_tail`` values
    ``eps`` with tail energy ``t3_tail eps^2 = t3_r``); Theorem 4 on ``sigma = (1, eps, ..., eps)``, ``k = t4_k``,
    ``eps = k^(-1/4)``. ``members`` draws per seed in both modes (Wilson bounds at 0.99 need about 400 draws)."""

    t3_r: int
    t3_tail: int
    t4_k: int
    steps: int
    lr: float
    members: int = 140
    sigma0: float = 0.01
    formula_draws: int = 5000                                   # per seed and instance
    catalog_instances: tuple[tuple[int, int, float], ...] = ((5, 500, 0.1), (10, 1000, 0.1))
    slope_k: int = 10001                                         # formula Monte Carlo of the O(1/(eps sqrt k)) law
    slope_eps: tuple[float, ...] = (0.03, 0.06, 0.12, 0.25, 0.5)

    @classmethod
    def of(cls, quick: bool) -> TheoremConfig:
        if quick:
            return cls(t3_r=1, t3_tail=10, t4_k=12, steps=400, lr=0.2)
        return cls(t3_r=2, t3_tail=40, t4_k=40, steps=1500, lr=0.1)


@dataclass(frozen=True)
class Ex1Config:
    """Example 1 (Fig. 3a): y a random unit vector in R^n, z(0) ~ N(0, std^2) with z(0)^T y < 0, W(0) = z(0)^+ y."""

    n: int = 100
    b: float = 1.0
    std: float = 0.1
    t_end: float = 5.0
    points: int = 101

    @classmethod
    def of(cls, quick: bool) -> Ex1Config:
        return cls() if not quick else cls(points=51)


@dataclass(frozen=True)
class FAStarConfig:
    """Figs. 3b and 4: ``Y = U V^T`` (U 50 x 6, V 40 x 6 iid N(0, 1)), r = 5, Z(0) orthonormal, W(0) = Z(0)^T Y,
    B ~ N(0, 1). ``draws`` per seed for the sign changes of dL/dt (draw 0 is the one shown); FA* flow to ``t_end`` on a graded grid; Euler identities over
    ``euler_steps`` steps of ``eta``."""

    t_end: float
    points: int
    draws: int = 7
    euler_steps: int = 300
    eta: float = 1e-2
    n: int = 50
    m: int = 40
    k: int = 6
    r: int = 5
    unit_vectors: int = 40

    @classmethod
    def of(cls, quick: bool) -> FAStarConfig:
        # the paper's time scale was lost; with B ~ N(0, 1) the FA* flow has converged (||R|| ~ 1e-12) by t ~ 3
        return cls(t_end=3.0, points=151) if quick else cls(t_end=5.0, points=1001, euler_steps=2000)


@dataclass(frozen=True)
class Fig5Config:
    """Fig. 5: FA* and three FA variants (W(0) optimal with eta_W = eta_Z or 10 eta_Z; W(0) random) on ``draws`` per
    seed of the Fig. 3b setting; Euler eta_Z = ``eta`` to ``t_end``. The transient: record times at which FA*'s
    loss is still above ``transient_floor`` times its initial value."""

    eta: float
    t_end: float
    draws: int = 7
    w_ratio: float = 10.0
    w_rand_std: float = 0.1
    transient_floor: float = 1e-3

    @classmethod
    def of(cls, quick: bool) -> Fig5Config:
        return cls(eta=5e-3, t_end=2.0) if quick else cls(eta=2e-3, t_end=5.0)


@dataclass(frozen=True)
class FigFConfig:
    """Appendix: FA from random W(0) (flow to ``t_end``; Euler identity over ``euler_steps``), Corollary 5 over
    ``cor5_steps`` Euler steps per rule."""

    t_end: float
    euler_steps: int
    cor5_steps: int
    eta: float = 1e-2

    @classmethod
    def of(cls, quick: bool) -> FigFConfig:
        return cls(t_end=8.0, euler_steps=200, cor5_steps=100) if quick else cls(t_end=20.0, euler_steps=1000,
                                                                              cor5_steps=400)
