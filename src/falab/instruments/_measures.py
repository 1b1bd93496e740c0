"""Named measures for recording (name -> function of a :class:`~falab.dynamics.Snapshot`), as used by run configs."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .._checks import check_choice
from ..dynamics import Measure, Snapshot
from ..rules import Backprop, DirectFeedbackAlignment
from ._alignment import update_angles_to_gradient, weight_feedback_angles
from ._conservation import dfa_last_pair, fa_quantity, gd_balancedness


def loss(snap: Snapshot) -> Tensor:
    """The problem's loss at the snapshot's parameters, per ensemble member."""
    return snap.problem.loss_value(snap.params)


def layer_norms(snap: Snapshot) -> Tensor:
    """Frobenius norms ``||W_l||_F`` of the dense layer weights, shape ``(..., L)``."""
    ws = snap.problem.model.layer_weights(snap.params)
    return torch.stack([torch.linalg.matrix_norm(w) for w in ws], dim=-1)


def conserved(snap: Snapshot) -> Tensor:
    """The quantity the rule is supposed to conserve, per layer pair: GD balancedness for BP, Q_i for FA-type rules,
    the last-pair law for DFA (other pairs NaN)."""
    p = snap.problem
    ws, bs = p.model.layer_weights(snap.params), p.model.layer_biases(snap.params)
    if isinstance(p.rule, Backprop):
        return gd_balancedness(ws, bs)
    if isinstance(p.rule, DirectFeedbackAlignment):
        last = dfa_last_pair(ws, p.state[f"D{len(ws) - 1}"], bs[-2])
        nan = torch.full((*last.shape, len(ws) - 2), float("nan"), dtype=last.dtype)
        return torch.cat([nan, last.unsqueeze(-1)], dim=-1)
    return fa_quantity(ws, p.rule.feedback_used(p.model, snap.params, p.state), bs)


MEASURES: dict[str, Callable[[Snapshot], Tensor]] = {
    "loss": loss,
    "layer_norms": layer_norms,
    "conserved": conserved,
    "feedback_angle": weight_feedback_angles,
    "update_angle": update_angles_to_gradient,
}


def get_measures(names: list[str]) -> dict[str, Measure]:
    """The measures of :data:`MEASURES` named in ``names`` (an unknown name is one ``Invalid measures entry`` line)."""
    return {n: MEASURES[check_choice("measures entry", n, MEASURES)] for n in names}
