r"""Conserved quantities of the learning rules and their exact Euler identities (claims.md §1.9).

All functions are pure; inputs carry optional leading ensemble dimensions and so do the outputs. Pairs are indexed by
the lower layer ``i = 1 .. L-1`` (returned as the last dimension, 0-based position ``i - 1``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ..models import AbstractLayeredModel, Params


def _sq(t: Tensor) -> Tensor:
    return (t * t).sum(dim=(-2, -1))


def _inner(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(dim=(-2, -1))


def _bias_sq(b: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros(like.shape[:-2], dtype=like.dtype) if b is None else (b * b).sum(-1)


def fa_quantity(
    weights: Sequence[Tensor], feedback: Mapping[int, Tensor], biases: Sequence[Tensor | None] | None = None
) -> Tensor:
    r"""P000 Thm 5.1 (generalised): :math:`Q_i = \tfrac12\|W_i\|_F^2 + \tfrac12\|b_i\|^2 - \langle W_{i+1}, B_{i+1}\rangle`.

    ``feedback[l]`` is the matrix used in place of ``W_l`` (1-based l, weight shape). Returns ``(..., L-1)``.
    Conserved along the FA flow when phi_i is positively 1-homogeneous; Euler adds exactly
    :math:`\tfrac12\eta^2\|G_i\|^2` per step (claims.md §4.1.1).
    """
    biases = biases or [None] * len(weights)
    qs = [0.5 * (_sq(weights[i]) + _bias_sq(biases[i], weights[i])) - _inner(weights[i + 1], feedback[i + 2])
          for i in range(len(weights) - 1)]
    return torch.stack(qs, dim=-1)


def fa_quantity_per_neuron(
    weights: Sequence[Tensor], feedback: Mapping[int, Tensor], biases: Sequence[Tensor | None] | None = None
) -> list[Tensor]:
    r"""Per hidden unit j of layer i: :math:`q_{i,j} = \tfrac12\|W_i[j,:]\|^2 + \tfrac12 b_i[j]^2 - \langle W_{i+1}[:,j], B_{i+1}[:,j]\rangle`.

    One tensor ``(..., n_i)`` per pair (claims.md P000-T5.1-per-neuron).
    """
    biases = biases or [None] * len(weights)
    out = []
    for i in range(len(weights) - 1):
        q = 0.5 * (weights[i] ** 2).sum(-1) - (weights[i + 1] * feedback[i + 2]).sum(-2)
        if biases[i] is not None:
            q = q + 0.5 * biases[i] ** 2
        out.append(q)
    return out


def fa_quantity_matrix(weights: Sequence[Tensor], feedback: Mapping[int, Tensor]) -> list[Tensor]:
    r"""Linear FA nets: :math:`C_i = W_iW_i^T - B_{i+1}^TW_{i+1} - W_{i+1}^TB_{i+1}` (``(..., n_i, n_i)``; trace = 2 Q_i).

    Same object as P003's ``W_1W_1^T - MW_2 - W_2^TM^T`` and P004's ``Z^TZ - WB - B^TW^T`` (claims.md P000-T5.1-linear-matrix).
    """
    out = []
    for i in range(len(weights) - 1):
        w, wn, b = weights[i], weights[i + 1], feedback[i + 2]
        cross = b.transpose(-1, -2) @ wn
        out.append(w @ w.transpose(-1, -2) - cross - cross.transpose(-1, -2))
    return out


def gd_balancedness(weights: Sequence[Tensor], biases: Sequence[Tensor | None] | None = None) -> Tensor:
    r"""GD (Du et al. 2018): :math:`\tfrac12\|W_i\|^2 + \tfrac12\|b_i\|^2 - \tfrac12\|W_{i+1}\|^2`, ``(..., L-1)``.

    Conserved by the gradient flow for homogeneous phi_i; Euler adds :math:`\tfrac12\eta^2(\|G_i\|^2 - \|G_{i+1}\|^2)`.
    """
    biases = biases or [None] * len(weights)
    qs = [0.5 * (_sq(weights[i]) + _bias_sq(biases[i], weights[i])) - 0.5 * _sq(weights[i + 1])
          for i in range(len(weights) - 1)]
    return torch.stack(qs, dim=-1)


def dfa_last_pair(weights: Sequence[Tensor], direct_last: Tensor, bias: Tensor | None = None) -> Tensor:
    r"""True DFA (claims.md P000-DFA): :math:`\tfrac12\|W_{L-1}\|^2 - \langle W_L, D_{L-1}^T\rangle`, ``(...)``.

    ``direct_last`` is DFA's stored ``D_{L-1}^T`` (shape of ``W_L``). Conserved for homogeneous phi_{L-1}; no other
    pair has a law in general.
    """
    return 0.5 * (_sq(weights[-2]) + _bias_sq(bias, weights[-2])) - _inner(weights[-1], direct_last)


def fa_step_change(
    w_i: Tensor, w_next: Tensor, feedback_next: Tensor, dw_i: Tensor, dw_next: Tensor,
    b_i: Tensor | None = None, db_i: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Exact change of :math:`Q_i` over one discrete step and its predicted value (claims.md §4.1.1).

    :math:`\Delta Q_i = \langle W_i, \Delta W_i\rangle + \tfrac12\|\Delta W_i\|^2 - \langle\Delta W_{i+1}, B_{i+1}\rangle`
    is computed in this expanded form (no cancellation of the O(1) value of Q), and compared with the prediction
    :math:`\tfrac12\|\Delta W_i\|^2 = \tfrac12\eta^2\|G_i\|^2` (biases included when present).
    Returns ``(measured, predicted)``.
    """
    measured = _inner(w_i, dw_i) + 0.5 * _sq(dw_i) - _inner(dw_next, feedback_next)
    predicted = 0.5 * _sq(dw_i)
    if b_i is not None and db_i is not None:
        measured = measured + (b_i * db_i).sum(-1) + 0.5 * (db_i * db_i).sum(-1)
        predicted = predicted + 0.5 * (db_i * db_i).sum(-1)
    return measured, predicted


