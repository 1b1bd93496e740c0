r"""Sign-symmetry feedback: the feedback matrix shares the *signs* of the forward weight, not its magnitudes.

Reading of the references (Liao, Leibo & Poggio 2016, "How important is weight symmetry in backpropagation?",
arXiv:1510.05067, §3; Moskovitz, Litwin-Kumar & Abbott 2018, arXiv:1812.06488; BioTorch 0.0.16 docs, which take
``|M|``):

* uSF (uniform sign-concordant feedback): :math:`B = s\,\mathrm{sign}(W)`. Liao et al. use ``sign(W)`` and need
  batch normalisation/"batch Manhattan" to fix the scale; we fix it instead with one scalar ``s`` per matrix, by default
  the RMS of the forward weight at init (Xavier's std for a Xavier-initialised layer, which is BioTorch's choice).
* frSF (fixed random-magnitude sign-concordant): :math:`B = |R|\circ\mathrm{sign}(W)` with ``R`` drawn once (Gaussian,
  ``||R||_F = ||W(0)||_F``) and kept.
* brSF (batchwise random-magnitude sign-concordant): :math:`B_t = |R_t|\circ\mathrm{sign}(W)` with ``R_t`` redrawn
  for every step (mini-batch); ``R_t ~ N(0, s^2)`` iid with ``s`` the RMS of ``W(0)``. The draw of step ``t`` comes
  from :func:`~falab.rules.step_generator` ``(seed, t)`` with a per-slot seed held in the rule state (functional
  route) or in the layer's buffers (``falab.nn``), so it is reproducible and ``feedback_used`` is exactly the matrix
  the update used.

All three track the sign of the *current* weight, so ``current`` depends on ``W`` (``fixed`` is False) and P000's
conservation law does not apply. Matrices carry optional leading ensemble dimensions; scales are per member.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, final

import torch
from torch import Tensor

from .._checks import check_positive, invalid
from ._feedback import AbstractFeedback


def _rms(weight: Tensor) -> Tensor:
    """RMS of each member's matrix, shape ``(..., 1, 1)``; a zero matrix falls back to ``1/sqrt(fan_in)``."""
    w = weight.detach()
    rms = torch.sqrt((w * w).mean(dim=(-2, -1), keepdim=True))
    fallback = torch.full_like(rms, 1.0 / math.sqrt(max(w.shape[-1], 1)))
    return torch.where(rms > 0, rms, fallback)


class _SignFeedback(AbstractFeedback):
    @property
    def fixed(self) -> bool:
        return False


@final
@dataclass(frozen=True)
class UniformSignFeedback(_SignFeedback):
    r"""uSF: :math:`B = s\,\mathrm{sign}(W)` (Liao et al. 2016, §3 "uniform sign-concordant feedback").

    Args:
        scale: the magnitude ``s``; ``None`` (default) stores the RMS of ``W(0)`` per matrix, so ``||B||_F = ||W(0)||_F``
            when no weight is exactly zero.

    Stored state: the scalar ``s`` with shape ``(..., 1, 1)``.
    """

    scale: float | None = None

    def __post_init__(self) -> None:
        if self.scale is not None:
            check_positive("feedback.scale", self.scale)

    draws: ClassVar[bool] = False

    def init(self, weight: Tensor, *, generator: torch.Generator) -> Tensor:
        del generator
        if self.scale is not None:
            return torch.full((*weight.shape[:-2], 1, 1), float(self.scale), dtype=weight.dtype, device=weight.device)
        return _rms(weight)

    def current(self, weight: Tensor, stored: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        del generator
        return stored * torch.sign(weight.detach())


@final
@dataclass(frozen=True)
class FixedRandomMagnitudeSignFeedback(_SignFeedback):
    r"""frSF: :math:`B = |R|\circ\mathrm{sign}(W)` with ``R`` fixed (Liao et al. 2016, §3).

    Stored state: ``|R|`` (shape of ``W``), Gaussian rescaled so that ``||R||_F = ||W(0)||_F`` per member.
    The feedback *used* is ``|R| * sign(W(t))``; alignment instruments must measure that, not ``|R|``.
    """

    def init(self, weight: Tensor, *, generator: torch.Generator) -> Tensor:
        g = torch.randn(weight.shape, generator=generator, dtype=weight.dtype).to(weight.device)
        gn = torch.sqrt((g * g).sum(dim=(-2, -1), keepdim=True))
        target = _rms(weight) * math.sqrt(weight.shape[-2] * weight.shape[-1])
        return (g * (target / gn)).abs()

    def current(self, weight: Tensor, stored: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        del generator
        return stored * torch.sign(weight.detach())


@final
@dataclass(frozen=True)
class BatchRandomMagnitudeSignFeedback(_SignFeedback):
    r"""brSF: :math:`B_t = |R_t|\circ\mathrm{sign}(W)`, ``R_t ~ N(0, s^2)`` redrawn at every step (Liao et al. 2016).

    No configuration. Stored state: ``s`` = RMS of ``W(0)``, shape ``(..., 1, 1)``; the rule adds a per-slot seed and
    a step counter to its state, and :meth:`current` draws ``R_t`` from the step's generator
    (:func:`~falab.rules.step_generator`), so the same ``(seed, step)`` gives the same matrix.
    """

    draws: ClassVar[bool] = False
    per_step: ClassVar[bool] = True

    def init(self, weight: Tensor, *, generator: torch.Generator) -> Tensor:
        del generator
        return _rms(weight)

    def current(self, weight: Tensor, stored: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        if generator is None:
            raise invalid("generator", None, "the step's generator (brSF redraws |R| at every step; the rule state "
                          "holds its seed and step)")
        w = weight.detach()
        r = torch.randn(w.shape, generator=generator, dtype=w.dtype).to(w.device)
        return stored * r.abs() * torch.sign(w)


SIGN_SYMMETRY_KINDS: dict[str, type[AbstractFeedback]] = {
    "usf": UniformSignFeedback,
    "frsf": FixedRandomMagnitudeSignFeedback,
    "brsf": BatchRandomMagnitudeSignFeedback,
}
