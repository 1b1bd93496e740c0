"""Losses with their output errors written out (claims.md §1.1).

Shapes: predictions ``f`` and targets ``y`` are ``(..., N, n_out)``; leading dimensions are ensemble members. The value
reduces over samples and outputs to shape ``(...)``. ``output_error`` returns ``dL/df`` with the shape of ``f``; it is
the ``delta_L`` every learning rule starts from.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Literal, cast, final

import torch
from torch import Tensor

from .._checks import check_choice, invalid

Reduction = Literal["mean", "sum"]


class AbstractLoss(abc.ABC):
    """A dataset loss ``L = c * sum_i l(f_i, y_i)`` with ``c = 1/N`` (mean) or ``1`` (sum)."""

    name: str = "abstract"
    reduction: Reduction = "mean"

    def _scale(self, f: Tensor) -> float:
        return 1.0 / f.shape[-2] if self.reduction == "mean" else 1.0

    def _check(self) -> None:
        check_choice("loss.reduction", self.reduction, ("mean", "sum"))

    @abc.abstractmethod
    def value(self, f: Tensor, y: Tensor) -> Tensor:
        """Dataset loss, shape ``f.shape[:-2]``."""

    @abc.abstractmethod
    def output_error(self, f: Tensor, y: Tensor) -> Tensor:
        """``dL/df`` (same shape as ``f``)."""


@final
@dataclass(frozen=True)
class SquaredLoss(AbstractLoss):
    r"""Squared loss :math:`L = c\sum_i \tfrac12\|f_i - y_i\|^2`, output error :math:`c\,(f - y)`.

    ``c = 1/N`` for ``reduction="mean"`` (N samples, the rows), 1 for ``"sum"``.

    Examples:
        >>> import torch
        >>> f, y = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [1.0]])
        >>> SquaredLoss("mean").value(f, y).item(), SquaredLoss("sum").value(f, y).item()
        (1.25, 2.5)
        >>> SquaredLoss("mean").output_error(f, y).tolist()        # dL/df
        [[0.5], [1.0]]
    """

    reduction: Reduction = "mean"
    name: str = "squared"

    def __post_init__(self) -> None:
        self._check()

    def value(self, f: Tensor, y: Tensor) -> Tensor:
        r = f - y
        return 0.5 * self._scale(f) * (r * r).sum(dim=(-2, -1))

    def output_error(self, f: Tensor, y: Tensor) -> Tensor:
        return self._scale(f) * (f - y)


@final
@dataclass(frozen=True)
class ExponentialLoss(AbstractLoss):
    r"""Exponential loss for labels ``y`` in {+1, -1}: :math:`l = \exp(-y f)`, :math:`dl/df = -y \exp(-y f)` (P002 eq. 7)."""

    reduction: Reduction = "sum"
    name: str = "exponential"

    def __post_init__(self) -> None:
        self._check()

    def value(self, f: Tensor, y: Tensor) -> Tensor:
        return self._scale(f) * torch.exp(-y * f).sum(dim=(-2, -1))

    def output_error(self, f: Tensor, y: Tensor) -> Tensor:
        return -self._scale(f) * y * torch.exp(-y * f)


@final
@dataclass(frozen=True)
class CrossEntropyLoss(AbstractLoss):
    r"""Softmax cross-entropy with one-hot targets: :math:`l = -\sum_k y_k \log\mathrm{softmax}(f)_k`,
    :math:`dl/df = \mathrm{softmax}(f) - y`."""

    reduction: Reduction = "mean"
    name: str = "cross_entropy"

    def __post_init__(self) -> None:
        self._check()

    def value(self, f: Tensor, y: Tensor) -> Tensor:
        return -self._scale(f) * (y * torch.log_softmax(f, dim=-1)).sum(dim=(-2, -1))

    def output_error(self, f: Tensor, y: Tensor) -> Tensor:
        return self._scale(f) * (torch.softmax(f, dim=-1) - y)


LOSSES: dict[str, type[SquaredLoss | ExponentialLoss | CrossEntropyLoss]] = {
    "squared": SquaredLoss,
    "exponential": ExponentialLoss,
    "cross_entropy": CrossEntropyLoss,
}


def get_loss(name: str | AbstractLoss, reduction: str | None = None) -> AbstractLoss:
    """Map ``'squared' | 'exponential' | 'cross_entropy'`` (and a reduction) to a loss object."""
    if isinstance(name, AbstractLoss):
        return name
    check_choice("loss.name", name, LOSSES)
    if reduction is None:
        return LOSSES[name]()
    if reduction not in ("mean", "sum"):
        raise invalid("loss.reduction", reduction, "one of 'mean', 'sum'")
    return LOSSES[name](reduction=cast(Reduction, reduction))  # checked to be 'mean' or 'sum' just above
