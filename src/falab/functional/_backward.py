"""The backward kernels: the only place where the maths of BP, FA, DFA and sign-symmetry backward passes lives.

Every route calls these functions: the functional rules (``falab.rules``), therefore the exact flows, the Euler/SGD
steps and the batched ensembles (``falab.dynamics``), and the ``torch.autograd.Function`` of the ``falab.nn`` layers.

Conventions (claims.md §1.2, §1.3, §6): a feedback matrix is stored with the shape of the forward weight whose
transpose it replaces, ``F_l ~ W_l`` of shape ``(n_l, n_{l-1})``; it sends the error of layer ``l`` down as
``S_{l-1} = delta_l F_l`` (row convention, i.e. ``F_l^T delta_l`` per sample). BP uses ``F_l = W_l``, FA a fixed
``F_l = B_l``. DFA stores ``D_l^T`` with shape ``(n_L, n_l)`` and sends the output error straight to layer l:
``S_l = e D_l^T``. Updates follow the gradient sign convention, ``G_l = delta_l^T A_{l-1}`` (so ``dW/dt = -G``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ._activations import AbstractActivation, Identity
from ._forward import Trace


def feedback_signal(delta: Tensor, feedback: Tensor) -> Tensor:
    r"""Send an error through a feedback matrix stored in weight shape: :math:`S = \delta F` (per sample :math:`F^T\delta`).

    ``delta (..., N, n_out)``, ``feedback (..., n_out, n_in)`` -> ``(..., N, n_in)``. With ``F = W`` this is the exact
    gradient with respect to the layer input (backprop); with a fixed ``F = B`` it is FA's signal (P000 §4; claims.md §1.3).
    """
    return delta @ feedback


def weight_gradient(delta: Tensor, a_in: Tensor) -> Tensor:
    r"""Local weight update :math:`G = \delta^T A` (sum over samples; the loss scaling is inside delta).

    ``delta (..., N, n_out)``, ``a_in (..., N, n_in)`` -> ``(..., n_out, n_in)``; claims.md §1.2 ``E[delta a^T]``.
    The result is contiguous in the weights' own ``(K, n_out, n_in)`` layout. A single GEMM
    ``a_in^T [delta_1 ... delta_K]`` for shared inputs was used before, but its ``(n_in, K, n_out)`` result made the
    following Euler update a strided pass: a K = 1024 quick-start step took 4.4 ms with it, 3.75 ms with this batched
    product (``falab bench`` settings, one thread).
    """
    return delta.transpose(-1, -2) @ a_in


def bias_gradient(delta: Tensor) -> Tensor:
    """Local bias update ``sum_i delta_i`` -> ``(..., n_out)``."""
    return delta.sum(dim=-2)


def linear_backward(
    delta: Tensor, a_in: Tensor, feedback: Tensor | None, *, with_bias: bool
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    """Backward of one linear layer ``H = A W^T + b`` with feedback ``F`` in place of ``W``.

    Returns ``(signal to the input = delta F or None, G_W = delta^T A, g_b = sum delta or None)``.
    This is what ``falab.nn``'s autograd functions call; :func:`chain_backward` calls it layer by layer.
    """
    signal = None if feedback is None else feedback_signal(delta, feedback)
    return signal, weight_gradient(delta, a_in), (bias_gradient(delta) if with_bias else None)


def chain_backward(
    trace: Trace,
    output_error: Tensor,
    feedback: Sequence[Tensor | None],
    activations: Sequence[AbstractActivation],
    *,
    with_bias: Sequence[bool],
) -> tuple[list[Tensor], list[Tensor | None], list[Tensor]]:
    r"""Propagate the output error down a chain of feedback matrices (BP when ``F_l = W_l``, FA when ``F_l = B_l``).

    .. math::
        \delta_L = \partial L/\partial H_L,\qquad
        \delta_l = \phi_l'(H_l) \odot (\delta_{l+1} F_{l+1}),\qquad G_l = \delta_l^T A_{l-1}

    (claims.md §1.2/§1.3; P000 §4; P003 eq. 2). ``feedback[l]`` is ``F_{l+1}`` for layer index ``l`` (0-based);
    ``feedback[0]`` is unused (nothing below the first layer). Returns weight updates, bias updates and deltas.
    """
    n = len(trace.pre)
    deltas: list[Tensor] = [output_error] * n
    gw: list[Tensor] = [output_error] * n
    gb: list[Tensor | None] = [None] * n
    delta = output_error
    for l in range(n - 1, -1, -1):
        fb = feedback[l] if l > 0 else None
        signal, gw[l], gb[l] = linear_backward(delta, trace.inputs[l], fb, with_bias=with_bias[l])
        deltas[l] = delta
        if l > 0:
            act = activations[l - 1]
            # Identity layers skip the multiplication by phi' = 1 (a full pass over the ensemble's activations).
            delta = signal if isinstance(act, Identity) else act.derivative(trace.pre[l - 1]) * signal
    return gw, gb, deltas


def direct_backward(
    trace: Trace,
    output_error: Tensor,
    direct_feedback: Sequence[Tensor],
    activations: Sequence[AbstractActivation],
    *,
    with_bias: Sequence[bool],
) -> tuple[list[Tensor], list[Tensor | None], list[Tensor]]:
    r"""Direct feedback alignment (Nøkland 2016; claims.md §1.3): every hidden layer gets the output error directly.

    .. math::
        \delta_L = e,\qquad \delta_l = \phi_l'(H_l)\odot(e\,F^{D}_l),\quad F^D_l = D_l^T \in \mathbb{R}^{n_L\times n_l}

    ``direct_feedback[l]`` is ``F^D_{l+1}`` for hidden layer index ``l`` (0-based, ``l < L - 1``). For two layers this
    equals FA with ``B_2 = F^D_1`` exactly.
    """
    n = len(trace.pre)
    gw: list[Tensor] = [output_error] * n
    gb: list[Tensor | None] = [None] * n
    deltas: list[Tensor] = [output_error] * n
    for l in range(n):
        if l == n - 1:
            delta = output_error
        else:
            signal = feedback_signal(output_error, direct_feedback[l])
            act = activations[l]
            delta = signal if isinstance(act, Identity) else act.derivative(trace.pre[l]) * signal
        _, gw[l], gb[l] = linear_backward(delta, trace.inputs[l], None, with_bias=with_bias[l])
        deltas[l] = delta
    return gw, gb, deltas
