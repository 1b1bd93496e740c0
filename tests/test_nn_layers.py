"""falab.nn layers: the backward uses B (not W), the weight update is local, B = W reproduces autograd, N-D inputs,
state_dict round trips. Every test runs a backward pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from falab._checks import FalabInputError
from falab.nn import (
    BatchRandomMagnitudeSignFeedback,
    DFAConv1d,
    DFAConv2d,
    DFALinear,
    ErrorBroadcast,
    FAConv1d,
    FAConv2d,
    FALinear,
    FixedRandomMagnitudeSignFeedback,
    UniformSignFeedback,
    exact_backprop,
)
from falab.rules import CopyOfWeight, Gaussian, ScaledLikeWeight

D64 = torch.float64
KINDS = {
    "fa": ScaledLikeWeight,
    "usf": UniformSignFeedback,
    "frsf": FixedRandomMagnitudeSignFeedback,
    "brsf": BatchRandomMagnitudeSignFeedback,
}
# layer type -> (FA class, plain torch class, ctor args, extra kwargs, input shape)
TYPES = {
    "linear": (FALinear, nn.Linear, (6, 4), {}, (3, 5, 6)),
    "conv1d": (FAConv1d, nn.Conv1d, (3, 4, 3), {"stride": 2, "padding": 1}, (5, 3, 11)),
    "conv2d": (FAConv2d, nn.Conv2d, (3, 4, 3), {"padding": 1, "dilation": 2}, (2, 3, 7, 6)),
}


def _plain(layer_type: str, fa_layer: nn.Module) -> nn.Module:
    _, cls, args, kw, _ = TYPES[layer_type]
    ref = cls(*args, **kw, bias=fa_layer.bias is not None, dtype=D64)
    ref.load_state_dict({k: v for k, v in fa_layer.state_dict().items() if k != "feedback"})
    return ref


def _fwd(layer_type: str, x: torch.Tensor, w: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """The layer's map as a function of its kernel (for hand-made signals: autograd of a plain op with B as kernel)."""
    if layer_type == "linear":
        return F.linear(x, w)
    fn = F.conv1d if layer_type == "conv1d" else F.conv2d
    return fn(x, w, None, layer.stride, layer.padding, layer.dilation, layer.groups)


@pytest.mark.parametrize("layer_type", list(TYPES))
@pytest.mark.parametrize("rule", list(KINDS))
@pytest.mark.parametrize("bias", [True, False])
def test_fa_layer_signal_uses_feedback_and_update_is_local(layer_type, rule, bias):
    fa_cls, _, args, kw, shape = TYPES[layer_type]
    torch.manual_seed(1)
    layer = fa_cls(*args, **kw, bias=bias, feedback=KINDS[rule](), generator=torch.Generator().manual_seed(3), dtype=D64)
    x = torch.randn(shape, dtype=D64, requires_grad=True)
    out = layer(x)
    delta = torch.randn_like(out)
    gx, gw = torch.autograd.grad(out, [x, layer.weight], delta, retain_graph=True)
    b_used = layer.feedback_matrix().detach()
    # The matrix used must be the rule's: B (FA), s*sign(W) (uSF), |R|*sign(W) (frSF/brSF) - never W itself.
    if rule != "fa":
        assert torch.equal(torch.sign(b_used), torch.sign(layer.weight.detach()))
    assert not torch.allclose(b_used, layer.weight.detach())
    # delta * B by hand: the input gradient of a plain op whose kernel is B.
    xx = x.detach().clone().requires_grad_(True)
    (hand,) = torch.autograd.grad(_fwd(layer_type, xx, b_used, layer), xx, delta)
    torch.testing.assert_close(gx, hand, rtol=1e-12, atol=1e-12)
    # Local weight update: the gradient of <delta, layer(x)> w.r.t. W, i.e. delta^T A.
    ref = _plain(layer_type, layer)
    (local,) = torch.autograd.grad(ref(x.detach()), ref.weight, delta)
    torch.testing.assert_close(gw, local, rtol=1e-12, atol=1e-12)
    if bias:
        (gb,) = torch.autograd.grad(out, layer.bias, delta)
        torch.testing.assert_close(gb, delta.sum(dim=[d for d in range(delta.dim()) if d != (delta.dim() - 1 if layer_type == "linear" else 1)]))


