r"""Where FA, DFA and sign symmetry converge on diagonal linear networks: a coordinate-wise reduction (falab's own
result; derivation in docs/theory/fa_tensor_networks.md).

Every rule considered here (GD, FA with diagonal feedback ``diag(b_l)``, DFA with direct rows ``d_l``, uSF/frSF) is
*coordinate-wise* on a diagonal network ``beta = w_1 .* .. .* w_L``: with ``g = X^T e`` (``e`` the output error) and
``z(t) = -\int_0^t g\,ds``, layer ``l`` moves as :math:`dw_l/dz = c_l \odot \prod_{j<l} w_j` where ``c_l`` is the
feedback product that replaces :math:`\prod_{j>l} w_j` (FA: :math:`c_l = \prod_{j>l} b_j`; DFA: ``c_l = d_l``;
GD: :math:`\prod_{j>l} w_j` itself; ``c_L = 1``). Hence :math:`\beta(t) = P(z(t))` for a per-coordinate map ``P`` and
:math:`z(t) = X^T s(t) \in \mathrm{range}(X^T)`, with

.. math:: \dot s = -c\,\nabla D(s),\qquad D(s) = \sum_i F_i((X^T s)_i) - y^T s,\qquad F_i' = P_i,\ F_i(0) = 0,

an ``n``-dimensional gradient flow from ``s(0) = 0`` (``c = 1/N`` for the mean loss). When every ``P_i`` is
non-decreasing, ``D`` is convex and the limit is its minimiser: :math:`\beta^\star = P(X^T s^\star)`,
:math:`X\beta^\star = y`, i.e. :math:`\beta^\star = \arg\min \sum_i \Phi_i(\beta_i)` s.t. :math:`X\beta = y` with
:math:`\Phi_i = F_i^*` (:math:`\Phi_i' = P_i^{-1}`; KKT :math:`\nabla\Phi(\beta^\star) \in \mathrm{range}(X^T)`).

Two-layer FA from ``u(0) = u_0, v(0) = v_0``: ``u = u_0 + b z``, ``v = v_0 + u_0 z + b z^2 / 2``; the conserved
quantity :math:`Q = u^2/2 - b v` decides monotonicity (``P`` is non-decreasing iff ``Q <= 0``); from zero (or
vanishing) initialisation :math:`P(z) = b^2 z^3 / 2` and :math:`\Phi(\beta) = \tfrac34 (2/b^2)^{1/3} |\beta|^{4/3}`,
a weighted :math:`\ell_{4/3}` norm (GD: hyperbolic entropy -> :math:`\ell_1`, P002 Cor. 2/5, Woodworth et al. 2020).

Classification (exponential loss, docs Sec. 7): the same reduction gives :math:`z = A^\top\lambda(t)`,
``A = diag(y) X``, :math:`\lambda \ge 0` increasing; from zero FA is the mirror flow of that potential, and
:func:`max_margin_point` / :func:`fa_max_margin` give the predicted direction, the weighted-:math:`\ell_{4/3}`
max-margin point (a conjecture from discrete mirror-descent theorems, measured by claim FALAB-CLS).

float64 numpy/scipy only; no simulation imports (the predictor is never a disguised copy of the flow).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import polynomial as npoly
from scipy import integrate, optimize

from ._p002 import min_l1_interpolator, min_l2_interpolator

# ----------------------------------------------------------------------------------------------------------------------
# Coordinate maps beta_i = P_i(z_i)


class CoordinateMap(abc.ABC):
    """A per-coordinate map ``beta = P(z)`` (arrays ``(..., d)``) with derivative and antiderivative ``F`` (F(0)=0). FALAB: docs/theory/fa_tensor_networks.md Sec. 1."""

    @property
    @abc.abstractmethod
    def d(self) -> int: ...

    @abc.abstractmethod
    def value(self, z: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def derivative(self, z: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def antiderivative(self, z: np.ndarray) -> np.ndarray: ...

    @abc.abstractmethod
    def monotone(self) -> np.ndarray:
        """Per coordinate: True when ``P_i`` is non-decreasing on the whole line (then ``D`` is convex)."""

    def inverse(self, beta: np.ndarray, *, tol: float = 1e-15) -> np.ndarray:
        """``P^{-1}(beta)`` per coordinate (monotone coordinates; bracketing bisection polished by Newton)."""
        beta = np.asarray(beta, dtype=np.float64)
        lo, hi = -np.ones_like(beta), np.ones_like(beta)
        for _ in range(200):
            grow = self.value(lo) > beta
            if not grow.any():
                break
            lo = np.where(grow, 2 * lo, lo)
        for _ in range(200):
            grow = self.value(hi) < beta
            if not grow.any():
                break
            hi = np.where(grow, 2 * hi, hi)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            up = self.value(mid) < beta
            lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
            if np.all(hi - lo <= tol * np.maximum(1.0, np.abs(mid))):
                break
        z = 0.5 * (lo + hi)
        for _ in range(3):
            dp = self.derivative(z)
            step = np.where(dp > 0, (self.value(z) - beta) / np.where(dp > 0, dp, 1.0), 0.0)
            z_new = z - step
            z = np.where((z_new >= lo) & (z_new <= hi), z_new, z)
        return z

    def potential(self, beta: np.ndarray) -> np.ndarray:
        r""":math:`\Phi_i(\beta_i) = z\beta_i - F_i(z)` at :math:`z = P_i^{-1}(\beta_i)` (the convex conjugate of ``F``)."""
        z = self.inverse(beta)
        return z * np.asarray(beta) - self.antiderivative(z)


@dataclass(frozen=True)
class PolynomialMap(CoordinateMap):
    """``P_i(z) = sum_k coefs[k, i] z^k`` (FA/DFA on a diagonal net of any depth, any initialisation). FALAB: docs/theory/fa_tensor_networks.md Sec. 4."""

    coefs: np.ndarray  # (m, d)

    @property
    def d(self) -> int:
        return int(self.coefs.shape[1])

    def value(self, z):
        return npoly.polyval(np.asarray(z, dtype=np.float64), self.coefs, tensor=False)

    def derivative(self, z):
        return npoly.polyval(np.asarray(z, dtype=np.float64), npoly.polyder(self.coefs, axis=0), tensor=False)

    def antiderivative(self, z):
        return npoly.polyval(np.asarray(z, dtype=np.float64), npoly.polyint(self.coefs, axis=0), tensor=False)

    def monotone(self) -> np.ndarray:
        lower = self.coefs[:-1]
        if not lower.any():  # a pure power kappa z^p: increasing iff p is odd and kappa >= 0
            return np.full(self.d, (self.degree % 2 == 1)) & (self.coefs[-1] >= 0)
        out = np.zeros(self.d, dtype=bool)
        dcoef = npoly.polyder(self.coefs, axis=0)
        for i in range(self.d):
            c = np.trim_zeros(dcoef[:, i], "b")
            if c.size == 0:
                out[i] = True
                continue
            deg = c.size - 1
            if deg % 2 == 1 or c[-1] < 0:
                continue  # P' -> -inf on one side
            crit = npoly.polyroots(npoly.polyder(c)) if deg >= 2 else np.zeros(0)
            crit = crit[np.abs(crit.imag) <= 1e-9 * np.maximum(1.0, np.abs(crit))].real
            vals = npoly.polyval(crit, c) if crit.size else np.array([c[0]])
            scale = np.abs(c).max()
            out[i] = bool(vals.min() >= -1e-12 * scale)
        return out

    @property
    def degree(self) -> int:
        return int(self.coefs.shape[0] - 1)


@dataclass(frozen=True)
class SignSymmetryMap(CoordinateMap):
    r"""Two-layer uSF/frSF from ``u(0) = u_0 != 0``, ``v(0) = 0``: ``du/dz = s sign(v)``, ``dv/dz = u`` give
    :math:`\beta = (a + s|z|)(a z + s z|z|/2)` with ``a = |u_0|`` (odd, increasing; ``s`` the feedback magnitude:
    uSF's scale, or frSF's ``|R_i|``).
    FALAB: docs/theory/fa_tensor_networks.md Sec. 4.
    """

    a: np.ndarray
    s: np.ndarray

    @property
    def d(self) -> int:
        return int(np.asarray(self.a).shape[-1])

    def value(self, z):
        z = np.asarray(z, dtype=np.float64)
        return (self.a + self.s * np.abs(z)) * (self.a * z + self.s * z * np.abs(z) / 2)

    def derivative(self, z):
        z = np.abs(np.asarray(z, dtype=np.float64))
        return self.a**2 + 3 * self.a * self.s * z + 1.5 * self.s**2 * z**2

    def antiderivative(self, z):
        z = np.asarray(z, dtype=np.float64)
        az = np.abs(z)
        return self.a**2 * z**2 / 2 + self.a * self.s * az**3 + self.s**2 * z**4 / 8

    def monotone(self) -> np.ndarray:
        return np.ones(self.d, dtype=bool)


@dataclass(frozen=True)
class GradientMap(CoordinateMap):
    r"""Two-layer GD: ``u -+ v = (u_0 -+ v_0) e^{-+z}`` give :math:`\beta = ((u_0+v_0)^2 e^{2z} - (u_0-v_0)^2 e^{-2z})/4`
    (hyperbolic entropy potential; ``u_0 = alpha, v_0 = 0``: :math:`\beta = \alpha^2 \sinh(2z)/2`, P002 Cor. 5).
    FALAB: docs/theory/fa_tensor_networks.md Sec. 4.
    """

    u0: np.ndarray
    v0: np.ndarray

    @property
    def d(self) -> int:
        return int(np.asarray(self.u0).shape[-1])

    def _pm(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(self.u0) + self.v0) ** 2, (np.asarray(self.u0) - self.v0) ** 2

    def value(self, z):
        p, m = self._pm()
        return (p * np.exp(2 * z) - m * np.exp(-2 * z)) / 4

    def derivative(self, z):
        p, m = self._pm()
        return (p * np.exp(2 * z) + m * np.exp(-2 * z)) / 2

    def antiderivative(self, z):
        p, m = self._pm()
        return (p * np.expm1(2 * z) + m * np.expm1(-2 * z)) / 8

    def monotone(self) -> np.ndarray:
        return np.ones(self.d, dtype=bool)


def fa_products(b: Sequence[np.ndarray]) -> np.ndarray:
    r"""FA's feedback products ``c_l = prod_{j>l} b_j`` (``b = (b_2, .., b_L)``, ``c_L = 1``), shape ``(L, d)``. FALAB: docs/theory/fa_tensor_networks.md Sec. 1."""
    bs = [np.asarray(v, dtype=np.float64) for v in b]
    d = bs[0].shape[-1]
    L = len(bs) + 1
    c = np.ones((L, d))
    for l in range(L - 2, -1, -1):
        c[l] = c[l + 1] * bs[l]
    return c


