"""Closed-form predictors for P002 (Yun, Krishnan & Mobahi, ICLR 2021): implicit bias of linear tensor networks.

An independent oracle (numpy/scipy only; no falab rules, dynamics, models or instruments). Conventions follow
claims.md §1.7: data rows ``X (n, d)``, residual ``r = f - y`` (regression) or ``r_i = -y_i exp(-y_i f_i)``
(classification), dataset loss = sum over samples, unit-rate gradient flow ``dv_l/dt = -grad_{v_l} L``.

Contents
    * data tensors ``M(x)`` of the diagonal, circular-convolution and fully connected networks (eq. 3-5, 10-12) and the
      multilinear contraction ``M(x) o (v_1, .., v_L)``; ``beta(Theta)_k = M(e_k) o (v_1..v_L)``;
    * the Lemma 4 functions ``q_L, h_L, h_L^{-1}, H_L`` (closed forms for L = 2, 3, 4 and a general-L evaluation);
    * minimum-norm interpolators and max-margin directions for l2, l1 and DFT-l1 (scipy LP / NNLS);
    * Theorem 6 (two layers, one data point) limit and exact trajectory; Theorem 5 limit (damped Newton on the dual);
      Theorem 7 limit; the loss bounds of Theorems 2, 3, 5, 6, 7.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import integrate, optimize, special

# ----------------------------------------------------------------------------------------------------------------------
# Data tensors and contractions (claims.md §1.7)


def data_tensor_diag(x: np.ndarray, depth: int) -> np.ndarray:
    """``M_diag(x)[j, .., j] = x_j`` (P002 eq. 11), shape ``(d,) * L``."""
    x = np.asarray(x, dtype=float)
    d = x.size
    m = np.zeros((d,) * depth)
    idx = np.arange(d)
    m[(idx,) * depth] = x
    return m


def data_tensor_conv(x: np.ndarray, filters: Sequence[int]) -> np.ndarray:
    """``M_conv(x)[j_1..j_L] = x[(j_1 + .. + j_L) mod d]`` (P002 eq. 12, 0-based), filters ``(k_1, .., k_L)``."""
    x = np.asarray(x, dtype=float)
    d = x.size
    grids = np.meshgrid(*[np.arange(k) for k in filters], indexing="ij")
    return x[sum(grids) % d]


def data_tensor_fc(x: np.ndarray, widths: Sequence[int]) -> np.ndarray:
    """``M_fc(x) = T_L(x)`` (P002 eq. 10) for ``f = x^T W_1 .. W_{L-1} w_L``, ``W_l (d_l, d_{l+1})``, ``v_l = vec(W_l)``.

    ``widths = (d_1 = d, d_2, .., d_L)``; mode l has size ``d_l d_{l+1}`` (column-major vec), the last ``d_L``.
    Entry ``[(a_1,b_1), .., (a_{L-1},b_{L-1}), j_L] = x[a_1] prod_l delta(b_l, a_{l+1})`` with ``b_{L-1} ~ a_L = j_L``.
    """
    x = np.asarray(x, dtype=float)
    widths = list(widths)
    depth = len(widths)
    if x.size != widths[0]:
        raise ValueError(f"Invalid x: length {x.size} (expected d_1 = {widths[0]})")
    t = x
    for dl in widths[1:]:
        t = np.multiply.outer(t, np.eye(dl))
    # axes now: a_1, (b_1, a_2), (b_2, a_3), .., (b_{L-1}, j_L); column-major vec of W_l -> C-order axes (b_l, a_l)
    order = []
    for l in range(depth - 1):
        a_axis = 0 if l == 0 else 2 * l
        b_axis = 2 * l + 1
        order += [b_axis, a_axis]
    order.append(2 * (depth - 1))
    t = t.transpose(order)
    shape = [widths[l] * widths[l + 1] for l in range(depth - 1)] + [widths[-1]]
    return t.reshape(shape)


def contract(m: np.ndarray, vs: Sequence[np.ndarray], skip: int | None = None) -> np.ndarray:
    """P002 eq. 3 (claims.md §1.7): ``M o (v_1, .., v_L)`` (full contraction, a scalar) or, with ``skip = l``, ``M o (.., I_{k_l}, ..)`` (a vector)."""
    out = m
    for l in range(len(vs) - 1, -1, -1):
        if l == skip:
            continue
        out = np.tensordot(out, vs[l], axes=([l], [0]))
    return np.asarray(out)


def beta_of(basis_tensors: Sequence[np.ndarray], vs: Sequence[np.ndarray]) -> np.ndarray:
    """P002 eq. 4 (claims.md §1.7): Linear coefficients ``beta_k = M(e_k) o (v_1, .., v_L)`` from the tensors ``M(e_1), .., M(e_d)``."""
    return np.array([float(contract(mk, vs)) for mk in basis_tensors])


def dft_matrix(d: int) -> np.ndarray:
    """P002 App. D.3, Corollary 3: Unitary DFT ``F[j, k] = d^{-1/2} exp(-2 pi i j k / d)`` (0-based; claims.md §1.7)."""
    j = np.arange(d)
    return np.exp(-2j * np.pi * np.outer(j, j) / d) / math.sqrt(d)


def conv_decomposition(d: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Assumption 1 for full-length conv nets: ``S = d^((L-1)/2) F`` and ``U_l = conj(F)`` (P002 App. D.3)."""
    f = dft_matrix(d)
    return d ** ((depth - 1) / 2) * f, np.conj(f)


