"""How feedback matrices are drawn (at ``init``) and which matrix is used at each step (``current``).

Feedback is stored with the shape of the weight it replaces (claims.md §6). Fixed kinds return the stored matrix;
sign-symmetry kinds (added in ``_sign_symmetry.py``) compute the matrix actually used from the current weight.

Per-step randomness (brSF) is part of the rule *state*, never of the config: such a kind has ``per_step = True`` and
its :meth:`AbstractFeedback.current` draws from the generator :func:`step_generator` makes out of a seed stored in the
state at ``init`` and the number of steps taken, so the draw of step ``k`` is a pure function of ``(seed, k)``.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import ClassVar, final

import numpy as np
import torch
from torch import Tensor

from .._checks import check_positive


def step_generator(seed: int | Tensor, step: int | Tensor) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from ``(seed, step)`` by numpy's ``SeedSequence`` (a hash designed for
    independent streams), so that per-step draws are deterministic, independent between steps and need no
    mutable generator anywhere."""
    words = np.random.SeedSequence([int(seed), int(step)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(words[0]) << 32 | int(words[1]))


class AbstractFeedback(abc.ABC):
    """A feedback kind: ``init`` draws what is stored, ``current`` gives the matrix used at this step.

    ``draws`` says whether ``init`` consumes random numbers (``False``: no generator is needed); ``per_step`` whether
    ``current`` draws fresh random numbers at every step (then it needs the step's ``generator``).
    """

    draws: ClassVar[bool] = True
    per_step: ClassVar[bool] = False

    @abc.abstractmethod
    def init(self, weight: Tensor, *, generator: torch.Generator) -> Tensor:
        """Draw the stored feedback for a forward weight of this shape (leading dims = ensemble members)."""

    def current(self, weight: Tensor, stored: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """The matrix used in the backward pass (fixed kinds: the stored matrix). ``generator``: the step's random
        source, required by ``per_step`` kinds and ignored by the others."""
        del weight, generator
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

    draws: ClassVar[bool] = False

    def init(self, weight: Tensor, *, generator: torch.Generator) -> Tensor:
        del generator
        return weight.detach().clone()