@pytest.mark.parametrize("layer_type", list(TYPES))
def test_copy_of_weight_and_exact_mode_reproduce_autograd(layer_type):
    fa_cls, _, args, kw, shape = TYPES[layer_type]
    torch.manual_seed(2)
    layer = fa_cls(*args, **kw, feedback=CopyOfWeight(), dtype=D64)
    ref = _plain(layer_type, layer)
    x = torch.randn(shape, dtype=D64, requires_grad=True)
    delta = torch.randn_like(ref(x))
    got = torch.autograd.grad(layer(x), [x, layer.weight, layer.bias], delta)
    want = torch.autograd.grad(ref(x), [x, ref.weight, ref.bias], delta)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-13)
    # Every sign-symmetry kind becomes exact backprop inside exact_backprop (the BP twin of the instruments).
    for kind in KINDS.values():
        layer2 = fa_cls(*args, **kw, feedback=kind(), dtype=D64)
        layer2.load_state_dict({**ref.state_dict(), "feedback": layer2.feedback})
        with exact_backprop(layer2):
            got = torch.autograd.grad(layer2(x), [x, layer2.weight, layer2.bias], delta)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=0, atol=1e-13)


def test_brsf_redraws_per_batch_and_usf_frsf_do_not():
    torch.manual_seed(0)
    x = torch.randn(4, 6, requires_grad=True)
    for kind, redraw in ((BatchRandomMagnitudeSignFeedback(), True),
                         (UniformSignFeedback(), False), (FixedRandomMagnitudeSignFeedback(), False)):
        layer = FALinear(6, 5, feedback=kind)
        used = []
        for _ in range(2):
            layer(x).sum().backward()
            used.append(layer.feedback_matrix().clone())
        assert torch.equal(torch.sign(used[0]), torch.sign(layer.weight.detach()))
        assert (not torch.equal(used[0], used[1])) == redraw


def test_usf_scale_is_weight_rms_and_frsf_norm_matches_weight():
    torch.manual_seed(0)
    layer = FALinear(50, 40, feedback=UniformSignFeedback(), dtype=D64)
    w = layer.weight.detach()
    torch.testing.assert_close(layer.feedback_matrix().abs().mean(), w.pow(2).mean().sqrt())
    layer = FALinear(50, 40, feedback=FixedRandomMagnitudeSignFeedback(), dtype=D64)
    torch.testing.assert_close(layer.feedback.norm(), layer.weight.detach().norm())
    assert (layer.feedback >= 0).all()


@pytest.mark.parametrize("layer_type", ["linear", "conv1d", "conv2d"])
def test_dfa_layer_signal_is_output_error_times_d(layer_type):
    torch.manual_seed(4)
    b = ErrorBroadcast()
    n_out = 3
    if layer_type == "linear":
        layer = DFALinear(6, 5, output_dim=n_out, broadcast=b, dtype=D64)
        head = nn.Linear(5, n_out, dtype=D64)
        x = torch.randn(7, 6, dtype=D64, requires_grad=True)
        net = nn.Sequential(layer, nn.ReLU(), head)
    else:
        cls = DFAConv1d if layer_type == "conv1d" else DFAConv2d
        layer = cls(2, 4, 3, padding=1, output_dim=n_out, broadcast=b, dtype=D64)
        shape = (7, 2, 9) if layer_type == "conv1d" else (7, 2, 5, 4)
        x = torch.randn(shape, dtype=D64, requires_grad=True)
        feat = 4 * (9 if layer_type == "conv1d" else 20)
        head = nn.Linear(feat, n_out, dtype=D64)
        net = nn.Sequential(layer, nn.ReLU(), nn.Flatten(), head)
    out = b(net(x))
    target = torch.randn_like(out)
    loss = 0.5 * ((out - target) ** 2).sum()
    gx, gw = torch.autograd.grad(loss, [x, layer.weight])
    e = (out - target).detach()
    d = layer.feedback
    assert d.shape == (n_out, x[0].numel() if layer_type != "linear" else 6)
    torch.testing.assert_close(gx, (e @ d).reshape(x.shape), rtol=1e-12, atol=1e-12)
    # The layer's own update stays local: its delta is what arrives from above (here exact through the head).
    with exact_backprop(net):
        _, gw_bp = torch.autograd.grad(0.5 * ((b(net(x)) - target) ** 2).sum(), [x, layer.weight])
    torch.testing.assert_close(gw, gw_bp, rtol=1e-12, atol=1e-12)


