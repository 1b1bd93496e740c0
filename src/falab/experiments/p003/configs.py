"""P003 experiment configurations: the paper's constants and our sizes, quick and full (quick shrinks sizes and
horizons only; every tolerance lives in the claim's check, never here)."""

from __future__ import annotations

import math
from dataclasses import dataclass

RTOL, ATOL = 1e-12, 1e-14  # flow tolerances (times RunContext.tighten in the numerical rerun)


@dataclass(frozen=True)
class Fig1a:
    """Phase portrait: 25 starts on a grid, d = 0.2, lambda = 3, t in [0, 30]; the matrix invariant on a random net."""

    d: float = 0.2
    lam: float = 3.0
    grid: tuple[float, ...] = (-5.0, -2.5, 0.0, 2.5, 5.0)
    t_end: float = 30.0
    n_t: int = 601
    matrix_steps: int = 1000
    matrix_lr: float = 0.05


@dataclass(frozen=True)
class Fig1b:
    """FA vs GD from init (7), d = 2, lambda = 3; theta_0 = 0 plus ``draws`` values U(-5, 5) per seed."""

    d: float = 2.0
    lam: float = 3.0
    draws: int = 10
    t_end: float = 5.0
    n_t: int = 501


@dataclass(frozen=True)
class Fig1c:
    """iid starts U(-5, 5)^2, d = 2, lambda = 10, t in [0, 3]; ``draws`` starts per seed."""

    d: float = 2.0
    lam: float = 10.0
    draws: int = 30
    t_end: float = 3.0
    n_t: int = 3001


@dataclass(frozen=True)
class Fig3:
    """K = 0 flows (d = 2, lambda = 3): fixed starts {-5, 0, 1, 5} plus ``draws`` U(-5, 5) per seed; Sec. 5 schemes."""

    d: float = 2.0
    lam: float = 3.0
    fixed: tuple[float, ...] = (-5.0, 0.0, 1.0, 5.0)
    draws: int = 10
    t_end: float = 5.0
    n_t: int = 5001
    vanish_starts: tuple[float, ...] = (-1.0, -5.0, -50.0)
    vanish_lams: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    euler_etas: tuple[float, ...] = (0.04, 0.05)
    euler_steps: int = 250
    modified_etas: tuple[float, ...] = (0.05, 0.1, 0.99)  # the last one is a fraction of eta_max
    modified_steps: int = 200


@dataclass(frozen=True)
class Fig4:
    """3-layer system (10), init (11), d = (2, 2.5, 1), lambda = 1; theta_0 in {-1, 0, 2} plus draws U(-1, 2);
    Thm 10: the modified scheme (28) at ``etas_per_seed`` step sizes drawn U(0.01, 0.99 eta_max) per seed."""

    ds: tuple[float, ...] = (2.0, 2.5, 1.0)
    lam: float = 1.0
    fixed: tuple[float, ...] = (-1.0, 0.0, 2.0)
    draws: int = 10
    t_end: float = 4.0
    n_t: int = 4001
    etas_per_seed: int = 4
    modified_steps: int = 400


@dataclass(frozen=True)
class Backward:
    """Fig. 5a/5b: d = 0.5, K = -4, lambda in {0.5, 1, 2, 3}, theta_0 = r_2 + e^-delta; step times from the slope of
    event-detected crossing times between ``deltas``; the printed cubic (-2, 1, 2) as the shifted FA system."""

    d: float = 0.5
    K: float = -4.0
    lams: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    deltas: tuple[float, ...] = (15.0, 20.0)
    roots_printed: tuple[float, float, float] = (-2.0, 1.0, 2.0)
    cubic_deltas: tuple[float, ...] = (10.0, 15.0, 20.0)
    n_t: int = 1001
    k0_d: float = 2.0
    k0_theta0: float = -5.0


@dataclass(frozen=True)
class Autoencoder:
    """Fig. 2 (Sec. 6): n = 1000, d = 20, k = 5, A ~ U(0,1), z ~ N(0, diag(4, 2, 1, 1/2, 1/4)), noise 1e-3, W(0) ~ 1e-5
    U(0,1), M ~ U(0,1), eta = 0.01, ``iterations`` Euler steps, ``repetitions`` FA draws pooled over the seeds.

    ``stated_steps``: horizon of the FA (and 2-layer GD) runs in the stated setting (raw M, raw data; FA diverges within
    a few steps); ``gd3_steps``: horizon of 3-layer GD in the stated setting (it leaves the saddle before 1e5)."""

    n: int = 1000
    d: int = 20
    k: int = 5
    latent_var: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5, 0.25)
    noise: float = 1e-3
    init_scale: float = 1e-5
    eta: float = 0.01
    iterations: int = 100_000
    repetitions: int = 15
    stated_steps: int = 1000
    gd3_steps: int = 100_000
    records: int = 120
    stat_members: int = 2
    stat_t: float = 300.0

    def reps_per_seed(self, n_seeds: int) -> int:
        return max(1, math.ceil(self.repetitions / n_seeds))


def fig1a(quick: bool) -> Fig1a:
    return Fig1a(n_t=301, matrix_steps=200) if quick else Fig1a()


def fig1b(quick: bool) -> Fig1b:
    return Fig1b(n_t=201) if quick else Fig1b()


def fig1c(quick: bool) -> Fig1c:
    return Fig1c(n_t=601) if quick else Fig1c()


def fig3(quick: bool) -> Fig3:
    return Fig3(draws=4, n_t=501) if quick else Fig3()


def fig4(quick: bool) -> Fig4:
    return Fig4(draws=4, n_t=801) if quick else Fig4()


def backward(quick: bool) -> Backward:
    return Backward(n_t=301, cubic_deltas=(15.0, 20.0)) if quick else Backward()


def orderings(quick: bool) -> Backward:
    """Fig. 5b needs the orderings only: the delta = 20 crossings (their order in lambda) and the K = 0 times."""
    return Backward(n_t=301 if quick else 1001, deltas=(20.0,), cubic_deltas=())


def autoencoder(quick: bool) -> Autoencoder:
    return Autoencoder(iterations=3000, repetitions=6, records=40, stat_members=1, stated_steps=300,
                       gd3_steps=3000) if quick else Autoencoder()
