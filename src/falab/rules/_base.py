"""The learning-rule contract: a frozen config with ``init`` (draw feedback) and a pure ``update``.

``update(model, params, state, x, y, loss)`` returns ``(updates, new_state)`` (optax's ``(updates, state)``): the
pseudo-gradients with the *gradient* sign convention, keyed like the parameters, so that ``Backprop().update``'s
updates equal autograd's gradient, a flow is ``dtheta/dt = -updates(theta)`` (at a fixed state) and an Euler step is
``theta <- theta - eta * updates(theta)``, ``state <- new_state``. ``feedback_used(model, params, state)`` is exactly
the matrices ``update(model, params, state, ...)`` uses. Everything random about a step (brSF's per-step magnitudes)
is a function of the state (a seed drawn at ``init`` and the step counter ``state['step']``), so two runs with the
same seed are identical. Rules never write into their inputs; their dataclass fields are only what a user may set
(``name`` is a class constant, not a field).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from .._checks import check_shape, invalid
from ..functional import AbstractLoss
from ..models import AbstractLayeredModel, Params
from ._feedback import AbstractFeedback, step_generator

RuleState = dict[str, Tensor]

STEP_KEY = "step"
"""State key of the step counter (an int64 scalar), present when some feedback kind draws per step (brSF)."""
SEED_SUFFIX = ":seed"
"""State key suffix of a slot's per-step seed (``'B2:seed'``), drawn at ``init`` for per-step kinds."""


class AbstractLearningRule(abc.ABC):
    """Base of BP, FA, DFA, FA*. Concrete rules are frozen dataclasses (config as data, readable repr)."""

    name: ClassVar[str] = "abstract"

    def init(
        self,
        model: AbstractLayeredModel,
        params: Params,
        *,
        generator: torch.Generator | None = None,
        feedback: Mapping[str, Tensor] | None = None,
    ) -> RuleState:
        """Draw (or take from ``feedback``) the rule's fixed matrices. Default: no state. ``generator`` is needed only
        when something is drawn."""
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
    ) -> tuple[Params, RuleState]:
        """``(updates, new_state)``: pseudo-gradients keyed like ``params`` (``dtheta/dt = -updates``) and the state
        of the next step (the same object when nothing changes)."""
        gw, gb = self.layer_updates(model, params, state, x, y, loss)
        return model.pullback(params, gw, gb), advance_state(state)

    def constrain(
        self, model: AbstractLayeredModel, params: Params, state: RuleState, x: Tensor, y: Tensor, loss: AbstractLoss
    ) -> Params:
        """Parameters slaved to the others (FA*'s optimal last layer). Default: unchanged."""
        del model, state, x, y, loss
        return params

    def feedback_used(self, model: AbstractLayeredModel, params: Params, state: RuleState) -> dict[int, Tensor]:
        """The matrices ``update(model, params, state, ...)`` uses in place of ``W_l`` (key: 1-based layer l), for
        alignment instruments. Default: none."""
        del model, params, state
        return {}


def advance_state(state: RuleState) -> RuleState:
    """The state after one step: the step counter incremented when there is one, else ``state`` itself."""
    if STEP_KEY not in state:
        return state
    return {**state, STEP_KEY: state[STEP_KEY] + 1}


def slot_generator(state: RuleState, slot: str) -> torch.Generator | None:
    """The generator of ``slot``'s per-step draw at the state's step (``None`` without per-step randomness)."""
    seed = state.get(slot + SEED_SUFFIX)
    if seed is None:
        return None
    return step_generator(int(seed), int(state[STEP_KEY]))


def current_feedback(kind: AbstractFeedback, weight: Tensor, state: RuleState, slot: str) -> Tensor:
    """The matrix used for ``slot`` at this state: ``kind.current(weight, stored, generator=<the step's>)``."""
    return kind.current(weight, state[slot], generator=slot_generator(state, slot) if kind.per_step else None)


def _need_generator(generator: torch.Generator | None, why: str) -> torch.Generator:
    if generator is None:
        raise invalid("generator", None, f"a torch.Generator ({why}; or pass every matrix with feedback=)")
    return generator


def init_feedback_slots(
    slots: Mapping[str, Tensor],
    kind: AbstractFeedback,
    *,
    generator: torch.Generator | None,
    given: Mapping[str, Tensor] | None,
) -> RuleState:
    """Draw one feedback matrix per slot (``{'B2': W_2, ...}``: slot name -> tensor of the shape to draw), or check
    the user's tensors against those shapes. A per-step kind (brSF) also gets one seed per slot and the step counter
    (always drawn from ``generator``)."""
    out = _stored_slots(slots, kind, generator=generator, given=given)
    if kind.per_step and slots:
        gen = _need_generator(generator, f"{type(kind).__name__} draws a seed per feedback matrix")
        for name in slots:
            out[name + SEED_SUFFIX] = torch.randint(0, 2**62, (), generator=gen, dtype=torch.int64)
        out[STEP_KEY] = torch.zeros((), dtype=torch.int64)
    return out


def _stored_slots(
    slots: Mapping[str, Tensor],
    kind: AbstractFeedback,
    *,
    generator: torch.Generator | None,
    given: Mapping[str, Tensor] | None,
) -> RuleState:
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
    if kind.draws and slots:
        generator = _need_generator(generator, f"{type(kind).__name__} draws the feedback")
    # kinds that draw nothing ignore the generator; a fresh one stands in for None
    gen = generator if generator is not None else torch.Generator()
    return {name: kind.init(like, generator=gen) for name, like in slots.items()}
