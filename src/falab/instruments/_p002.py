r"""P002 instruments (linear tensor networks): balancedness invariants, the exact Euler identity, relative drift,
cosines and the Theorem 1 singular-vector alignment.

All functions are pure; tensor inputs may carry leading ensemble dimensions (kept in the outputs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor


def layer_norm_gaps(params: Mapping[str, Tensor], depth: int) -> Tensor:
    r"""P002-BAL: :math:`\|v_l\|^2 - \|v_{l+1}\|^2` for l = 1 .. L-1, shape ``(..., L-1)`` (constant along the GD flow)."""
    sq = [(params[f"v{l}"] ** 2).sum(-1) for l in range(1, depth + 1)]
    return torch.stack([sq[l] - sq[l + 1] for l in range(depth - 1)], dim=-1)


def mode_gaps(params: Mapping[str, Tensor], depth: int) -> Tensor:
    r"""Assumption 1 with ``S = U_l = I`` (diagonal nets): per mode :math:`[v_l]_j^2 - [v_{l+1}]_j^2`,
    shape ``(..., (L-1) d)`` (constant along the GD flow)."""
    sq = [params[f"v{l}"] ** 2 for l in range(1, depth + 1)]
    return torch.cat([sq[l] - sq[l + 1] for l in range(depth - 1)], dim=-1)


def fc_matrix_invariants(matrices: Sequence[Tensor]) -> Tensor:
    r"""Fully connected tensor nets (row convention): :math:`W_l^T W_l - W_{l+1} W_{l+1}^T` (l <= L-2) and
    :math:`W_{L-1}^T W_{L-1} - w_L w_L^T`, flattened and concatenated (``matrices = [W_1, .., W_{L-1}, w_L]``, ``w_L``
    a column ``(d_L, 1)``)."""
    out = []
    for a, b in zip(matrices[:-1], matrices[1:]):
        out.append((a.transpose(-1, -2) @ a - b @ b.transpose(-1, -2)).flatten(-2))
    return torch.cat(out, dim=-1)


def relative_drift(series: Tensor) -> float:
    """``max_t |q(t) - q(0)| / max |q(0)|`` over a recorded series ``(T, ...)`` of a conserved quantity."""
    return float((series - series[0]).abs().max() / series[0].abs().max())


def euler_balancedness_residual(params: Mapping[str, Tensor], update: Mapping[str, Tensor],
                                new: Mapping[str, Tensor], lr: float, names: tuple[str, str] = ("v1", "v2")
                                ) -> tuple[Tensor, Tensor]:
    r"""P002-BAL, GD: one Euler step changes :math:`\|v_a\|^2 - \|v_b\|^2` by exactly
    :math:`\eta^2(\|g_a\|^2 - \|g_b\|^2)`. Returns the residual relative to :math:`\eta^2(\|g_a\|^2 + \|g_b\|^2)`
    per member, and the mask of members whose step is resolvable in float64 (:math:`\eta\|g\| \ge 10^{-3}\|v\|`;
    below it the rounding of :math:`v_{k+1}` (``eps ||v||^2``) swamps :math:`\eta^2\|g\|^2`). The change is computed
    without cancellation as :math:`\langle v_{k+1} - v_k, v_{k+1} + v_k\rangle`."""
    a, b = names
    ch = {n: ((new[n] - params[n]) * (new[n] + params[n])).sum(-1) for n in names}
    g2 = {n: (update[n] ** 2).sum(-1) for n in names}
    res = (ch[a] - ch[b] - lr**2 * (g2[a] - g2[b])).abs() / (lr**2 * (g2[a] + g2[b]))
    norm = ((params[a] ** 2).sum(-1) + (params[b] ** 2).sum(-1)).sqrt()
    live = lr * (g2[a] + g2[b]).sqrt() >= 1e-3 * norm
    return res, live


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine between the last axes of ``a`` and ``b`` (broadcast)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def singular_alignment(vs: Sequence[np.ndarray], m: np.ndarray,
                       contract: Callable[..., np.ndarray]) -> tuple[float, float]:
    r"""P002-T1 at one state of one network: the smallest over layers of
    :math:`\cos(v_l, M \circ (v_1, .., I_{k_l}, .., v_L))` (``m = M(-X^T r)``) and the largest
    :math:`|\,\|v_l\| / \|\Theta\| - 1/\sqrt{L}\,|`. ``contract(m, vs, skip=l)`` is the multilinear contraction."""
    depth = len(vs)
    theta = math.sqrt(sum(float(v @ v) for v in vs))
    cos = min(float(cosine(vs[l], contract(m, vs, skip=l))) for l in range(depth))
    ratio = max(abs(float(np.linalg.norm(vs[l])) / theta - 1 / math.sqrt(depth)) for l in range(depth))
    return cos, ratio