# ----------------------------------------------------------------------------------------------------------------------
# Lemma 4: p' = p^{L-2} q, q' = p^{L-1}, p(0) = 1, q(0) = 0; h_L = p^{L-1} q; H_L = int h_L^{-1}


def half_width(depth: int) -> float:
    """P002 Lemma 4: ``c_L``: ``h_L`` lives on ``(-c_L, c_L)``; ``c_2 = inf``, ``c_L = (sqrt(pi)/2) Gamma((L-2)/2) / Gamma((L-1)/2)``."""
    if depth < 2:
        raise ValueError(f"Invalid depth: {depth} (expected L >= 2)")
    if depth == 2:
        return math.inf
    return 0.5 * special.beta(0.5, (depth - 2) / 2)


def _g_of_q(q: np.ndarray, depth: int) -> np.ndarray:
    """``t = int_0^q (1 + u^2)^{-(L-1)/2} du`` (inverse of ``q_L``); via the incomplete beta function for L >= 3.

    With ``w = q^2 / (1 + q^2)``: ``t = c_L I_w(1/2, (L-2)/2)``; for ``w > 1/2`` the complement
    ``c_L (1 - I_{1-w}((L-2)/2, 1/2))`` with ``1 - w = 1 / (1 + q^2)`` computed directly (no cancellation near c_L)."""
    q = np.asarray(q, dtype=float)
    if depth == 2:
        return np.arcsinh(q)
    b = (depth - 2) / 2
    q2 = q * q
    with np.errstate(invalid="ignore", over="ignore"):
        w = q2 / (1.0 + q2)
        w_c = 1.0 / (1.0 + q2)
    c = half_width(depth)
    t = np.where(w <= 0.5, c * special.betainc(0.5, b, np.minimum(w, 0.5)),
                 c - c * special.betainc(b, 0.5, np.minimum(w_c, 0.5)))
    t = np.where(np.isinf(q), c, t)
    aq = np.abs(q)
    t = np.where(aq < 1e-5, aq * (1 - (depth - 1) * q2 / 6), t)  # series: w = q^2 underflows for tiny q
    return np.sign(q) * t


