"""Stop conditions shared by flows and discrete runs: loss <= target, update norm <= tolerance, terminal events.

A condition is a function ``g(t, params)`` with one value per ensemble member (or one for the whole run); the run (or
the member) stops where ``g`` crosses zero in the condition's direction. Flows locate the crossing time by root finding
on the solver's dense output; discrete runs stop at the first step index at which the condition holds. A member of an
ensemble that stops is frozen at its stop state and the others continue; the run ends when every member has stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .._checks import check_positive, invalid
from ..models import Params
from ._problem import Problem, StopInfo, Trajectory

EventFn = Callable[[float, Params], "float | Tensor"]


@dataclass(frozen=True)
class Event:
    r"""A function :math:`g(t, \theta)` whose zero crossings a run locates.

    ``fn`` returns one number, or one value per ensemble member (a tensor of shape ``(K,)``, per-member events).
    ``direction``: ``+1`` counts only crossings from negative to non-negative, ``-1`` only from positive to
    non-positive, ``0`` both. A ``terminal`` event ends the run (a per-member terminal event ends its member) at the
    crossing; non-terminal events are only recorded (``trajectory.events``).

    Examples:
        >>> ev = Event(lambda t, p: float(p["W1"].sum()), terminal=True, direction=-1, name="W1 sum hits 0")
        >>> ev.terminal
        True
    """

    fn: EventFn
    terminal: bool = False
    direction: int = 0
    name: str = "event"

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise invalid("event.fn", type(self.fn).__name__, "a function g(t, params) -> float or (K,) tensor")
        if self.direction not in (-1, 0, 1):
            raise invalid("event.direction", self.direction, "one of -1, 0, +1")


@dataclass(frozen=True)
class Stop:
    r"""When a run ends before its horizon (P003 eqs 16-17 give such a time in closed form: the vanishing time).

    Args:
        loss: stop when the training loss :math:`L(\theta) \le` ``loss`` (per ensemble member).
        update_norm: stop when the rule's update (the flow's field) has Frobenius norm
            :math:`\|\mathrm{update}(\theta)\| \le` ``update_norm``, all parameters of a member together.
        events: terminal events (plain functions are taken as :class:`Event` with ``terminal=True``, ``direction=0``).

    A flow stops at the located time of the first condition met (root finding on the dense output, to ~1e-15
    relative in time); a discrete run at the first step index ``k`` at which the condition holds for
    :math:`\theta_k` (events: whose sign has changed since step ``k - 1``). The time, reason and member are recorded
    as :class:`StopInfo` in ``trajectory.stop`` / ``trajectory.stops`` and in ``trajectory.info['stop']``.

    Example:
        >>> Stop(loss=1e-12).loss
        1e-12
    """

    loss: float | None = None
    update_norm: float | None = None
    events: Sequence[Event | EventFn] = ()

    def __post_init__(self) -> None:
        if self.loss is not None:
            check_positive("stop.loss", self.loss, allow_zero=True)
        if self.update_norm is not None:
            check_positive("stop.update_norm", self.update_norm, allow_zero=True)
        evs = tuple(e if isinstance(e, Event) else Event(e, terminal=True) for e in self.events)
        object.__setattr__(self, "events", evs)

    @property
    def empty(self) -> bool:
        return self.loss is None and self.update_norm is None and not self.events


@dataclass
class Conditions:
    """The stop conditions of one run, evaluated as a ``(C, M)`` array (condition x member); internal."""

    problem: Problem
    stop: Stop
    terminal_events: tuple[Event, ...] = ()
    members: int = 1  # M: ensemble members (1 for a single network)
    lead: tuple[int, ...] = ()
    per_member: bool = False
    labels: list[tuple[str, str, int]] = field(default_factory=list)  # (reason, detail, direction)

    @classmethod
    def build(cls, problem: Problem, params: Params, stop: Stop | None,
              events: Sequence[Event | EventFn] | None) -> Conditions | None:
        terminal = tuple(e for e in (events or []) if isinstance(e, Event) and e.terminal)
        if (stop is None or stop.empty) and not terminal:
            return None
        stop = stop or Stop()
        lead = tuple(problem.loss_value(params).shape)
        m = math.prod(lead) if lead else 1
        per_member = bool(lead) and all(tuple(v.shape[:len(lead)]) == lead for v in params.values())
        c = cls(problem, stop, (*stop.events, *terminal), m, lead, per_member)  # type: ignore[arg-type]
        if stop.loss is not None:
            c.labels.append(("loss", f"loss <= {stop.loss:g}", -1))
        if stop.update_norm is not None:
            c.labels.append(("update_norm", f"update norm <= {stop.update_norm:g}", -1))
        for e in c.terminal_events:
            c.labels.append(("event", e.name, e.direction))
        return c

    @property
    def n(self) -> int:
        return len(self.labels)

    def _per_member(self, v: Tensor | float) -> np.ndarray:
        a = np.asarray(torch.as_tensor(v).detach().to(torch.float64).reshape(-1).numpy(), dtype=float)
        if a.size == 1:
            return np.full(self.members, float(a[0]))
        if a.size != self.members:
            raise invalid("event value shape", tuple(np.shape(a)), f"one number or one per member ({self.members})")
        return a

    def values(self, t: float, params: Params, update: Params | None = None) -> np.ndarray:
        """``g`` of every condition and member at ``(t, params)``; thresholds are ``value - target``."""
        rows = []
        if self.stop.loss is not None:
            rows.append(self._per_member(self.problem.loss_value(params)) - self.stop.loss)
        if self.stop.update_norm is not None:
            upd = self.problem.update(params) if update is None else update
            nd = len(self.lead)
            sq = sum((u.reshape(*self.lead, -1) ** 2).sum(-1) if nd else (u ** 2).sum() for u in upd.values())
            rows.append(self._per_member(torch.sqrt(torch.as_tensor(sq))) - self.stop.update_norm)
        for e in self.terminal_events:
            rows.append(self._per_member(e.fn(t, params)))
        return np.stack(rows)

    def met(self, prev: np.ndarray | None, now: np.ndarray) -> np.ndarray:
        """Which (condition, member) pairs are met at ``now`` (thresholds: ``g <= 0``; events: crossed since ``prev``,
        never at the start when ``prev`` is None)."""
        out = np.zeros_like(now, dtype=bool)
        for c, (reason, _, direction) in enumerate(self.labels):
            g = now[c]
            if reason != "event":
                out[c] = g <= 0
                continue
            if prev is None:
                continue
            p = prev[c]
            if direction == 0:
                out[c] = (p != 0) & (np.sign(g) != np.sign(p))
            elif direction > 0:
                out[c] = (p < 0) & (g >= 0)
            else:
                out[c] = (p > 0) & (g <= 0)
        return out


def member_mask(params: Params, lead: tuple[int, ...], member: int) -> Params:
    """Boolean masks selecting one member's entries of every parameter (broadcastable along trailing dims)."""
    out = {}
    for k, v in params.items():
        m = torch.zeros(lead, dtype=torch.bool)
        m.view(-1)[member] = True
        out[k] = m.view(*lead, *([1] * (v.dim() - len(lead))))
    return out


