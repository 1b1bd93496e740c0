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

    Examples:
        >>> import torch
        >>> w1, w2 = torch.ones(2, 3, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
        >>> fa_quantity([w1, w2], {2: 0.5 * w2}).tolist()         # 0.5 * 6 - <W2, B2> = 3 - 1
        [2.0]
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
        bias = biases[i]
        if bias is not None:
            q = q + 0.5 * bias ** 2
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
    r"""An ``on_step`` monitor for :func:`falab.dynamics.simulate_discrete`: at every step, the relative violation of
    ``Delta Q_i = 0.5 ||Delta W_i||^2`` for each FA pair, and the accumulated predicted drift.

    ``max_rel_violation`` is ``max_k |measured - predicted| / max(predicted, tiny)`` per pair (ensemble-wide max).
    Pairs without a feedback matrix (DFA's pairs below the last one, which have no law) report NaN.

    Other arguments (keyword-only):
        eta: take the step as :math:`\Delta W = -\eta\,\mathrm{update}` (the Euler step in exact arithmetic) instead
            of the float difference of the iterates; once the loss reaches its round-off floor that difference is the
            rounding of ``W`` and no identity survives it.
        relative_to: ``'predicted'`` (default) or ``'terms'``: the violation relative to the sum of the magnitudes of
            the terms that cancel in :math:`\Delta Q_i` (a floating-point-exact identity then reads ~1e-16 even when
            the step is tiny).
        per_neuron: also monitor, per hidden unit j, :math:`\Delta q_{i,j} = \tfrac12\|\Delta W_i[j,:]\|^2
            (+\tfrac12\Delta b_{i,j}^2)` (``max_rel_neuron``, per pair).
        matrix: also monitor the linear-net matrix form :math:`\Delta C_i = \Delta W_i\Delta W_i^T`
            (``max_rel_matrix``, per pair; relative to the norms of the cancelling terms).
        feedback: a fixed ``{layer: B}`` mapping to use instead of ``rule.feedback_used`` (e.g. a variant law).
        per_member: keep the ensemble's leading dimensions (violations ``(..., pairs)``) instead of the ensemble max.
    """

    def __init__(self, model: AbstractLayeredModel, rule, state: Mapping[str, Tensor], *, eta: float | None = None,
                 relative_to: str = "predicted", per_neuron: bool = False, matrix: bool = False,
                 feedback: Mapping[int, Tensor] | None = None, per_member: bool = False) -> None:
        if relative_to not in ("predicted", "terms"):
            raise ValueError(f"Invalid relative_to: {relative_to!r} (expected 'predicted' or 'terms')")
        self.model, self.rule, self.state = model, rule, state
        self.eta, self.relative_to, self.per_neuron, self.matrix = eta, relative_to, per_neuron, matrix
        self.feedback, self.per_member = feedback, per_member
        self.max_rel_violation: Tensor | None = None
        self.max_rel_neuron: Tensor | None = None
        self.max_rel_matrix: Tensor | None = None
        self.predicted_drift: Tensor | None = None
        self.steps = 0

    def _steps(self, params: Params, update: Params, new: Params) -> tuple[list[Tensor], list[Tensor | None]]:
        m = self.model
        if self.eta is not None:
            return ([-self.eta * g for g in m.layer_weights(update)],
                    [None if g is None else -self.eta * g for g in m.layer_biases(update)])
        ws, wn = m.layer_weights(params), m.layer_weights(new)
        bs, bn = m.layer_biases(params), m.layer_biases(new)
        return [b - a for a, b in zip(ws, wn)], [_bias_step(a, b) for a, b in zip(bs, bn)]

    def __call__(self, k: int, params: Params, update: Params, new: Params) -> None:
        del k
        m = self.model
        ws, bs = m.layer_weights(params), m.layer_biases(params)
        dws, dbs = self._steps(params, update, new)
        fb = self.feedback if self.feedback is not None else self.rule.feedback_used(m, params, self.state)
        red = (lambda t: t) if self.per_member else (lambda t: t.max())
        rel, rel_n, rel_c, pred_all = [], [], [], []
        for i in range(len(ws) - 1):
            nan = torch.full(ws[i].shape[:-2], float("nan"), dtype=ws[i].dtype)
            if i + 2 not in fb:  # no feedback matrix for this pair (DFA below the last pair): no law, NaN
                rel.append(red(nan))
                rel_n.append(red(nan))
                rel_c.append(red(nan))
                pred_all.append(nan)
                continue
            meas, pred, terms = _row_changes(ws[i], fb[i + 2], dws[i], dws[i + 1], bs[i], dbs[i])
            tiny = torch.finfo(pred.dtype).tiny
            if self.relative_to == "terms":
                rel.append(red((meas.sum(-1) - pred.sum(-1)).abs() / (terms.sum(-1) + tiny)))
                rel_n.append(red(((meas - pred).abs() / (terms + tiny)).amax(-1)))
            else:
                rel.append(red((meas.sum(-1) - pred.sum(-1)).abs() / torch.clamp(pred.sum(-1), min=tiny)))
                rel_n.append(red(((meas - pred).abs() / torch.clamp(pred, min=tiny)).amax(-1)))
            rel_c.append(red(_matrix_violation(ws[i], fb[i + 2], dws[i], dws[i + 1]) if self.matrix else nan))
            pred_all.append(pred.sum(-1))
        self._accumulate(torch.stack(rel, -1), torch.stack(rel_n, -1), torch.stack(rel_c, -1),
                         torch.stack(pred_all, dim=-1))

    def _accumulate(self, r: Tensor, rn: Tensor, rc: Tensor, p: Tensor) -> None:
        def mx(old: Tensor | None, new: Tensor) -> Tensor:
            return new if old is None else torch.fmax(old, new)

        self.max_rel_violation = mx(self.max_rel_violation, r)
        if self.per_neuron:
            self.max_rel_neuron = mx(self.max_rel_neuron, rn)
        if self.matrix:
            self.max_rel_matrix = mx(self.max_rel_matrix, rc)
        self.predicted_drift = p if self.predicted_drift is None else self.predicted_drift + p
        self.steps += 1


def _bias_step(old: Tensor | None, new: Tensor | None) -> Tensor | None:
    """``new - old`` for a layer with a bias, None for a layer without one (a step keeps the model's biases)."""
    if old is None:
        return None
    assert new is not None, "a layer with a bias before the step has one after it"
    return new - old


def _row_changes(w: Tensor, b: Tensor, dw: Tensor, dwn: Tensor, bias: Tensor | None,
                 db: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Per hidden unit j: the measured change of q_j in expanded form, its prediction 0.5||dW[j,:]||^2 (+0.5 db_j^2),
    and the sum of the magnitudes of the terms that cancel (the scale of the round-off of the measurement)."""
    meas, terms = (w * dw).sum(-1), (w * dw).abs().sum(-1)
    pred = 0.5 * (dw * dw).sum(-1)
    if bias is not None and db is not None:
        meas, terms, pred = meas + bias * db, terms + (bias * db).abs(), pred + 0.5 * db * db
    cross = dwn * b
    return meas + pred - cross.sum(-2), pred, terms + pred + cross.abs().sum(-2)


def _matrix_violation(w: Tensor, b: Tensor, dw: Tensor, dwn: Tensor) -> Tensor:
    """``||Delta C - dW dW^T|| / (2||W dW^T|| + 2||B^T dW_next|| + ||dW dW^T||)`` per ensemble member."""
    cross = b.transpose(-1, -2) @ dwn
    wdw, dd = w @ dw.transpose(-1, -2), dw @ dw.transpose(-1, -2)
    dc = wdw + wdw.transpose(-1, -2) + dd - cross - cross.transpose(-1, -2)
    norm = torch.linalg.matrix_norm
    scale = 2 * norm(wdw) + 2 * norm(cross) + norm(dd)
    return norm(dc - dd) / (scale + torch.finfo(w.dtype).tiny)
