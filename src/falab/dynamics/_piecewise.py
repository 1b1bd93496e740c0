r"""Piecewise-smooth flows of ReLU / leaky-ReLU networks: activation-pattern switches located as events.

Between switches the field is smooth: with the activation pattern :math:`m = 1[H > 0]` of every sample and unit frozen,
:math:`\phi(H) = (m + s(1 - m)) \odot H` is linear in :math:`H` (slope ``s`` = 0 for ReLU), so the high-order solver
(DOP853) keeps its order on the *smooth extension* of the current piece. After every accepted step the
pre-activations :math:`H_l` of every sample, unit and member are compared with the pattern; the first time any of
them changes sign is located by bisection on the step's dense output (to ~1e-15 relative), the pattern is switched
there and the solver restarted (Filippov 1988, ch. 2: the solution of a piecewise-smooth field with transversal
crossings is the concatenation of the smooth pieces).

A crossing is transversal when :math:`dH_e/dt` has the same sign under the old and the new pattern. When the new
piece's field points back into the old side (:math:`\dot H_e < 0` just above 0 and :math:`> 0` just below), the
motion slides along :math:`H_e = 0` (a Filippov sliding mode; chattering for any integrator that ignores it). With
``sliding='filippov'`` (default) the motion on the switching surface is integrated: the gain :math:`g_e \in [0, 1]`
of each sliding entry (its activation slope, between the two pieces' values) is the solution of
:math:`\dot H_S = 0` for the set S of sliding entries (Utkin's equivalent control; the field is affine in the gains
on the surface of a two-layer net, where it equals Filippov's convex combination
:math:`\alpha f_+ + (1-\alpha) f_-` with :math:`\alpha = \dot H_e^- / (\dot H_e^- - \dot H_e^+)`; Filippov 1988,
§2.4). The rates :math:`\dot H = \nabla H\cdot f` come from ``torch.func.jvp``. An entry leaves the surface when its
gain reaches 0 or 1 (located like a crossing). ``sliding='stop'`` instead stops the member there, frozen, with
``StopInfo(reason='sliding')`` naming time, layer, unit and sample, and status ``'sliding'`` (never silently).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..functional import AbstractActivation, LeakyReLU, ReLU
from ..models import MLP, Params
from ._problem import Problem


@dataclass(frozen=True, eq=False)
class PatternActivation(AbstractActivation):
    r"""A piecewise-linear activation with its pattern frozen: :math:`\phi(h) = g \odot h`, :math:`\phi'(h) = g`.

    ``gain`` is 1 / ``slope`` on the current piece (ReLU: slope 0), and the equivalent-control value on sliding
    entries; off the piece it is the piece's linear extension, which keeps the field smooth for the solver's stages
    beyond a kink."""

    gain: Tensor
    name: str = "pattern"
    homogeneous: bool = True

    def __call__(self, h: Tensor) -> Tensor:
        return self.gain * h

    def derivative(self, h: Tensor) -> Tensor:
        return self.gain.expand_as(h)


def piecewise_linear(problem: Problem) -> bool:
    """True for an MLP with a ReLU or leaky-ReLU layer (the field is then only piecewise smooth)."""
    return isinstance(problem.model, MLP) and any(isinstance(a, (ReLU, LeakyReLU)) for a in problem.model.activations)


class PatternSwitcher:
    """The current activation pattern of a ReLU/leaky-ReLU MLP problem, its switches and sliding entries (internal)."""

    def __init__(self, problem: Problem, unpack, unpack_raw, n_lead: int, field_of, sliding: str = "filippov") -> None:
        model = problem.model
        assert isinstance(model, MLP)
        self.base = problem
        self.unpack = unpack  # flat vector -> constrained params
        self.unpack_raw = unpack_raw  # flat vector -> params-shaped tensors (tangents)
        self.field_of = field_of  # (problem, flat state) -> flat field
        self.n_lead = n_lead
        self.mode = sliding
        self.layers = [l for l, a in enumerate(model.activations) if isinstance(a, (ReLU, LeakyReLU))]
        self.slopes = {l: (float(a.slope) if isinstance(a, LeakyReLU) else 0.0)
                       for l, a in enumerate(model.activations) if l in self.layers}
        self.mask: dict[int, Tensor] = {}
        self.slide: dict[int, Tensor] = {}
        self.leave: dict[int, Tensor] = {}
        self.problem = problem
        self.switches = 0
        self.switch_times: list[float] = []
        self.sliding_entries = 0  # entries that ever entered a sliding mode
        self._g: dict[int, Tensor] = {}

    # ------------------------------------------------------------------------------------------------ pieces
    def _pre(self, problem: Problem, params: Params) -> list[Tensor]:
        pre = problem.model.trace(params, problem.x).pre
        return [pre[l] for l in self.layers]

    def _problem(self, gains: dict[int, Tensor]) -> Problem:
        model = self.base.model
        assert isinstance(model, MLP)
        acts = tuple(PatternActivation(gains[l]) if l in gains else a for l, a in enumerate(model.activations))
        return dataclasses.replace(self.base, model=dataclasses.replace(model, activation=acts))

    def _gains(self, g: dict[int, Tensor] | None = None) -> dict[int, Tensor]:
        """Gains of the pattern; sliding entries take ``slope + g (1 - slope)`` (g = 0 without ``g``)."""
        out = {}
        for l in self.layers:
            s = self.slopes[l]
            m = self.mask[l].to(torch.float64)
            gain = m + s * (1.0 - m)
            if self.slide[l].any():
                gl = torch.zeros_like(gain) if g is None else g[l]
                gain = torch.where(self.slide[l], s + gl * (1.0 - s), gain)
            out[l] = gain
        return out

    @property
    def has_sliding(self) -> bool:
        return any(bool(v.any()) for v in self.slide.values())

    def set_pattern(self, y: np.ndarray) -> None:
        """Freeze the pattern of the true model at state ``y``."""
        params = self.unpack(y)
        self.mask = {l: h > 0 for l, h in zip(self.layers, self._pre(self.base, params))}
        self.slide = {l: torch.zeros_like(m) for l, m in self.mask.items()}
        self.leave = {l: torch.zeros_like(m) for l, m in self.mask.items()}
        self.problem = self._problem(self._gains())

    # ------------------------------------------------------------------------------------------------ the field
    def _rates(self, prob: Problem, params: Params, f: np.ndarray) -> list[Tensor]:
        r""":math:`\dot H = \nabla H \cdot f` of every pre-activation: the forward pass's tangent along ``f`` on the
        piece (:math:`\dot H_l = \dot A_{l-1} W_l^T + A_{l-1}\dot W_l^T + \dot b_l`, :math:`\dot A_l = g_l\odot\dot
        H_l`; exact, two matmuls per layer)."""
        model = prob.model
        tan = self.unpack_raw(f)
        ws, bs = model.layer_weights(params), model.layer_biases(params)
        dws, dbs = model.layer_weights(tan), model.layer_biases(tan)
        trace = model.trace(params, prob.x)
        acts = model.activations
        da: Tensor | None = None
        out = []
        for l in range(model.n_layers):
            a_prev = trace.inputs[l]
            dh = a_prev @ dws[l].transpose(-1, -2)
            if da is not None:
                dh = dh + da @ ws[l].transpose(-1, -2)
            db = dbs[l]
            if bs[l] is not None and db is not None:
                dh = dh + db.unsqueeze(-2)
            if l in self.slopes:
                out.append(dh)
            if l < model.n_layers - 1:
                da = acts[l].derivative(trace.pre[l]) * dh
        return out

    def _slots(self) -> list[dict[int, Tensor]]:
        """Sliding entries split into slots: slot j holds each member's j-th sliding entry (members are independent,
        so one evaluation per slot serves all members)."""
        flat = [(l, tuple(e)) for l in self.layers for e in torch.nonzero(self.slide[l]).tolist()]
        rank: dict[int, int] = {}
        slots: list[dict[int, Tensor]] = []
        for l, e in flat:
            m = self._member(l, e)
            j = rank.get(m, 0)
            rank[m] = j + 1
            while len(slots) <= j:
                slots.append({ll: torch.zeros_like(self.slide[ll], dtype=torch.float64) for ll in self.layers})
            slots[j][l][e] = 1.0
        return slots

    def _member(self, l: int, e: tuple[int, ...]) -> int:
        if self.n_lead == 0:
            return 0
        return int(np.ravel_multi_index(tuple(e[:self.n_lead]), tuple(self.slide[l].shape[:self.n_lead])))

    def control(self, y: np.ndarray) -> dict[int, Tensor]:
        """The equivalent-control gains ``g`` (0 = the lower piece, 1 = the upper) of the sliding entries at ``y``."""
        params = self.unpack(y)
        slots = self._slots()
        zero = {l: torch.zeros_like(self.slide[l], dtype=torch.float64) for l in self.layers}
        r = []
        for g in [zero, *slots]:
            prob = self._problem(self._gains(g))
            r.append(self._rates(prob, params, self.field_of(prob, y)))
        # per member: A g = -r0 over its sliding entries (A[a, j] = r_j[a] - r0[a])
        entries = [(l, tuple(e)) for l in self.layers for e in torch.nonzero(self.slide[l]).tolist()]
        by_member: dict[int, list[tuple[int, tuple[int, ...], int]]] = {}
        for l, e in entries:
            slot = next(j for j, sl in enumerate(slots) if sl[l][e] == 1.0)
            by_member.setdefault(self._member(l, e), []).append((l, e, slot))
        out = {l: torch.zeros_like(self.slide[l], dtype=torch.float64) for l in self.layers}
        li = {l: i for i, l in enumerate(self.layers)}
        for items in by_member.values():
            k = len(items)
            a = np.empty((k, k))
            b = np.empty(k)
            for row, (l, e, _) in enumerate(items):
                r0 = float(r[0][li[l]][e])
                b[row] = -r0
                for col, (_, _, slot) in enumerate(items):
                    a[row, col] = float(r[1 + slot][li[l]][e]) - r0
            try:
                sol = np.linalg.solve(a, b)
            except np.linalg.LinAlgError:
                sol = np.linalg.lstsq(a, b, rcond=None)[0]
            for (l, e, _), v in zip(items, sol):
                out[l][e] = float(v)
        return out

    def field(self, y: np.ndarray) -> np.ndarray:
        """The flat field on the current piece (on the switching surface for sliding entries)."""
        if not self.has_sliding:
            return self.field_of(self.problem, y)
        g = self.control(y)
        self._g = g
        return self.field_of(self._problem(self._gains({l: v.clamp(0.0, 1.0) for l, v in g.items()})), y)

    # ------------------------------------------------------------------------------------------------ switches
    def _events(self, y: np.ndarray) -> bool:
        """Whether state ``y`` lies beyond a switch: a regular entry changed sign, or a sliding gain left [0, 1]."""
        params = self.unpack(y)
        pre = self._pre(self.problem, params)
        for l, h in zip(self.layers, pre):
            if bool((((h > 0) != self.mask[l]) & ~self.slide[l] & ~self.leave[l]).any()):
                return True
        if self.has_sliding:
            g = self.control(y)
            for l in self.layers:
                gl = g[l][self.slide[l]]
                if bool(((gl < 0) | (gl > 1)).any()):
                    return True
        return False

    def locate(self, dense, t_old: float, t_new: float, y_new: np.ndarray) -> float | None:
        """The first time in ``(t_old, t_new]`` of a switch (the right end of a bisection bracket, so the state
        there is beyond it), or None."""
        if not self._events(y_new):
            params = self.unpack(y_new)
            for l, h in zip(self.layers, self._pre(self.problem, params)):
                self.leave[l] &= (h > 0) != self.mask[l]  # left entries now on their side count again
            return None
        a, b = t_old, t_new
        tol = 4 * np.finfo(float).eps * max(1.0, abs(t_new))
        while b - a > tol:
            mid = 0.5 * (a + b)
            if mid <= a or mid >= b:
                break
            if self._events(dense(mid)):
                b = mid
            else:
                a = mid
        return b

    def switch(self, y: np.ndarray, t: float = float("nan")) -> list[tuple[int | None, str]]:
        """Switch the pattern at state ``y`` (just beyond a located switch). Crossed entries flip; a crossing whose
        new piece points back starts sliding (``'filippov'``) or is returned as ``(member, description)`` for the
        caller to stop (``'stop'``); sliding entries whose gain left [0, 1] leave the surface to that side."""
        params = self.unpack(y)
        self.switches += 1
        self.switch_times.append(float(t))
        old_problem = self.problem if not self.has_sliding else self._problem(self._gains(self._g_at(y)))
        pre = self._pre(old_problem, params)
        flipped = {l: ((h > 0) != self.mask[l]) & ~self.slide[l] & ~self.leave[l] for l, h in zip(self.layers, pre)}
        if self.has_sliding:  # exits from the surface
            g = self.control(y)
            for l in self.layers:
                out_lo = self.slide[l] & (g[l] < 0)
                out_hi = self.slide[l] & (g[l] > 1)
                self.mask[l] = torch.where(out_hi, True, torch.where(out_lo, False, self.mask[l]))
                self.leave[l] |= out_lo | out_hi
                self.slide[l] &= ~(out_lo | out_hi)
        r_old = self._rates(old_problem, params, self.field_of(old_problem, y))
        for l in self.layers:
            self.mask[l] = self.mask[l] ^ flipped[l]
        new_problem = self._problem(self._gains())
        r_new = self._rates(new_problem, params, self.field_of(new_problem, y))
        out: list[tuple[int | None, str]] = []
        for i, l in enumerate(self.layers):
            for e in torch.nonzero(flipped[l]).tolist():
                e_t = tuple(e)
                ro, rn = float(r_old[i][e_t]), float(r_new[i][e_t])
                up = bool(self.mask[l][e_t])  # crossed upwards (into H > 0)
                if (up and rn < 0 < ro) or (not up and rn > 0 > ro):
                    self.sliding_entries += 1
                    if self.mode == "filippov":
                        self.slide[l][e_t] = True
                    else:
                        member = None if self.n_lead == 0 else self._member(l, e_t)
                        out.append((member, f"layer {l + 1}, unit {e[-1]}, sample {e[-2]}: dH/dt = {ro:.3g} before "
                                            f"and {rn:.3g} after the crossing (the field points into H = 0 from "
                                            "both sides)"))
        self.problem = self._problem(self._gains())
        return out

    def _g_at(self, y: np.ndarray) -> dict[int, Tensor]:
        return {l: v.clamp(0.0, 1.0) for l, v in self.control(y).items()}


__all__ = ["PatternActivation", "PatternSwitcher", "piecewise_linear"]