def dfa_products(dvecs: Sequence[np.ndarray]) -> np.ndarray:
    """DFA's direct feedback rows ``c_l = d_l`` (``d_1 .. d_{L-1}``) and ``c_L = 1``, shape ``(L, d)``. FALAB: docs/theory/fa_tensor_networks.md Sec. 1."""
    ds = [np.asarray(v, dtype=np.float64) for v in dvecs]
    return np.vstack([*ds, np.ones_like(ds[0])])


def diagonal_map(c: np.ndarray, w0: np.ndarray) -> PolynomialMap:
    r"""``P`` of a depth-L diagonal net under a fixed-feedback coordinate-wise rule: :math:`w_l(z) = w_l(0) + c_l
    \int_0^z \prod_{j<l} w_j`, :math:`\beta = \prod_l w_l` (``w_l`` has degree :math:`2^{l-1}`, ``beta`` degree
    :math:`2^L - 1`). ``c, w0``: ``(L, d)``.
    FALAB: docs/theory/fa_tensor_networks.md Sec. 4.
    """
    c = np.asarray(c, dtype=np.float64)
    w0 = np.asarray(w0, dtype=np.float64)
    if c.shape != w0.shape or c.ndim != 2:
        raise ValueError(f"Invalid feedback/init shapes: {c.shape}, {w0.shape} (expected equal (L, d))")
    L, d = c.shape
    m = 2**L
    coefs = np.zeros((m, d))
    for i in range(d):
        prod = np.array([1.0])
        for l in range(L):
            w = npoly.polyint(prod) * c[l, i]
            w[0] += w0[l, i]
            prod = npoly.polymul(prod, w)
        coefs[: prod.size, i] = prod
    return PolynomialMap(coefs)


