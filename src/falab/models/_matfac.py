r"""Low-rank matrix factorisation as the engine's two-layer linear network with identity input (P004 eq. 1, Sec. 5).

P004 minimises :math:`\tfrac12\|Y - ZW\|_F^2` over ``Z (n x r)``, ``W (r x m)``. Feeding the samples ``e_1 .. e_n``
(``X = I_n``) through the linear network :math:`x \mapsto W_2 W_1 x` gives the prediction ``X W_1^T W_2^T = Z W``, so

* ``W1 = Z^T`` (r x n), ``W2 = W^T`` (m x r), targets ``Y`` (n x m), loss ``SquaredLoss('sum')``;
* P004's feedback ``B`` (m x r, in place of ``W^T``) has exactly ``W2``'s shape: it is the engine's FA slot ``'B2'``;
* GD = ``Backprop()``, FA = ``FeedbackAlignment`` with ``feedback={'B2': B}``, FA* = ``FAStar`` (W re-solved by least
  squares), per-factor step sizes ``Euler(lr={'W1': eta_Z, 'W2': eta_W})``.

There is no separate code path for matrix factorisation: these helpers only build the model, the data and the views.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_positive_int, invalid
from ._base import Params
from ._mlp import MLP, deep_linear


def matrix_factorization(n: int, r: int, m: int) -> MLP:
    """The two-layer linear network ``(n, r, m)`` without biases that realises ``Y ~ Z W`` on input ``I_n``."""
    for name, v in (("n", n), ("r", r), ("m", m)):
        check_positive_int(f"matrix_factorization.{name}", v)
    return deep_linear((n, r, m))


def identity_inputs(n: int, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """The input ``X = I_n``: the n samples ``e_i``, so that the network's outputs are the rows of ``Z W``."""
    check_positive_int("n", n)
    return torch.eye(n, dtype=dtype)


def factors(params: Params) -> tuple[Tensor, Tensor]:
    """P004's ``(Z, W)`` views of engine parameters: ``Z = W1^T`` (..., n, r), ``W = W2^T`` (..., r, m)."""
    if "W1" not in params or "W2" not in params or len(params) != 2:
        raise invalid("params", sorted(params), "exactly the keys 'W1', 'W2' of a matrix factorisation")
    return params["W1"].transpose(-1, -2), params["W2"].transpose(-1, -2)


def from_factors(z: Tensor, w: Tensor) -> Params:
    """Engine parameters from P004's factors: ``{'W1': Z^T, 'W2': W^T}`` (contiguous copies)."""
    if z.dim() < 2 or w.dim() < 2 or z.shape[-1] != w.shape[-2]:
        raise invalid("factors shapes", (tuple(z.shape), tuple(w.shape)), "Z (..., n, r) and W (..., r, m)")
    return {"W1": z.transpose(-1, -2).contiguous().clone(), "W2": w.transpose(-1, -2).contiguous().clone()}


def feedback_slot(b: Tensor) -> dict[str, Tensor]:
    """P004's ``B`` (..., m, r), which replaces ``W^T``, as the engine's FA feedback ``{'B2': B}`` (same shape as W2)."""
    if b.dim() < 2:
        raise invalid("B shape", tuple(b.shape), "(..., m, r)")
    return {"B2": b}
