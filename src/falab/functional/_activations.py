"""Elementwise activations phi with their derivatives phi'.

The conservation law of FA (P000 Thm 5.1, generalised in claims.md §1.9) needs ``phi(h) = phi'(h) h`` at the layer in
question; each activation says whether it satisfies this (``homogeneous``), so instruments can state which law applies.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import final

import torch
from torch import Tensor

from .._checks import check_choice, invalid


class AbstractActivation(abc.ABC):
    """An elementwise nonlinearity phi with derivative phi' (phi'(0) = 0 for ReLU, claims.md §6)."""

    name: str = "abstract"
    homogeneous: bool = False  # phi(h) == phi'(h) * h for every h

    @abc.abstractmethod
    def __call__(self, h: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def derivative(self, h: Tensor) -> Tensor: ...


@final
@dataclass(frozen=True)
class Identity(AbstractActivation):
    """phi(h) = h (deep linear networks)."""

    name: str = "identity"
    homogeneous: bool = True

    def __call__(self, h: Tensor) -> Tensor:
        return h

    def derivative(self, h: Tensor) -> Tensor:
        return torch.ones_like(h)


@final
@dataclass(frozen=True)
class ReLU(AbstractActivation):
    """phi(h) = max(h, 0), phi'(h) = 1[h > 0] (so phi'(0) = 0)."""

    name: str = "relu"
    homogeneous: bool = True

    def __call__(self, h: Tensor) -> Tensor:
        return torch.clamp_min(h, 0.0)

    def derivative(self, h: Tensor) -> Tensor:
        return (h > 0).to(h.dtype)


@final
@dataclass(frozen=True)
class LeakyReLU(AbstractActivation):
    """phi(h) = h for h > 0, slope * h otherwise (positively 1-homogeneous for every slope)."""

    slope: float = 0.01
    name: str = "leaky_relu"
    homogeneous: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.slope, (int, float)) or not math.isfinite(self.slope):
            raise invalid("activation.slope", self.slope, "a finite number")

    def __call__(self, h: Tensor) -> Tensor:
        return torch.where(h > 0, h, self.slope * h)

    def derivative(self, h: Tensor) -> Tensor:
        one = torch.ones_like(h)
        return torch.where(h > 0, one, self.slope * one)


@final
@dataclass(frozen=True)
class Tanh(AbstractActivation):
    """phi(h) = tanh(h), phi'(h) = 1 - tanh(h)^2 (not homogeneous: FA's law fails, P000 flag)."""

    name: str = "tanh"

    def __call__(self, h: Tensor) -> Tensor:
        return torch.tanh(h)

    def derivative(self, h: Tensor) -> Tensor:
        t = torch.tanh(h)
        return 1.0 - t * t


@final
@dataclass(frozen=True)
class Sigmoid(AbstractActivation):
    """phi(h) = 1 / (1 + exp(-h)), phi' = phi (1 - phi)."""

    name: str = "sigmoid"

    def __call__(self, h: Tensor) -> Tensor:
        return torch.sigmoid(h)

    def derivative(self, h: Tensor) -> Tensor:
        s = torch.sigmoid(h)
        return s * (1.0 - s)


@final
@dataclass(frozen=True)
class GELU(AbstractActivation):
    """phi(h) = h Phi(h) (exact erf form), phi'(h) = Phi(h) + h pdf(h)."""

    name: str = "gelu"

    def __call__(self, h: Tensor) -> Tensor:
        return h * 0.5 * (1.0 + torch.erf(h / math.sqrt(2.0)))

    def derivative(self, h: Tensor) -> Tensor:
        cdf = 0.5 * (1.0 + torch.erf(h / math.sqrt(2.0)))
        pdf = torch.exp(-0.5 * h * h) / math.sqrt(2.0 * math.pi)
        return cdf + h * pdf


ACTIVATIONS: dict[str, type[AbstractActivation]] = {
    "identity": Identity,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "gelu": GELU,
}


def get_activation(spec: str | AbstractActivation, *, slope: float | None = None) -> AbstractActivation:
    """Map a name (``'relu'``, ``'leaky_relu'``, ``'leaky_relu:0.1'``, ...) or an activation object to an activation."""
    if isinstance(spec, AbstractActivation):
        return spec
    if isinstance(spec, str) and spec.startswith("leaky_relu:"):
        try:
            slope = float(spec.split(":", 1)[1])
        except ValueError:
            raise invalid("activation", spec, "'leaky_relu:<slope>' with a number as slope") from None
        spec = "leaky_relu"
    check_choice("activation", spec, ACTIVATIONS)
    if spec == "leaky_relu":
        return LeakyReLU(slope=0.01 if slope is None else slope)
    return ACTIVATIONS[spec]()
