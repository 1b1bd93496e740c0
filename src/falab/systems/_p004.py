r"""P004's matrix factorisation (Garg & Vempala, eq. 1) as an engine problem: a public constructor, no simulation.

``Y ~ Z W`` is the engine's two-layer linear network on ``X = I_n`` (:func:`falab.models.matrix_factorization`):
``W1 = Z^T``, ``W2 = W^T``, P004's feedback ``B`` (m x r) is the FA slot ``'B2'`` (:func:`falab.models.feedback_slot`),
loss ``SquaredLoss('sum') = 0.5 ||Y - Z W||_F^2``; GD (eq. 2) = ``Backprop``, FA (eq. 3) = ``FeedbackAlignment``, FA*
(eq. 4) = ``FAStar``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_choice, invalid
from ..dynamics import Problem
from ..functional import SquaredLoss
from ..models import feedback_slot, from_factors, identity_inputs, matrix_factorization
from ..rules import AbstractLearningRule, Backprop, FAStar, FeedbackAlignment

#: P004's objective ``0.5 ||Y - Z W||_F^2`` (eq. 1) as the engine's loss.
MF_LOSS = SquaredLoss("sum")
MF_RULES = ("GD", "FA", "FA*")


def _rule(name: str) -> AbstractLearningRule:
    return {"GD": Backprop(), "FA": FeedbackAlignment(), "FA*": FAStar()}[check_choice("rule", name, MF_RULES)]


def mf_problem(rule: str, y: Tensor, z0: Tensor, w0: Tensor, b: Tensor | None) -> tuple[Problem, dict[str, Tensor]]:
    """P004 eqs 2-4: the engine problem of ``rule`` ('GD' | 'FA' | 'FA*') for targets ``Y (..., n, m)``, initial
    factors ``Z0 (..., n, r)``, ``W0 (..., r, m)`` and feedback ``B (..., m, r)`` (``None`` for GD); returns
    ``(problem, params0)``."""
    n, m = y.shape[-2], y.shape[-1]
    model = matrix_factorization(n, z0.shape[-1], m)
    params0 = from_factors(z0, w0)
    rule_obj = _rule(rule)
    fb: dict[str, Tensor] | None = None
    if rule != "GD":
        if b is None:
            raise invalid("b", None, f"the feedback matrix B (..., m, r) = (..., {m}, {z0.shape[-1]}) for {rule}")
        fb = feedback_slot(b)
    state = rule_obj.init(model, params0, generator=torch.Generator().manual_seed(0), feedback=fb)
    return Problem(model, rule_obj, MF_LOSS, identity_inputs(n), y, state), params0
