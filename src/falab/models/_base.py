"""The model contract shared by every family (MLP, deep linear, tensor networks, matrix factorisation).

A model is a frozen description (widths, activations, structure); its parameters are a plain ``dict[str, Tensor]``
(leading dimensions = ensemble members). Every family presents itself to the learning rules as a *layered* network
``H_l = A_{l-1} W_l^T + b_l`` through :meth:`layer_weights` / :meth:`layer_biases`, and maps updates of those dense
weights back to its own parameters with :meth:`pullback` (the adjoint of the parametrisation; identity for an MLP).
That is how one implementation of each rule serves every family.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from .._checks import ShapeSpec, check_params_shapes, check_rows
from ..functional import AbstractActivation, Trace, forward

Params = dict[str, Tensor]


class AbstractLayeredModel(abc.ABC):
    """A network that the learning rules see as layers ``W_1 .. W_L`` with activations ``phi_1 .. phi_{L-1}``."""

    @property
    @abc.abstractmethod
    def n_layers(self) -> int: ...

    @property
    @abc.abstractmethod
    def activations(self) -> tuple[AbstractActivation, ...]: ...

    @abc.abstractmethod
    def layer_weights(self, params: Params) -> list[Tensor]:
        """Dense ``W_l`` of shape ``(..., n_l, n_{l-1})``, l = 1..L."""

    def layer_biases(self, params: Params) -> list[Tensor | None]:
        """Biases ``b_l`` of shape ``(..., n_l)`` or ``None``; default: no biases."""
        return [None] * self.n_layers

    @abc.abstractmethod
    def pullback(self, params: Params, weight_updates: Sequence[Tensor], bias_updates: Sequence[Tensor | None]) -> Params:
        """Map updates of the dense layer weights to updates of ``params`` (chain rule: the adjoint of the
        parametrisation). For exact gradients this is exact; for FA it applies the same linear map to FA's updates."""

    def param_shapes(self) -> ShapeSpec:
        """The parameters' trailing shapes, ``name -> (shape, meaning)`` (leading dimensions: ensemble members).
        Default: empty (a family that does not declare its shapes is not checked)."""
        return {}

    def optional_params(self) -> tuple[str, ...]:
        """Names in :meth:`param_shapes` that may be absent (biases). Default: none."""
        return ()

    def io_widths(self) -> tuple[int, int] | None:
        """``(n_0, n_L)``: the input width data rows must have and the output width of targets (None: unknown)."""
        return None

    @functools.cached_property
    def _shape_spec(self) -> tuple[ShapeSpec, tuple[str, ...], dict[str, tuple[int, ...]]]:
        spec = self.param_shapes()  # models are frozen: computed once per model
        return spec, self.optional_params(), {name: shape for name, (shape, _) in spec.items()}

    def check_params(self, params: Params) -> None:
        """Parameters against :meth:`param_shapes`, one ``Invalid`` line on a mismatch, e.g.
        ``Invalid W1 shape: (7, 15) (expected (30, 15), i.e. (n_1, n_0))``."""
        spec, optional, shapes = self._shape_spec
        if not spec:
            return
        if not isinstance(params, Mapping):
            check_params_shapes(params, spec, optional=optional)
        # fast path (a forward pass checks every call): exact keys, trailing shapes, one leading shape
        lead = None
        ok = all(k in shapes for k in params)
        for name, shape in shapes.items():
            if not ok:
                break
            t = params.get(name)
            if t is None:
                ok = name in optional
                continue
            ts = getattr(t, "shape", None)
            n = len(shape)
            if ts is None or len(ts) < n or tuple(ts[len(ts) - n:]) != shape:
                ok = False
            elif lead is None:
                lead = ts[: len(ts) - n]
            else:
                ok = ts[: len(ts) - n] == lead
        if not ok:
            check_params_shapes(params, spec, optional=optional)

    def check_inputs(self, x: Tensor, name: str = "x") -> Tensor:
        """Data rows ``x (..., N, n_0)``: the trailing width must be the model's input width."""
        io = self.io_widths()
        if io is not None:
            check_rows(name, x, io[0], "n_0")
        return x

    def trace(self, params: Params, x: Tensor) -> Trace:
        return forward(self.layer_weights(params), self.layer_biases(params), self.activations, x)

    def __call__(self, params: Params, x: Tensor) -> Tensor:
        """The network's output on data rows ``x (..., N, n_0)``, after checking the parameters' and the data's shapes
        (the rules call :meth:`trace` directly, unchecked, inside flows)."""
        self.check_params(params)
        self.check_inputs(x)
        return self.trace(params, x).output

    def with_bias(self, params: Params) -> list[bool]:
        return [b is not None for b in self.layer_biases(params)]


def stack_params(members: Sequence[Params]) -> Params:
    """Stack single-network parameter dicts into one ensemble dict (new leading dimension)."""
    keys = list(members[0])
    return {k: torch.stack([m[k] for m in members]) for k in keys}


def member(params: Params, k: int) -> Params:
    """The parameters of ensemble member ``k``."""
    return {name: t[k] for name, t in params.items()}