def small_init_map(c: np.ndarray) -> PolynomialMap:
    r"""The vanishing-initialisation map :math:`P(z) = \kappa z^p`, :math:`p = 2^L - 1` (odd), with
    :math:`\kappa = \prod_{k<L} c_k^{2^{L-k}} / \prod_{l=2}^{L} (2^{l-1})^{2^{L-l}} > 0` whenever no ``c_k`` vanishes
    (``c_L = 1``): increasing for every depth and every feedback sign (= :func:`diagonal_map` at ``w0 = 0``).
    FALAB: docs/theory/fa_tensor_networks.md Sec. 4.
    """
    return diagonal_map(c, np.zeros_like(np.asarray(c, dtype=np.float64)))


def small_init_exponent(depth: int) -> float:
    r"""``q = 1 + 1/p = 2^L / (2^L - 1)`` of the small-init potential :math:`\Phi \propto |\beta|^{q}`
    (depth 2: 4/3, depth 3: 8/7, depth 4: 16/15: towards, never at, GD's l1).
    FALAB: docs/theory/fa_tensor_networks.md Sec. 4.
    """
    return 2.0**depth / (2.0**depth - 1.0)


def fa_lp_weights(b: np.ndarray) -> np.ndarray:
    r"""Weights of two-layer FA's small-init potential :math:`\Phi = \sum_i \omega_i|\beta_i|^{4/3}`,
    :math:`\omega_i = \tfrac34 (2/b_i^2)^{1/3}`: feedback magnitudes matter, their signs do not.
    FALAB: docs/theory/fa_tensor_networks.md Sec. 3.
    """
    return 0.75 * np.cbrt(2.0 / np.asarray(b, dtype=np.float64) ** 2)


# ----------------------------------------------------------------------------------------------------------------------
# The limit: minimiser of the dual D (convex case) or the limit of the reduced n-dimensional flow


@dataclass
class TensorLimit:
    """A predicted limit: ``beta = P(X^T s)``, the dual point ``s``, how it was found, and its residuals. FALAB: docs/theory/fa_tensor_networks.md Sec. 2."""

    beta: np.ndarray
    s: np.ndarray
    method: str
    monotone: bool
    grad_norm: float  # ||X P(X^T s) - y||
    info: dict[str, float] = field(default_factory=dict)


def _dual(x: np.ndarray, y: np.ndarray, pmap: CoordinateMap, s: np.ndarray) -> tuple[float, np.ndarray]:
    z = x.T @ s
    return float(pmap.antiderivative(z).sum() - y @ s), x @ pmap.value(z) - y


def _newton_polish(x, y, pmap, s, *, iters: int = 50, tol: float = 1e-15) -> np.ndarray:
    """Newton on ``grad D(s) = 0`` (Jacobian ``X diag(P'(X^T s)) X^T``), backtracking on ``||grad D||``."""
    scale = max(1.0, float(np.abs(y).max()))
    with np.errstate(over="ignore", invalid="ignore"):
        return _newton_iterations(x, y, pmap, s, iters, tol, scale)


