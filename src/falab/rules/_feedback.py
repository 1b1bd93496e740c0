"""How feedback matrices are drawn (at ``init``) and which matrix is used at each step (``current``).

Feedback is stored with the shape of the weight it replaces (claims.md §6). Fixed kinds return the stored matrix;
sign-symmetry kinds (added in ``_sign_symmetry.py``) compute the matrix actually used from the current weight.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import final

import torch
from torch import Tensor

from .._checks import check_positive, invalid


class AbstractFeedback(abc.ABC):
    """A feedback kind: ``init`` draws what is stored, ``current`` gives the matrix used at this step."""

    @abc.abstractmethod
    def init(self, weight: Tensor, *, generator: torch.Generator) -> Tensor:
        """Draw the stored feedback for a forward weight of this shape (leading dims = ensemble members)."""

    def current(self, weight: Tensor, stored: Tensor) -> Tensor:
        """The matrix used in the backward pass (fixed kinds: the stored matrix)."""
        del weight
        return stored

    @property
    def fixed(self) -> bool:
        """True when ``current`` does not depend on the forward weight (conservation laws need this)."""
        return True


@final
@dataclass(frozen=True)
class Gaussian(AbstractFeedback):
    """``B_ij ~ N(0, std^2)`` iid."""

    std: float = 1.0

    def __post_init__(self) -> None:
        check_positive("feedback.std", self.std)

    def init(self, weight: Tensor, *, generator: torch.Generator) -> Tensor:
        return self.std * torch.randn(weight.shape, generator=generator, dtype=weight.dtype)


@final
@dataclass(frozen=True)
class Uniform(AbstractFeedback):
    """``B_ij ~ U(-scale, scale)`` iid."""

    scale: float = 1.0

    def __post_init__(self) -> None:
        check_positive("feedback.scale", self.scale)

    def init(self, weight: Tensor, *, generator: torch.Generator) -> Tensor:
        u = torch.rand(weight.shape, generator=generator, dtype=weight.dtype)
        return self.scale * (2.0 * u - 1.0)


@final
@dataclass(frozen=True)
class ScaledLikeWeight(AbstractFeedback):
    """Gaussian feedback rescaled so that ``||B||_F = ||W(0)||_F`` per ensemble member (a random matrix of the
    forward weight's scale; the P000/P003 'same distribution as W' reading). Zero weights give N(0, 1/fan_in)."""

    def init(self, weight: Tensor, *, generator: torch.Generator) -> Tensor:
        g = torch.randn(weight.shape, generator=generator, dtype=weight.dtype)
        wn = torch.linalg.matrix_norm(weight).unsqueeze(-1).unsqueeze(-1)
        gn = torch.linalg.matrix_norm(g).unsqueeze(-1).unsqueeze(-1)
        fallback = math.sqrt(weight.shape[-2] * 1.0) * torch.ones_like(wn)  # ||N(0,1/fan_in)|| ~ sqrt(n_out)
        target = torch.where(wn > 0, wn, fallback)
        return g * (target / gn)


@final
@dataclass(frozen=True)
class CopyOfWeight(AbstractFeedback):
    """``B = W(0)``: feedback starts aligned (P000 Cor 5.1 / Fig. 1 reading 'B copied from W_2(0)')."""

    def init(self, weight: Tensor, *, generator: torch.Generator) -> Tensor:
        del generator
        return weight.detach().clone()


@dataclass(frozen=True)
class UserTensor(AbstractFeedback):
    """Feedback given by the user: one tensor per feedback slot, keyed like the rule's state (``'B2'``, ``'D1'``)."""

    tensors: dict[str, Tensor] | None = None

    def init(self, weight: Tensor, *, generator: torch.Generator) -> Tensor:  # pragma: no cover - handled by rules
        raise invalid("feedback", "user", "tensors passed through the rule's init (use rule.init(..., feedback=...))")


FEEDBACK_KINDS: dict[str, type[AbstractFeedback]] = {
    "gaussian": Gaussian,
    "uniform": Uniform,
    "scaled_like_weight": ScaledLikeWeight,
    "copy_of_weight": CopyOfWeight,
}
