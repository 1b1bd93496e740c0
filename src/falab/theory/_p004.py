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
    """A random ``n x k`` matrix with orthonormal columns (QR of a Gaussian matrix, signs fixed)."""
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

def _range_basis(a: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return u[:, :0]
    return u[:, s > rtol * s[0]]


def lemma1_projection(y: np.ndarray, b: np.ndarray) -> np.ndarray:
    r"""P004 Lemma 1 [RECON]: at any stationary point of FA/FA* (eq. 7) with Gaussian ``B``, a.s.

    .. math:: ZW = P_{\mathrm{col}(YB)}\,Y = YB\,(B^TY^TYB)^{+}B^TY^TY.

    Computed with an orthonormal basis of ``col(YB)`` (numerically stabler than the pseudo-inverse form).
    """
    q = _range_basis(y @ b)
    return q @ (q.T @ y)


def lemma1_projection_pinv(y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The printed form of Lemma 1, ``YB pinv(B^T Y^T Y B) B^T Y^T Y`` (for cross-checking :func:`lemma1_projection`)."""
    yb = y @ b
    return yb @ np.linalg.pinv(yb.T @ yb) @ yb.T @ y


def fa_error(y: np.ndarray, b: np.ndarray) -> float:
    """The error of every FA/FA* stationary point, ``||Y - P_{col(YB)} Y||_F`` (Lemma 1; 0 when r >= rank Y, Thm 2)."""
    return float(np.linalg.norm(y - lemma1_projection(y, b)))


def optimal_error(sigma: np.ndarray, r: int) -> float:
    """Eckart-Young: the best rank-r error ``sqrt(sum_{i>r} sigma_i^2)``, reached by gradient flow (Bah et al. 2019)."""
    s = np.sort(np.asarray(sigma, dtype=float))[::-1]
    return float(np.sqrt(np.sum(s[r:] ** 2)))


def fa_error_sq_from_g(sigma: np.ndarray, g: np.ndarray) -> np.ndarray:
    r"""Exact FA error from the Gaussian coordinates ``G = V^T B`` (claims.md §4.4.2, P004 Lemma 17 [DERIVED]):

    .. math:: \|Y - P_{YB}Y\|_F^2 = \sum_i\sigma_i^2 - \mathrm{tr}\big((G^T\Sigma^2G)^{-1}G^T\Sigma^4G\big).

    ``sigma (k,)``, ``g (..., k, r)`` -> ``(...)``. Vectorised over draws.
    """
    s2 = np.asarray(sigma, dtype=float) ** 2
    g2 = g * s2[:, None]
    m2 = np.swapaxes(g, -1, -2) @ g2                    # G^T S^2 G
    m4 = np.swapaxes(g2, -1, -2) @ g2                   # G^T S^4 G
    return s2.sum() - np.trace(np.linalg.solve(m2, m4), axis1=-2, axis2=-1)


def mc_pass_threshold(p: float, draws: int) -> float:
    """The catalog's Monte-Carlo pass rule: empirical probability >= ``p - 3 sqrt(p (1 - p) / draws)``."""
    return p - 3.0 * math.sqrt(p * (1.0 - p) / draws)


def long_tail_spectrum(r: int, tail: int, eps: float) -> np.ndarray:
    """Theorem 3 instance: ``r`` singular values 1 and a tail of ``tail`` values ``eps``."""
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


def theorem4_draws(k: int, eps: float, draws: int, rng: np.random.Generator, *, chunk: int = 250
                   ) -> tuple[np.ndarray, np.ndarray]:
    r"""Monte-Carlo of P004 Thm 4 (r = 1, ``sigma_1 = 1``, ``sigma_2..k = eps``; claims.md §4.4.2-3):

    .. math:: \frac{\|Y - Z_{FA}W_{FA}\|_F}{\|Y - Z_{GD}W_{GD}\|_F},\qquad
              \cos(Z_{FA}, Z_{GD}) = \frac{|g_1|}{\sqrt{g_1^2 + \epsilon^2\sum_{i\ge2} g_i^2}}

    (``Z_GD`` spans ``u_1``). Returns ``(error ratios, cosines)``, each ``(draws,)``.
    """
    sigma = np.concatenate([[1.0], np.full(k - 1, eps)])
    opt = optimal_error(sigma, 1)
    ratios, coss = [], []
    left = draws
    while left > 0:
        c = min(chunk, left)
        g = rng.standard_normal((c, k))
        s2g2 = (sigma**2 * g**2).sum(-1)
        fa2 = (sigma**2).sum() - (sigma**4 * g**2).sum(-1) / s2g2
        ratios.append(np.sqrt(fa2) / opt)
        coss.append(np.abs(g[:, 0]) / np.sqrt(s2g2))
        left -= c
    return np.concatenate(ratios), np.concatenate(coss)


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
    r"""[DERIVED, claims.md P004-T1] :math:`\int_0^\infty\|R\|_F^2dt = \mathrm{tr}(Z^TYB)\big|_0^\infty
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