def _newton_iterations(x, y, pmap, s, iters, tol, scale):
    for _ in range(iters):
        _, g = _dual(x, y, pmap, s)
        gn = float(np.linalg.norm(g))
        if gn <= tol * scale:
            break
        h = (x * pmap.derivative(x.T @ s)) @ x.T
        try:
            step = np.linalg.solve(h + 1e-300 * np.eye(len(s)), g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(h, g, rcond=None)[0]
        t = 1.0
        while t > 1e-8:
            s_new = s - t * step
            if float(np.linalg.norm(_dual(x, y, pmap, s_new)[1])) < gn:
                break
            t /= 2
        else:
            break
        s = s_new
    return s


def _minimise_dual(x, y, pmap, *, tol: float) -> np.ndarray:
    """Minimise the convex ``D`` from ``s = 0`` by scipy's exact trust-region Newton (robust where ``P'(0) = 0``
    makes the Hessian singular and where exponential maps overflow on a trial step)."""
    scale = max(1.0, float(np.abs(y).max()))

    def fun(s):
        f, g = _dual(x, y, pmap, s)
        if not (math.isfinite(f) and np.isfinite(g).all()):
            return math.inf, np.zeros_like(s)
        return f, g

    def hess(s):
        h = (x * pmap.derivative(x.T @ s)) @ x.T
        return h if np.isfinite(h).all() else np.zeros_like(h)

    with np.errstate(over="ignore", invalid="ignore"):
        res = optimize.minimize(fun, np.zeros(x.shape[0]), jac=True, hess=hess, method="trust-exact",
                                options={"gtol": tol * scale, "maxiter": 2000})
    return np.asarray(res.x)


def _reduced_flow(x, y, pmap, *, t_end: float, rtol: float) -> np.ndarray:
    """The exact reduced flow ``ds/dt = -grad D(s)`` from ``s = 0`` (LSODA), for non-monotone ``P``: its limit is the
    critical point of ``D`` that the network's flow reaches (not a closed form: an n-dimensional ODE)."""

    def rhs(t, s):
        del t
        return -_dual(x, y, pmap, s)[1]

    sol = integrate.solve_ivp(rhs, (0.0, t_end), np.zeros(x.shape[0]), method="LSODA", rtol=rtol, atol=rtol * 1e-2)
    return sol.y[:, -1]


def predict_limit(x: np.ndarray, y: np.ndarray, pmap: CoordinateMap, *, method: str = "auto", tol: float = 1e-13,
                  t_end: float = 1e6, rtol: float = 1e-11) -> TensorLimit:
    r"""The limit of a coordinate-wise rule's flow on a diagonal net (regression, loss :math:`\|X\beta - y\|^2`).

    ``method``: ``'dual'`` minimises the convex dual ``D`` (requires every ``P_i`` non-decreasing: then
    :math:`\beta^\star = \arg\min\sum_i\Phi_i(\beta_i)` s.t. :math:`X\beta = y`); ``'reduced'`` follows the reduced
    flow :math:`\dot s = -\nabla D(s)` from 0 and polishes the critical point by Newton (any ``P``); ``'auto'``
    picks ``'dual'`` when ``P`` is monotone. The time scale of the flow (``1/N``) does not change the limit.
    FALAB: docs/theory/fa_tensor_networks.md Sec. 2.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    mono = bool(pmap.monotone().all())
    if method == "auto":
        method = "dual" if mono else "reduced"
    if method == "dual":
        if not mono:
            raise ValueError("Invalid method: 'dual' (expected 'reduced': P is not monotone, D is not convex)")
        s = _minimise_dual(x, y, pmap, tol=tol)
    elif method == "reduced":
        s = _reduced_flow(x, y, pmap, t_end=t_end, rtol=rtol)
    else:
        raise ValueError(f"Invalid method: {method!r} (expected 'auto', 'dual' or 'reduced')")
    s = _newton_polish(x, y, pmap, s)
    g = _dual(x, y, pmap, s)[1]
    return TensorLimit(pmap.value(x.T @ s), s, method, mono, float(np.linalg.norm(g)))


def predict_limits(xs: np.ndarray, ys: np.ndarray, pmap: CoordinateMap, *, tol: float = 1e-11,
                   iters: int = 40) -> np.ndarray:
    r"""The limits of ``M`` independent problems at once (``xs (M, n, d)``, ``ys (M, n)``) for a *monotone* map whose
    coordinates are the ``M d`` coordinates of the batch (``pmap`` built from ``(M, d)`` arrays flattened to
    ``M d``): damped Newton on every convex dual together (batched ``n x n`` solves, Armijo backtracking per
    problem); problems it leaves unconverged are solved one by one by :func:`predict_limit`. Returns ``beta (M, d)``.
    FALAB: docs/theory/fa_tensor_networks.md Sec. 2.
    """
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    m, n, d = xs.shape
    if not pmap.monotone().all():
        raise ValueError("Invalid map: not monotone (expected a convex dual; use predict_limit per problem)")

    def parts(s):
        z = np.einsum("mnd,mn->md", xs, s).reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):
            f = pmap.antiderivative(z).reshape(m, d).sum(1) - np.einsum("mn,mn->m", ys, s)
            g = np.einsum("mnd,md->mn", xs, pmap.value(z).reshape(m, d)) - ys
        return z, np.where(np.isfinite(f), f, np.inf), g

    s = np.zeros((m, n))
    if isinstance(pmap, PolynomialMap) and not pmap.coefs[:-1].any():
        # homogeneous F (kappa z^p, p odd): start on the min-l2 dual direction sbar at its exact 1-D minimiser
        # c = (y.sbar / ((p + 1) F(X^T sbar)))^(1/p) (Newton from 0 would meet a zero Hessian)
        sbar = np.linalg.solve(np.einsum("mnd,mkd->mnk", xs, xs), ys[..., None])[..., 0]
        zbar = np.einsum("mnd,mn->md", xs, sbar).reshape(-1)
        a = pmap.antiderivative(zbar).reshape(m, d).sum(1)
        b = np.einsum("mn,mn->m", ys, sbar)
        c = np.where((a > 0) & (b > 0), (np.maximum(b, 0) / ((pmap.degree + 1) * np.where(a > 0, a, 1.0)))
                     ** (1.0 / pmap.degree), 0.0)
        s = c[:, None] * sbar
    scale = np.maximum(1.0, np.abs(ys).max(1))
    eye = np.eye(n)
    z, f, g = parts(s)
    for _ in range(iters):
        gn = np.linalg.norm(g, axis=1)
        active = gn > tol * scale
        if not active.any():
            break
        with np.errstate(over="ignore", invalid="ignore"):
            dp = pmap.derivative(z).reshape(m, d)
        h = np.einsum("mnd,md,mkd->mnk", xs, np.where(np.isfinite(dp), dp, 0.0), xs)
        tr = np.trace(h, axis1=1, axis2=2) / n
        mu = np.where(gn > 1e-6 * scale, 1e-3 * gn * (tr + 1.0), 0.0) + 1e-14 * tr + 1e-300
        step = np.linalg.solve(h + mu[:, None, None] * eye, g[..., None])[..., 0]
        t = np.ones(m)
        s_new = s.copy()
        todo = active.copy()
        for _ in range(30):
            trial = s - t[:, None] * step
            _, f_t, _ = parts(trial)
            ok = todo & (f_t <= f - 1e-4 * t * np.einsum("mn,mn->m", g, step))
            s_new[ok] = trial[ok]
            todo &= ~ok
            if not todo.any():
                break
            t = np.where(todo, t / 2, t)
        s = s_new
        z, f, g = parts(s)
    beta = pmap.value(z).reshape(m, d)
    bad = np.linalg.norm(g, axis=1) > max(tol, 1e-9) * scale
    for i in np.flatnonzero(bad):
        beta[i] = predict_limit(xs[i], ys[i], _slice_map(pmap, int(i), d)).beta
    return beta


def _slice_map(pmap: CoordinateMap, i: int, d: int) -> CoordinateMap:
    sl = slice(i * d, (i + 1) * d)
    if isinstance(pmap, PolynomialMap):
        return PolynomialMap(pmap.coefs[:, sl])
    if isinstance(pmap, GradientMap):
        return GradientMap(np.asarray(pmap.u0)[sl], np.asarray(pmap.v0)[sl])
    if isinstance(pmap, SignSymmetryMap):
        return SignSymmetryMap(np.asarray(pmap.a)[sl], np.asarray(pmap.s)[sl])
    if isinstance(pmap, PowerMap):
        return PowerMap(np.asarray(pmap.weights)[sl], pmap.q)
    raise ValueError(f"Invalid map: {type(pmap).__name__} (expected a falab coordinate map)")


def concat_maps(maps: Sequence[CoordinateMap]) -> CoordinateMap:
    """One map over the concatenated coordinates of several maps of one kind (for :func:`predict_limits`). FALAB: docs/theory/fa_tensor_networks.md Sec. 2."""
    first = maps[0]
    if isinstance(first, PolynomialMap):
        deg = max(mp.coefs.shape[0] for mp in maps)  # type: ignore[attr-defined]
        return PolynomialMap(np.hstack([np.vstack([mp.coefs, np.zeros((deg - mp.coefs.shape[0], mp.d))])  # type: ignore[attr-defined]
                                        for mp in maps]))
    if isinstance(first, GradientMap):
        return GradientMap(np.concatenate([mp.u0 for mp in maps]), np.concatenate([mp.v0 for mp in maps]))  # type: ignore[attr-defined]
    if isinstance(first, SignSymmetryMap):
        return SignSymmetryMap(np.concatenate([mp.a for mp in maps]), np.concatenate([mp.s for mp in maps]))  # type: ignore[attr-defined]
    raise ValueError(f"Invalid maps: {type(first).__name__} (expected polynomial, gradient or sign-symmetry maps)")


@dataclass(frozen=True)
class ScaledMap(CoordinateMap):
    """``P(c z)`` for a map ``P`` and a constant ``c > 0`` (the DFT's factor ``d`` in the convolutional case).
    FALAB: docs/theory/fa_tensor_networks.md Sec. 6."""

    base: CoordinateMap
    c: float

    @property
    def d(self) -> int:
        return self.base.d

    def value(self, z):
        return self.base.value(self.c * np.asarray(z, dtype=np.float64))

    def derivative(self, z):
        return self.c * self.base.derivative(self.c * np.asarray(z, dtype=np.float64))

    def antiderivative(self, z):
        return self.base.antiderivative(self.c * np.asarray(z, dtype=np.float64)) / self.c

    def monotone(self) -> np.ndarray:
        return self.base.monotone()

    def inverse(self, beta, *, tol: float = 1e-15):
        return self.base.inverse(beta, tol=tol) / self.c


def _is_even(v: np.ndarray, tol: float = 1e-12) -> bool:
    v = np.atleast_2d(v)
    rev = np.roll(v[:, ::-1], 1, axis=1)  # v[(-i) mod d]
    return bool(np.abs(v - rev).max() <= tol * max(1.0, float(np.abs(v).max())))


def conv_fa_limit(x: np.ndarray, y: np.ndarray, b: np.ndarray, w1_0: np.ndarray | None = None,
                  w2_0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Two-layer FA on a full-length circular-convolution net (``beta = w_2 (*) w_1``, read-out feedback ``b``) with
    *even* data, feedback and initialisation: the DFT is real there, the net is a diagonal one in the Fourier basis
    (``\hat\beta_k = \hat w_{1k}\hat w_{2k}``, feedback ``\hat b_k``), and with ``A = X F^{-1}``,
    ``\hat z = d A^T s``. Returns ``(beta, beta_hat)``; from zero init ``beta_hat`` minimises
    :math:`\sum_k |\hat b_k|^{-2/3}|\hat\beta_k|^{4/3}` s.t. :math:`X\beta = y` (a weighted DFT-:math:`\ell_{4/3}`).
    FALAB: docs/theory/fa_tensor_networks.md Sec. 6."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n, d = x.shape
    w1_0 = np.zeros(d) if w1_0 is None else np.asarray(w1_0, dtype=np.float64)
    w2_0 = np.zeros(d) if w2_0 is None else np.asarray(w2_0, dtype=np.float64)
    for name, v in (("x", x), ("b", b), ("w1_0", w1_0), ("w2_0", w2_0)):
        if not _is_even(np.asarray(v, dtype=np.float64)):
            raise ValueError(f"Invalid {name}: not even (expected v[i] = v[-i mod d]: the real-DFT case)")
    f = np.fft.fft(np.eye(d))  # F[k, j] = exp(-2 pi i k j / d)
    a = (x @ np.conj(f)).real / d
    bh, u0, v0 = (np.fft.fft(np.asarray(v, dtype=np.float64)).real for v in (b, w1_0, w2_0))
    pm = ScaledMap(diagonal_map(fa_products([bh]), np.vstack([u0, v0])), float(d))
    beta_hat = predict_limit(a, np.asarray(y, dtype=np.float64), pm).beta
    return np.fft.ifft(beta_hat).real, beta_hat


def kkt_residual(x: np.ndarray, beta: np.ndarray, pmap: CoordinateMap) -> float:
    r"""Relative distance of :math:`\nabla\Phi(\beta) = P^{-1}(\beta)` from ``range(X^T)`` (0 at the minimiser). FALAB: docs/theory/fa_tensor_networks.md Sec. 2."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    grad = pmap.inverse(beta)
    proj = x.T @ np.linalg.lstsq(x.T, grad, rcond=None)[0]
    return float(np.linalg.norm(grad - proj)) / max(float(np.linalg.norm(grad)), 1e-300)


def weighted_lp_interpolator(x: np.ndarray, y: np.ndarray, weights: np.ndarray, q: float, *,
                             tol: float = 1e-13) -> np.ndarray:
    r""":math:`\arg\min \sum_i \omega_i |\beta_i|^q` s.t. :math:`X\beta = y` (``q > 1``), through its dual: the map
    :math:`P_i(z) = \mathrm{sign}(z)(|z|/(q\omega_i))^{1/(q-1)}` minimises :math:`D(s) = \sum F_i((X^Ts)_i) - y^Ts`.
    FALAB: docs/theory/fa_tensor_networks.md Sec. 3.
    """
    if not q > 1:
        raise ValueError(f"Invalid q: {q} (expected > 1)")
    pm = PowerMap(np.asarray(weights, dtype=np.float64), float(q))
    return predict_limit(x, y, pm, method="dual", tol=tol).beta


@dataclass(frozen=True)
class PowerMap(CoordinateMap):
    r"""``P = (\Phi')^{-1}`` for :math:`\Phi_i = \omega_i|\beta|^q`: :math:`P_i(z) = \mathrm{sign}(z)(|z|/(q\omega_i))^{r}`,
    ``r = 1/(q-1)``.
    FALAB: docs/theory/fa_tensor_networks.md Sec. 3.
    """

    weights: np.ndarray
    q: float

    @property
    def d(self) -> int:
        return int(np.asarray(self.weights).shape[-1])

    def value(self, z):
        r = 1.0 / (self.q - 1.0)
        return np.sign(z) * (np.abs(z) / (self.q * self.weights)) ** r

    def derivative(self, z):
        r = 1.0 / (self.q - 1.0)
        return r * (np.abs(z) / (self.q * self.weights)) ** (r - 1) / (self.q * self.weights)

    def antiderivative(self, z):
        r = 1.0 / (self.q - 1.0)
        return (self.q * self.weights) * (np.abs(z) / (self.q * self.weights)) ** (r + 1) / (r + 1)

    def monotone(self) -> np.ndarray:
        return np.ones(self.d, dtype=bool)

    def inverse(self, beta, *, tol: float = 1e-15):
        del tol
        return np.sign(beta) * self.q * self.weights * np.abs(beta) ** (self.q - 1)

    def potential(self, beta):
        return self.weights * np.abs(beta) ** self.q


# ----------------------------------------------------------------------------------------------------------------------
# Classification (exponential loss): the max-margin direction of the potential


@dataclass
class MarginLimit:
    """A predicted max-margin point ``beta = P(A^T lam)`` (``A = diag(y) X``), its dual ``lam >= 0``, the active set
    (the support vectors) and the KKT residual. FALAB: docs/theory/fa_tensor_networks.md Sec. 7."""

    beta: np.ndarray
    lam: np.ndarray
    active: np.ndarray
    kkt: float
    info: dict[str, float] = field(default_factory=dict)

    @property
    def direction(self) -> np.ndarray:
        return self.beta / float(np.linalg.norm(self.beta))


def _margin_dual(a: np.ndarray, pmap: CoordinateMap, lam: np.ndarray) -> tuple[float, np.ndarray]:
    z = a.T @ lam
    return float(pmap.antiderivative(z).sum() - lam.sum()), a @ pmap.value(z) - 1.0


def max_margin_point(x: np.ndarray, y: np.ndarray, pmap: CoordinateMap, *, tol: float = 1e-13,
                     max_rounds: int = 50) -> MarginLimit:
    r""":math:`\beta^\star = \arg\min \sum_i \Phi_i(\beta_i)` s.t. :math:`y_n x_n^\top\beta \ge 1` for the potential of
    a monotone coordinate map (:math:`\Phi_i' = P_i^{-1}`), by its convex dual
    :math:`\min_{\lambda \ge 0} \sum_i F_i((A^\top\lambda)_i) - \mathbf 1^\top\lambda`, ``A = diag(y) X``,
    :math:`\beta^\star = P(A^\top\lambda^\star)`: L-BFGS-B for the active set, then a primal-dual active-set loop
    whose every round solves the equality problem on the active rows to Newton precision (:func:`predict_limit` with
    targets 1), dropping a negative multiplier or adding the most violated margin until the KKT conditions hold.
    For a homogeneous ``Phi`` (FA/DFA from zero: :func:`small_init_map`, or :class:`PowerMap`) the direction of
    ``beta*`` is the predicted limit direction of the flow under the exponential loss (Sun et al. 2022, 2023 for
    mirror descent with homogeneous potentials; docs Sec. 7 states what is proved and what is conjectured).
    FALAB: docs/theory/fa_tensor_networks.md Sec. 7.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    if not np.all(np.abs(y) == 1.0):
        raise ValueError(f"Invalid y: {y} (expected labels in {{-1, +1}})")
    if not pmap.monotone().all():
        raise ValueError("Invalid map: not monotone (expected a convex potential)")
    a = y[:, None] * x
    n, d = a.shape
    feas = optimize.linprog(np.zeros(d), A_ub=-a, b_ub=-np.ones(n), bounds=[(None, None)] * d, method="highs")
    if feas.status != 0:  # no beta with every margin >= 1: the dual is unbounded below
        raise ValueError("Invalid data: not linearly separable (expected some beta with y_n x_n^T beta > 0 for all n)")

    def fun(lam):
        with np.errstate(over="ignore", invalid="ignore"):
            f, g = _margin_dual(a, pmap, lam)
        if not (math.isfinite(f) and np.isfinite(g).all()):
            return math.inf, np.zeros_like(lam)
        return f, g

    # start on the ray of the l2 dual (homogeneous D has a zero Hessian at 0), scaled to its 1-D minimiser
    lam0 = np.maximum(optimize.nnls(a @ a.T, np.ones(n))[0], 1e-3)
    ts = np.geomspace(1e-6, 1e6, 121)
    lam0 = lam0 * ts[int(np.argmin([fun(t * lam0)[0] for t in ts]))]
    res = optimize.minimize(fun, lam0, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * n,
                            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
    lam = np.asarray(res.x)
    active = lam > 1e-9 * max(1.0, float(lam.max()))
    if not active.any():
        active[int(np.argmax(-fun(lam)[1]))] = True
    rounds = 0
    while True:
        rounds += 1
        if rounds > max_rounds:
            raise RuntimeError(f"max_margin_point: no KKT active set after {max_rounds} rounds")
        idx = np.flatnonzero(active)
        lim = predict_limit(a[idx], np.ones(len(idx)), pmap, tol=tol)
        lam = np.zeros(n)
        lam[idx] = lim.s
        beta = lim.beta
        margins = a @ beta
        neg = lam[idx] < 0
        viol = (~active) & (margins < 1.0 - 1e-12)
        if neg.any():
            if len(idx) == 1:  # a single margin with a negative multiplier: no separating direction exists
                raise RuntimeError("max_margin_point: the active set emptied (are the data separable?)")
            active[idx[int(np.argmin(lam[idx]))]] = False
        elif viol.any():
            active[int(np.argmin(np.where(viol, margins, np.inf)))] = True
        else:
            break
    return MarginLimit(beta, lam, active, margin_kkt_residual(x, y, beta, pmap), {"rounds": float(rounds)})


def margin_kkt_residual(x: np.ndarray, y: np.ndarray, beta: np.ndarray, pmap: CoordinateMap, *,
                        active_tol: float = 1e-7) -> float:
    r"""KKT residual of :math:`\min\Phi(\beta)` s.t. :math:`A\beta \ge 1` at ``beta``, from ``beta`` alone: the
    multipliers are the NNLS fit of :math:`\nabla\Phi(\beta) = P^{-1}(\beta)` by the rows whose margin is within
    ``active_tol`` of 1; returns the max of the relative stationarity residual, the margin violation
    :math:`\max(0, 1 - \min_n A_n\beta)` and the complementary slackness :math:`\sum\lambda_n|A_n\beta - 1| / \sum\lambda_n`.
    FALAB: docs/theory/fa_tensor_networks.md Sec. 7."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    a = np.atleast_1d(np.asarray(y, dtype=np.float64))[:, None] * x
    beta = np.asarray(beta, dtype=np.float64)
    margins = a @ beta
    act = np.flatnonzero(margins <= 1.0 + active_tol)
    grad = pmap.inverse(beta)
    gnorm = max(float(np.linalg.norm(grad)), 1e-300)
    if act.size == 0:
        return math.inf
    lam, _ = optimize.nnls(a[act].T, grad)
    station = float(np.linalg.norm(grad - a[act].T @ lam)) / gnorm
    slack = float(np.sum(lam * np.abs(margins[act] - 1.0))) / max(float(lam.sum()), 1e-300)
    return max(station, max(0.0, 1.0 - float(margins.min())), slack)


def fa_max_margin(x: np.ndarray, y: np.ndarray, b: np.ndarray) -> MarginLimit:
    r"""Two-layer FA from zero init under the exponential loss: the weighted-:math:`\ell_{4/3}` max-margin point
    :math:`\arg\min\sum_i |b_i|^{-2/3}|\beta_i|^{4/3}` s.t. :math:`y_n x_n^\top\beta \ge 1` (its direction is the
    prediction for :math:`\beta(t)/\|\beta(t)\|`). FALAB: docs/theory/fa_tensor_networks.md Sec. 7."""
    return max_margin_point(x, y, PowerMap(fa_lp_weights(b), 4.0 / 3.0))


def angle(a: np.ndarray, b: np.ndarray) -> float:
    """The angle (radians) between two non-zero vectors, ``2 atan2(||a^ - b^||, ||a^ + b^||)`` (accurate near 0).
    FALAB: docs/theory/fa_tensor_networks.md Sec. 7."""
    ua = np.asarray(a, dtype=np.float64) / float(np.linalg.norm(a))
    ub = np.asarray(b, dtype=np.float64) / float(np.linalg.norm(b))
    return 2.0 * math.atan2(float(np.linalg.norm(ua - ub)), float(np.linalg.norm(ua + ub)))


def lp_norm(beta: np.ndarray, q: float, weights: np.ndarray | None = None) -> float:
    """``(sum w_i |beta_i|^q)^{1/q}``. FALAB: docs/theory/fa_tensor_networks.md Sec. 3."""
    w = np.ones_like(beta) if weights is None else weights
    return float(np.sum(w * np.abs(beta) ** q) ** (1.0 / q))


def reference_interpolators(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """min-l1 (HiGHS LP) and min-l2 (pseudo-inverse) interpolators, the two implicit biases FA is compared with. FALAB: docs/theory/fa_tensor_networks.md Sec. 5."""
    return {"l1": min_l1_interpolator(x, y), "l2": min_l2_interpolator(x, y)}


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / ||b||``. FALAB: docs/theory/fa_tensor_networks.md Sec. 5."""
    return float(np.linalg.norm(np.asarray(a) - b) / max(float(np.linalg.norm(b)), 1e-300))


def support_recovered(beta: np.ndarray, support: np.ndarray) -> bool:
    """True when the ``k = |support|`` largest ``|beta_i|`` sit exactly on ``support``. FALAB: docs/theory/fa_tensor_networks.md Sec. 5."""
    k = len(support)
    top = np.argsort(-np.abs(np.asarray(beta)), kind="stable")[:k]
    return set(int(i) for i in top) == set(int(i) for i in support)


def n_at_half(ns: Sequence[float], probs: Sequence[float]) -> float:
    """Smallest ``n`` where a recovery-probability curve reaches 1/2 (linear interpolation; ``inf`` if never). FALAB: docs/theory/fa_tensor_networks.md Sec. 5."""
    ns_a, p = np.asarray(ns, dtype=float), np.asarray(probs, dtype=float)
    for i in range(len(p)):
        if p[i] >= 0.5:
            if i == 0:
                return float(ns_a[0])
            a, b = p[i - 1], p[i]
            return float(ns_a[i - 1] + (0.5 - a) / (b - a) * (ns_a[i] - ns_a[i - 1]))
    return math.inf


__all__ = ["CoordinateMap", "PolynomialMap", "SignSymmetryMap", "GradientMap", "PowerMap", "TensorLimit",
           "fa_products", "dfa_products", "diagonal_map", "small_init_map", "small_init_exponent", "fa_lp_weights",
           "predict_limit", "predict_limits", "concat_maps", "ScaledMap", "conv_fa_limit", "kkt_residual", "weighted_lp_interpolator", "lp_norm", "reference_interpolators",
           "relative_error", "support_recovered", "n_at_half", "MarginLimit", "max_margin_point", "margin_kkt_residual",
           "fa_max_margin", "angle"]
