r"""Closed forms and Monte-Carlo oracles for P004 (Garg & Vempala, AISTATS 2022; claims.md §2.4, §4.4).

An independent oracle: numpy only (no falab rules, dynamics, models or instruments), so that tests and experiments can
compare engine simulations against it. Notation as the paper (row convention): ``Y (n x m)``, ``Z (n x r)``,
``W (r x m)``, feedback ``B (m x r)`` in place of ``W^T``, residual ``E = Y - Z W``.

All formulas were reconstructed (the extraction lost every symbol); claims.md marks them [RECON]/[DERIVED].
"""

from __future__ import annotations

import math

import numpy as np

RULES = ("gd", "fa", "fa_star")


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------

def orthonormal_columns(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """P004 App. F: A random ``n x k`` matrix with orthonormal columns (QR of a Gaussian matrix, signs fixed)."""
    q, rr = np.linalg.qr(rng.standard_normal((n, k)))
    return q * np.sign(np.diag(rr))


def spectral_target(rng: np.random.Generator, n: int, m: int, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                          np.ndarray]:
    """``Y = U diag(sigma) V^T`` with independent random orthonormal ``U (n x k)``, ``V (m x k)`` (P004 App. F).

    Returns ``(Y, U, V)``.
    """
    sigma = np.asarray(sigma, dtype=float)
    k = sigma.size
    u, v = orthonormal_columns(rng, n, k), orthonormal_columns(rng, m, k)
    return (u * sigma) @ v.T, u, v


# ---------------------------------------------------------------------------------------------------------------------
# Lemma 1 / Theorem 2: the FA and FA* stationary points
# ---------------------------------------------------------------------------------------------------------------------

def _range_basis(a: np.ndarray, scale: float, rtol: float = 1e-10) -> np.ndarray:
    """Orthonormal basis of the numerical range of ``a``: singular values above ``rtol * scale`` (``scale`` the size
    ``a`` would have for generic factors, so a product that vanishes up to rounding has an empty range)."""
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    return u[:, s > rtol * scale]


def lemma1_projection(y: np.ndarray, b: np.ndarray) -> np.ndarray:
    r"""P004 Lemma 1 [RECON]: at any stationary point of FA/FA* (eq. 7) with Gaussian ``B``, a.s.

    .. math:: ZW = P_{\mathrm{col}(YB)}\,Y = YB\,(B^TY^TYB)^{+}B^TY^TY.

    Computed with an orthonormal basis of ``col(YB)`` (numerically stabler than the pseudo-inverse form); directions
    of ``YB`` below ``1e-10 ||Y||_2 ||B||_2`` are rounding (e.g. ``B`` orthogonal to the row space of ``Y``, where
    ``YB = 0`` and the projection is 0).

    Examples:
        >>> import numpy as np
        >>> y, b = np.diag([3.0, 2.0, 1.0]), np.array([[1.0], [0.0], [0.0]])
        >>> (lemma1_projection(y, b).round(12) + 0.0).tolist()     # FA keeps only the direction B selects
        [[3.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    q = _range_basis(y @ b, float(np.linalg.norm(y, 2) * np.linalg.norm(b, 2)))
    return q @ (q.T @ y)


def lemma1_projection_pinv(y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P004 Lemma 1 as printed, ``YB pinv(B^T Y^T Y B) B^T Y^T Y`` (for cross-checking :func:`lemma1_projection`)."""
    yb = y @ b
    return yb @ np.linalg.pinv(yb.T @ yb) @ yb.T @ y


def fa_error(y: np.ndarray, b: np.ndarray) -> float:
    """P004 Lemma 1 / Thm 2: The error of every FA/FA* stationary point, ``||Y - P_{col(YB)} Y||_F`` (Lemma 1; 0 when r >= rank Y, Thm 2)."""
    return float(np.linalg.norm(y - lemma1_projection(y, b)))


def optimal_error(sigma: np.ndarray, r: int) -> float:
    """P004 Thm 3 (the comparison error): Eckart-Young: the best rank-r error ``sqrt(sum_{i>r} sigma_i^2)``, reached by gradient flow (Bah et al. 2019)."""
    s = np.sort(np.asarray(sigma, dtype=float))[::-1]
    return float(np.sqrt(np.sum(s[r:] ** 2)))


def fa_error_sq_from_g(sigma: np.ndarray, g: np.ndarray) -> np.ndarray:
    r"""Exact FA error from the Gaussian coordinates ``G = V^T B`` (claims.md §4.4.2, P004 Lemma 17 [DERIVED]):

    .. math:: \|Y - P_{YB}Y\|_F^2 = \sum_i\sigma_i^2 - \mathrm{tr}\big((G^T\Sigma^2G)^{-1}G^T\Sigma^4G\big)
              = \|(I - P_{\Sigma G})\Sigma\|_F^2.

    ``sigma (k,)``, ``g (..., k, r)`` -> ``(...)``; vectorised over draws. The printed difference loses every digit
    when the error is small against ``sum sigma_i^2`` (a tiny tail, ``r`` close to ``k``). Computed instead without
    cancellation: with ``col(Sigma G) = col([I; H])``, ``H = Sigma_2 G_2 G_1^{-1} Sigma_1^{-1}`` (top ``r`` rows split
    off) and ``S = I + H^T H``,

    .. math:: \|(I-P)\Sigma\|_F^2 = \|H^THS^{-1}\Sigma_1\|^2 + \|HS^{-1}\Sigma_1\|^2 + \|S^{-1}H^T\Sigma_2\|^2
              + \|(I + HH^T)^{-1}\Sigma_2\|^2

    (every term a norm, no subtraction of nearly equal numbers; the last by a direct solve when the tail is short,
    through the SVD of ``H`` when it is long). ``r >= k`` gives 0 exactly (Theorem 2).
    """
    sigma = np.asarray(sigma, dtype=float)
    g = np.asarray(g, dtype=float)
    k, r = g.shape[-2], g.shape[-1]
    if r >= k:
        return np.zeros(g.shape[:-2])
    s1, s2 = sigma[:r], sigma[r:]
    g1, g2 = g[..., :r, :], g[..., r:, :]
    # H^T = Sigma_1^{-1} G_1^{-T} G_2^T Sigma_2, by one solve with G_1^T
    ht = np.linalg.solve(np.swapaxes(g1, -1, -2), np.swapaxes(g2, -1, -2) * s2) / s1[:, None]
    h = np.swapaxes(ht, -1, -2)                                   # (..., k - r, r)
    eye = np.eye(r)
    s_mat = eye + ht @ h
    si_s1 = np.linalg.solve(s_mat, np.broadcast_to(np.diag(s1), s_mat.shape))   # S^{-1} Sigma_1
    t1 = ht @ h @ si_s1
    t2 = h @ si_s1
    t3 = np.linalg.solve(s_mat, ht * s2)                          # S^{-1} H^T Sigma_2
    total = _sq(t1) + _sq(t2) + _sq(t3)
    if k - r <= 4 * r + 8:                                        # short tail: (I + H H^T)^{-1} Sigma_2 directly
        big = np.eye(k - r) + h @ ht
        t4 = _sq(np.linalg.solve(big, np.broadcast_to(np.diag(s2), big.shape)))
    else:                                                         # long tail: rows of U are small, no cancellation
        u, sv, _ = np.linalg.svd(h, full_matrices=False)
        damp = 1.0 - 1.0 / (1.0 + sv**2) ** 2                     # (..., r)
        t4 = np.sum(s2**2 * (1.0 - np.einsum("...ij,...j->...i", u**2, damp)), axis=-1)
    return total + t4


def fa_error_sq_from_g_printed(sigma: np.ndarray, g: np.ndarray) -> np.ndarray:
    """P004 Lemma 17 as printed, ``sum sigma^2 - tr((G^T S^2 G)^{-1} G^T S^4 G)`` (tests: agrees where it does not cancel)."""
    s2 = np.asarray(sigma, dtype=float) ** 2
    g2 = g * s2[:, None]
    m2 = np.swapaxes(g, -1, -2) @ g2
    m4 = np.swapaxes(g2, -1, -2) @ g2
    return s2.sum() - np.trace(np.linalg.solve(m2, m4), axis1=-2, axis2=-1)


def _sq(a: np.ndarray) -> np.ndarray:
    return np.sum(a * a, axis=(-2, -1))


def mc_pass_threshold(p: float, draws: int) -> float:
    """P004 Thms 3-4 (Monte-Carlo checks): The catalog's Monte-Carlo pass rule: empirical probability >= ``p - 3 sqrt(p (1 - p) / draws)``."""
    return p - 3.0 * math.sqrt(p * (1.0 - p) / draws)


def long_tail_spectrum(r: int, tail: int, eps: float) -> np.ndarray:
    """P004 Thm 3 instance: ``r`` singular values 1 and a tail of ``tail`` values ``eps``."""
    return np.concatenate([np.ones(r), np.full(tail, eps)])


def theorem3_ratios(sigma: np.ndarray, r: int, draws: int, rng: np.random.Generator, *, chunk: int = 250
                    ) -> np.ndarray:
    r"""Monte-Carlo of P004 Thm 3: ``FA^2 / opt^2`` for ``draws`` Gaussian feedbacks (``G = V^T B`` is iid N(0,1)
    because V has orthonormal columns). Returns ``(draws,)``."""
    sigma = np.asarray(sigma, dtype=float)
    opt2 = optimal_error(sigma, r) ** 2
    out = []
    left = draws
    while left > 0:
        c = min(chunk, left)
        out.append(fa_error_sq_from_g(sigma, rng.standard_normal((c, sigma.size, r))) / opt2)
        left -= c
    return np.concatenate(out)


def long_tail_fa_error_sq(g_top: np.ndarray, wishart: np.ndarray, sigma_top: np.ndarray, tail: int, eps: float
                          ) -> np.ndarray:
    r"""P004 Thm 3, Lemma 17: FA's stationary error ``||Y - P_{YB} Y||_F^2`` when the spectrum is ``sigma_top`` (r values) followed by a
    tail of ``tail >= r`` equal values ``eps``: :func:`fa_error_sq_from_g` depends on the tail rows ``G_2`` of
    ``G = V^T B`` only through ``W = G_2^T G_2`` (r x r), so with ``M = H^T H = eps^2 S_1^{-1}G_1^{-T}WG_1^{-1}S_1^{-1}``
    (eigenvalues ``lam_j``) and ``S = I + M``,

    .. math:: FA^2 = \|MS^{-1}\Sigma_1\|_F^2 + \mathrm{tr}(\Sigma_1S^{-1}MS^{-1}\Sigma_1)
              + \epsilon^2\,\mathrm{tr}(S^{-1}MS^{-1}) + \epsilon^2\big(N - r + \textstyle\sum_j (1+\lambda_j)^{-2}\big).

    ``g_top (..., r, r)``, ``wishart (..., r, r)`` -> ``(...)``; O(r^3) per draw whatever the tail length.
    """
    s1 = np.asarray(sigma_top, dtype=float)
    r = s1.size
    x = np.linalg.solve(np.swapaxes(g_top, -1, -2), np.swapaxes(np.linalg.solve(np.swapaxes(g_top, -1, -2),
                                                                                 wishart), -1, -2))
    m = eps**2 * x / s1[:, None] / s1[None, :]                    # eps^2 S1^-1 G1^-T W G1^-1 S1^-1
    m = 0.5 * (m + np.swapaxes(m, -1, -2))
    s_mat = np.eye(r) + m
    si = np.linalg.inv(s_mat)
    t1 = _sq(m @ si * s1[None, :])
    mid = si @ m @ si
    t2 = np.einsum("...ii,i->...", mid, s1**2)
    t3 = eps**2 * np.trace(mid, axis1=-2, axis2=-1)
    lam = np.linalg.eigvalsh(m)
    t4 = eps**2 * ((tail - r) + np.sum(1.0 / (1.0 + lam) ** 2, axis=-1))
    return t1 + t2 + t3 + t4


def bartlett_wishart(dof: int, r: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """P004 Thm 3 (Monte-Carlo): ``draws`` samples of ``G^T G`` for ``G (dof x r)`` iid N(0, 1) (Wishart(dof, I_r)) by Bartlett's
    decomposition ``W = A A^T``, ``A`` lower triangular with ``A_ii^2 ~ chi^2_{dof - i}``, ``A_ij ~ N(0, 1)``."""
    a = np.tril(rng.standard_normal((draws, r, r)), -1)
    idx = np.arange(r)
    a[:, idx, idx] = np.sqrt(rng.chisquare(dof - idx, size=(draws, r)))
    return a @ np.swapaxes(a, -1, -2)


def long_tail_ratio_draws(r: int, tail: int, eps: float, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Monte-Carlo of P004 Thm 3 on :func:`long_tail_spectrum` ``(r, tail, eps)``: ``FA^2 / opt^2`` for ``draws``
    Gaussian feedbacks, through :func:`long_tail_fa_error_sq` (same distribution as :func:`theorem3_ratios`)."""
    g_top = rng.standard_normal((draws, r, r))
    fa2 = long_tail_fa_error_sq(g_top, bartlett_wishart(tail, r, draws, rng), np.ones(r), tail, eps)
    return fa2 / (tail * eps**2)


def theorem4_statistics(a: np.ndarray, s: np.ndarray, k: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    r"""P004 Thm 4 (r = 1, ``sigma_1 = 1``, ``sigma_2..k = eps``; claims.md §4.4.2-3) from ``a = g_1^2`` and
    ``s = sum_{i>=2} g_i^2`` (``g = V^T B``):

    .. math:: \frac{FA^2}{opt^2} = 1 + \frac{s(1-\epsilon^2)}{(k-1)(a + \epsilon^2 s)},\qquad
              \cos(Z_{FA}, Z_{GD}) = \frac{|g_1|}{\sqrt{a + \epsilon^2 s}}

    (``FA^2 = sum sigma^2 - sum sigma^4 g^2 / sum sigma^2 g^2`` rearranged so that no two nearly equal numbers are
    subtracted; ``Z_GD`` spans ``u_1``). Returns ``(error ratios FA / opt, cosines)``.
    """
    a, s = np.asarray(a, dtype=float), np.asarray(s, dtype=float)
    den = a + eps**2 * s
    ratio = np.sqrt(1.0 + s * (1.0 - eps**2) / ((k - 1) * den))
    return ratio, np.sqrt(a / den)


def theorem4_draws(k: int, eps: float, draws: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo of P004 Thm 4 over Gaussian feedback: :func:`theorem4_statistics` at ``a = g_1^2 ~ chi^2_1`` and
    ``s ~ chi^2_{k-1}`` (exactly the distribution of ``g = V^T B``, at O(1) cost per draw for any ``k``).
    Returns ``(error ratios, cosines)``, each ``(draws,)``."""
    a = rng.standard_normal(draws) ** 2
    s = rng.chisquare(k - 1, draws)
    return theorem4_statistics(a, s, k, eps)


def theorem4_from_draws(g: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    r"""P004 Thm 4 statistics from given feedback draws: :func:`theorem4_statistics` at ``a = g_1^2``,
    ``s = sum_{i>=2} g_i^2`` for stored coordinates ``g = V^T B`` (``V (m, k)`` the right singular vectors of Y,
    ``B (m, 1)`` a drawn feedback), one row per draw.

    ``g (draws, k)`` or ``(draws, k, 1)``; ``k >= 2``. Returns ``(error ratios FA / opt, cosines)``, each ``(draws,)``
    (the same numbers as a Lemma 1 projection on ``Y = U diag(1, eps, .., eps) V^T`` with that ``B``)."""
    g = np.asarray(g, dtype=float)
    if g.ndim == 3 and g.shape[-1] == 1:
        g = g[..., 0]
    if g.ndim != 2 or g.shape[-1] < 2:
        raise ValueError(f"Invalid g shape: {g.shape} (expected (draws, k) or (draws, k, 1) with k >= 2)")
    a = g[:, 0] ** 2
    s = np.sum(g[:, 1:] ** 2, axis=-1)
    return theorem4_statistics(a, s, g.shape[-1], eps)


def theorem4_ratio_bound(k: int, eps: float) -> float:
    """P004 Thm 4 error bound ``sqrt(1 + 1/((k-1) eps^2))`` (deterministic: ``FA^2 - opt^2 <= sigma_1^2``)."""
    return math.sqrt(1.0 + 1.0 / ((k - 1) * eps**2))


# ---------------------------------------------------------------------------------------------------------------------
# Example 1 and Theorem 1
# ---------------------------------------------------------------------------------------------------------------------

def example1(t: np.ndarray, y_norm: float, rho: float, b: float, u0: float) -> dict[str, np.ndarray]:
    r"""P004 Example 1 [RECON] (m = r = 1, FA*, ``||z|| = rho`` constant): ``u = z^T y / rho`` obeys
    :math:`\dot u = (b/\rho)(\|y\|^2 - u^2)`, hence

    .. math:: u(t) = \|y\|\tanh\big(b\|y\|t/\rho + \mathrm{atanh}(u_0/\|y\|)\big),\quad
              L = \tfrac12(\|y\|^2 - u^2),\quad W = u/\rho,\quad A = Wb.

    Returns ``{'u', 'loss', 'w', 'alignment'}`` at the times ``t``.
    """
    t = np.asarray(t, dtype=float)
    u = y_norm * np.tanh(b * y_norm * t / rho + np.arctanh(u0 / y_norm))
    w = u / rho
    return {"u": u, "loss": 0.5 * (y_norm**2 - u**2), "w": w, "alignment": w * b}


def alignment_integral_bound(z0: np.ndarray, y: np.ndarray, b: np.ndarray) -> float:
    r"""P004 Thm 1: [DERIVED, claims.md P004-T1] :math:`\int_0^\infty\|R\|_F^2dt = \mathrm{tr}(Z^TYB)\big|_0^\infty
    \le 2\|Z(0)\|_F\|YB\|_F` (``Z^T Z`` is conserved under FA*, so ``|tr(Z^T Y B)| <= ||Z(0)||_F ||Y B||_F``)."""
    return 2.0 * float(np.linalg.norm(z0)) * float(np.linalg.norm(y @ b))


def theorem1_bound(z0: np.ndarray, y: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """P004 Thm 1 in the derived form: ``min_{s<=T} ||R(s)||_F^2 <= 2 ||Z(0)||_F ||Y B||_F / T`` (linear in 1/eps)."""
    return alignment_integral_bound(z0, y, b) / np.asarray(t, dtype=float)


# ---------------------------------------------------------------------------------------------------------------------
# Reference vector fields (tests: the engine's two-layer network must reproduce eqs 2-4)
# ---------------------------------------------------------------------------------------------------------------------

def slaved_w(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """FA*'s last factor ``W = argmin ||Y - Z W||_F = Z^+ Y`` (P004 eq. 4)."""
    return np.linalg.lstsq(z, y, rcond=None)[0]


def mf_vector_field(rule: str, z: np.ndarray, w: np.ndarray, y: np.ndarray, b: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    r"""P004 eqs (2)-(4) as printed (E = Y - ZW): GD ``(E W^T, Z^T E)``, FA ``(E B, Z^T E)``, FA* ``(E B, 0)`` with
    ``W = Z^+ Y`` (the W passed in is ignored for FA*). Returns ``(dZ/dt, dW/dt)``."""
    if rule not in RULES:
        raise ValueError(f"Invalid rule: {rule!r} (expected one of {', '.join(RULES)})")
    if rule == "fa_star":
        w = slaved_w(z, y)
    e = y - z @ w
    if rule == "gd":
        return e @ w.T, z.T @ e
    if b is None:
        raise ValueError("Invalid b: None (expected the feedback matrix B (m x r) for FA/FA*)")
    return e @ b, (np.zeros_like(w) if rule == "fa_star" else z.T @ e)
