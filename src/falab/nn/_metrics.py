r"""Instruments for ``falab.nn`` models, measured on the feedback *actually used* in the backward pass.

Per converted layer: the angle between ``W`` and the matrix used in its place (``B``; for frSF ``|R| sign(W)``, not the
stored ``|R|``; for brSF the matrix of the last backward pass), the norm ratio ``||B||_F / ||W||_F``, and the angle
between the rule's update and the backprop gradient of the twin network at the same weights
(:func:`~falab.nn.exact_backprop`). A layer that sends no signal to its input (the first layer) has an uninformative
feedback angle: it is reported but flagged. Per adjacent layer pair of an ``nn.Sequential`` the P000 quantity
:math:`Q_i = \tfrac12\|W_i\|^2 + \tfrac12\|b_i\|^2 - \langle W_{i+1}, B_{i+1}\rangle` (FA with fixed feedback; DFA's
last pair with ``B = D``; GD balancedness for plain layers), only where the modules between the two layers are
positively homogeneous (ReLU, LeakyReLU, Identity, Flatten, max/avg pooling) so that the law applies (claims.md §1.9).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..instruments import angle_degrees, fa_quantity, gd_balancedness
from ._layers import DFAConv1d, DFAConv2d, DFALinear, FeedbackLayer, exact_backprop

_HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Flatten, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)
_DFA = (DFALinear, DFAConv1d, DFAConv2d)
_WeightLayer = nn.Linear | nn.Conv1d | nn.Conv2d


def _mat(t: Tensor) -> Tensor:
    return t.detach().reshape(t.shape[0], -1).to(torch.float64)


@dataclass(frozen=True)
class LayerAlignment:
    """One layer's alignment numbers. ``informative`` is False for a layer that sends no signal down (its ``B`` is
    never used) and for DFA hidden layers (``D`` has the output's shape, not ``W``'s: no angle to ``W``)."""

    name: str
    rule: str
    feedback_angle: float
    norm_ratio: float
    informative: bool


def layer_alignment(model: nn.Module) -> list[LayerAlignment]:
    """Angle ``W`` vs feedback used (degrees) and ``||B||/||W||`` for every falab layer of ``model``."""
    out = []
    for name, m in model.named_modules():
        if not isinstance(m, FeedbackLayer):
            continue
        w = _mat(m.weight)
        b = m.feedback_matrix()
        if b.numel() == 0:  # DFA conv before its first forward pass
            out.append(LayerAlignment(name, m.rule_name, math.nan, math.nan, False))
            continue
        b = _mat(b)
        ratio = float(torch.linalg.matrix_norm(b) / torch.linalg.matrix_norm(w))
        same = b.shape == w.shape
        angle = float(angle_degrees(w, b)) if same else math.nan
        informative = same and m._sends_signal is not False
        out.append(LayerAlignment(name, m.rule_name, angle, ratio, informative))
    return out


def update_angles(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor
                  ) -> dict[str, float]:
    """Angle (degrees) between the rule's update and the BP gradient at the same weights, per falab layer weight.

    Both are computed with ``torch.autograd.grad`` on the same batch (``.grad`` is not touched); the BP gradient comes
    from the same model inside :func:`exact_backprop`. For brSF the rule's pass draws a fresh ``R_t`` (a batch).
    """
    named = [(n, m) for n, m in model.named_modules() if isinstance(m, FeedbackLayer)]
    if not named:
        return {}
    weights = [m.weight for _, m in named]
    rule_g = torch.autograd.grad(loss_fn(model(x), y), weights, allow_unused=True)
    with exact_backprop(model):
        bp_g = torch.autograd.grad(loss_fn(model(x), y), weights, allow_unused=True)
    out = {}
    for (n, _), g1, g2 in zip(named, rule_g, bp_g):
        if g1 is None or g2 is None:
            out[n] = math.nan
            continue
        out[n] = float(angle_degrees(_mat(g1), _mat(g2)))
    return out


def conserved_quantities(model: nn.Module) -> dict[str, float]:
    """P000's per-pair quantity for adjacent weight layers of every ``nn.Sequential`` in ``model``.

    Keys ``'<layer i>|<layer i+1>'``. FA with a fixed feedback kind: :math:`Q_i` with the ``B`` of layer ``i + 1``;
    DFA: only the pair whose upper layer is the network's output layer (``D`` has ``W``'s shape), P000-DFA;
    native (BP) layers: GD balancedness. Sign-symmetry feedback changes with ``W``: no law, no entry.
    """
    out: dict[str, float] = {}
    for seq_name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        prev: tuple[str, _WeightLayer] | None = None
        for child_name, child in seq.named_children():
            full = f"{seq_name}.{child_name}" if seq_name else child_name
            if isinstance(child, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                if prev is not None:
                    q = _pair_quantity(prev[1], child)
                    if q is not None:
                        out[f"{prev[0]}|{full}"] = q
                prev = (full, child)
            elif not isinstance(child, _HOMOGENEOUS):
                prev = None
    return out


def _pair_quantity(lower: _WeightLayer, upper: _WeightLayer) -> float | None:
    w1, w2 = _mat(lower.weight), _mat(upper.weight)
    b1 = None if lower.bias is None else lower.bias.detach().to(torch.float64)
    if isinstance(upper, FeedbackLayer) or isinstance(lower, FeedbackLayer):
        if not isinstance(upper, FeedbackLayer) or not upper.feedback_kind.fixed:
            return None
        fb = upper.feedback_matrix()
        if fb.numel() == 0 or _mat(fb).shape != w2.shape:
            return None
        if isinstance(upper, _DFA) and upper.output_dim != w2.shape[0]:
            return None
        return float(fa_quantity([w1, w2], {2: _mat(fb)}, [b1, None])[0])
    return float(gd_balancedness([w1, w2], [b1, None])[0])


class AlignmentMonitor:
    """Records the instruments during training: ``monitor.record(step)`` (alignment, norm ratios, conserved
    quantities) and, with a batch, update angles; rows are kept in ``monitor.rows`` (``to_frame()`` for pandas).

    ``monitor.attach(optimizer, every=k)`` records after every k-th ``optimizer.step()`` (a step post-hook, removable).
    ``writer``: an optional ``torch.utils.tensorboard.SummaryWriter`` (only if tensorboard is installed;
    :meth:`tensorboard_writer` returns one or None).
    """

    def __init__(self, model: nn.Module, *, writer: Any = None) -> None:
        self.model = model
        self.writer = writer
        self.rows: list[dict[str, Any]] = []
        self._steps = 0

    @staticmethod
    def tensorboard_writer(log_dir: str) -> Any:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard is an optional extra, never a requirement
            return None
        return SummaryWriter(log_dir)

    def record(self, step: int, *, loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
               x: Tensor | None = None, y: Tensor | None = None, **extra: float) -> dict[str, Any]:
        row: dict[str, Any] = {"step": step, **extra}
        for a in layer_alignment(self.model):
            row[f"angle/{a.name}"] = a.feedback_angle if a.informative else math.nan
            row[f"norm_ratio/{a.name}"] = a.norm_ratio
        for k, v in conserved_quantities(self.model).items():
            row[f"Q/{k}"] = v
        if loss_fn is not None and x is not None and y is not None:
            for k, v in update_angles(self.model, loss_fn, x, y).items():
                row[f"update_angle/{k}"] = v
        self.rows.append(row)
        if self.writer is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, float) and math.isfinite(v):
                    self.writer.add_scalar(k, v, step)
        return row

    def attach(self, optimizer: torch.optim.Optimizer, *, every: int = 1) -> Any:
        def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            self._steps += 1
            if self._steps % every == 0:
                self.record(self._steps)

        return optimizer.register_step_post_hook(hook)

    def to_frame(self) -> Any:
        import pandas as pd  # type: ignore[import-untyped]  # pandas ships no types and pandas-stubs is not installed

        return pd.DataFrame(self.rows)
