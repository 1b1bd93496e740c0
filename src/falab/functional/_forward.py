"""Forward pass of a layered network, keeping what the backward kernels need (claims.md §1.1).

Row convention for samples (as ``torch.nn.Linear``): ``A_0 = X`` has shape ``(..., N, n_0)``, weights ``W_l`` have
shape ``(..., n_l, n_{l-1})`` and ``H_l = A_{l-1} W_l^T + b_l``; ``A_l = phi_l(H_l)`` for hidden layers and the
read-out ``f = H_L`` is linear. Leading dimensions ``...`` are ensemble members; they broadcast, so shared data
``(N, n_0)`` serves a whole ensemble.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

from torch import Tensor

from ._activations import AbstractActivation


class Trace(NamedTuple):
    """What a forward pass leaves for the backward pass.

    ``inputs[l]`` is the input of layer ``l + 1`` (``A_0 .. A_{L-1}``), ``pre[l]`` its pre-activation
    (``H_1 .. H_L``); ``output`` is ``H_L``.
    """

    inputs: tuple[Tensor, ...]
    pre: tuple[Tensor, ...]

    @property
    def output(self) -> Tensor:
        return self.pre[-1]


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` (batch dimensions broadcast), with the kernel chosen by shape.

    A contraction of length 1 is an outer product: it is computed as the broadcast product ``a * b`` (one pass that
    writes the result), because batched GEMM kernels handle that degenerate shape badly — a (64, 10, 1) x
    (64, 1, 50) ``bmm`` took 40 us, the product 5 us. Each entry is the single product ``a_ik b_kj`` either way, so
    the result is the same to the last bit.
    """
    if a.shape[-1] == 1 and a.dim() >= 2 and b.dim() >= 2:
        return a * b
    return a @ b


@functools.lru_cache(maxsize=256)
def _chain_order(dims: tuple[int, ...]) -> tuple:
    """Cheapest parenthesisation of a matrix chain with ``dims = (p_0, ..., p_m)`` (factor i is ``p_i x p_{i+1}``),
    by the textbook dynamic programme on multiply-adds per member. Returns a nested tuple of factor indices."""
    m = len(dims) - 1
    cost = [[0] * m for _ in range(m)]
    split = [[0] * m for _ in range(m)]
    for length in range(2, m + 1):
        for i in range(m - length + 1):
            j = i + length - 1
            best, arg = None, i
            for s in range(i, j):
                c = cost[i][s] + cost[s + 1][j] + dims[i] * dims[s + 1] * dims[j + 1]
                if best is None or c < best:
                    best, arg = c, s
            assert best is not None  # length >= 2: range(i, j) is not empty, so a split was costed
            cost[i][j], split[i][j] = best, arg

    def build(i: int, j: int) -> tuple | int:
        if i == j:
            return i
        s = split[i][j]
        return (build(i, s), build(s + 1, j))

    return (build(0, m - 1),)


def chain_matmul(factors: Sequence[Tensor]) -> Tensor:
    """The product ``M_1 M_2 ... M_m`` of matrices with broadcasting batch dimensions, in the cheapest order.

    Why: the backward kernels see products such as ``G_1 = B_2^T e^T X`` (FA, linear layer, scalar output), where
    the order fixes the cost: ``(B^T e^T) X`` forms an ``h x N`` matrix and costs ``h N d`` multiply-adds per member,
    ``B^T (e^T X)`` costs ``N d + h d``. The order depends on the shapes only (the same for every member), so it is
    found once per shape by dynamic programming and cached. Different orders agree to rounding, not bitwise; a given
    shape always takes the same order, so reruns are bit-identical.
    """
    if len(factors) == 1:
        return factors[0]
    if len(factors) == 2:
        return matmul(factors[0], factors[1])
    dims = (factors[0].shape[-2], *(f.shape[-1] for f in factors))

    def run(node: tuple | int) -> Tensor:
        if isinstance(node, int):
            return factors[node]
        return matmul(run(node[0]), run(node[1]))

    return run(_chain_order(dims)[0])


def linear(a: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``H = A W^T (+ b)`` for ``A (..., N, n_in)``, ``W (..., n_out, n_in)``, ``b (..., n_out)``.

    Shared data with an ensemble of weights (``A (N, n_in)``, ``W (K, n_out, n_in)``) is computed as one GEMM
    ``A [W_1; ...; W_K]^T`` instead of K small matmuls (4x faster here, see ``falab bench``); the result is a
    ``(K, N, n_out)`` view whose memory is laid out ``(N, K, n_out)``.
    """
    if a.dim() == 2 and weight.dim() == 3:
        k, n_out, n_in = weight.shape
        h = (a @ weight.reshape(k * n_out, n_in).T).view(a.shape[0], k, n_out).transpose(0, 1)
    else:
        h = a @ weight.transpose(-1, -2)
    if bias is not None:
        h = h + bias.unsqueeze(-2)
    return h


def forward(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None],
    activations: Sequence[AbstractActivation],
    x: Tensor,
) -> Trace:
    """Run ``H_l = A_{l-1} W_l^T + b_l``, ``A_l = phi_l(H_l)`` for l = 1..L (no activation after layer L)."""
    inputs = [x]
    pre = []
    a = x
    n_layers = len(weights)
    for l, (w, b) in enumerate(zip(weights, biases)):
        h = linear(a, w, b)
        pre.append(h)
        if l < n_layers - 1:
            a = activations[l](h)
            inputs.append(a)
    return Trace(tuple(inputs), tuple(pre))