class FAStepIdentity:
    """An ``on_step`` monitor for :func:`falab.dynamics.simulate_discrete`: at every step, the relative violation of
    ``Delta Q_i = 0.5 ||Delta W_i||^2`` for each FA pair, and the accumulated predicted drift.

    ``max_rel_violation`` is ``max_k |measured - predicted| / max(predicted, tiny)`` per pair (ensemble-wide max).
    Pairs without a feedback matrix (DFA's pairs below the last one, which have no law) report NaN.
    """

    def __init__(self, model: AbstractLayeredModel, rule, state: Mapping[str, Tensor]) -> None:
        self.model, self.rule, self.state = model, rule, state
        self.max_rel_violation: Tensor | None = None
        self.predicted_drift: Tensor | None = None
        self.steps = 0

    def __call__(self, k: int, params: Params, update: Params, new: Params) -> None:
        del k, update
        m = self.model
        ws, wn = m.layer_weights(params), m.layer_weights(new)
        bs, bn = m.layer_biases(params), m.layer_biases(new)
        fb = self.rule.feedback_used(m, params, self.state)
        rel, pred_all = [], []
        for i in range(len(ws) - 1):
            if i + 2 not in fb:  # no feedback matrix for this pair (DFA below the last pair): no law, NaN
                nan = torch.full(ws[i].shape[:-2], float("nan"), dtype=ws[i].dtype)
                rel.append(torch.tensor(float("nan"), dtype=ws[i].dtype))
                pred_all.append(nan)
                continue
            db = None if bs[i] is None else bn[i] - bs[i]
            meas, pred = fa_step_change(ws[i], ws[i + 1], fb[i + 2], wn[i] - ws[i], wn[i + 1] - ws[i + 1], bs[i], db)
            tiny = torch.finfo(pred.dtype).tiny
            rel.append(((meas - pred).abs() / torch.clamp(pred, min=tiny)).max())
            pred_all.append(pred)
        r = torch.stack(rel)
        p = torch.stack(pred_all, dim=-1)
        self.max_rel_violation = r if self.max_rel_violation is None else torch.maximum(self.max_rel_violation, r)
        self.predicted_drift = p if self.predicted_drift is None else self.predicted_drift + p
        self.steps += 1
