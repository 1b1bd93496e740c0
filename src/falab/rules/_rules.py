"""Backprop/GD, feedback alignment, direct feedback alignment and FA* (claims.md §1.2, §1.3, §1.6).

Each rule is a thin configuration over the kernels of :mod:`falab.functional` (``chain_backward`` and
``direct_backward``); none of them contains backward maths of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, final

import torch
from torch import Tensor

from .._checks import invalid
from ..functional import SquaredLoss, chain_backward, direct_backward
from ._base import AbstractLearningRule, RuleState, current_feedback, init_feedback_slots
from ._feedback import AbstractFeedback, ScaledLikeWeight


def _check_feedback(fb: object) -> None:
    if not isinstance(fb, AbstractFeedback):
        raise invalid("rule.feedback", type(fb).__name__, "an AbstractFeedback (Gaussian, Uniform, CopyOfWeight, ...)")


@final
@dataclass(frozen=True)
class Backprop(AbstractLearningRule):
    r"""Backpropagation / gradient descent: errors go down through the forward weights themselves.

    .. math:: \delta_l = \phi_l'(H_l)\odot(\delta_{l+1}W_{l+1}),\qquad G_l = \delta_l^T A_{l-1}

    (claims.md §1.2). ``update`` equals ``torch.autograd`` to rounding.
    """

    name: ClassVar[str] = "bp"

    def layer_updates(self, model, params, state, x, y, loss):
        del state
        ws = model.layer_weights(params)
        trace = model.trace(params, x)
        e = loss.output_error(trace.output, y)
        gw, gb, _ = chain_backward(trace, e, ws, model.activations, with_bias=model.with_bias(params), deltas=False)
        return gw, gb

    def feedback_used(self, model, params, state):
        ws = model.layer_weights(params)
        return {l + 1: ws[l] for l in range(1, len(ws))}


@final
@dataclass(frozen=True)
class FeedbackAlignment(AbstractLearningRule):
    r"""Feedback alignment (Lillicrap et al. 2016): fixed matrices ``B_l`` (shape of ``W_l``) replace ``W_l``.

    .. math:: \delta_l = \phi_l'(H_l)\odot(\delta_{l+1}B_{l+1}),\qquad G_l = \delta_l^T A_{l-1}

    (claims.md §1.3; P000 §4; P003 eq. 2). State keys ``'B2' .. 'BL'``.

    Args:
        feedback: how ``B`` is drawn (:class:`ScaledLikeWeight` by default, ``||B_l||_F = ||W_l(0)||_F``, the
            registry's one default, see :mod:`falab.registry`; :class:`CopyOfWeight` gives ``B = W(0)``).
    """

    feedback: AbstractFeedback = field(default_factory=ScaledLikeWeight)
    name: ClassVar[str] = "fa"

    def __post_init__(self) -> None:
        _check_feedback(self.feedback)

    def init(self, model, params, *, generator=None, feedback=None) -> RuleState:
        ws = model.layer_weights(params)
        slots = {f"B{l}": ws[l - 1] for l in range(2, len(ws) + 1)}
        return init_feedback_slots(slots, self.feedback, generator=generator, given=feedback)

    def _current(self, ws: list[Tensor], state: RuleState) -> list[Tensor | None]:
        return [None] + [current_feedback(self.feedback, ws[l - 1], state, f"B{l}") for l in range(2, len(ws) + 1)]

    def layer_updates(self, model, params, state, x, y, loss):
        ws = model.layer_weights(params)
        trace = model.trace(params, x)
        e = loss.output_error(trace.output, y)
        gw, gb, _ = chain_backward(trace, e, self._current(ws, state), model.activations,
                                   with_bias=model.with_bias(params), deltas=False)
        return gw, gb

    def feedback_used(self, model, params, state):
        ws = model.layer_weights(params)
        cur = self._current(ws, state)
        return {l: cur[l - 1] for l in range(2, len(ws) + 1)}


@final
@dataclass(frozen=True)
class DirectFeedbackAlignment(AbstractLearningRule):
    r"""Direct feedback alignment (Nøkland 2016): each hidden layer receives the output error through a fixed matrix.

    .. math:: \delta_L = e,\qquad \delta_l = \phi_l'(H_l)\odot(e\,D_l^T),\qquad G_l = \delta_l^T A_{l-1}

    (claims.md §1.3). State keys ``'D1' .. 'D{L-1}'``, each stored as ``D_l^T`` with shape ``(n_L, n_l)`` — the shape
    of the chain ``W_L W_{L-1} ... W_{l+1}`` it replaces, so ``D_{L-1}^T`` has ``W_L``'s shape and two-layer DFA equals
    FA with ``B_2 = D_1^T``. :class:`CopyOfWeight` copies that chain at t = 0. Default feedback:
    :class:`ScaledLikeWeight` (the norm of that chain at t = 0).
    """

    feedback: AbstractFeedback = field(default_factory=ScaledLikeWeight)
    name: ClassVar[str] = "dfa"

    def __post_init__(self) -> None:
        _check_feedback(self.feedback)

    def init(self, model, params, *, generator=None, feedback=None) -> RuleState:
        ws = model.layer_weights(params)
        n = len(ws)
        if n > 2 and not self.feedback.fixed:
            # A weight-tracking kind (sign symmetry) follows one weight, but D_l (l < L-1) replaces a chain of
            # weights: its current() crashed or, when shapes happened to match, silently used sign(W_{l+1}).
            raise invalid("rule.feedback", type(self.feedback).__name__,
                          "a fixed feedback kind for DFA with more than two layers (Gaussian, Uniform, ...)")
        slots: dict[str, Tensor] = {}
        chain = ws[-1]
        for l in range(n - 1, 0, -1):  # D_l^T ~ W_L ... W_{l+1}, shape (n_L, n_l)
            slots[f"D{l}"] = chain
            chain = chain @ ws[l - 1]
        slots = dict(sorted(slots.items(), key=lambda kv: int(kv[0][1:])))
        return init_feedback_slots(slots, self.feedback, generator=generator, given=feedback)

    def layer_updates(self, model, params, state, x, y, loss):
        direct = self.direct_feedback(model, params, state)
        trace = model.trace(params, x)
        e = loss.output_error(trace.output, y)
        gw, gb, _ = direct_backward(trace, e, direct, model.activations, with_bias=model.with_bias(params),
                                    deltas=False)
        return gw, gb

    def direct_feedback(self, model, params, state) -> list[Tensor]:
        """The matrices ``D_1^T .. D_{L-1}^T`` the update at this state uses (``kind.current`` of each slot)."""
        ws = model.layer_weights(params)
        return [current_feedback(self.feedback, ws[l], state, f"D{l}") for l in range(1, len(ws))]

    def feedback_used(self, model, params, state):
        ws = model.layer_weights(params)
        n = len(ws)
        # the matrix actually used (as in layer_updates), not the stored one: they differ for weight-tracking kinds
        return {n: current_feedback(self.feedback, ws[-1], state, f"D{n - 1}")} if n >= 2 else {}


@final
@dataclass(frozen=True)
class FAStar(AbstractLearningRule):
    r"""FA* (P004 eq. 4): FA for the layers below, the last layer slaved to its least-squares optimum.

    .. math:: W_L = \arg\min_W \|A_{L-1}W^T - Y\|_F^2 = (A_{L-1}^{+} Y)^T,
              \qquad \delta_l = \phi_l'(H_l)\odot(\delta_{l+1}B_{l+1}),\ l < L

    ``constrain`` re-solves ``W_L`` (at every Euler step and at every evaluation of the flow's vector field);
    ``update`` returns zero for ``W_L``. Squared loss only. State keys as FA.
    """

    feedback: AbstractFeedback = field(default_factory=ScaledLikeWeight)
    name: ClassVar[str] = "fa_star"

    def __post_init__(self) -> None:
        _check_feedback(self.feedback)

    def init(self, model, params, *, generator=None, feedback=None) -> RuleState:
        return FeedbackAlignment(self.feedback).init(model, params, generator=generator, feedback=feedback)

    def constrain(self, model, params, state, x, y, loss):
        if not isinstance(loss, SquaredLoss):
            raise invalid("loss", getattr(loss, "name", loss), "'squared' (FA* solves a least-squares problem)")
        if model.layer_biases(params)[-1] is not None:
            raise invalid("model.bias", True, "false for FA* (the optimal last layer is solved without bias)")
        trace = model.trace(params, x)
        a = trace.inputs[-1]
        a_full = a.expand(*y.shape[:-2], *a.shape[-2:]) if a.dim() < y.dim() else a
        if y.dim() < a_full.dim():
            y = y.expand(*a_full.shape[:-2], *y.shape[-2:])
        w_last = (torch.linalg.pinv(a_full) @ y).transpose(-1, -2)
        new = dict(params)
        name = f"W{model.n_layers}"
        if name not in params:
            raise invalid("model", type(model).__name__, "a model whose last layer is parameter 'W<L>' for FA*")
        if tuple(w_last.shape) != tuple(params[name].shape):
            # e.g. deep matrix sensing: its read-out W_L is a reshaped matrix, not the dense last layer FA* solves for
            raise invalid("model", type(model).__name__, "a model whose last dense layer is the parameter "
                          f"'{name}' itself for FA* (an MLP or matrix factorisation)")
        new[name] = w_last.contiguous()
        return new

    def layer_updates(self, model, params, state, x, y, loss):
        gw, gb = FeedbackAlignment(self.feedback).layer_updates(model, params, state, x, y, loss)
        gw[-1] = torch.zeros_like(gw[-1])
        return gw, gb

    def feedback_used(self, model, params, state):
        return FeedbackAlignment(self.feedback).feedback_used(model, params, state)

