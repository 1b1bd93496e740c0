"""Fast paths of the falab.nn layers (2-D inputs without reshapes, plain conv inputs, lean DFA signal): same maths as
the general paths and as the hand computation, in float64. Performance itself is never asserted."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from falab.functional._conv_backward import conv_backward, conv_feedback_signal, conv_weight_gradient
from falab.nn import DFALinear, ErrorBroadcast, FAConv2d, FALinear, convert
from falab.nn._layers import _DFALinearFunction, _FALinearFunction


def _mlp(dtype: torch.dtype = torch.float64) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(7, 9), nn.ReLU(), nn.Linear(9, 8), nn.ReLU(), nn.Linear(8, 4)).to(dtype)


def test_dfa_mlp_weight_gradients_equal_hand_computation() -> None:
    net = _mlp()
    convert(net, "dfa", seed=3)
    x = torch.randn(5, 7, dtype=torch.float64)
    y = torch.randint(0, 4, (5,))
    out = net(x)
    out.retain_grad()
    F.cross_entropy(out, y).backward()
    l1, l2, l3 = net[0], net[2], net[4]
    with torch.no_grad():
        h1 = x @ l1.weight.T + l1.bias
        a1 = h1.relu()
        h2 = a1 @ l2.weight.T + l2.bias
        a2 = h2.relu()
        e = torch.softmax(a2 @ l3.weight.T + l3.bias, dim=1) - F.one_hot(y, 4).double()
        e = e / 5
        d3 = e
        d2 = (h2 > 0).double() * (e @ l3.feedback)  # the top layer's D sends e to its input: no W3^T delta
        d1 = (h1 > 0).double() * (e @ l2.feedback)
    torch.testing.assert_close(out.grad, e, rtol=0, atol=1e-15)
    for layer, d, a in ((l3, d3, a2), (l2, d2, a1), (l1, d1, x)):
        torch.testing.assert_close(layer.weight.grad, d.T @ a, rtol=0, atol=1e-12)
        torch.testing.assert_close(layer.bias.grad, d.sum(0), rtol=0, atol=1e-12)
    assert l1._sends_signal is False and l2._sends_signal is True and l3._sends_signal is True


def test_fa_linear_2d_path_equals_flattened_path() -> None:
    torch.manual_seed(1)
    layer = FALinear(6, 3, dtype=torch.float64)
    x3 = torch.randn(2, 4, 6, dtype=torch.float64, requires_grad=True)
    x2 = x3.detach().reshape(8, 6).requires_grad_(True)
    g3 = torch.randn(2, 4, 3, dtype=torch.float64)
    layer(x3).backward(g3)
    gw3, gb3 = layer.weight.grad.clone(), layer.bias.grad.clone()
    layer.zero_grad()
    layer(x2).backward(g3.reshape(8, 3))
    torch.testing.assert_close(x2.grad, g3.reshape(8, 3) @ layer.feedback, rtol=0, atol=1e-14)  # delta B, not W
    torch.testing.assert_close(x3.grad.reshape(8, 6), x2.grad, rtol=0, atol=0)
    torch.testing.assert_close(layer.weight.grad, gw3, rtol=0, atol=1e-14)
    torch.testing.assert_close(layer.bias.grad, gb3, rtol=0, atol=1e-14)


class _Ctx:
    """A stand-in autograd context to call the Functions' backward directly."""

    def __init__(self, saved: tuple[torch.Tensor, ...], needs: tuple[bool, ...], layer: nn.Module, generation: int = -1):
        self.saved_tensors = saved
        self.needs_input_grad = needs
        self.layer = layer
        self.generation = generation


def test_no_input_gradient_computed_when_not_needed() -> None:
    torch.manual_seed(2)
    fa = FALinear(5, 3, dtype=torch.float64)
    x, g = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    out = _FALinearFunction.backward(_Ctx((x, fa.weight, fa.feedback), (False, True, True, False, False), fa), g)
    assert out[0] is None and fa._sends_signal is False
    torch.testing.assert_close(out[1], g.T @ x)
    dfa = DFALinear(5, 3, dtype=torch.float64, broadcast=ErrorBroadcast())
    out = _DFALinearFunction.backward(_Ctx((x, dfa.weight), (False, True, False, False, False), dfa), g)
    assert out[0] is None and out[2] is None and dfa._sends_signal is False
    torch.testing.assert_close(out[1], g.T @ x)
    signal, gw, gb = conv_backward(torch.randn(2, 3, 4, 4), torch.randn(2, 2, 6, 6), None, (3, 2, 3, 3),
                                   stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, with_bias=False)
    assert signal is None and gb is None and gw is not None


def test_dfa_exact_mode_linear_2d_matches_autograd() -> None:
    net = _mlp()
    ref = _mlp()
    report = convert(net, "dfa", seed=0)
    x = torch.randn(6, 7, dtype=torch.float64)
    y = torch.randint(0, 4, (6,))
    from falab.nn import exact_backprop

    with exact_backprop(net):
        F.cross_entropy(net(x), y).backward()
    F.cross_entropy(ref(x), y).backward()
    for (_, p), (_, q) in zip(net.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-13)
    assert report.broadcast is not None


def test_fa_conv_plain_input_path_equals_kernels_and_padded_path() -> None:
    torch.manual_seed(4)
    conv = FAConv2d(2, 3, 3, padding=1, dtype=torch.float64)
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    conv(x).backward(g)
    opts = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": 1}
    torch.testing.assert_close(x.grad, conv_feedback_signal(g, conv.feedback, x.shape, **opts), rtol=0, atol=1e-13)
    torch.testing.assert_close(conv.weight.grad, conv_weight_gradient(g, x.detach(), conv.weight.shape, **opts),
                               rtol=0, atol=1e-13)
    torch.testing.assert_close(conv.bias.grad, g.sum((0, 2, 3)), rtol=0, atol=1e-13)
    # the same layer with 'same' padding (explicit pre-pad, general path) and an unbatched input agree
    same = FAConv2d(2, 3, 3, padding="same", dtype=torch.float64)
    with torch.no_grad():
        same.weight.copy_(conv.weight)
        same.bias.copy_(conv.bias)
        same.feedback.copy_(conv.feedback)
    x1 = x.detach()[:1].clone().requires_grad_(True)
    xu = x.detach()[0].clone().requires_grad_(True)
    same(x1).backward(g[:1])
    same(xu).backward(g[0])
    torch.testing.assert_close(x1.grad, x.grad[:1], rtol=0, atol=1e-13)
    torch.testing.assert_close(xu.grad, x.grad[0], rtol=0, atol=1e-13)
