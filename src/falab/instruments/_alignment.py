"""Alignment between forward weights, the feedback actually used, and the rule's update vs the true gradient."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..dynamics import Snapshot
from ..rules import Backprop


def angle_degrees(a: Tensor, b: Tensor) -> Tensor:
    r"""Angle :math:`\arccos(\langle a,b\rangle/(\|a\|\|b\|))` in degrees over the last two dims (``(...)``).

    Examples:
        >>> import torch
        >>> w = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
        >>> round(angle_degrees(w, torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)).item(), 9)
        90.0
        >>> [round(a, 4) for a in angle_degrees(torch.stack([w, -w]), w).tolist()]   # one angle per ensemble member
        [0.0, 180.0]

        The arccos of a rounded cosine: within about 1e-6 degrees of 0 or 180 an angle is rounding
        (``angle_degrees(w, 2 * w)`` gives 1.2e-6 here).
    """
    num = (a * b).sum(dim=(-2, -1))
    den = torch.linalg.matrix_norm(a) * torch.linalg.matrix_norm(b)
    cos = torch.clamp(num / den, -1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))


def norm_ratio(a: Tensor, b: Tensor) -> Tensor:
    """``||a||_F / ||b||_F`` over the last two dims."""
    return torch.linalg.matrix_norm(a) / torch.linalg.matrix_norm(b)


def weight_feedback_angles(snap: Snapshot) -> Tensor:
    """Per layer l = 2..L: angle between ``W_l`` and the feedback used in its place, ``(..., L-1)`` degrees."""
    p = snap.problem
    ws = p.model.layer_weights(snap.params)
    fb = p.rule.feedback_used(p.model, snap.params, p.state)
    return torch.stack([angle_degrees(ws[l - 1], fb[l]) if l in fb else torch.full(ws[0].shape[:-2], math.nan)
                        for l in range(2, len(ws) + 1)], dim=-1)


def update_angles_to_gradient(snap: Snapshot) -> Tensor:
    """Per layer: angle between the rule's update and the true gradient (backprop) at the same parameters."""
    p = snap.problem
    upd = p.rule.layer_updates(p.model, snap.params, p.state, p.x, p.y, p.loss)[0]
    grad = Backprop().layer_updates(p.model, snap.params, {}, p.x, p.y, p.loss)[0]
    return torch.stack([angle_degrees(u, g) for u, g in zip(upd, grad)], dim=-1)


def end_to_end(weights: list[Tensor]) -> Tensor:
    """The linear map ``W_L ... W_1`` of a linear network, ``(..., n_L, n_0)``."""
    m = weights[0]
    for w in weights[1:]:
        m = w @ m
    return m


def relative_distance(a: Tensor, ref: Tensor) -> Tensor:
    """``||a - ref||_F / ||ref||_F`` over the last two dims.

    Examples:
        >>> import torch
        >>> ref = torch.ones(3, 1, dtype=torch.float64)
        >>> relative_distance(1.5 * ref, ref).item()
        0.5
    """
    return torch.linalg.matrix_norm(a - ref) / torch.linalg.matrix_norm(ref)
