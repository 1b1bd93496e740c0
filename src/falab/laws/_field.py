r"""The vector field :math:`v_x(\theta) = -\mathrm{update}(\mathrm{constrain}(\theta))` of a rule on an MLP, flattened.

The field is always computed by the rule's own ``update`` (and ``constrain`` for FA*) from :mod:`falab.rules`; this
module only packs parameters into one vector :math:`\theta\in\mathbb R^D`, draws samples and batches them as an
ensemble (one leading dimension), so that thousands of :math:`(\theta, x)` samples cost one tensor program.

Data parametrisation (why the output error is sampled instead of the target): for the squared loss with ``sum``
reduction, the output error is :math:`e = f(\theta, x) - y`, and every rule here is linear in :math:`e` for fixed
:math:`(\theta, x)`. At a given :math:`\theta`, :math:`(x, y)\mapsto(x, e)` is a bijection, so "for every data set"
is the same statement with :math:`e` free — and :math:`e` free makes the field homogeneous under layer scalings (see
``_torus``). Rules with a slaved parameter (FA*, whose last layer solves a least-squares problem) are not linear in
:math:`e`; for them the target :math:`y` is sampled ("target" mode) and a data set has more samples than the last
hidden width, otherwise the least-squares fit is exact and the field vanishes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import invalid
from ..functional import SquaredLoss
from ..models import MLP, Params
from ..rules import AbstractLearningRule, RuleState
from ..rules._sign_symmetry import FixedRandomMagnitudeSignFeedback, UniformSignFeedback

LOSS = SquaredLoss("sum")  # sum: e = f - y exactly (mean only rescales time, claims.md §1.1)


def check_rule(rule: object) -> AbstractLearningRule:
    """Accept rules whose field is one fixed vector field per data set (fixed feedback, or a sign pattern kept fixed)."""
    if not isinstance(rule, AbstractLearningRule):
        raise invalid("rule", type(rule).__name__, "a falab.rules rule (Backprop, FeedbackAlignment, "
                                                   "DirectFeedbackAlignment, FAStar)")
    fb = getattr(rule, "feedback", None)
    if fb is not None and not fb.fixed and not isinstance(fb, (UniformSignFeedback, FixedRandomMagnitudeSignFeedback)):
        raise invalid("rule.feedback", type(fb).__name__,
                      "fixed feedback (gaussian, uniform, scaled_like_weight, copy_of_weight, or usf/frsf within a "
                      "fixed sign pattern); per-step random feedback such as brsf has no single vector field v_x")
    return rule


def sign_tracking(rule: AbstractLearningRule) -> bool:
    """True for uSF/frSF: ``B = s sign(W)`` is fixed only inside one sign-pattern orthant, where we sample."""
    return isinstance(getattr(rule, "feedback", None), (UniformSignFeedback, FixedRandomMagnitudeSignFeedback))


@dataclass
class Coordinate:
    """Where coordinate ``i`` of theta lives: parameter name, layer (1-based), kind ('W' or 'b'), row, column."""

    name: str
    layer: int
    kind: str
    row: int
    col: int


class Field:
    """The rule's field on an MLP as a function of flat parameters, batched over samples.

    Args:
        model: an :class:`falab.models.MLP` (any depth, activations, biases).
        rule: a rule accepted by :func:`check_rule`.
        state: the rule's fixed matrices (from ``rule.init``).
        ref: reference parameters; their signs fix the orthant for sign-tracking feedback.
    """

    def __init__(self, model: MLP, rule: AbstractLearningRule, state: RuleState, ref: Params) -> None:
        if not isinstance(model, MLP):
            raise invalid("model", type(model).__name__, "a falab.models.MLP (any depth and activation)")
        self.model, self.rule, self.state, self.ref = model, rule, dict(state), ref
        g = torch.Generator().manual_seed(12345)
        probe = {k: torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in ref.items()}
        x = torch.randn(model.widths[-2] + 3, model.widths[0], generator=g, dtype=torch.float64)
        y = torch.randn(x.shape[0], model.widths[-1], generator=g, dtype=torch.float64)
        con = rule.constrain(model, probe, self.state, x, y, LOSS)
        # Parameters that constrain() overwrites are functions of the others (FA*'s last layer): not coordinates.
        self.slaved = [k for k in ref if not torch.equal(con[k], probe[k])]
        self.names = [k for k in ref if k not in self.slaved]
        self.mode = "target" if self.slaved else "error"
        # FA*: more samples than the last hidden width, with room so that a ReLU unit is almost never inactive on
        # all of them (a rank-deficient least-squares problem makes the field jump)
        self.batch = 3 * model.widths[-2] + 4 if self.slaved else 1
        self.shapes = {k: tuple(ref[k].shape) for k in ref}
        self.coords: list[Coordinate] = []
        self.offsets: dict[str, tuple[int, int]] = {}
        for k in self.names:
            start = len(self.coords)
            layer, kind = int(k[1:]), k[0]
            shp = self.shapes[k]
            if kind == "W":
                self.coords += [Coordinate(k, layer, "W", r, c) for r in range(shp[0]) for c in range(shp[1])]
            else:
                self.coords += [Coordinate(k, layer, "b", r, 0) for r in range(shp[0])]
            self.offsets[k] = (start, len(self.coords))
        self.D = len(self.coords)
        self.signs = torch.cat([torch.sign(ref[k]).reshape(-1) for k in self.names]) if sign_tracking(rule) else None
        if self.signs is not None and bool((self.signs == 0).any()):
            raise invalid("params", "a zero weight", "nonzero weights for sign-tracking feedback (sign(0) = 0)")
        self.std = torch.cat([torch.full((b - a,), 1.0 / math.sqrt(self.shapes[k][-1]) if k[0] == "W" else 0.5,
                                         dtype=torch.float64) for k, (a, b) in self.offsets.items()])

    # -- packing ---------------------------------------------------------------------------------------------------
    def unpack(self, theta: Tensor) -> Params:
        """``theta (..., D)`` -> parameter dict (slaved parameters as zeros; ``constrain`` fills them)."""
        lead = theta.shape[:-1]
        out: Params = {}
        for k in self.ref:
            if k in self.offsets:
                a, b = self.offsets[k]
                out[k] = theta[..., a:b].reshape(*lead, *self.shapes[k])
            else:
                out[k] = torch.zeros(*lead, *self.shapes[k], dtype=theta.dtype)
        return out

    def pack(self, params: Params) -> Tensor:
        lead = params[self.names[0]].shape[:-len(self.shapes[self.names[0]])]
        return torch.cat([params[k].reshape(*lead, -1) for k in self.names], dim=-1)

    # -- sampling --------------------------------------------------------------------------------------------------
    def sample_theta(self, n: int, g: torch.Generator) -> Tensor:
        """``n`` random points; inside the reference sign orthant for sign-tracking feedback."""
        th = torch.randn(n, self.D, generator=g, dtype=torch.float64) * self.std
        if self.signs is not None:
            th = th.abs() * self.signs
        return th

    def well_posed(self, theta: Tensor, x: Tensor) -> Tensor:
        """``(S,)`` bool: samples whose slaved least-squares problem has full column rank (always True in error
        mode). A rank-deficient one (a ReLU unit inactive on every sample of the data set) is where FA*'s field
        jumps, so it is not a generic sample."""
        if self.mode == "error":
            return torch.ones(theta.shape[0], dtype=torch.bool)
        a = self.model.trace(self.unpack(theta), x).inputs[-1]
        sv = torch.linalg.svdvals(a)
        # conditioning above 1e3 costs digits in the pinv-based field, which the 1e-8 validation then rejects
        return sv[..., -1] > 1e-3 * sv[..., 0]

    def sample(self, n: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """``n`` well-posed samples ``(theta, x, z)``."""
        th = self.sample_theta(n, g)
        x, z = self.sample_data(n, g)
        for _ in range(20):
            bad = ~self.well_posed(th, x)
            if not bool(bad.any()):
                break
            k = int(bad.sum())
            th[bad] = self.sample_theta(k, g)
            x[bad], z[bad] = self.sample_data(k, g)
        return th, x, z

    def sample_data(self, n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """``n`` data sets: ``x (n, N, n_0)`` and ``e`` (error mode) or ``y`` (target mode), ``(n, N, n_L)``."""
        x = torch.randn(n, self.batch, self.model.widths[0], generator=g, dtype=torch.float64)
        z = torch.randn(n, self.batch, self.model.widths[-1], generator=g, dtype=torch.float64)
        return x, z

    # -- evaluation ------------------------------------------------------------------------------------------------
    def _state(self, lead: tuple[int, ...]) -> RuleState:
        return {k: v.expand(*lead, *v.shape) for k, v in self.state.items()} if lead else self.state

    def __call__(self, theta: Tensor, x: Tensor, z: Tensor) -> Tensor:
        """The field at samples ``theta (S, D)`` with data ``(x, z)`` (``z`` = e or y per :attr:`mode`)."""
        lead = tuple(theta.shape[:-1])
        p = self.unpack(theta)
        st = self._state(lead)
        if self.mode == "error":
            y = self.model(p, x) - z
        else:
            y = z
        p = self.rule.constrain(self.model, p, st, x, y, LOSS)
        upd, _ = self.rule.update(self.model, p, st, x, y, LOSS)
        return -torch.cat([upd[k].reshape(*lead, -1) for k in self.names], dim=-1)

    def fixed_data_field(self, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
        """The field of one fixed data set ``(x (N, n_0), y (N, n_L))`` as a function of ``theta (D,)``, for
        ``torch.func.jvp`` (brackets need the field of fixed data, so ``y`` is held fixed here, not ``e``)."""

        def v(theta: Tensor) -> Tensor:
            p = self.unpack(theta)
            p = self.rule.constrain(self.model, p, self.state, x, y, LOSS)
            upd, _ = self.rule.update(self.model, p, self.state, x, y, LOSS)
            return -torch.cat([upd[k].reshape(-1) for k in self.names])

        return v

    def random_dataset(self, g: torch.Generator, n: int | None = None) -> tuple[Tensor, Tensor]:
        n = self.batch if n is None else n
        x = torch.randn(n, self.model.widths[0], generator=g, dtype=torch.float64)
        y = torch.randn(n, self.model.widths[-1], generator=g, dtype=torch.float64)
        return x, y

    def full_params(self, theta: Tensor, x: Tensor, y: Tensor) -> Params:
        """Parameters with the slaved ones solved (for flows and reports)."""
        return self.rule.constrain(self.model, self.unpack(theta), self.state, x, y, LOSS)
