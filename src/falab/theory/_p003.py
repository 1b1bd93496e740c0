r"""Closed forms of P003 (Girotti, Mitliagkas & Gidel, "Convergence analysis and implicit regularization of feedback
alignment for deep linear networks", arXiv 2110.10815): an independent oracle for the scalar FA systems.

Only numpy/scipy: nothing here imports falab's rules, dynamics, models or instruments, so simulations are compared
against these formulas, never against themselves. Notation (claims.md §1.5): the 2-layer scalar FA system (6)

.. math:: \theta_1' = d(\lambda - \theta_1\theta_2),\qquad \theta_2' = (\lambda - \theta_1\theta_2)\theta_1,

its invariant :math:`K = \theta_2 - \theta_1^2/(2d)` (eq. 37), the reduced cubic ODE (13)
:math:`\theta_1' = -\tfrac12 P(\theta_1)`, :math:`P(\theta) = \theta^3 + 2dK\theta - 2d\lambda`, and the deep system (10)
with initialisation (11) reducing to :math:`\theta_1' = d_1(\lambda - K\theta_1^\gamma)` (eq. 82), :math:`\gamma = 2^L - 1`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

SQRT3 = math.sqrt(3.0)


# ----------------------------------------------------------------------------------------------------------- K = 0
def k0_root(d: float, lam: float) -> float:
    r"""Limit of :math:`\theta_1` under init (7): :math:`r = (2d\lambda)^{1/3}` (P003 Thm 2; real cube root)."""
    return float(np.cbrt(2.0 * d * lam))


@dataclass(frozen=True)
class Limit:
    """P003 Thms 2, 3: A flow limit of the scalar system: ``theta1``, ``theta2``, the product and the local exponential rate."""

    theta1: float
    theta2: float
    rate: float

    @property
    def product(self) -> float:
        return self.theta1 * self.theta2


def k0_limit(d: float, lam: float) -> Limit:
    r"""P003 Thm 2 (K = 0): :math:`\theta_1\to r`, :math:`\theta_2\to r^2/(2d)`, rate :math:`\tfrac32 r^2`.

    The exponent of the bound is garbled in the extraction; :math:`\tfrac32(2d\lambda)^{2/3}` is the linearisation of
    (13) at the root (claims.md P003-T2, RECON).

    Examples:
        >>> lim = k0_limit(2.0, 3.0)           # d = 2, lambda = 3: r^3 = 2 d lambda = 12, the product tends to lambda
        >>> round(lim.theta1 ** 3, 12), round(lim.product, 12)
        (12.0, 3.0)
    """
    r = k0_root(d, lam)
    return Limit(r, r * r / (2.0 * d), 1.5 * r * r)


def k0_F(theta: np.ndarray | float, r: float) -> np.ndarray:
    r"""Antiderivative of :math:`1/(r^3 - \theta^3)` (P003 eq. 46-47):
    :math:`F(\theta) = -\frac{\ln|r-\theta|}{3r^2} + \frac{\ln(\theta^2 + r\theta + r^2)}{6r^2}
    + \frac{1}{\sqrt3 r^2}\arctan\frac{2\theta + r}{\sqrt3 r}`."""
    th = np.asarray(theta, dtype=float)
    return (-np.log(np.abs(r - th)) / (3 * r * r) + np.log(th * th + r * th + r * r) / (6 * r * r)
            + np.arctan((2 * th + r) / (SQRT3 * r)) / (SQRT3 * r * r))


def k0_time(theta0: float, theta1: np.ndarray | float, d: float, lam: float) -> np.ndarray:
    r"""P003 Thm 2, eqs 46-47: Implicit K = 0 solution: the time at which :math:`\theta_1` reaches ``theta1`` is :math:`2(F(\theta_1) - F(\theta_0))`
    (from :math:`\theta_1' = (r^3 - \theta_1^3)/2`; valid while ``theta1`` lies between ``theta0`` and r)."""
    r = k0_root(d, lam)
    return 2.0 * (k0_F(theta1, r) - k0_F(theta0, r))


def vanishing_time(theta0: float, d: float, lam: float) -> float:
    r"""P003 eqs (16)-(17)/(112)-(113): the time :math:`T_0` at which the product crosses 0 from :math:`\theta_0 < 0`,

    .. math:: T_0 = \frac{\pi}{3\sqrt3 r^2} + \frac{1}{3r^2}\ln\frac{(r-\theta_0)^2}{\theta_0^2 + r\theta_0 + r^2}
              - \frac{2}{\sqrt3 r^2}\arctan\frac{2\theta_0 + r}{\sqrt3 r}.

    Evaluated in the equivalent cancellation-free form
    :math:`\frac{1}{3r^2}\mathrm{log1p}\frac{-3r\theta_0}{\theta_0^2 + r\theta_0 + r^2}
    + \frac{2}{\sqrt3 r^2}\,\mathrm{atan2}(-\sqrt3\theta_0,\ 2r + \theta_0)` (the printed terms cancel as
    :math:`\theta_0 \to 0^-`, where :math:`T_0 \to 0`; the atan2 difference identity also covers :math:`\theta_0 < -2r`).

    Examples:
        >>> round(vanishing_time(-1.0, 2.0, 3.0), 10)
        0.1633507224
        >>> round(vanishing_time_limit(2.0, 3.0), 7)      # theta0 -> -infinity, eq. (17)
        0.461396
    """
    if not theta0 < 0:
        raise ValueError(f"Invalid theta0: {theta0} (expected a number < 0; the product only vanishes from below)")
    r = k0_root(d, lam)
    if math.isinf(theta0):
        return vanishing_time_limit(d, lam)
    q = theta0 * theta0 + r * theta0 + r * r
    return (math.log1p(-3.0 * r * theta0 / q) / (3 * r * r)
            + 2.0 / (SQRT3 * r * r) * math.atan2(-SQRT3 * theta0, 2.0 * r + theta0))


def vanishing_time_limit(d: float, lam: float) -> float:
    r""":math:`\lim_{\theta_0\to-\infty} T_0 = 4\pi/(3\sqrt3 r^2)` (P003 eq. 17)."""
    r = k0_root(d, lam)
    return 4.0 * math.pi / (3 * SQRT3 * r * r)


def lambda0_solution(t: np.ndarray, theta0: float, d: float) -> tuple[np.ndarray, np.ndarray]:
    r"""P003 Thm 2, :math:`\lambda = 0`, K = 0: :math:`\theta_1 = \mathrm{sign}(\theta_0)(t + \theta_0^{-2})^{-1/2}`,
    :math:`\theta_2 = 1/(2d(t + \theta_0^{-2}))` (product decays like :math:`t^{-3/2}`, not exponentially)."""
    t = np.asarray(t, dtype=float)
    s = t + theta0 ** -2
    return math.copysign(1.0, theta0) / np.sqrt(s), 1.0 / (2 * d * s)


# ----------------------------------------------------------------------------------------------------- any K (Thm 3)
def invariant_K(theta1: float, theta2: float, d: float) -> float:
    r"""Parabola invariant :math:`K = \theta_2 - \theta_1^2/(2d)` (P003 eq. 37)."""
    return theta2 - theta1 * theta1 / (2.0 * d)


def discriminant(d: float, K: float, lam: float) -> float:
    r"""Discriminant of :math:`P(\theta) = \theta^3 + 2dK\theta - 2d\lambda` (P003 eq. 55): :math:`-4d^2(8dK^3 + 27\lambda^2)`."""
    return -4.0 * d * d * (8.0 * d * K ** 3 + 27.0 * lam * lam)


def delta_threshold_K(d: float, lam: float) -> float:
    r"""P003 Thm 3, eq. 55: Three real roots (:math:`\Delta > 0`) iff :math:`K < -\tfrac32(\lambda^2/d)^{1/3}` (claims.md P003-T3)."""
    return -1.5 * float(np.cbrt(lam * lam / d))


def max_lambda_three_roots(d: float, K: float) -> float:
    r"""P003 Thm 3, eq. 55: Largest :math:`\lambda` with :math:`\Delta > 0` for fixed d, K < 0: :math:`\sqrt{-8dK^3/27}`."""
    return math.sqrt(-8.0 * d * K ** 3 / 27.0)


def cardano_root(d: float, K: float, lam: float) -> float:
    r"""The single real root when :math:`\Delta < 0` (P003 eq. 62):
    :math:`r = \sqrt[3]{d\lambda + \sqrt{d^2\lambda^2 + 8d^3K^3/27}} + \sqrt[3]{d\lambda - \sqrt{d^2\lambda^2 + 8d^3K^3/27}}`.

    Evaluated stably: :math:`u` is the cube root of the term without cancellation (:math:`d\lambda \pm \sqrt{\cdot}`
    with the sign of :math:`\lambda`) and the other term is :math:`v = -2dK/(3u)` (since :math:`uv = -2dK/3`); the printed
    difference of nearly equal numbers under the cube root loses every digit as :math:`K \to 0`. For K > 0 the sum
    :math:`u + v` itself cancels as :math:`K \to \infty` (root :math:`\approx \lambda/K`), so it is taken as
    :math:`(u^3 + v^3)/(u^2 - uv + v^2) = 2d\lambda/(u^2 - uv + v^2)`.
    """
    s = d * d * lam * lam + 8.0 * d ** 3 * K ** 3 / 27.0
    if s < 0:
        raise ValueError(f"Invalid (d, K, lambda): {(d, K, lam)} (expected Delta < 0, i.e. one real root)")
    q = math.sqrt(s)
    u = float(np.cbrt(d * lam + math.copysign(q, lam)))
    if u == 0.0:
        return 0.0
    v = -2.0 * d * K / (3.0 * u)
    if K <= 0:  # u and v have the same sign: no cancellation in u + v
        return u + v
    return 2.0 * d * lam / (u * u - u * v + v * v)  # u + v = (u^3 + v^3)/(u^2 - uv + v^2), all terms positive


def cubic_roots(d: float, K: float, lam: float) -> np.ndarray:
    r"""P003 Thm 3, eq. 13: Real roots of :math:`\theta^3 + 2dK\theta - 2d\lambda`, ascending (trigonometric form when :math:`\Delta > 0`)."""
    p, q = 2.0 * d * K, -2.0 * d * lam
    if discriminant(d, K, lam) > 0:  # three distinct real roots: Viete's trigonometric solution (no cancellation)
        m = 2.0 * math.sqrt(-p / 3.0)
        arg = 3.0 * q / (p * m)
        phi = math.acos(max(-1.0, min(1.0, arg))) / 3.0
        roots = sorted(m * math.cos(phi - 2.0 * math.pi * k / 3.0) for k in range(3))
        # the root of smallest magnitude loses relative accuracy as lambda -> 0 (a cosine near pi/2): take it from
        # Vieta's product r_1 r_2 r_3 = 2 d lambda instead
        i = min(range(3), key=lambda j: abs(roots[j]))
        others = [roots[j] for j in range(3) if j != i]
        roots[i] = 2.0 * d * lam / (others[0] * others[1])
        return np.array(roots)
    if discriminant(d, K, lam) == 0 and K != 0:
        return np.sort(np.array([-3.0 * lam / K, 1.5 * lam / K]))
    return np.array([cardano_root(d, K, lam)])


def reduced_rhs(theta: np.ndarray | float, d: float, K: float, lam: float) -> np.ndarray:
    r"""P003 eq. 13: Right-hand side of the reduced ODE (13): :math:`\theta_1' = -\tfrac12(\theta_1^3 + 2dK\theta_1 - 2d\lambda)`."""
    th = np.asarray(theta, dtype=float)
    return -0.5 * (th ** 3 + 2.0 * d * K * th - 2.0 * d * lam)


def reduced_deep_rhs(theta: np.ndarray | float, lam: float, ds: Sequence[float]) -> np.ndarray:
    r"""P003 Thm 5, eq. 82: Right-hand side of the reduced deep ODE (82): :math:`\theta_1' = d_1(\lambda - K\theta_1^\gamma)` under init (11)."""
    dc = deep_constants(ds)
    th = np.asarray(theta, dtype=float)
    return ds[0] * (lam - dc.K * th ** dc.gamma)


def cubic_slope(theta: float, d: float, K: float) -> float:
    """P003 Thm 3, eq. 13: ``P'(theta) = 3 theta^2 + 2 d K``; the flow (13) has local rate ``P'(r)/2`` at a root r."""
    return 3.0 * theta * theta + 2.0 * d * K


def flow_limit(theta1_0: float, theta2_0: float, d: float, lam: float) -> Limit:
    r"""Limit of the scalar FA flow (6) from any initial point (P003 Thm 3, cases (54)-(72)).

    :math:`\theta_1` follows :math:`\theta_1' = -\tfrac12 P(\theta_1)` and is monotone, so it converges to the nearest
    attracting root in its direction of motion: one real root -> that root (rate :math:`(r^3 + d\lambda)/r`, eq. 64);
    three roots :math:`r_1 < r_2 < r_3` -> :math:`r_3` above :math:`r_2`, :math:`r_1` below (rate :math:`P'(r)/2`);
    :math:`\Delta = 0` -> the simple root from above the double root, the double root from below (rate 0:
    sub-exponential). :math:`\theta_2 = \theta_1^2/(2d) + K` at every time.
    """
    K = invariant_K(theta1_0, theta2_0, d)
    roots = cubic_roots(d, K, lam)
    if roots.size == 3:
        r1, r2, r3 = roots
        r = r3 if theta1_0 > r2 else (r1 if theta1_0 < r2 else r2)
    elif roots.size == 2:
        r_s, r_d = -3.0 * lam / K, 1.5 * lam / K
        r = r_d if theta1_0 <= r_d else r_s
    else:
        r = float(roots[0])
    return Limit(float(r), float(r * r / (2.0 * d) + K), 0.5 * cubic_slope(r, d, K))


def backward_step_time(d: float, K: float, lam: float) -> float:
    r"""P003 Thm 6/7: from :math:`\theta_0 = r_2 + e^{-\delta}` the jump to :math:`r_3` happens at time
    :math:`\delta\,T`, :math:`T = 2/((r_3 - r_2)(r_2 - r_1))` (the inverse of the repelling rate :math:`-P'(r_2)/2`)."""
    roots = cubic_roots(d, K, lam)
    if roots.size != 3:
        raise ValueError(f"Invalid (d, K, lambda): {(d, K, lam)} (expected Delta > 0: K < {delta_threshold_K(d, lam):.6g})")
    r1, r2, r3 = roots
    return 2.0 / ((r3 - r2) * (r2 - r1))


def factored_cubic_step_time(r1: float, r2: float, r3: float) -> float:
    r"""Fig. 5a as implemented: :math:`\theta' = -\tfrac12(\theta-r_1)(\theta-r_2)(\theta-r_3)` leaves :math:`r_2 + e^{-\delta}`
    at time :math:`\approx \delta\cdot 2/((r_3-r_2)(r_2-r_1))` (the printed roots (-2, 1, 2) do not sum to 0, so they
    cannot be roots of the depressed cubic of (13); claims.md P003-Fig5a)."""
    return 2.0 / ((r3 - r2) * (r2 - r1))


@dataclass(frozen=True)
class DepressedForm:
    r"""P003 Fig. 5a, eq. 13: A factored cubic :math:`\theta' = -\tfrac12(\theta - r_1)(\theta - r_2)(\theta - r_3)` written as the FA system (6):
    :math:`\theta = \phi + s` with :math:`s = (r_1 + r_2 + r_3)/3`, and :math:`\phi` follows (13) with these ``d``, ``K``,
    ``lam`` (roots :math:`r_j - s`, which sum to 0)."""

    shift: float
    d: float
    K: float
    lam: float


def depressed_form(r1: float, r2: float, r3: float, d: float = 1.0) -> DepressedForm:
    r"""P003 Fig. 5a, eq. 13: Fig. 5a's cubic as system (6): with :math:`a_j = r_j - s`, :math:`2dK = a_1a_2 + a_1a_3 + a_2a_3` and
    :math:`2d\lambda = a_1a_2a_3` (so :math:`\phi^3 + 2dK\phi - 2d\lambda = \prod_j(\phi - a_j)`). For the printed roots
    (-2, 1, 2) this gives :math:`\lambda < 0`: they are the roots of the FA flow for a negative target, shifted by 1/3."""
    s = (r1 + r2 + r3) / 3.0
    a = (r1 - s, r2 - s, r3 - s)
    e2 = a[0] * a[1] + a[0] * a[2] + a[1] * a[2]
    return DepressedForm(s, d, e2 / (2.0 * d), a[0] * a[1] * a[2] / (2.0 * d))


# ------------------------------------------------------------------------------------------ the systems themselves
def scalar_fa_field(theta1: np.ndarray | float, theta2: np.ndarray | float, d: np.ndarray | float,
                    lam: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    r"""P003 system (6), the decoupled 2-layer FA flow:
    :math:`\theta_1' = d(\lambda - \theta_1\theta_2)`, :math:`\theta_2' = (\lambda - \theta_1\theta_2)\theta_1`.

    Vectorised over members (numpy broadcasting). Returns ``(theta1', theta2')``."""
    t1, t2 = np.asarray(theta1, dtype=float), np.asarray(theta2, dtype=float)
    e = np.asarray(lam, dtype=float) - t1 * t2
    return np.asarray(d, dtype=float) * e, e * t1


def scalar_gd_field(theta1: np.ndarray | float, theta2: np.ndarray | float,
                    lam: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    r"""P003 Fig. 1b's GD comparison on the scalar system:
    :math:`\theta_1' = \theta_2(\lambda - \theta_1\theta_2)`, :math:`\theta_2' = \theta_1(\lambda - \theta_1\theta_2)`."""
    t1, t2 = np.asarray(theta1, dtype=float), np.asarray(theta2, dtype=float)
    e = np.asarray(lam, dtype=float) - t1 * t2
    return e * t2, e * t1


def deep_dfa_field(thetas: np.ndarray, ds: Sequence[float], lam: np.ndarray | float) -> np.ndarray:
    r"""P003 system (10), DFA on an L-layer 1-wide linear net:
    :math:`\theta_l' = d_l(\lambda - \theta_L\cdots\theta_1)\,\theta_{l-1}\cdots\theta_1` (``d_L = 1``).

    ``thetas (..., L)``; ``ds = (d_1, ..., d_L)`` (give ``d_L = 1`` for the paper's system). Returns ``(..., L)``."""
    th = np.asarray(thetas, dtype=float)
    depth = th.shape[-1]
    if len(ds) != depth:
        raise ValueError(f"Invalid ds: {tuple(ds)} (expected {depth} gains d_1..d_L for {depth} layers)")
    e = np.asarray(lam, dtype=float) - np.prod(th, axis=-1)
    below = np.concatenate([np.ones(th.shape[:-1] + (1,)), np.cumprod(th, axis=-1)[..., :-1]], axis=-1)
    return np.asarray(ds, dtype=float) * below * e[..., None]


def init7(theta0: np.ndarray | Sequence[float] | float, d: np.ndarray | float) -> np.ndarray:
    r"""P003 init (7): :math:`\theta_1(0) = \theta_0`, :math:`\theta_2(0) = \theta_0^2/(2d)` (so K = 0, eq. 37).
    Returns ``(..., 2)``."""
    t0 = np.asarray(theta0, dtype=float)
    return np.stack([t0, t0 * t0 / (2.0 * np.asarray(d, dtype=float))], axis=-1)


def init11(theta0: np.ndarray | Sequence[float] | float, ds: Sequence[float]) -> np.ndarray:
    r"""P003 init (11), vectorised over starts: :math:`\theta_l(0) = c_l\theta_0^{2^{l-1}}` with the constants of
    :func:`deep_constants`. Returns ``(..., L)``."""
    t0 = np.asarray(theta0, dtype=float)
    return np.stack([c * t0 ** (2 ** l) for l, c in enumerate(deep_constants(ds).c)], axis=-1)


# ------------------------------------------------------------------------------- discrete recursions (Sec. 5, exact)
def euler_recursion(x0: float, y0: float, eta: float, d: float, lam: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    r"""P003 Euler scheme (22)-(23): :math:`x_{t+1} = x_t + \eta d(\lambda - x_ty_t)`,
    :math:`y_{t+1} = y_t + \eta(\lambda - x_ty_t)x_t`. Returns ``(x_0..x_T, y_0..y_T)`` (numpy float64, T = steps)."""
    x, y = np.empty(steps + 1), np.empty(steps + 1)
    x[0], y[0] = x0, y0
    for t in range(steps):
        e = lam - x[t] * y[t]
        x[t + 1] = x[t] + eta * d * e
        y[t + 1] = y[t] + eta * e * x[t]
    return x, y


def modified_recursion(x0: float, y0: float, eta: float, d: float, lam: float,
                       steps: int) -> tuple[np.ndarray, np.ndarray]:
    r"""P003 modified (trapezoidal) scheme (26)-(27): :math:`x_{t+1} = x_t + \eta d(\lambda - x_ty_t)`,
    :math:`y_{t+1} = y_t + \tfrac{\eta}{2}(\lambda - x_ty_t)(x_{t+1} + x_t)` (Lemma 19: ``y - x^2/(2d)`` is exactly
    conserved). Returns ``(x_0..x_T, y_0..y_T)``."""
    x, y = np.empty(steps + 1), np.empty(steps + 1)
    x[0], y[0] = x0, y0
    for t in range(steps):
        e = lam - x[t] * y[t]
        x[t + 1] = x[t] + eta * d * e
        y[t + 1] = y[t] + 0.5 * eta * e * (x[t + 1] + x[t])
    return x, y


def deep_modified_recursion(theta0: np.ndarray | Sequence[float], eta: float, ds: Sequence[float], lam: float,
                            steps: int) -> np.ndarray:
    r"""P003 deep modified scheme (28) (eqs 128-132), sequential in l = 1..L:
    :math:`\theta_l^{t+1} = \theta_l^t + \eta d_l\big(\prod_{k<l}(\theta_k^t + \theta_k^{t+1})/2\big)
    (\lambda - \theta_L^t\cdots\theta_1^t)` with ``ds = (d_1, ..., d_L)`` (``d_L = 1`` in the paper; the invariants of
    init (11) then hold exactly, eq. 136). Returns ``(T + 1, L)``."""
    th = np.empty((steps + 1, len(ds)))
    th[0] = np.asarray(theta0, dtype=float)
    for t in range(steps):
        e = lam - float(np.prod(th[t]))
        mid = 1.0
        for l in range(len(ds)):
            th[t + 1, l] = th[t, l] + eta * ds[l] * mid * e
            mid *= 0.5 * (th[t, l] + th[t + 1, l])
    return th


# ------------------------------------------------------------------------------------------------------ deep (Thm 5)
@dataclass(frozen=True)
class DeepConstants:
    r"""P003 init (11) constants (eqs 83, 86): :math:`c_1 = 1`, :math:`c_{l+1} = d_{l+1}c_l^2/(2d_l)`, :math:`K = \prod_l c_l`, :math:`\gamma = 2^L-1`."""

    c: tuple[float, ...]
    K: float
    gamma: int


def deep_constants(ds: Sequence[float]) -> DeepConstants:
    r"""Constants of init (11) for feedback gains ``ds = (d_1, ..., d_L)`` (``d_L = 1`` in P003; eqs 83/86, claims.md §1.5).

    With :math:`\theta_l(0) = c_l\theta_0^{2^{l-1}}` the invariants :math:`\theta_l = c_l\theta_1^{2^{l-1}}` hold at all times.
    """
    c = [1.0]
    for l in range(1, len(ds)):
        c.append(ds[l] * c[-1] ** 2 / (2.0 * ds[l - 1]))
    return DeepConstants(tuple(c), float(np.prod(c)), 2 ** len(ds) - 1)


def deep_init(theta0: float, ds: Sequence[float]) -> np.ndarray:
    """P003 init (11): ``theta_l(0) = c_l theta0^(2^(l-1))``, l = 1..L."""
    dc = deep_constants(ds)
    return np.array([c * theta0 ** (2 ** l) for l, c in enumerate(dc.c)])


def deep_limit(lam: float, ds: Sequence[float]) -> tuple[float, float]:
    r"""P003 Thm 5: :math:`\theta_1 \to r = (\lambda/K)^{1/\gamma}` and the local rate :math:`d_1\gamma K r^{\gamma-1} = d_1\gamma\lambda/r`."""
    dc = deep_constants(ds)
    r = float(np.sign(lam) * abs(lam / dc.K) ** (1.0 / dc.gamma))
    return r, ds[0] * dc.gamma * lam / r


def deep_modified_eta_max(lam: float, ds: Sequence[float]) -> float:
    r"""P003 Thm 10 step bound :math:`\eta < 1/(d_1\gamma(K\lambda^{\gamma-1})^{1/\gamma})` (= 1 / flow rate)."""
    dc = deep_constants(ds)
    return 1.0 / (ds[0] * dc.gamma * (dc.K * lam ** (dc.gamma - 1)) ** (1.0 / dc.gamma))


def deep_modified_rate(eta: float, lam: float, ds: Sequence[float]) -> float:
    r"""P003 Thm 10 contraction factor :math:`1 - \eta d_1\gamma(K\lambda^{\gamma-1})^{1/\gamma}` (asymptotic, see flag)."""
    return 1.0 - eta / deep_modified_eta_max(lam, ds)


# ------------------------------------------------------------------------------------------- discretisations (Sec. 5)
def euler_step_bound(d: float, lam: float) -> tuple[float, float]:
    r"""P003 Thm 8 step-size condition :math:`\eta < \min(2/(3(S^*+1)^2),\ 2/\max_R P)` for Euler (22)-(23) from 0.

    :math:`S^*` is the positive root of :math:`x^3 - x^2 - 2d\lambda`; :math:`P(x, S) = 2d\lambda - x^3 + xS` on
    :math:`R = \{0 \le S \le x,\ P \ge 0\}` is maximal at :math:`S = x = 2/3`, :math:`\max_R P = 2d\lambda + 4/27`.
    Returns ``(S*, eta bound)``.
    """
    s_star = brentq(lambda x: x ** 3 - x ** 2 - 2 * d * lam, 0.0, 2.0 + 2 * d * lam)
    return s_star, min(2.0 / (3.0 * (s_star + 1.0) ** 2), 2.0 / (2.0 * d * lam + 4.0 / 27.0))


def euler_limit_point(s_inf: float, d: float, lam: float) -> float:
    r"""P003 Thm 8, eq. 143: The Euler limit :math:`x_\infty` given :math:`S_\infty = \sum_t (x_{t+1}-x_t)^2`: the positive root of
    :math:`x^3 - S_\infty x - 2d\lambda` (from the exact identity :math:`y_t = (x_t^2 - S_t)/(2d)`, eq. 143)."""
    return brentq(lambda x: x ** 3 - s_inf * x - 2 * d * lam, 0.0, 1.0 + abs(s_inf) + abs(2 * d * lam))


def modified_eta_max(d: float, lam: float) -> float:
    r"""P003 Thm 9: the modified scheme (26)-(27) from 0 converges for :math:`\eta < 2/(3(2d\lambda)^{2/3})`."""
    return 2.0 / (3.0 * k0_root(d, lam) ** 2)


def modified_one_step_eta(d: float, lam: float) -> float:
    r"""P003 Remark 23: :math:`\eta = 2/(2d\lambda)^{2/3}` reaches the root in one step from 0."""
    return 2.0 / k0_root(d, lam) ** 2


def modified_bound(t: np.ndarray, eta: float, d: float, lam: float) -> np.ndarray:
    r"""P003 Thm 9 bound (the provable reading): :math:`|x_ty_t - \lambda| \le 3\lambda(1 - \tfrac{\eta}{2}r^2)^t`."""
    r = k0_root(d, lam)
    return 3.0 * lam * (1.0 - 0.5 * eta * r * r) ** np.asarray(t, dtype=float)


def modified_asymptotic_factor(eta: float, d: float, lam: float) -> float:
    r"""P003 Thm 9, eqs 26-27: Linearisation of :math:`x_{t+1} = x_t + \tfrac{\eta}{2}(r^3 - x_t^3)` at r: :math:`1 - \tfrac32\eta r^2`."""
    r = k0_root(d, lam)
    return 1.0 - 1.5 * eta * r * r


def euler_asymptotic_factor(eta: float, x_inf: float, y_inf: float, d: float) -> float:
    r"""P003 Thm 8, eqs 22-23: Spectral radius of the Jacobian of Euler (22)-(23) at a fixed point :math:`(x, y)` of the hyperbola:
    :math:`I + \eta J`, :math:`J = -\begin{pmatrix} d y & d x\\ x y & x^2 \end{pmatrix}` + the zero mode along the hyperbola.

    The nonzero eigenvalue of J is :math:`-(dy + x^2)`, so the factor is :math:`|1 - \eta(d y + x^2)|`."""
    return abs(1.0 - eta * (d * y_inf + x_inf * x_inf))


def fit_log_slope(t: np.ndarray, err: np.ndarray, lo: float = 1e-10, hi: float = 1e-3) -> float:
    """P003 Thms 2, 8-10 (measured rates): Least-squares slope of ``-log|err|`` against t over the samples with ``lo <= |err| <= hi`` (nan if < 3 points)."""
    t = np.asarray(t, dtype=float)
    e = np.abs(np.asarray(err, dtype=float))
    m = (e >= lo) & (e <= hi)
    if m.sum() < 3:
        return float("nan")
    return float(-np.polyfit(t[m], np.log(e[m]), 1)[0])
