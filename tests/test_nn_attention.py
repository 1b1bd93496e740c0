"""Attention models in falab.nn.convert: parity with autograd when the feedback equals the forward weights, the exact
attention product, DFA's error broadcast reaching every converted projection, and what convert leaves alone."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from falab.nn import FeedbackLayer, convert
from falab.nn._attention import FeedbackMultiheadAttention
from falab.rules import FeedbackAlignment
from falab.rules._feedback import CopyOfWeight


class TinyTransformer(nn.Module):
    """Token embedding, two causal pre-/post-norm encoder layers, a final LayerNorm and a head (an LM shape)."""

    def __init__(self, vocab: int = 11, d: int = 16, heads: int = 4, norm_first: bool = False,
                 pooled: bool = False) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, batch_first=True, norm_first=norm_first)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, 5)
        self.pooled = pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(t, dtype=self.head.weight.dtype)
        h = self.ln(self.enc(self.emb(x), mask=mask, is_causal=True))
        return self.head(h.mean(1) if self.pooled else h)


def _loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = net(x)
    return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
@pytest.mark.parametrize("norm_first", [False, True])
def test_converted_transformer_with_copied_feedback_equals_autograd(dtype, tol, norm_first):
    torch.manual_seed(0)
    net = TinyTransformer(norm_first=norm_first).to(dtype)
    ref = copy.deepcopy(net)
    report = convert(net, FeedbackAlignment(feedback=CopyOfWeight()))
    names = {c.name for c in report.converted}
    assert {"enc.layers.0.self_attn.in_proj", "enc.layers.0.self_attn.out_proj", "enc.layers.1.linear2",
            "head"} <= names and len(names) == 9
    assert isinstance(net.enc.layers[0].self_attn, FeedbackMultiheadAttention)
    # the same Parameter objects (an optimizer built before convert keeps working)
    assert net.enc.layers[0].self_attn.in_proj.weight is dict(net.named_parameters())[
        "enc.layers.0.self_attn.in_proj.weight"]
    x, y = torch.randint(0, 11, (3, 7)), torch.randint(0, 5, (3, 7))
    _loss(net, x, y).backward()
    _loss(ref, x, y).backward()
    pairs = list(zip(net.parameters(), ref.parameters()))
    assert len(pairs) == len(list(ref.parameters())) == 29
    for p, q in pairs:
        assert p.shape == q.shape
        assert float((p.grad - q.grad).abs().max()) <= tol * max(1.0, float(q.grad.abs().max()))


def test_cross_attention_and_returned_weights_equal_native_mha():
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(8, 2, batch_first=False, dtype=torch.float64)
    ref = copy.deepcopy(mha)
    wrap = nn.Sequential()
    wrap.add_module("attn", mha)
    convert(wrap, FeedbackAlignment(feedback=CopyOfWeight()))
    q, kv = torch.randn(5, 3, 8, dtype=torch.float64), torch.randn(6, 3, 8, dtype=torch.float64)
    pad = torch.zeros(3, 6, dtype=torch.bool)
    pad[0, -2:] = True
    y1, w1 = wrap.attn(q, kv, kv, key_padding_mask=pad)
    y2, w2 = ref(q, kv, kv, key_padding_mask=pad)
    assert torch.allclose(y1, y2, atol=1e-13) and torch.allclose(w1, w2, atol=1e-13)
    (y1.square().sum()).backward()
    (y2.square().sum()).backward()
    for p, r in zip(wrap.attn.parameters(), ref.parameters()):
        assert torch.allclose(p.grad, r.grad, atol=1e-12)


def test_eval_fast_path_gives_the_same_forward():
    torch.manual_seed(2)
    net = TinyTransformer(d=16, heads=4)
    ref = copy.deepcopy(net)
    convert(net, "fa", seed=0)
    net.eval()
    ref.eval()
    x = torch.randint(0, 11, (2, 5))
    with torch.no_grad():
        assert torch.allclose(net(x), ref(x), atol=1e-5)


def test_fa_feedback_is_used_in_the_projections():
    """With random feedback the gradients below the attention differ from autograd's (the projections' signal goes
    through B, not W); the top layer's own update is still the local delta^T A."""
    torch.manual_seed(3)
    net = TinyTransformer().double()
    ref = copy.deepcopy(net)
    convert(net, "fa", seed=0)
    x, y = torch.randint(0, 11, (3, 7)), torch.randint(0, 5, (3, 7))
    _loss(net, x, y).backward()
    _loss(ref, x, y).backward()
    assert torch.allclose(net.head.weight.grad, ref.head.weight.grad, atol=1e-12)
    assert not torch.allclose(net.emb.weight.grad, ref.emb.weight.grad, atol=1e-6)


@pytest.mark.parametrize("pooled", [False, True])
def test_dfa_error_broadcast_reaches_every_converted_projection(pooled):
    """Every converted DFA layer below the output sends e D to its input: scaling its D changes the gradients below it
    and leaves its own weight's update unchanged (local delta^T A)."""
    torch.manual_seed(4)
    net = TinyTransformer(pooled=pooled).double()
    x, y = torch.randint(0, 11, (3, 7)), torch.randint(0, 5, (3,) if pooled else (3, 7))
    report = convert(net, "dfa", seed=0, example_input=x)
    layers = {c.name: net.get_submodule(c.name) for c in report.converted}
    assert len(layers) == 9 and all(isinstance(m, FeedbackLayer) for m in layers.values())

    def grads() -> dict[str, torch.Tensor]:
        net.zero_grad()
        _loss(net, x, y).backward()
        return {n: p.grad.clone() for n, p in net.named_parameters()}

    base = grads()
    reached: set[str] = set()
    for name, layer in layers.items():
        if name == "head":
            continue  # the output layer's D is the identity path of the error itself
        assert layer._sends_signal is True, name
        old = layer.feedback.clone()
        layer.feedback.mul_(2.0)
        g = grads()
        layer.feedback.copy_(old)
        assert torch.allclose(g[f"{name}.weight"], base[f"{name}.weight"], atol=1e-12), name
        # its signal e D is used below it (by the next converted layer down, or the embedding)
        changed = [n for n in g if n != f"{name}.weight" and not torch.allclose(g[n], base[n], atol=1e-9)]
        assert changed, name
        reached.add(name)
    assert reached == set(layers) - {"head"}
    # the error each layer received is the gradient of the loss at the network output
    out = net(x)
    seen: list[torch.Tensor] = []
    out.register_hook(seen.append)
    nn.functional.cross_entropy(out.reshape(-1, 5), y.reshape(-1)).backward()
    assert torch.equal(report.broadcast.error(report.broadcast.generation), seen[0])


def test_bp_and_unsupported_attention_are_reported_and_left_alone():
    net = TinyTransformer()
    report = convert(net, "bp")
    assert not report.converted
    assert isinstance(net.enc.layers[0].self_attn, nn.MultiheadAttention)
    odd = nn.Sequential()
    odd.add_module("attn", nn.MultiheadAttention(8, 2, kdim=4, vdim=4))
    report = convert(odd, "fa", seed=0)
    assert isinstance(odd.attn, nn.MultiheadAttention)
    assert [s.name for s in report.skipped] == ["attn"] and "kdim/vdim" in report.skipped[0].reason
    report = convert(TinyTransformer(), "usf", seed=0)
    reasons = {s.type: s.reason for s in report.skipped}
    assert "LayerNorm" in reasons and "Embedding" in reasons and "scaled_dot_product_attention" in reasons
