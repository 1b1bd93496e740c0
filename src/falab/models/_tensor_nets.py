"""Linear tensor networks of P002 (Yun, Krishnan & Mobahi, ICLR 2021) as layered models (claims.md §1.7).

A linear tensor network ``f(x) = M(x) o (v_1, .., v_L) = x^T beta(Theta)`` has parameters ``v_l in R^{k_l}`` (keys
``'v1' .. 'vL'``, leading dimensions = ensemble members). Each architecture presents itself to the learning rules as
a deep linear network whose dense layer weights are *linear* in one ``v_l``: ``W_l = A_l(v_l)`` (row convention
``H_l = A_{l-1} W_l^T``). :meth:`pullback` is the adjoint ``A_l^*``, so ``Backprop().update`` is exactly
``grad_{v_l} L`` and the flows/Euler steps of :mod:`falab.dynamics` are P002's GD flow (eq. 7) and GD.

* :class:`FullyConnectedTensorNet` (eq. 5/10): ``W_l = (W_l^{paper})^T``, ``v_l = vec(W_l^{paper})`` column-major.
* :class:`DiagonalNet` (eq. 3/11): ``W_l = diag(w_l)`` for l < L and the read-out ``w_L^T`` (1 x d).
* :class:`CircularConvNet` (eq. 4/12): ``W_l[i, m] = w_l[(m - i) mod d]`` (zero when that index >= k_l), the matrix of
  ``h -> h * w_l`` with ``(a * b)[i] = sum_{j<k} a[(i + j) mod d] b[j]``; read-out ``w_L^T``, ``k_L = d``.
* :class:`DeepMatrixSensing` (eq. 13): input ``vec(A)`` (row-major), ``f = <A, W_1 .. W_L>``; hidden state
  ``Z_l = W_l^T Z_{l-1}`` so layer l < L is ``kron(W_l^T, I_d)`` and the read-out is ``vec(W_L)^T``.

The data tensors ``M(x)`` themselves (the definition of the model) live in :mod:`falab.theory._p002`; the tests check
``model(params, x) = M(x) o (v_1..v_L)``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import final

import torch
from torch import Tensor

from .._checks import check_positive, check_positive_int, invalid
from ..functional import AbstractActivation, get_activation
from ._base import AbstractLayeredModel, Params


def _check_size_and_depth(d: int, depth: int) -> None:
    check_positive_int("d", d)
    if not isinstance(depth, int) or depth < 2:
        raise invalid("depth", depth, "an integer L >= 2")


class AbstractTensorNet(AbstractLayeredModel):
    """A linear tensor network with parameters ``v_1..v_L`` whose dense layers are linear maps of them."""

    @property
    @abc.abstractmethod
    def param_sizes(self) -> tuple[int, ...]:
        """``(k_1, .., k_L)``."""

    @property
    @abc.abstractmethod
    def input_dim(self) -> int: ...

    @abc.abstractmethod
    def dense(self, l: int, v: Tensor) -> Tensor:
        """Dense weight of layer ``l`` (0-based) from ``v_{l+1}`` ``(..., k)`` -> ``(..., n_l, n_{l-1})``."""

    @abc.abstractmethod
    def dense_adjoint(self, l: int, g: Tensor) -> Tensor:
        """Adjoint of :meth:`dense`: ``(..., n_l, n_{l-1})`` -> ``(..., k)`` (so ``<dense(v), G> = <v, adjoint(G)>``)."""

    @property
    def n_layers(self) -> int:
        return len(self.param_sizes)

    @property
    def activations(self) -> tuple[AbstractActivation, ...]:
        return (get_activation("identity"),) * (self.n_layers - 1)

    def param_names(self) -> list[str]:
        return [f"v{l}" for l in range(1, self.n_layers + 1)]

    def param_shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """``v_l (k_l,)`` (P002 eq. 3)."""
        return {f"v{l}": ((k,), f"(k_{l},)") for l, k in enumerate(self.param_sizes, start=1)}

    def io_widths(self) -> tuple[int, int]:
        return self.input_dim, 1

    def layer_weights(self, params: Params) -> list[Tensor]:
        return [self.dense(l, params[f"v{l + 1}"]) for l in range(self.n_layers)]

    def pullback(self, params: Params, weight_updates: Sequence[Tensor], bias_updates: Sequence[Tensor | None]) -> Params:
        del params, bias_updates
        return {f"v{l + 1}": self.dense_adjoint(l, g) for l, g in enumerate(weight_updates)}

    def structured_feedback(self, rule: str, vectors: Sequence[Tensor]) -> dict[str, Tensor]:
        """Feedback in the *structure* of the weight it replaces, as the dense matrices the rules store.

        ``rule='fa'``: ``vectors = (b_2, .., b_L)``, ``b_l`` shaped like ``v_l`` (a vector for a diagonal layer, a
        filter for a convolution); returns ``{'B<l>': dense(b_l)}`` (``diag(b_l)``, the circulant of the filter, the
        read-out row). ``rule='dfa'``: ``vectors = (d_1, .., d_{L-1})``, ``d_l`` of the width ``n_l`` of layer l's
        output; returns ``{'D<l>': d_l}`` as the ``(1, n_l)`` row DFA stores (the shape of ``W_L .. W_{l+1}``).
        Pass the result as ``rule.init(..., feedback=...)`` or as a :class:`~falab.dynamics.Problem` state.
        """
        vs = [torch.as_tensor(v, dtype=torch.float64) for v in vectors]
        if rule == "fa":
            if len(vs) != self.n_layers - 1:
                raise invalid("feedback vectors", len(vs), f"{self.n_layers - 1} (b_2 .. b_L)")
            out = {}
            for l, v in enumerate(vs, start=2):
                if v.shape[-1] != self.param_sizes[l - 1]:
                    raise invalid(f"feedback b_{l} length", v.shape[-1], f"k_{l} = {self.param_sizes[l - 1]}")
                out[f"B{l}"] = self.dense(l - 1, v).contiguous()
            return out
        if rule == "dfa":
            if len(vs) != self.n_layers - 1:
                raise invalid("feedback vectors", len(vs), f"{self.n_layers - 1} (d_1 .. d_(L-1))")
            zero = {f"v{l + 1}": torch.zeros(k, dtype=torch.float64) for l, k in enumerate(self.param_sizes)}
            widths = [w.shape[-2] for w in self.layer_weights(zero)]
            out = {}
            for l, v in enumerate(vs, start=1):
                if v.shape[-1] != widths[l - 1]:
                    raise invalid(f"feedback d_{l} length", v.shape[-1], f"n_{l} = {widths[l - 1]}")
                out[f"D{l}"] = v.unsqueeze(-2).contiguous()
            return out
        raise invalid("rule", rule, "'fa' or 'dfa'")

    def beta(self, params: Params) -> Tensor:
        """Linear coefficients ``beta_k = f(e_k)`` (claims.md §1.7), shape ``(..., d)``."""
        eye = torch.eye(self.input_dim, dtype=params["v1"].dtype)
        return self(params, eye)[..., 0]

    def from_directions(self, directions: Sequence[Tensor], alpha: float | Sequence[float]) -> Params:
        """``v_l(0) = alpha * vbar_l`` (P002 eq. 7). ``alpha`` may be a list (one per ensemble member, leading dim)."""
        if len(directions) != self.n_layers:
            raise invalid("directions", len(directions), f"{self.n_layers} initial directions (one per layer)")
        a = torch.as_tensor(alpha, dtype=torch.float64)
        out = {}
        for l, (vb, k) in enumerate(zip(directions, self.param_sizes), start=1):
            vb = torch.as_tensor(vb, dtype=torch.float64)
            if vb.shape[-1] != k:
                raise invalid(f"directions[{l - 1}] length", vb.shape[-1], f"k_{l} = {k}")
            out[f"v{l}"] = (a[..., None] * vb if a.dim() else a * vb).contiguous()
        return out


@final
@dataclass(frozen=True)
class FullyConnectedTensorNet(AbstractTensorNet):
    """``f(x) = x^T W_1 .. W_{L-1} w_L`` with ``W_l (d_l, d_{l+1})``, ``widths = (d_1 = d, .., d_L)`` (P002 eq. 5).

    ``v_l = vec(W_l)`` (column-major) reshaped C-order to ``(d_{l+1}, d_l)`` *is* the dense weight ``W_l^T``.
    """

    widths: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.widths, (tuple, list)) or len(self.widths) < 2:
            raise invalid("widths", self.widths, "(d_1, .., d_L) with L >= 2")
        for w in self.widths:
            check_positive_int("widths entry", w)
        object.__setattr__(self, "widths", tuple(self.widths))

    @property
    def param_sizes(self) -> tuple[int, ...]:
        w = self.widths
        return tuple(w[l] * w[l + 1] for l in range(len(w) - 1)) + (w[-1],)

    @property
    def input_dim(self) -> int:
        return self.widths[0]

    def _out_in(self, l: int) -> tuple[int, int]:
        w = (*self.widths, 1)
        return w[l + 1], w[l]

    def dense(self, l: int, v: Tensor) -> Tensor:
        return v.reshape(*v.shape[:-1], *self._out_in(l))

    def dense_adjoint(self, l: int, g: Tensor) -> Tensor:
        return g.reshape(*g.shape[:-2], -1)

    def matrices(self, params: Params) -> list[Tensor]:
        """The paper's ``W_1 .. W_{L-1}`` ``(d_l, d_{l+1})`` and ``w_L`` ``(d_L, 1)``."""
        return [self.dense(l, params[f"v{l + 1}"]).transpose(-1, -2) for l in range(self.n_layers)]


