"""The learning-rule contract: a frozen config with ``init`` (draw feedback) and a pure ``update``.

``update`` returns pseudo-gradients with the *gradient* sign convention, keyed like the parameters, so that
``Backprop().update`` equals autograd's gradient, a flow is ``dtheta/dt = -update(theta)`` and an Euler step is
``theta <- theta - eta * update(theta)``. Rules never write into their inputs.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping

import torch
from torch import Tensor

from .._checks import check_shape, invalid
from ..functional import AbstractLoss
from ..models import AbstractLayeredModel, Params

RuleState = dict[str, Tensor]


class AbstractLearningRule(abc.ABC):
    """Base of BP, FA, DFA, FA*. Concrete rules are frozen dataclasses (config as data, readable repr)."""

    name: str = "abstract"

    def init(
        self,
        model: AbstractLayeredModel,
        params: Params,
        *,
        generator: torch.Generator,
        feedback: Mapping[str, Tensor] | None = None,
    ) -> RuleState:
        """Draw (or take from ``feedback``) the rule's fixed matrices. Default: no state."""
        del model, params, generator
        if feedback:
            raise invalid("feedback", sorted(feedback), f"no feedback tensors ({self.name} uses none)")
        return {}

    @abc.abstractmethod
    def layer_updates(
        self,
        model: AbstractLayeredModel,
        params: Params,
        state: RuleState,
        x: Tensor,
        y: Tensor,
        loss: AbstractLoss,
    ) -> tuple[list[Tensor], list[Tensor | None]]:
        """Updates of the dense layer weights and biases ``(G_1..G_L, g_1..g_L)`` (gradient sign)."""

    def update(
        self,
        model: AbstractLayeredModel,
        params: Params,
        state: RuleState,
        x: Tensor,
        y: Tensor,
        loss: AbstractLoss,
    ) -> Params:
        """Pseudo-gradients keyed like ``params`` (``dtheta/dt = -update``)."""
        gw, gb = self.layer_updates(model, params, state, x, y, loss)
        return model.pullback(params, gw, gb)

    def constrain(
        self, model: AbstractLayeredModel, params: Params, state: RuleState, x: Tensor, y: Tensor, loss: AbstractLoss
    ) -> Params:
        """Parameters slaved to the others (FA*'s optimal last layer). Default: unchanged."""
        del model, state, x, y, loss
        return params

    def feedback_used(self, model: AbstractLayeredModel, params: Params, state: RuleState) -> dict[int, Tensor]:
        """The matrices used in place of ``W_l`` (key: 1-based layer l) for alignment instruments. Default: none."""
        del model, params, state
        return {}


def init_feedback_slots(
    slots: Mapping[str, Tensor],
    kind,
    *,
    generator: torch.Generator,
    given: Mapping[str, Tensor] | None,
) -> RuleState:
    """Draw one feedback matrix per slot (``{'B2': W_2, ...}``: slot name -> tensor of the shape to draw), or check
    the user's tensors against those shapes."""
    if given is not None:
        missing = sorted(set(slots) - set(given))
        extra = sorted(set(given) - set(slots))
        if missing or extra:
            raise invalid("feedback", sorted(given), "exactly the keys " + ", ".join(sorted(slots)))
        out = {}
        for name, like in slots.items():
            t = given[name]
            if not torch.is_tensor(t) or tuple(t.shape) != tuple(like.shape):
                shape = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
                raise invalid(f"feedback {name} shape", shape, f"{tuple(like.shape)} (the shape of the weight it replaces)")
            check_shape(name, t, tuple(like.shape))
            out[name] = t.to(like.dtype).clone()
        return out
    return {name: kind.init(like, generator=generator) for name, like in slots.items()}
