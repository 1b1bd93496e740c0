r"""Backward kernels of 1-D and 2-D convolutions with a feedback kernel in place of the forward kernel.

A convolution ``H = conv(A, W) + b`` is a linear layer with a structured (Toeplitz) weight, so the feedback-alignment
rule is the one of :func:`falab.functional.linear_backward` written in convolution form (claims.md §1.3):

.. math::
    S = \mathrm{conv}^T(\delta, F)\ (\text{signal to the input, } F = W \text{ for BP, } B \text{ for FA}),\qquad
    G_W = \partial\langle \delta, \mathrm{conv}(A, W)\rangle/\partial W,\qquad g_b = \textstyle\sum \delta

Feedback kernels ``F`` are stored with the shape of the forward kernel (``(C_out, C_in/groups, k...)``), the same
convention as dense layers. :func:`conv_feedback_signal` and :func:`conv_weight_gradient` are
``torch.nn.grad.conv{1,2}d_input`` (with ``F``) and ``torch.nn.grad.conv{1,2}d_weight``; :func:`conv_backward`, which
the ``falab.nn`` convolution layers call, computes the same three results in one fused call of the op both wrap
(tests check it against them and against autograd).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import grad as nn_grad

_INPUT = {1: nn_grad.conv1d_input, 2: nn_grad.conv2d_input}
_WEIGHT = {1: nn_grad.conv1d_weight, 2: nn_grad.conv2d_weight}
_NO_OUTPUT_PADDING = {1: (0,), 2: (0, 0)}
# The overload itself: calling the packet (torch.ops.aten.convolution_backward) resolves it on every call.
_CONVOLUTION_BACKWARD = torch.ops.aten.convolution_backward.default


def conv_feedback_signal(
    delta: Tensor, feedback: Tensor, input_shape: Sequence[int], *,
    stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int], groups: int,
) -> Tensor:
    """Signal to the input of a convolution, the transposed convolution of ``delta`` with the feedback kernel.

    With ``feedback = W`` this is the exact input gradient (backprop); with a fixed ``B`` it is FA's signal.
    ``delta (N, C_out, *out)``, ``feedback (C_out, C_in/groups, *k)`` -> ``input_shape`` ``(N, C_in, *in)``.
    """
    dim = delta.dim() - 2
    return _INPUT[dim](list(input_shape), feedback, delta, stride, padding, dilation, groups)


def conv_weight_gradient(
    delta: Tensor, a_in: Tensor, weight_shape: Sequence[int], *,
    stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int], groups: int,
) -> Tensor:
    """Local kernel update ``G_W`` (the correlation of ``delta`` with the layer input; sum over samples)."""
    dim = delta.dim() - 2
    return _WEIGHT[dim](a_in, list(weight_shape), delta, stride, padding, dilation, groups)


def conv_backward(
    delta: Tensor,
    a_in: Tensor,
    feedback: Tensor | None,
    weight_shape: Sequence[int],
    *,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    with_bias: bool,
    need_weight: bool = True,
    placeholder: Tensor | None = None,
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Backward of one convolution ``H = conv(A, W) + b`` with feedback ``F`` in place of ``W``.

    Returns ``(signal to the input or None when feedback is None, G_W or None, g_b or None)``; the convolution
    analogue of :func:`falab.functional.linear_backward`. ``delta`` is ``(N, C_out, *spatial)`` (1-D or 2-D).
    ``placeholder``: when ``feedback`` is None, a contiguous tensor of the kernel's shape (e.g. the forward weight)
    to fill the kernel slot; its values are never read, but a stride-0 dummy (what ``torch.nn.grad`` uses) sends
    oneDNN to a slow path (measured 1.35x on LeNet's first layer).
    """
    # One fused call of the op that torch.nn.grad.conv{1,2}d_input/_weight wrap (aten.convolution_backward), with the
    # feedback kernel in the weight slot: grad_input is conv^T(delta, F); grad_weight and grad_bias do not depend on
    # the kernel's values. This is exactly the cost of native backprop (one call), instead of two separate calls.
    if feedback is not None:
        kernel = feedback
    elif placeholder is not None and placeholder.shape == weight_shape:
        kernel = placeholder
    else:
        kernel = delta.new_empty(list(weight_shape))
    mask = (feedback is not None, need_weight, with_bias)
    if not (mask[0] or need_weight or with_bias):
        return None, None, None
    # aten takes int tuples as they are (no list copies: this runs once per layer per step)
    signal, gw, gb = _CONVOLUTION_BACKWARD(
        delta, a_in, kernel, [weight_shape[0]] if with_bias else None, stride, padding, dilation, False,
        _NO_OUTPUT_PADDING[delta.dim() - 2], groups, mask)
    return signal, gw, gb