@final
@dataclass(frozen=True)
class DiagonalNet(AbstractTensorNet):
    """``f(x) = (x .* w_1 .* .. .* w_{L-1})^T w_L``, ``w_l in R^d`` (P002 eq. 3); ``beta = w_1 .* .. .* w_L``."""

    d: int
    depth: int = 2

    def __post_init__(self) -> None:
        _check_size_and_depth(self.d, self.depth)

    @property
    def param_sizes(self) -> tuple[int, ...]:
        return (self.d,) * self.depth

    @property
    def input_dim(self) -> int:
        return self.d

    def dense(self, l: int, v: Tensor) -> Tensor:
        return v.unsqueeze(-2) if l == self.depth - 1 else torch.diag_embed(v)

    def dense_adjoint(self, l: int, g: Tensor) -> Tensor:
        return g[..., 0, :] if l == self.depth - 1 else torch.diagonal(g, dim1=-2, dim2=-1)


@final
@dataclass(frozen=True)
class CircularConvNet(AbstractTensorNet):
    """``f(x) = (((x * w_1) * w_2) .. * w_{L-1})^T w_L`` with circular cross-correlation
    ``(a * b)[i] = sum_{j<k} a[(i + j) mod d] b[j]`` and filters ``w_l in R^{k_l}``, ``k_l <= d``, ``k_L = d``
    (P002 eq. 4). ``filters = (k_1, .., k_{L-1})``; full-length means all ``k_l = d``.
    """

    d: int
    filters: tuple[int, ...] = (0,)
    _index: tuple[Tensor, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_positive_int("d", self.d)
        filters = tuple(self.filters)
        if filters == (0,):
            filters = (self.d,)
        for k in filters:
            check_positive_int("filter size", k)
            if k > self.d:
                raise invalid("filter size", k, f"k_l <= d = {self.d}")
        object.__setattr__(self, "filters", filters)
        i = torch.arange(self.d)
        # W_l[i, m] = w[(m - i) mod d]; index into w padded with zeros to length d
        object.__setattr__(self, "_index", ((i[None, :] - i[:, None]) % self.d,))

    @property
    def param_sizes(self) -> tuple[int, ...]:
        return (*self.filters, self.d)

    @property
    def input_dim(self) -> int:
        return self.d

    def dense(self, l: int, v: Tensor) -> Tensor:
        if l == self.n_layers - 1:
            return v.unsqueeze(-2)
        k = v.shape[-1]
        pad = torch.cat([v, v.new_zeros(*v.shape[:-1], self.d - k)], dim=-1)
        return pad[..., self._index[0]]

    def dense_adjoint(self, l: int, g: Tensor) -> Tensor:
        if l == self.n_layers - 1:
            return g[..., 0, :]
        k = self.filters[l]
        i = torch.arange(self.d)
        j = torch.arange(k)
        cols = (i[:, None] + j[None, :]) % self.d  # (d, k): entry (i, (i + j) mod d) carries w[j]
        return g[..., i[:, None], cols].sum(dim=-2)


@final
@dataclass(frozen=True)
class DeepMatrixSensing(AbstractLayeredModel):
    """Deep matrix sensing (P002 eq. 13): ``f(A) = <A, W_1 W_2 .. W_L>``, ``W_l (d, d)``, keys ``'W1' .. 'WL'``.

    Inputs are ``vec(A)`` (row-major, length ``d^2``). Layer ``l < L`` maps ``Z -> W_l^T Z`` (dense
    ``kron(W_l^T, I_d)``), the read-out is ``<W_L, Z>`` (dense ``vec(W_L)^T``), since
    ``<A, W_1 .. W_L> = <W_{L-1}^T .. W_1^T A, W_L>``. P002's loss ``sum (y - f)^2`` is twice ``SquaredLoss('sum')``:
    the same flow at half speed.
    """

    d: int
    depth: int = 2

    def __post_init__(self) -> None:
        _check_size_and_depth(self.d, self.depth)

    @property
    def n_layers(self) -> int:
        return self.depth

    @property
    def activations(self) -> tuple[AbstractActivation, ...]:
        return (get_activation("identity"),) * (self.depth - 1)

    def layer_weights(self, params: Params) -> list[Tensor]:
        d = self.d
        out = []
        for l in range(1, self.depth):
            w = params[f"W{l}"]
            eye = torch.eye(d, dtype=w.dtype)
            # [(c, b), (a, b')] = W[a, c] delta(b, b')
            big = w.transpose(-1, -2)[..., :, None, :, None] * eye[:, None, :]
            out.append(big.reshape(*w.shape[:-2], d * d, d * d))
        wl = params[f"W{self.depth}"]
        out.append(wl.reshape(*wl.shape[:-2], 1, d * d))
        return out

    def pullback(self, params: Params, weight_updates: Sequence[Tensor], bias_updates: Sequence[Tensor | None]) -> Params:
        del params, bias_updates
        d = self.d
        out = {}
        for l, g in enumerate(weight_updates[:-1], start=1):
            g4 = g.reshape(*g.shape[:-2], d, d, d, d)  # [c, b, a, b']
            out[f"W{l}"] = torch.diagonal(g4, dim1=-3, dim2=-1).sum(-1).transpose(-1, -2)
        g = weight_updates[-1]
        out[f"W{self.depth}"] = g.reshape(*g.shape[:-2], d, d)
        return out

    def param_shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """``W_l (d, d)`` (P002 eq. 13)."""
        return {f"W{l}": ((self.d, self.d), "(d, d)") for l in range(1, self.depth + 1)}

    def io_widths(self) -> tuple[int, int]:
        return self.d * self.d, 1

    def product(self, params: Params) -> Tensor:
        """``W_1 W_2 .. W_L``."""
        p = params["W1"]
        for l in range(2, self.depth + 1):
            p = p @ params[f"W{l}"]
        return p

    def init_params(self, alpha: float, *, dtype: torch.dtype = torch.float64) -> Params:
        """P002 Corollary 5 initialisation: ``W_l(0) = alpha I`` (l < L), ``W_L(0) = 0``."""
        check_positive("alpha", alpha)
        out = {f"W{l}": alpha * torch.eye(self.d, dtype=dtype) for l in range(1, self.depth)}
        out[f"W{self.depth}"] = torch.zeros(self.d, self.d, dtype=dtype)
        return out


__all__ = ["AbstractTensorNet", "FullyConnectedTensorNet", "DiagonalNet", "CircularConvNet", "DeepMatrixSensing"]
