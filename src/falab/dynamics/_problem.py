"""A training problem: model + rule + loss + data + the rule's fixed state. Both time-advancement routes use it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from .._checks import check_rows, invalid
from ..functional import AbstractLoss
from ..models import AbstractLayeredModel, Params
from ..rules import AbstractLearningRule, RuleState


@dataclass(frozen=True)
class Problem:
    """Everything the vector field ``dtheta/dt = -rule.update(theta)`` depends on besides ``theta``.

    ``x (..., N, n_0)`` and ``y (..., N, n_L)`` may be shared by an ensemble (no leading dimension) or given per
    member. ``state`` holds the rule's fixed matrices (feedback), with the ensemble's leading dimension.
    """

    model: AbstractLayeredModel
    rule: AbstractLearningRule
    loss: AbstractLoss
    x: Tensor
    y: Tensor
    state: RuleState = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A target of shape (N,) instead of (N, n_L) broadcast silently in the loss (f - y became N x N), so the
        # recorded loss was wrong without any error; check the sample axis once here.
        for name in ("x", "y"):
            t = getattr(self, name)
            if not torch.is_tensor(t) or t.dim() < 2:
                shape = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
                raise invalid(f"problem.{name} shape", shape, "(..., N, features): samples in rows, 2 dims or more")
        io = self.model.io_widths()
        if io is not None:  # the model's input and output widths (a transposed X failed in the first matmul)
            check_rows("problem.x", self.x, io[0], "n_0")
            check_rows("problem.y", self.y, io[1], "n_L")
        if self.x.shape[-2] != self.y.shape[-2]:
            raise invalid("problem.y shape", tuple(self.y.shape),
                          f"as many samples as x (x has N = {self.x.shape[-2]} rows)")

    def update(self, params: Params, x: Tensor | None = None, y: Tensor | None = None) -> Params:
        """The rule's updates at ``params`` and this problem's state (the flow's field: a pure function of params)."""
        return self.step_update(params, x, y)[0]

    def step_update(self, params: Params, x: Tensor | None = None,
                    y: Tensor | None = None) -> tuple[Params, RuleState]:
        """``rule.update``: the updates and the rule state of the next step (discrete routes carry it)."""
        return self.rule.update(self.model, params, self.state, self.x if x is None else x,
                                self.y if y is None else y, self.loss)

    def constrain(self, params: Params) -> Params:
        return self.rule.constrain(self.model, params, self.state, self.x, self.y, self.loss)

    def loss_value(self, params: Params) -> Tensor:
        return self.loss.value(self.model(params, self.x), self.y)


@dataclass
class Snapshot:
    """The state at a recorded time; measures are pure functions of a snapshot."""

    t: float
    step: int
    params: Params
    problem: Problem
    lr: Mapping[str, float] | None = None  # step sizes (discrete routes), None for flows
    _update: Params | None = None
    _next_state: RuleState | None = None

    @property
    def update(self) -> Params:
        """The rule's update at these parameters (computed once, on demand)."""
        if self._update is None:
            self._update, self._next_state = self.problem.step_update(self.params)
        return self._update

    @property
    def next_state(self) -> RuleState:
        """The rule state after a step from this snapshot (computed with :attr:`update`)."""
        if self._next_state is None:
            self._update, self._next_state = self.problem.step_update(self.params)
        return self._next_state


Measure = Callable[[Snapshot], Tensor]


@dataclass(frozen=True)
class StopInfo:
    """Why and when a run (``member is None``) or one ensemble member stopped.

    ``reason`` is ``'loss'``, ``'update_norm'``, ``'event'`` (then ``detail`` names it) or ``'sliding'``; ``time`` is
    the located time (flows) or ``eta * step`` (discrete runs, where ``step`` is the step index).
    """

    time: float
    reason: str
    member: int | None = None
    step: int | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (for ``manifest.json``)."""
        return asdict(self)


@dataclass
class Trajectory:
    """Recorded times, parameters (optional) and measures of one run (all ensemble members at once).

    ``status`` is ``'ok'``, ``'diverged'``, ``'stalled'`` or ``'sliding'`` (then ``message`` says where); everything
    recorded before is kept. A run ended by a stop condition keeps ``status = 'ok'``, records its stop time last and
    says why in ``stop`` (:class:`StopInfo`); ``stops`` lists every member's stop.
    """

    times: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    params: list[Params] = field(default_factory=list)
    metrics: dict[str, list[Tensor]] = field(default_factory=dict)
    status: str = "ok"
    message: str = ""
    events: list[Any] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    stop: StopInfo | None = None  # set when a stop condition ended the run (for an ensemble: its last member's)
    stops: list[StopInfo] = field(default_factory=list)  # every stop, in order (one per stopped member)

    def set_stops(self) -> None:
        """Copy the stops into ``info`` (JSON-ready, so ``manifest.json`` carries them)."""
        self.info["stop"] = None if self.stop is None else self.stop.as_dict()
        if len(self.stops) > 1 or (self.stops and self.stops[0].member is not None):
            self.info["stops"] = [s.as_dict() for s in self.stops]

    def record(self, snap: Snapshot, measures: Mapping[str, Measure] | None, keep_params: bool) -> None:
        self.times.append(float(snap.t))
        self.steps.append(int(snap.step))
        if keep_params:
            self.params.append({k: v.detach().clone() for k, v in snap.params.items()})
        for name, fn in (measures or {}).items():
            self.metrics.setdefault(name, []).append(torch.as_tensor(fn(snap)).detach().clone())

    def metric(self, name: str) -> Tensor:
        """Stacked values of one measure, shape ``(T, ...)``."""
        return torch.stack(self.metrics[name])

    def param(self, name: str) -> Tensor:
        """Stacked values of one parameter, shape ``(T, ...)`` (needs ``keep_params=True``)."""
        return torch.stack([p[name] for p in self.params])

    @property
    def final(self) -> Params:
        return self.params[-1]


class Diverged(RuntimeError):
    """Raised by the run layer when a trajectory stopped because the loss became non-finite."""