class DiscreteStopper:
    """Stop conditions of a discrete run, checked at every step index ``k`` on ``theta_k`` (internal).

    Members of an ensemble that stop are held at their ``theta_k`` (:meth:`hold` after each step)."""

    def __init__(self, conds: Conditions, params: Params) -> None:
        self.conds = conds
        self.prev: np.ndarray | None = None
        self.active = np.ones(conds.members, dtype=bool)
        self.held: Params | None = None
        self.mask: Params | None = None

    def check(self, k: int, t: float, params: Params, update: Params | None, traj: Trajectory) -> bool:
        """Record the stops met at step ``k``; True when the run ends there."""
        c = self.conds
        now = c.values(t, params, update)
        hit = c.met(self.prev, now) & self.active[None, :]
        self.prev = now
        if not hit.any():
            return False
        single = not c.lead
        members = sorted({int(m) for m in np.nonzero(hit)[1]})
        if single or not c.per_member:
            m = members[0]
            reason, detail, _ = c.labels[int(np.nonzero(hit[:, m])[0][0])]
            traj.stop = StopInfo(time=t, reason=reason, member=None if single else m, step=k, detail=detail)
            traj.stops.append(traj.stop)
            return True
        if self.held is None:
            self.held = {n: v.detach().clone() for n, v in params.items()}
            self.mask = {n: torch.zeros(c.lead, dtype=torch.bool).view(*c.lead, *([1] * (v.dim() - len(c.lead))))
                         for n, v in params.items()}
        assert self.mask is not None
        for m in members:
            reason, detail, _ = c.labels[int(np.nonzero(hit[:, m])[0][0])]
            traj.stops.append(StopInfo(time=t, reason=reason, member=m, step=k, detail=detail))
            self.active[m] = False
            for n, v in params.items():
                sel = member_mask(params, c.lead, m)[n]
                self.held[n] = torch.where(sel, v.detach(), self.held[n])
                self.mask[n] = self.mask[n] | sel
        if not self.active.any():
            traj.stop = traj.stops[-1]
            return True
        return False

    def hold(self, params: Params) -> Params:
        """Stopped members keep their stop state."""
        if self.held is None or self.mask is None:
            return params
        return {n: torch.where(self.mask[n], self.held[n], v) for n, v in params.items()}


__all__ = ["Event", "Stop", "StopInfo", "Conditions", "DiscreteStopper", "member_mask"]