def test_dfa_without_broadcast_output_is_an_error():
    b = ErrorBroadcast()
    net = nn.Sequential(DFALinear(4, 5, output_dim=2, broadcast=b), nn.ReLU(), DFALinear(5, 2, broadcast=b))
    x = torch.randn(3, 4, requires_grad=True)
    with pytest.raises(FalabInputError, match="Invalid DFA backward"):
        net(x).sum().backward()  # output never passed through the broadcast
    net2 = nn.Sequential(DFALinear(4, 2))
    with pytest.raises(FalabInputError, match="broadcast"):
        net2(x)


def test_nd_inputs_linear_and_conv():
    torch.manual_seed(0)
    lin = FALinear(6, 4, dtype=D64)
    x = torch.randn(2, 3, 5, 6, dtype=D64, requires_grad=True)  # (batch, seq, tokens, features)
    out = lin(x)
    assert out.shape == (2, 3, 5, 4)
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(out) @ lin.feedback)
    conv = FAConv1d(3, 4, 3, dtype=D64)
    x = torch.randn(2, 5, 3, 9, dtype=D64)  # extra leading dim
    ref = torch.stack([conv(x[i]) for i in range(2)])
    torch.testing.assert_close(conv(x), ref)
    conv2 = FAConv2d(3, 4, 3, dtype=D64)
    x = torch.randn(3, 6, 6, dtype=D64, requires_grad=True)  # unbatched image
    y = conv2(x)
    assert y.shape == (4, 4, 4)
    y.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("cls,args", [(FALinear, (5, 3)), (FAConv2d, (2, 3, 3)), (FAConv1d, (2, 3, 3))])
def test_state_dict_round_trip_and_buffers(cls, args):
    a = cls(*args, feedback=Gaussian(0.3), generator=torch.Generator().manual_seed(1))
    b = cls(*args, feedback=Gaussian(0.3), generator=torch.Generator().manual_seed(2))
    assert "feedback" in a.state_dict()
    assert all(p is not a.feedback for p in a.parameters()) and len(list(a.parameters())) == 2
    assert not torch.equal(a.feedback, b.feedback)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.feedback, b.feedback)
    c = a.to(D64)
    assert c.feedback.dtype == D64


def test_dfa_conv_state_dict_round_trip_before_first_forward():
    bcast = ErrorBroadcast()
    a = DFAConv2d(2, 3, 3, output_dim=4, broadcast=bcast)
    a(torch.randn(1, 2, 5, 5))  # draws D for 2x5x5 inputs
    b = DFAConv2d(2, 3, 3, output_dim=4, broadcast=bcast)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.feedback, b.feedback) and b.feedback.shape == (4, 50)


@pytest.mark.parametrize("dim", [1, 2])
def test_fused_conv_backward_equals_torch_nn_grad_kernels(dim):
    from falab.functional._conv_backward import conv_backward, conv_feedback_signal, conv_weight_gradient

    g = torch.Generator().manual_seed(0)
    spatial = (9,) if dim == 1 else (7, 6)
    x = torch.randn(3, 4, *spatial, generator=g, dtype=D64)
    w_shape = (6, 2, *(3,) * dim)  # groups = 2
    b = torch.randn(w_shape, generator=g, dtype=D64)
    opts = {"stride": (2,) * dim, "padding": (1,) * dim, "dilation": (1,) * dim, "groups": 2}
    fn = F.conv1d if dim == 1 else F.conv2d
    delta = torch.randn_like(fn(x, b, None, **opts))
    signal, gw, gb = conv_backward(delta, x, b, w_shape, with_bias=True, **opts)
    torch.testing.assert_close(signal, conv_feedback_signal(delta, b, x.shape, **opts), rtol=0, atol=1e-13)
    torch.testing.assert_close(gw, conv_weight_gradient(delta, x, w_shape, **opts), rtol=0, atol=1e-13)
    torch.testing.assert_close(gb, delta.sum(dim=[0, *range(2, delta.dim())]), rtol=0, atol=1e-13)
    none, gw2, no_b = conv_backward(delta, x, None, w_shape, with_bias=False, **opts)
    assert none is None and no_b is None and torch.equal(gw2, gw)
