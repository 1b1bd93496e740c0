r"""Closed forms of P000 (Robertson & Koyejo, *Layer-wise feedback alignment is conserved*), claims.md §4.1.

An independent oracle: numpy only, no import of falab's rules, dynamics, models or instruments. Paper convention
(row samples, scalar output): ``f = X W_1 W_2``, ``X (n, d)``, ``W_1 (d, h)``, ``W_2, B (h, 1)``, ``w = W_1 W_2``.
"""

from __future__ import annotations

import math

import numpy as np


def min_norm_solution(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""P000 Thm 5.2 limit: :math:`w_\infty = X^+ y = X^T (X X^T)^{-1} y` (minimum-norm interpolant, n < d).

    Examples:
        >>> import numpy as np
        >>> x, y = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]), np.array([[2.0], [2.0]])
        >>> w = min_norm_solution(x, y)
        >>> w.ravel().round(6).tolist(), bool(np.allclose(x @ w, y))
        ([0.666667, 1.333333, 0.666667], True)
    """
    return np.linalg.pinv(np.asarray(x, dtype=float)) @ np.asarray(y, dtype=float)


def perp_projector(x: np.ndarray) -> np.ndarray:
    r"""P000 Lemma A.1 (claims.md §4.1.2): :math:`P_\perp = I_d - X^+ X`, the projector onto the orthogonal complement of :math:`\mathrm{span}(X^T)`."""
    x = np.asarray(x, dtype=float)
    return np.eye(x.shape[1]) - np.linalg.pinv(x) @ x


def span_prediction(x: np.ndarray, w1_0: np.ndarray, w2_t: np.ndarray) -> np.ndarray:
    r"""claims.md §4.1.2 (P000 Lemma A.1, corrected): :math:`P_\perp w(t) = P_\perp W_1(0) W_2(t)` for any init,
    because :math:`dW_1/dt = -X^T e B^T` never leaves span(X^T). ``w1_0 (d, h)``, ``w2_t (h, 1)`` -> ``(d, 1)``."""
    return perp_projector(x) @ np.asarray(w1_0, dtype=float) @ np.asarray(w2_t, dtype=float)


def rate_bound(err0: float, q0: float, lam_min: float, t: np.ndarray | float, *, n_samples: int = 1) -> np.ndarray:
    r"""P000 Thm 5.2 rate (claims.md §4.1.3): if :math:`Q(0) = \tfrac12\|W_1(0)\|^2 - \langle W_2(0),B\rangle < 0` then
    :math:`\|Xw(t) - y\| \le \|Xw(0) - y\|\,\exp(Q(0)\,\lambda_{\min}(XX^T)\,t / c)` with ``c = n_samples`` for the mean
    loss (``1`` for the sum loss :math:`\tfrac12\|Xw-y\|^2`). Returns the bound at ``t``; ``inf`` when ``Q(0) >= 0``."""
    t = np.asarray(t, dtype=float)
    if q0 >= 0:
        return np.full_like(t, np.inf)
    return err0 * np.exp(q0 * lam_min * t / n_samples)


def guaranteed_rate(q0: float, lam_min: float, *, n_samples: int = 1) -> float:
    r"""P000 Thm 5.2: The exponential rate :math:`(-Q(0))\lambda_{\min}(XX^T)/c` of :func:`rate_bound` (0 when ``Q(0) >= 0``)."""
    return max(-q0, 0.0) * lam_min / n_samples


def init_statistics(d: int, h: int, w1_std: float, *, copy_feedback: bool, w2_std: float = 1.0) -> dict[str, float]:
    r"""P000 Thm 5.2's hypothesis Q(0) < 0 at initialisation, claims.md §4.1.4: mean and standard deviation of :math:`Q(0)` for ``W_1 ~ N(0, w1_std^2)`` iid,
    ``W_2 ~ N(0, w2_std^2)``, and ``B = W_2(0)`` (copy) or an independent ``N(0, w2_std^2)`` draw.

    :math:`\tfrac12\|W_1\|^2` has mean :math:`\tfrac12 s_1^2 dh` and variance :math:`\tfrac12 s_1^4 dh`;
    copy: :math:`\langle W_2, B\rangle = \|W_2\|^2` has mean :math:`s_2^2 h`, variance :math:`2 s_2^4 h`;
    independent: mean 0, variance :math:`s_2^4 h`."""
    m1, v1 = 0.5 * w1_std**2 * d * h, 0.5 * w1_std**4 * d * h
    if copy_feedback:
        m2, v2 = w2_std**2 * h, 2.0 * w2_std**4 * h
    else:
        m2, v2 = 0.0, w2_std**4 * h
    return {"mean": m1 - m2, "std": math.sqrt(v1 + v2)}


def euler_ratio(q0: float, predicted_drift: float) -> float:
    r"""Fig. 1 ratio after Euler steps (claims.md P000-E.Fig1): :math:`(Q(0) + \tfrac12\eta^2\sum_s\|G_1(s)\|^2)/Q(0)`
    (the plotted quantity is :math:`-Q(t)/-Q(0)`, i.e. the same ratio)."""
    return (q0 + predicted_drift) / q0