def q_fn(t: np.ndarray, depth: int) -> np.ndarray:
    """P002 Lemma 4: ``q_L(t)``; ``p_L = sqrt(1 + q_L^2)`` since ``p^2 - q^2 = 1`` (claims.md §1.7, derived).

    ``q = sqrt(w / (1 - w))`` with ``w = I^{-1}(|t| / c_L)``; for ``|t| > c_L / 2`` the complement ``1 - w`` comes from
    the inverse of the complementary incomplete beta function of ``1 - |t| / c_L`` (accurate up to the blow-up, where
    the relative condition number of q is ``~ c_L / (c_L - |t|)``)."""
    t = np.asarray(t, dtype=float)
    if depth == 2:
        return np.sinh(t)
    c = half_width(depth)
    b = (depth - 2) / 2
    a = np.abs(t)
    x = np.minimum(a / c, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = x <= 0.5
        w_lo = special.betaincinv(0.5, b, np.where(lo, x, 0.5))
        wc_hi = special.betaincinv(b, 0.5, np.where(lo, 0.5, (c - a) / c))  # 1 - w, from I_{1-w}(b, 1/2) = 1 - x
        q = np.where(lo, np.sqrt(w_lo / (1.0 - w_lo)), np.sqrt((1.0 - wc_hi) / wc_hi))
    q = np.where(a >= c, np.inf, q)
    q = np.where(a < 1e-5, a * (1 + (depth - 1) * a * a / 6), q)  # series (q' = (1 + q^2)^((L-1)/2)): no underflow
    return np.sign(t) * q


def h_fn(t: np.ndarray, depth: int) -> np.ndarray:
    """``h_L(t) = p_L(t)^{L-1} q_L(t) = (1 + q^2)^{(L-1)/2} q`` (P002 Lemma 4), general L."""
    q = q_fn(t, depth)
    return (1.0 + q * q) ** ((depth - 1) / 2) * q


def h_prime(t: np.ndarray, depth: int) -> np.ndarray:
    """P002 Lemma 4: ``h_L'(t) = (1 + q^2)^{L-2} (1 + L q^2)`` (from ``q' = (1 + q^2)^{(L-1)/2}``)."""
    q = q_fn(t, depth)
    return (1.0 + q * q) ** (depth - 2) * (1.0 + depth * q * q)


def _q_of_h(u: np.ndarray, depth: int) -> np.ndarray:
    """Solve ``q (1 + q^2)^{(L-1)/2} = u`` for q (Newton from above; the map is increasing and convex on q >= 0)."""
    u = np.asarray(u, dtype=float)
    a = np.abs(u)
    e = (depth - 1) / 2
    q = np.minimum(a, a ** (1.0 / depth))  # phi(q0) >= u: Newton decreases monotonically to the root
    for _ in range(200):
        phi = q * (1.0 + q * q) ** e - a
        dphi = (1.0 + q * q) ** (e - 1) * (1.0 + depth * q * q)
        step = phi / dphi
        q = np.maximum(q - step, 0.0)
        if np.all(np.abs(step) <= 1e-15 * np.maximum(q, 1e-300)):
            break
    return np.sign(u) * q


def h_inv(u: np.ndarray, depth: int) -> np.ndarray:
    """P002 Lemma 4 / Theorem 5: ``h_L^{-1}(u)`` (general L)."""
    return _g_of_q(_q_of_h(u, depth), depth)


def big_h(t: np.ndarray, depth: int) -> np.ndarray:
    """P002 Theorem 5: ``H_L(t) = int_0^t h_L^{-1} = t s* - q_L(s*)^2 / 2`` with ``s* = h_L^{-1}(t)`` (claims.md §4.2.5), general L."""
    t = np.asarray(t, dtype=float)
    q = _q_of_h(t, depth)
    s = _g_of_q(q, depth)
    return t * s - 0.5 * q * q


def h_closed(t: np.ndarray, depth: int) -> np.ndarray:
    """P002 Lemma 4: Closed forms: ``h_2 = sinh(2t)/2``, ``h_3 = tan t sec^2 t``, ``h_4 = t / (1 - t^2)^2`` (claims.md §1.7)."""
    t = np.asarray(t, dtype=float)
    if depth == 2:
        return np.sinh(2 * t) / 2
    if depth == 3:
        return np.tan(t) / np.cos(t) ** 2
    if depth == 4:
        return t / (1 - t * t) ** 2
    raise ValueError(f"Invalid depth: {depth} (expected 2, 3 or 4 for closed forms)")


def big_h_closed(t: np.ndarray, depth: int) -> np.ndarray:
    """P002 Theorem 5: Closed forms of ``H_L`` for L = 2, 3, 4 (claims.md §4.2.5): L=2 elementary; L=3 via the real root of
    ``q^3 + q = t`` (hyperbolic Cardano form); L=4 via the root in (-1, 1) of ``s / (1 - s^2)^2 = t`` (bisection)."""
    t = np.asarray(t, dtype=float)
    if depth == 2:
        # (sqrt(1 + 4t^2) - 1) / 4 = t^2 / (sqrt(1 + 4t^2) + 1): no cancellation as t -> 0
        return 0.5 * t * np.arcsinh(2 * t) - t * t / (np.sqrt(1 + 4 * t * t) + 1)
    if depth == 3:
        # real root of q^3 + q = t in the hyperbolic form (Cardano's sum of cube roots cancels as t -> 0)
        q = 2 / math.sqrt(3) * np.sinh(np.arcsinh(1.5 * math.sqrt(3) * t) / 3)
        return t * np.arctan(q) - q * q / 2
    if depth == 4:
        lo = np.zeros_like(t)
        hi = np.ones_like(t)
        a = np.abs(t)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            big = mid / (1 - mid * mid) ** 2 > a
            hi = np.where(big, mid, hi)
            lo = np.where(big, lo, mid)
        s = 0.5 * (lo + hi)
        return a * s - s * s / (2 * (1 - s * s))
    raise ValueError(f"Invalid depth: {depth} (expected 2, 3 or 4 for closed forms)")


def q_norm(rho: np.ndarray, alpha: float, eta: np.ndarray, depth: int) -> float:
    """``Q_{L,alpha,eta}(rho) = alpha^2 sum_j eta_j^2 H_L(rho_j / (alpha^L |eta_j|^L))`` (P002 Theorem 5)."""
    eta = np.abs(np.asarray(eta, dtype=float))
    return float(alpha**2 * np.sum(eta**2 * big_h(np.asarray(rho) / (alpha**depth * eta**depth), depth)))


# ----------------------------------------------------------------------------------------------------------------------
# Minimum-norm interpolators and max-margin directions


def min_l2_interpolator(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P002 Theorem 7 / Remark 4: ``argmin ||z||_2 s.t. X z = y`` = ``X^T (X X^T)^{-1} y`` (also the Theorem 7 limit)."""
    return np.linalg.pinv(np.atleast_2d(x)) @ np.atleast_1d(y)


def _abs_rows(f: np.ndarray, n_angles: int) -> np.ndarray:
    """Rows ``Re(e^{-i theta} f_j)`` for angles theta_k = 2 pi k / n_angles: ``|f_j z| = max_k`` of them (exact when
    ``f_j z`` is real, since 0 and pi are among the angles; otherwise within a factor cos(pi / n_angles))."""
    if np.isrealobj(f):
        return np.stack([f, -f], axis=1)  # (m, 2, d)
    th = 2 * np.pi * np.arange(n_angles) / n_angles
    return np.cos(th)[None, :, None] * f.real[:, None, :] + np.sin(th)[None, :, None] * f.imag[:, None, :]


def _min_transformed_l1(x: np.ndarray, y: np.ndarray, f: np.ndarray, *, margin: bool, n_angles: int = 256) -> np.ndarray:
    """LP for ``min sum_j |(F z)_j|`` s.t. ``X z = y`` (or ``y_i x_i^T z >= 1`` when ``margin``)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    y = np.atleast_1d(np.asarray(y, dtype=float))
    n, d = x.shape
    rows = _abs_rows(np.asarray(f), n_angles)
    m, k, _ = rows.shape
    # variables: z (d, free), t (m, >= 0); rows[j, a] z - t_j <= 0
    a_ub = np.zeros((m * k, d + m))
    for j in range(m):
        a_ub[j * k:(j + 1) * k, :d] = rows[j]
        a_ub[j * k:(j + 1) * k, d + j] = -1.0
    b_ub = np.zeros(m * k)
    c = np.concatenate([np.zeros(d), np.ones(m)])
    bounds = [(None, None)] * d + [(0, None)] * m
    if margin:
        a_ub = np.vstack([a_ub, np.hstack([-(y[:, None] * x), np.zeros((n, m))])])
        b_ub = np.concatenate([b_ub, -np.ones(n)])
        res = optimize.linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    else:
        a_eq = np.hstack([x, np.zeros((n, m))])
        res = optimize.linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=y, bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"LP failed: {res.message}")
    return res.x[:d]


def min_l1_interpolator(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P002 Corollary 5 / Remark 4 (alpha -> 0, diagonal nets): ``argmin ||z||_1 s.t. X z = y`` (scipy HiGHS LP).

    Examples:
        >>> import numpy as np
        >>> z = min_l1_interpolator(np.array([[1.0, 2.0, 0.0]]), np.array([2.0]))   # sparsest: all weight on x_2
        >>> (z.round(9) + 0.0).tolist()
        [0.0, 1.0, 0.0]
    """
    d = np.atleast_2d(x).shape[1]
    return _min_transformed_l1(x, y, np.eye(d), margin=False)


def min_dft_l1_interpolator(x: np.ndarray, y: np.ndarray, *, n_angles: int = 256) -> np.ndarray:
    """``argmin ||F z||_1 s.t. X z = y`` (DFT-domain l1, P002 Corollary 3 with L = 2). Exact when the optimal F z is
    real (even data, d <= 2); otherwise the complex modulus is a polygon with ``n_angles`` sides."""
    d = np.atleast_2d(x).shape[1]
    return _min_transformed_l1(x, y, dft_matrix(d), margin=False, n_angles=n_angles)


def max_margin_l2(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P002 Corollary 1 (FC nets, classification): ``argmin ||z||_2 s.t. y_i x_i^T z >= 1`` via the dual NNLS (the hard-margin SVM without bias)."""
    a = np.atleast_2d(np.asarray(x, dtype=float)) * np.atleast_1d(np.asarray(y, dtype=float))[:, None]
    gram = a @ a.T
    # dual: min 0.5 lam^T K lam - 1^T lam, lam >= 0  <=>  NNLS with K = R^T R
    r = np.linalg.cholesky(gram + 1e-14 * np.trace(gram) * np.eye(len(gram))).T
    target = np.linalg.solve(r.T, np.ones(len(gram)))
    lam, _ = optimize.nnls(r, target)
    return a.T @ lam


def max_margin_l1(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P002 Corollary 2 (diagonal nets, classification): ``argmin ||z||_1 s.t. y_i x_i^T z >= 1`` (LP)."""
    d = np.atleast_2d(x).shape[1]
    return _min_transformed_l1(x, y, np.eye(d), margin=True)


def max_margin_dft_l1(x: np.ndarray, y: np.ndarray, *, n_angles: int = 256) -> np.ndarray:
    """P002 Corollary 3 (full-length conv nets, classification): ``argmin ||F z||_1 s.t. y_i x_i^T z >= 1`` (LP; see :func:`min_dft_l1_interpolator` for exactness)."""
    d = np.atleast_2d(x).shape[1]
    return _min_transformed_l1(x, y, dft_matrix(d), margin=True, n_angles=n_angles)


def min_l1_by_enumeration(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P002 Corollary 5 (test route): Brute force for tests: the l1 minimiser over ``X z = y`` is attained at a basic solution (support of size n)."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    n, d = x.shape
    best, best_val = None, math.inf
    for supp in itertools.combinations(range(d), n):
        sub = x[:, supp]
        if abs(np.linalg.det(sub)) < 1e-12:
            continue
        z = np.zeros(d)
        z[list(supp)] = np.linalg.solve(sub, y)
        if np.abs(z).sum() < best_val - 1e-12:
            best, best_val = z, np.abs(z).sum()
    if best is None:
        raise ValueError("no basic solution")
    return best


def unit(v: np.ndarray) -> np.ndarray:
    """P002 Theorems 1-3 compare limit directions: ``v / ||v||_2``."""
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


# ----------------------------------------------------------------------------------------------------------------------
# Theorems 3 and 6: two layers, one data point


def _compact_svd(m: np.ndarray, tol: float = 1e-12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u, s, vt = np.linalg.svd(np.asarray(m, dtype=float), full_matrices=False)
    keep = s > tol * max(1.0, s.max(initial=0.0))
    return u[:, keep], s[keep], vt[keep].T


def theorem6_curve(m: np.ndarray, vbar1: np.ndarray, vbar2: np.ndarray, alpha: float,
                   nus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-layer, one-point trajectory (P002 Thm 3/6 proofs; claims.md P002-T3), parametrised by
    ``nu(t) = -int_0^t r``: ``U_1^T v_1 = alpha(e1 cosh(s nu) + e2 sinh(s nu))``, ``U_2^T v_2 = alpha(e1 sinh + e2 cosh)``,
    orthogonal complements frozen. Returns ``v1 (T, k_1)``, ``v2 (T, k_2)``."""
    u1, s, u2 = _compact_svd(m)
    vbar1, vbar2 = np.asarray(vbar1, float), np.asarray(vbar2, float)
    e1, e2 = u1.T @ vbar1, u2.T @ vbar2
    nus = np.atleast_1d(np.asarray(nus, dtype=float))[:, None]
    ch, sh = np.cosh(nus * s), np.sinh(nus * s)
    v1 = alpha * ((e1 * ch + e2 * sh) @ u1.T + (vbar1 - u1 @ e1))
    v2 = alpha * ((e1 * sh + e2 * ch) @ u2.T + (vbar2 - u2 @ e2))
    return v1, v2


def theorem6_g(m: np.ndarray, vbar1: np.ndarray, vbar2: np.ndarray, nu: float) -> float:
    """``g(nu) = sum_j s_j((e1_j^2 + e2_j^2)/2 sinh(2 s_j nu) + e1_j e2_j cosh(2 s_j nu))`` = ``f(x) / alpha^2`` on the
    Theorem 6 curve (P002 Theorem 6)."""
    u1, s, u2 = _compact_svd(m)
    e1, e2 = u1.T @ np.asarray(vbar1, float), u2.T @ np.asarray(vbar2, float)
    return float(np.sum(s * ((e1**2 + e2**2) / 2 * np.sinh(2 * s * nu) + e1 * e2 * np.cosh(2 * s * nu))))


def theorem6_nu(m: np.ndarray, vbar1: np.ndarray, vbar2: np.ndarray, target: float) -> float:
    """P002 Theorem 6: Solve ``g(nu) = target`` (g strictly increasing under the Theorem 6 condition) with brentq to 1e-14."""
    lo, hi = -1.0, 1.0
    while theorem6_g(m, vbar1, vbar2, lo) > target:
        lo *= 2
    while theorem6_g(m, vbar1, vbar2, hi) < target:
        hi *= 2
    return float(optimize.brentq(lambda nu: theorem6_g(m, vbar1, vbar2, nu) - target, lo, hi, xtol=1e-15,
                                 rtol=4 * np.finfo(float).eps, maxiter=500))


def theorem6_limit(m: np.ndarray, vbar1: np.ndarray, vbar2: np.ndarray, alpha: float, y: float,
                   basis_tensors: Sequence[np.ndarray] | None = None) -> dict[str, np.ndarray | float]:
    """P002 Theorem 6 limit point: ``nu* = g^{-1}(y / alpha^2)``, ``v_l^inf`` on the exact curve; ``beta`` when the
    tensors ``M(e_k)`` are given (claims.md §4.2.4)."""
    nu = theorem6_nu(m, vbar1, vbar2, y / alpha**2)
    v1, v2 = theorem6_curve(m, vbar1, vbar2, alpha, np.array([nu]))
    out: dict[str, np.ndarray | float] = {"nu": nu, "v1": v1[0], "v2": v2[0]}
    if basis_tensors is not None:
        out["beta"] = beta_of(basis_tensors, [v1[0], v2[0]])
    return out


def theorem6_fit_nu(m: np.ndarray, vbar1: np.ndarray, vbar2: np.ndarray, alpha: float, f_value: float) -> float:
    """P002 Theorem 6: The curve parameter at which the prediction ``f = alpha^2 g(nu)`` equals ``f_value`` (for fitting iterates)."""
    return theorem6_nu(m, vbar1, vbar2, f_value / alpha**2)


def theorem3_direction(m: np.ndarray, y: float, basis_tensors: Sequence[np.ndarray]) -> np.ndarray:
    """P002 Theorem 3 / Corollary 4 limit direction of beta: ``rho_inf`` puts all mass on the largest singular value, so
    ``v_1 ~ u_1``, ``v_2 ~ sign(y) w_1`` and ``beta ~ sign(y) [u_1^T M(e_k) w_1]_k`` (unit vector)."""
    u1, s, u2 = _compact_svd(m)
    b = np.sign(y) * beta_of(basis_tensors, [u1[:, 0], u2[:, 0]])
    return unit(b)


def corollary4_direction(x: np.ndarray, y: float, k1: int) -> np.ndarray:
    """P002 Corollary 4 closed forms: k_1 = 1 -> ``y x``; k_1 = 2 -> ``y(2x + x_left + x_right)`` if ``x^T x_left > 0``,
    ``y(2x - x_left - x_right)`` if ``< 0`` (low-/high-pass filtered x)."""
    x = np.asarray(x, dtype=float)
    if k1 == 1:
        return unit(np.sign(y) * x)
    if k1 != 2:
        raise ValueError(f"Invalid k1: {k1} (expected 1 or 2)")
    xl, xr = np.roll(x, -1), np.roll(x, 1)
    sgn = 1.0 if x @ xl > 0 else -1.0
    return unit(np.sign(y) * (2 * x + sgn * (xl + xr)))


# ----------------------------------------------------------------------------------------------------------------------
# Theorem 5: regression limit under Assumption 1 (real S, U_l)


def theorem5_rho(nu: np.ndarray, x: np.ndarray, s_mat: np.ndarray, eta: np.ndarray, alpha: float,
                 depth: int) -> np.ndarray:
    """``rho(nu) = alpha^L |eta|^L h_L(alpha^{L-2} |eta|^{L-2} (S X^T nu))`` (P002 eq. 64; claims.md §4.2.6)."""
    ae = np.abs(np.asarray(eta, dtype=float))
    u = s_mat @ np.atleast_2d(x).T @ nu
    return alpha**depth * ae**depth * h_fn(alpha ** (depth - 2) * ae ** (depth - 2) * u, depth)


def theorem5_limit(x: np.ndarray, y: np.ndarray, s_mat: np.ndarray, eta: np.ndarray, alpha: float, depth: int, *,
                   tol: float = 1e-11, max_iter: int = 300) -> dict[str, np.ndarray | int]:
    """P002 Theorem 5 limit ``beta_inf = S^T rho_inf``, ``rho_inf = argmin Q_{L,alpha,eta}(rho) s.t. X S^T rho = y``.

    Damped Newton on the concave dual ``D(nu) = nu^T y - sum_j alpha^2 eta_j^2 q_L(c_j [S X^T nu]_j)^2 / 2``,
    ``c_j = alpha^{L-2} |eta_j|^{L-2}`` (``grad D = y - X S^T rho(nu)``), keeping ``c_j [S X^T nu]_j`` inside
    ``(-c_L, c_L)`` (claims.md §6: plain root finding fails for L = 3, alpha = 0.1).
    Returns ``beta``, ``rho``, ``nu`` and the number of Newton iterations.
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    y = np.atleast_1d(np.asarray(y, dtype=float))
    s_mat = np.asarray(s_mat, dtype=float)
    ae = np.abs(np.asarray(eta, dtype=float))
    a_mat = s_mat @ x.T  # (m, n)
    cj = alpha ** (depth - 2) * ae ** (depth - 2)
    wj = alpha**2 * ae**2
    cl = half_width(depth)

    def dual(nu: np.ndarray) -> float:
        arg = cj * (a_mat @ nu)
        if np.any(np.abs(arg) >= cl):
            return -math.inf
        with np.errstate(over="ignore", invalid="ignore"):
            q = q_fn(arg, depth)
            val = float(nu @ y - np.sum(wj * q * q) / 2)
        return val if math.isfinite(val) else -math.inf

    nu = np.zeros(len(y))
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        arg = cj * (a_mat @ nu)
        rho = wj * cj * h_fn(arg, depth)
        grad = y - a_mat.T @ rho
        if np.linalg.norm(grad) <= tol * max(1.0, float(np.linalg.norm(y))):
            break
        hess = (a_mat.T * (wj * cj * cj * h_prime(arg, depth))) @ a_mat
        step = np.linalg.solve(hess + 1e-300 * np.eye(len(y)), grad)
        # trust region in the argument of h_L: Newton from a flat start can overshoot by 1/alpha^L and overflow
        move = float(np.max(np.abs(cj * (a_mat @ step))))
        if move > 2.0:
            step = step * (2.0 / move)
        f0 = dual(nu)
        t = 1.0
        while t > 1e-30:
            cand = nu + t * step
            if dual(cand) >= f0 + 1e-4 * t * (grad @ step) - 1e-15 * abs(f0):
                break
            t *= 0.5
        nu = nu + t * step
    rho = wj * cj * h_fn(cj * (a_mat @ nu), depth)
    return {"beta": s_mat.T @ rho, "rho": rho, "nu": nu, "iterations": iterations}


def weighted_l1_limit(x: np.ndarray, y: np.ndarray, s_mat: np.ndarray, eta: np.ndarray, depth: int) -> np.ndarray:
    """P002 Remark 4, alpha -> 0: ``S^T argmin sum_j |rho_j| / |eta_j|^{L-2}`` s.t. ``X S^T rho = y`` (LP)."""
    ae = np.abs(np.asarray(eta, dtype=float))
    xs = np.atleast_2d(x) @ np.asarray(s_mat, dtype=float).T
    w = ae ** (-(depth - 2))
    r = _min_transformed_l1(xs / w[None, :], y, np.eye(len(ae)), margin=False)
    return np.asarray(s_mat).T @ (r / w)


def weighted_l2_limit(x: np.ndarray, y: np.ndarray, s_mat: np.ndarray, eta: np.ndarray, depth: int) -> np.ndarray:
    """P002 Remark 4, alpha -> inf: ``S^T argmin sum_j rho_j^2 / |eta_j|^{2L-2}`` s.t. ``X S^T rho = y``."""
    ae = np.abs(np.asarray(eta, dtype=float))
    xs = np.atleast_2d(x) @ np.asarray(s_mat, dtype=float).T
    w = ae ** (depth - 1)  # rho = w * u, minimise ||u||^2
    u = min_l2_interpolator(xs * w[None, :], y)
    return np.asarray(s_mat).T @ (w * u)


# ----------------------------------------------------------------------------------------------------------------------
# Loss bounds (claims.md §4.2.8; sum losses, unit-rate flow)


def bound_theorem5(t: np.ndarray, loss0: float, alpha: float, lam: float, smin_s: float, smin_x: float,
                   depth: int) -> np.ndarray:
    """``L(t) <= L(0) exp(-2 alpha^{2L-2} lambda^{L-1} s_min(S)^2 s_min(X)^2 t)`` (P002 Theorem 5)."""
    return loss0 * np.exp(-2 * alpha ** (2 * depth - 2) * lam ** (depth - 1) * smin_s**2 * smin_x**2 * np.asarray(t))


def bound_theorem6(t: np.ndarray, loss0: float, alpha: float, lam: float, s_norm: float) -> np.ndarray:
    """``L(t) <= L(0) exp(-2 alpha^2 lambda ||s||^2 t)`` (P002 Theorem 6)."""
    return loss0 * np.exp(-2 * alpha**2 * lam * s_norm**2 * np.asarray(t))


def bound_theorem2(t: np.ndarray, loss0: float, alpha: float, lam: float, smin_s: float, gamma: float,
                   depth: int) -> np.ndarray:
    """``L(t) <= L(0) / (1 + alpha^{2L-2} lambda^{L-1} s_min(S)^2 gamma^2 L(0) t)`` (P002 Theorem 2, corrected: the
    printed bound omits L(0) in the denominator; claims.md P002-T2 FLAG)."""
    c = alpha ** (2 * depth - 2) * lam ** (depth - 1) * smin_s**2 * gamma**2
    return loss0 / (1 + c * loss0 * np.asarray(t))


def bound_theorem3(t: np.ndarray, loss0: float, alpha: float, lam: float, s_norm: float) -> np.ndarray:
    """``L(t) <= L(0) / (1 + alpha^2 lambda ||s||^2 L(0) t)`` (P002 Theorem 3, corrected as Theorem 2)."""
    return loss0 / (1 + alpha**2 * lam * s_norm**2 * loss0 * np.asarray(t))


def bound_theorem7(t: np.ndarray, loss0: float, alpha: float, lam: float, smin_x: float, depth: int) -> np.ndarray:
    """``L(t) <= L(0) exp(-alpha^{2L-2} lambda^{L-1} sigma_min(X)^2 t)`` (P002 Theorem 7, as printed)."""
    return loss0 * np.exp(-(alpha ** (2 * depth - 2)) * lam ** (depth - 1) * smin_x**2 * np.asarray(t))


# ----------------------------------------------------------------------------------------------------------------------
# Conditions, optimality residuals and the Lemma 4 ODE (independent routes used by the P002 experiments)


def theorem6_gap(m: np.ndarray, vbar1: np.ndarray, vbar2: np.ndarray, *, tol: float = 1e-9) -> float:
    """P002 Theorem 3 / Theorem 6 condition ``lambda = min_j [U_1^T vbar_1]_j^2 - [U_2^T vbar_2]_j^2``, independent of
    the SVD basis.

    A singular value of multiplicity k fixes its singular vectors only up to a common rotation ``Q`` of the block
    (``U_1B -> U_1B Q``, ``U_2B -> U_2B Q``), which turns the block's gaps into the diagonal of ``Q^T G_B Q`` with
    ``G_B = e1 e1^T - e2 e2^T`` (``e_l = U_lB^T vbar_l``). The best basis makes that diagonal constant,
    ``tr(G_B) / k`` (Schur-Horn: no diagonal has a larger minimum), so the condition holds for some compact SVD iff
    ``min_B (||e1_B||^2 - ||e2_B||^2) / k_B >= lambda``; that minimum is returned. Singular values within ``tol``
    (relative to the largest) form one block; zero singular values (below 1e-12 relative) are dropped."""
    u1, s, u2 = _compact_svd(m)
    e1, e2 = u1.T @ np.asarray(vbar1, float), u2.T @ np.asarray(vbar2, float)
    gaps = e1 * e1 - e2 * e2
    scale = float(s.max(initial=0.0))
    best, start = math.inf, 0
    for j in range(1, len(s) + 1):  # s is sorted decreasingly: blocks are runs of equal values
        if j == len(s) or s[start] - s[j] > tol * scale:
            best = min(best, float(gaps[start:j].mean()))
            start = j
    return best


def margin_gamma(x: np.ndarray, y: np.ndarray) -> float:
    """P002 Theorems 2-3: ``gamma = max_{||z|| = 1} min_i y_i x_i^T z`` = 1 / ||l2 max-margin solution|| (Theorems 2, 3)."""
    return 1.0 / float(np.linalg.norm(max_margin_l2(x, y)))


def theorem5_kkt_residual(x: np.ndarray, s_mat: np.ndarray, eta: np.ndarray, alpha: float, depth: int,
                          sol: dict) -> float:
    """P002 Theorem 5: stationarity of the minimiser, relative: ``grad Q(rho) = alpha^2 eta^2 h_L^{-1}(rho / (alpha^L
    |eta|^L)) / (alpha^L |eta|^L)`` against ``S X^T nu`` (claims.md §4.2.6)."""
    ae = np.abs(np.asarray(eta, dtype=float))
    scale = alpha**depth * ae**depth
    grad_q = alpha**2 * ae**2 * h_inv(np.asarray(sol["rho"]) / scale, depth) / scale
    target = np.asarray(s_mat) @ np.atleast_2d(x).T @ np.asarray(sol["nu"])
    return float(np.abs(grad_q - target).max() / max(1.0, np.abs(target).max()))


def _lemma4_rhs(depth: int):
    def rhs(t, z):
        p, q = z
        return [p ** (depth - 2) * q, p ** (depth - 1)]
    return rhs


def lemma4_ode_h(ts: np.ndarray, depth: int, *, rtol: float = 1e-12) -> np.ndarray:
    """P002 Lemma 4: ``h_L = p^{L-1} q`` from Lemma 4's ODE ``p' = p^{L-2} q, q' = p^{L-1}``, ``p(0) = 1, q(0) = 0``, integrated by
    DOP853 at ``rtol`` (an independent route to :func:`h_fn`; ``ts`` increasing from 0, inside ``(-c_L, c_L)``)."""
    ts = np.asarray(ts, dtype=float)
    sol = integrate.solve_ivp(_lemma4_rhs(depth), (0.0, float(ts[-1])), [1.0, 0.0], t_eval=ts, rtol=rtol,
                              atol=rtol * 1e-2, method="DOP853")
    return sol.y[0] ** (depth - 1) * sol.y[1]


def lemma4_blowup_time(depth: int, q_hit: float, *, rtol: float = 1e-12) -> float:
    """P002 Lemma 4: The time at which Lemma 4's ``q`` reaches ``q_hit`` (DOP853 with a terminal event; ``inf`` if not before
    ``2 c_L``). Exactly ``c_L - int_{q_hit}^inf (1 + u^2)^{-(L-1)/2} du`` for L >= 3."""
    def hit(t, z):
        return z[1] - q_hit

    hit.terminal = True  # type: ignore[attr-defined]
    t_end = 2 * half_width(depth) if depth >= 3 else 50.0
    sol = integrate.solve_ivp(_lemma4_rhs(depth), (0.0, t_end), [1.0, 0.0], events=hit, rtol=rtol,
                              atol=rtol * 1e-2, method="DOP853")
    return float(sol.t_events[0][0]) if len(sol.t_events[0]) else math.inf


def bound_theorem2_printed(t: np.ndarray, loss0: float, alpha: float, lam: float, smin_s: float, gamma: float,
                           depth: int) -> np.ndarray:
    """P002 Theorem 2's bound as printed, ``L(0) / (1 + alpha^{2L-2} lambda^{L-1} s_min(S)^2 gamma^2 t)`` (no L(0) in the
    denominator; weaker than :func:`bound_theorem2` when L(0) > 1, stronger, and not implied by the proof, when < 1)."""
    c = alpha ** (2 * depth - 2) * lam ** (depth - 1) * smin_s**2 * gamma**2
    return loss0 / (1 + c * np.asarray(t))


def bound_theorem3_printed(t: np.ndarray, loss0: float, alpha: float, lam: float, s_norm: float) -> np.ndarray:
    """P002 Theorem 3's bound as printed, ``L(0) / (1 + alpha^2 lambda ||s||^2 t)`` (see :func:`bound_theorem2_printed`)."""
    return loss0 / (1 + alpha**2 * lam * s_norm**2 * np.asarray(t))
