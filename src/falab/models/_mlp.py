"""Multi-layer perceptrons of any depth; deep linear networks are the identity-activation case (claims.md §1.1)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast, final

import torch
from torch import Tensor

from .._checks import check_choice, check_positive, check_positive_int, invalid
from ..functional import AbstractActivation, get_activation
from ._base import AbstractLayeredModel, Params

INIT_SCHEMES = ("gaussian", "xavier", "kaiming", "zeros")


@final
@dataclass(frozen=True)
class MLP(AbstractLayeredModel):
    r"""Fully connected network :math:`H_l = A_{l-1}W_l^T + b_l`, :math:`A_l = \phi_l(H_l)`, linear read-out.

    Args:
        widths: ``(n_0, n_1, ..., n_L)``, input width first, output width last (at least two entries).
        activation: one activation for every hidden layer, or one per hidden layer (``L - 1`` entries);
            names: identity, relu, leaky_relu (or ``'leaky_relu:0.1'``), tanh, sigmoid, gelu.
        bias: whether layers carry biases.

    Parameters are ``{'W1': (..., n_1, n_0), ..., 'WL': ..., 'b1': ...}``, float64 by default.

    Examples:
        >>> model = MLP((3, 5, 2), "relu")
        >>> params = model.init_params(torch.Generator().manual_seed(0))
        >>> model(params, torch.zeros(4, 3, dtype=torch.float64)).shape
        torch.Size([4, 2])
    """

    widths: tuple[int, ...]
    activation: str | AbstractActivation | tuple[str | AbstractActivation, ...] = "relu"
    bias: bool = False
    _acts: tuple[AbstractActivation, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        widths = tuple(self.widths) if isinstance(self.widths, (list, tuple)) else self.widths
        if not isinstance(widths, tuple) or len(widths) < 2:
            raise invalid("model.widths", self.widths, "a list of at least two layer widths, input first")
        for w in widths:
            check_positive_int("model.widths entry", w)
        object.__setattr__(self, "widths", widths)
        n_hidden = len(widths) - 2
        act = self.activation
        if isinstance(act, (list, tuple)):
            if len(act) != n_hidden:
                raise invalid("model.activation", list(act), f"one activation or a list of {n_hidden} (one per hidden layer)")
            acts = tuple(get_activation(a) for a in act)
        else:
            acts = (get_activation(act),) * n_hidden
        object.__setattr__(self, "_acts", acts)

    @property
    def n_layers(self) -> int:
        return len(self.widths) - 1

    @property
    def activations(self) -> tuple[AbstractActivation, ...]:
        return self._acts

    def param_shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """``W_l (n_l, n_{l-1})`` and, when present, ``b_l (n_l,)``."""
        spec: dict[str, tuple[tuple[int, ...], str]] = {}
        for l in range(1, self.n_layers + 1):
            spec[f"W{l}"] = ((self.widths[l], self.widths[l - 1]), f"(n_{l}, n_{l - 1})")
        for l in range(1, self.n_layers + 1):
            spec[f"b{l}"] = ((self.widths[l],), f"(n_{l},)")
        return spec

    def optional_params(self) -> tuple[str, ...]:
        return tuple(f"b{l}" for l in range(1, self.n_layers + 1))

    def io_widths(self) -> tuple[int, int]:
        return self.widths[0], self.widths[-1]

    def weight_names(self) -> list[str]:
        return [f"W{l}" for l in range(1, self.n_layers + 1)]

    def layer_weights(self, params: Params) -> list[Tensor]:
        return [params[f"W{l}"] for l in range(1, self.n_layers + 1)]

    def layer_biases(self, params: Params) -> list[Tensor | None]:
        return [params.get(f"b{l}") for l in range(1, self.n_layers + 1)]

    def pullback(self, params: Params, weight_updates: Sequence[Tensor], bias_updates: Sequence[Tensor | None]) -> Params:
        out: Params = {}
        for l, (gw, gb) in enumerate(zip(weight_updates, bias_updates), start=1):
            out[f"W{l}"] = gw
            if gb is not None:
                out[f"b{l}"] = gb
        return out

    def init_params(
        self,
        generator: torch.Generator,
        *,
        ensemble: int | None = None,
        scheme: str = "xavier",
        std: float | Sequence[float] | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> Params:
        """Draw parameters. ``scheme``: gaussian (with ``std``, one value or one per layer), xavier
        (std = sqrt(2/(fan_in+fan_out))), kaiming (std = sqrt(2/fan_in)) or zeros; biases start at zero.
        ``ensemble=K`` adds a leading dimension of K independent networks."""
        check_choice("init.scheme", scheme, INIT_SCHEMES)
        if ensemble is not None:
            check_positive_int("ensemble", ensemble)
        lead = () if ensemble is None else (ensemble,)
        stds: list[float]
        if scheme == "gaussian":
            if std is None:
                raise invalid("init.std", None, "a number > 0 (or one per layer) for scheme 'gaussian'")
            # a list/tuple is one std per layer; any other value is the one std of every layer
            stds = list(std) if isinstance(std, (list, tuple)) else [cast(float, std)] * self.n_layers
            if len(stds) != self.n_layers:
                raise invalid("init.std", std, f"one number or {self.n_layers} numbers (one per layer)")
            for s in stds:
                check_positive("init.std", s, allow_zero=True)
        params: Params = {}
        for l in range(1, self.n_layers + 1):
            fan_in, fan_out = self.widths[l - 1], self.widths[l]
            shape = (*lead, fan_out, fan_in)
            if scheme == "zeros":
                w = torch.zeros(shape, dtype=dtype)
            else:
                if scheme == "gaussian":
                    s = stds[l - 1]
                elif scheme == "xavier":
                    s = math.sqrt(2.0 / (fan_in + fan_out))
                else:
                    s = math.sqrt(2.0 / fan_in)
                w = s * torch.randn(shape, generator=generator, dtype=dtype)
            params[f"W{l}"] = w
            if self.bias:
                params[f"b{l}"] = torch.zeros((*lead, fan_out), dtype=dtype)
        return params


def deep_linear(widths: Sequence[int], *, bias: bool = False) -> MLP:
    """A deep linear network: an :class:`MLP` with identity activations."""
    return MLP(tuple(widths), "identity", bias=bias)
