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
from ._forward import Trace, chain_matmul, matmul


def feedback_signal(delta: Tensor, feedback: Tensor) -> Tensor:
    r"""Send an error through a feedback matrix stored in weight shape: :math:`S = \delta F` (per sample :math:`F^T\delta`).

    ``delta (..., N, n_out)``, ``feedback (..., n_out, n_in)`` -> ``(..., N, n_in)``. With ``F = W`` this is the exact
    gradient with respect to the layer input (backprop); with a fixed ``F = B`` it is FA's signal (P000 §4; claims.md §1.3).
    """
    return matmul(delta, feedback)


def weight_gradient(delta: Tensor, a_in: Tensor) -> Tensor:
    r"""Local weight update :math:`G = \delta^T A` (sum over samples; the loss scaling is inside delta).

    ``delta (..., N, n_out)``, ``a_in (..., N, n_in)`` -> ``(..., n_out, n_in)``; claims.md §1.2 ``E[delta a^T]``.
    The result is contiguous in the weights' own ``(K, n_out, n_in)`` layout. A single GEMM
    ``a_in^T [delta_1 ... delta_K]`` for shared inputs was used before, but its ``(n_in, K, n_out)`` result made the
    following Euler update a strided pass: a K = 1024 quick-start step took 4.4 ms with it, 3.75 ms with this batched
    product (``falab bench`` settings, one thread).
    """
    return matmul(delta.transpose(-1, -2), a_in)


def bias_gradient(delta: Tensor) -> Tensor:
    """Local bias update ``sum_i delta_i`` -> ``(..., n_out)``."""
    return delta.sum(dim=-2)


def linear_backward(
    delta: Tensor, a_in: Tensor, feedback: Tensor | None, *, with_bias: bool
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    """Backward of one linear layer ``H = A W^T + b`` with feedback ``F`` in place of ``W``.

    Returns ``(signal to the input = delta F or None, G_W = delta^T A, g_b = sum delta or None)``.
    This is what ``falab.nn``'s autograd functions call; :func:`chain_backward` computes the same products (for a
    formed delta exactly these calls), keeping the delta as a product through identity layers.
    """
    signal = None if feedback is None else feedback_signal(delta, feedback)
    return signal, weight_gradient(delta, a_in), (bias_gradient(delta) if with_bias else None)


def _deferred_gradients(
    factors: list[Tensor], a_in: Tensor, with_bias: bool
) -> tuple[Tensor, Tensor | None]:
    r"""Weight and bias updates of a layer whose delta is kept as a product ``delta = D F_m ... F_{l+1}``.

    ``G = delta^T A = F_{l+1}^T ... F_m^T (D^T A)`` and ``g_b = (1^T D) F_m ... F_{l+1}``, each product evaluated in
    its cheapest order (:func:`chain_matmul`). Through identity layers the error is only multiplied by feedback
    matrices, so it need not be formed: for a scalar-output linear FA network ``G_1 = B_2^T (e^T X)`` costs
    ``N d + h d`` multiply-adds instead of ``N h + N h d`` and never writes the ``N x h`` matrix ``delta_1``.
    """
    gw = chain_matmul([*(f.transpose(-1, -2) for f in reversed(factors)), a_in])
    gb = chain_matmul([factors[0].sum(dim=-2, keepdim=True), *factors[1:]]).squeeze(-2) if with_bias else None
    return gw, gb


def chain_backward(
    trace: Trace,
    output_error: Tensor,
    feedback: Sequence[Tensor | None],
    activations: Sequence[AbstractActivation],
    *,
    with_bias: Sequence[bool],
    deltas: bool = True,
) -> tuple[list[Tensor], list[Tensor | None], list[Tensor]]:
    r"""Propagate the output error down a chain of feedback matrices (BP when ``F_l = W_l``, FA when ``F_l = B_l``).

    .. math::
        \delta_L = \partial L/\partial H_L,\qquad
        \delta_l = \phi_l'(H_l) \odot (\delta_{l+1} F_{l+1}),\qquad G_l = \delta_l^T A_{l-1}

    (claims.md §1.2/§1.3; P000 §4; P003 eq. 2). ``feedback[l]`` is ``F_{l+1}`` for layer index ``l`` (0-based);
    ``feedback[0]`` is unused (nothing below the first layer). Returns weight updates, bias updates and deltas
    (``deltas=False`` returns an empty list and skips forming them: the rules need only the updates).

    Below an identity layer the delta is carried as the product ``D F_m ... F_{l+1}`` of the last formed delta and
    the feedback matrices, and every update is evaluated in the cheapest order (:func:`_deferred_gradients`); a
    nonlinear layer forms the delta, as ``phi'`` must multiply it entrywise. Same maths, fewer operations.
    """
    n = len(trace.pre)
    out_deltas: list[Tensor] = [output_error] * n if deltas else []
    gw: list[Tensor] = [output_error] * n
    gb: list[Tensor | None] = [None] * n
    factors = [output_error]  # delta_l = factors[0] @ factors[1] @ ... (deferred through identity layers)
    for l in range(n - 1, -1, -1):
        gw[l], gb[l] = _deferred_gradients(factors, trace.inputs[l], with_bias[l])
        if deltas:
            out_deltas[l] = chain_matmul(factors)
        if l > 0:
            fb = feedback[l]
            assert fb is not None, f"feedback[{l}] is needed to send the error below layer {l + 1}"
            act = activations[l - 1]
            # Identity layers skip the multiplication by phi' = 1 and keep the delta as a product.
            factors = [*factors, fb] if isinstance(act, Identity) else \
                [act.derivative(trace.pre[l - 1]) * chain_matmul([*factors, fb])]
    return gw, gb, out_deltas


def direct_backward(
    trace: Trace,
    output_error: Tensor,
    direct_feedback: Sequence[Tensor],
    activations: Sequence[AbstractActivation],
    *,
    with_bias: Sequence[bool],
    deltas: bool = True,
) -> tuple[list[Tensor], list[Tensor | None], list[Tensor]]:
    r"""Direct feedback alignment (Nøkland 2016; claims.md §1.3): every hidden layer gets the output error directly.

    .. math::
        \delta_L = e,\qquad \delta_l = \phi_l'(H_l)\odot(e\,F^{D}_l),\quad F^D_l = D_l^T \in \mathbb{R}^{n_L\times n_l}

    ``direct_feedback[l]`` is ``F^D_{l+1}`` for hidden layer index ``l`` (0-based, ``l < L - 1``). For two layers this
    equals FA with ``B_2 = F^D_1`` exactly. Identity layers keep ``delta_l = e F^D_l`` as a product, as in
    :func:`chain_backward`; ``deltas=False`` skips forming the returned deltas.
    """
    n = len(trace.pre)
    gw: list[Tensor] = [output_error] * n
    gb: list[Tensor | None] = [None] * n
    out_deltas: list[Tensor] = [output_error] * n if deltas else []
    for l in range(n):
        if l == n - 1:
            factors = [output_error]
        else:
            act = activations[l]
            factors = [output_error, direct_feedback[l]] if isinstance(act, Identity) else \
                [act.derivative(trace.pre[l]) * feedback_signal(output_error, direct_feedback[l])]
        gw[l], gb[l] = _deferred_gradients(factors, trace.inputs[l], with_bias[l])
        if deltas:
            out_deltas[l] = chain_matmul(factors)
    return gw, gb, out_deltas
