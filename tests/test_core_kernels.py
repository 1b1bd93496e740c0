"""Kernels of falab.functional pinned against autograd and against hand computations (float64).

The hand computations below use the column convention of claims.md §1.1 (one sample at a time, ``h = W a + b``), so they
share no code path with the engine's row-convention batched kernels.
"""

from __future__ import annotations

import pytest
import torch

from falab.functional import (
    ACTIVATIONS,
    CrossEntropyLoss,
    ExponentialLoss,
    SquaredLoss,
    bias_gradient,
    chain_backward,
    direct_backward,
    feedback_signal,
    forward,
    get_activation,
    linear_backward,
    weight_gradient,
)
from falab.rules import Backprop
from problems import ACTIVATION_NAMES, DT, LOSS_CASES, gen, randn, random_mlp, targets_for

DEPTH_WIDTHS = {2: (4, 5, 3), 3: (4, 6, 5, 3), 4: (4, 5, 6, 4, 3)}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """``||a - b|| / max(||b||, 1e-300)`` (Frobenius over all entries)."""
    return float(torch.linalg.vector_norm(a - b) / max(float(torch.linalg.vector_norm(b)), 1e-300))


def autograd_grads(model, params, x, y, loss) -> dict[str, torch.Tensor]:
    p = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    value = loss.value(model(p, x), y).sum()
    grads = torch.autograd.grad(value, list(p.values()))
    return dict(zip(p, grads))


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("loss_name", list(LOSS_CASES))
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_backprop_equals_autograd(activation: str, loss_name: str, depth: int, bias: bool) -> None:
    loss = LOSS_CASES[loss_name]
    seed = 100 * depth + 7 * ACTIVATION_NAMES.index(activation) + list(LOSS_CASES).index(loss_name)
    model, params, x, y = random_mlp(DEPTH_WIDTHS[depth], activation, bias, seed, loss=loss)
    upd = Backprop().update(model, params, {}, x, y, loss)[0]
    ref = autograd_grads(model, params, x, y, loss)
    assert set(upd) == set(ref)
    for k in ref:
        assert float(torch.linalg.vector_norm(ref[k])) > 1e-8, "degenerate test case: zero gradient"
        assert rel_err(upd[k], ref[k]) <= 1e-12, k


@pytest.mark.parametrize("shared_x", [False, True], ids=["per_member_x", "shared_x"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "identity"])
def test_backprop_equals_autograd_for_an_ensemble(activation: str, shared_x: bool) -> None:
    """Ensembles (leading dim K): per-member data, and shared data (x without the leading dim: the kernels' one-GEMM
    path for G = delta^T A)."""
    k_members = 3
    model, params, _, _ = random_mlp((3, 6, 5, 2), activation, True, seed=5, ensemble=k_members)
    g = gen(6)
    x = randn(9, 3, g=g) if shared_x else randn(k_members, 9, 3, g=g)
    y = randn(k_members, 9, 2, g=g)
    loss = SquaredLoss("mean")
    upd = Backprop().update(model, params, {}, x, y, loss)[0]
    for m in range(k_members):
        pm = {k: v[m] for k, v in params.items()}
        ref = autograd_grads(model, pm, x if shared_x else x[m], y[m], loss)
        for name in ref:
            assert rel_err(upd[name][m], ref[name]) <= 1e-12


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_derivative_and_homogeneity_flag(name: str) -> None:
    act = get_activation(name)
    h = torch.linspace(-3.0, 3.0, 601, dtype=DT)
    h = h[h != 0.0]  # ReLU-type kinks: autograd and phi' agree away from 0
    hv = h.clone().requires_grad_(True)
    (dphi,) = torch.autograd.grad(act(hv).sum(), hv)
    assert torch.allclose(act.derivative(h), dphi, rtol=1e-13, atol=1e-15)
    # phi(h) = phi'(h) h holds exactly for the homogeneous ones and clearly fails for the others (claims.md §1.9).
    gap = float((act(h) - act.derivative(h) * h).abs().max())
    if act.homogeneous:
        assert gap <= 1e-15
    else:
        assert gap > 1e-2


def test_relu_derivative_at_zero_is_zero_and_leaky_slope_parses() -> None:
    z = torch.zeros(3, dtype=DT)
    assert torch.equal(get_activation("relu").derivative(z), z)
    leaky = get_activation("leaky_relu:0.25")
    assert leaky.slope == 0.25
    assert torch.equal(leaky(torch.tensor([-2.0, 3.0], dtype=DT)), torch.tensor([-0.5, 3.0], dtype=DT))


@pytest.mark.parametrize("loss_name", list(LOSS_CASES))
def test_loss_output_error_is_the_derivative_of_the_value(loss_name: str) -> None:
    loss = LOSS_CASES[loss_name]
    g = gen(11)
    f = randn(2, 6, 4, g=g).requires_grad_(True)  # ensemble of 2, N = 6 samples, 4 outputs
    y = targets_for(loss, 6, 4, g, lead=(2,))
    value = loss.value(f, y)
    assert value.shape == (2,)
    (grad,) = torch.autograd.grad(value.sum(), f)
    assert rel_err(loss.output_error(f.detach(), y), grad) <= 1e-13


def test_loss_values_match_hand_formulas() -> None:
    g = gen(12)
    f, y = randn(5, 3, g=g), randn(5, 3, g=g)
    assert abs(float(SquaredLoss("sum").value(f, y)) - 0.5 * float(((f - y) ** 2).sum())) <= 1e-13
    assert abs(float(SquaredLoss("mean").value(f, y)) - 0.5 * float(((f - y) ** 2).sum()) / 5) <= 1e-13
    ys = torch.sign(y)
    assert abs(float(ExponentialLoss("sum").value(f, ys)) - float(torch.exp(-ys * f).sum())) <= 1e-12
    labels = torch.tensor([0, 2, 1, 1, 0])
    onehot = torch.nn.functional.one_hot(labels, 3).to(DT)
    ref = torch.nn.functional.cross_entropy(f, labels, reduction="mean")
    assert abs(float(CrossEntropyLoss("mean").value(f, onehot)) - float(ref)) <= 1e-13


def test_forward_matches_column_convention_by_hand() -> None:
    g = gen(13)
    ws = [randn(5, 3, g=g), randn(4, 5, g=g), randn(2, 4, g=g)]
    bs = [randn(5, g=g), None, randn(2, g=g)]
    acts = [get_activation("tanh"), get_activation("relu")]
    x = randn(6, 3, g=g)
    trace = forward(ws, bs, acts, x)
    for i in range(6):
        a = x[i]
        for l, (w, b) in enumerate(zip(ws, bs)):
            h = w @ a + (0 if b is None else b)
            assert torch.allclose(trace.pre[l][i], h, rtol=0, atol=1e-14)
            a = acts[l](h) if l < 2 else h
        assert torch.allclose(trace.output[i], a, rtol=0, atol=1e-14)
    assert [t.shape for t in trace.inputs] == [(6, 3), (6, 5), (6, 4)]


def test_linear_backward_pieces() -> None:
    g = gen(14)
    delta, a, fb = randn(2, 6, 4, g=g), randn(2, 6, 3, g=g), randn(2, 4, 3, g=g)
    signal, gw, gb = linear_backward(delta, a, fb, with_bias=True)
    for m in range(2):
        assert torch.allclose(signal[m], torch.stack([fb[m].T @ delta[m, i] for i in range(6)]), atol=1e-14)
        assert torch.allclose(gw[m], sum(torch.outer(delta[m, i], a[m, i]) for i in range(6)), atol=1e-14)
        assert torch.allclose(gb[m], delta[m].sum(0), atol=1e-14)
    assert torch.equal(signal, feedback_signal(delta, fb))
    assert torch.equal(gw, weight_gradient(delta, a))
    assert torch.equal(gb, bias_gradient(delta))
    s2, _, gb2 = linear_backward(delta, a, None, with_bias=False)
    assert s2 is None and gb2 is None


def _hand_column_forward(ws, bs, acts, x_i):
    """Per-sample forward in column convention; returns pre-activations h_1..h_L and inputs a_0..a_{L-1}."""
    a, hs, ins = x_i, [], []
    for l, w in enumerate(ws):
        ins.append(a)
        h = w @ a + (bs[l] if bs[l] is not None else 0.0)
        hs.append(h)
        if l < len(ws) - 1:
            a = acts[l](h)
    return hs, ins


@pytest.mark.parametrize("activation", ["relu", "tanh", "leaky_relu"])
def test_chain_backward_with_random_feedback_matches_hand_fa(activation: str) -> None:
    """FA by hand (claims.md §1.3): delta_l = phi'(h_l) .* (B_{l+1}^T delta_{l+1}), G_l = sum_i delta_l a_{l-1}^T."""
    g = gen(15)
    widths = (3, 6, 5, 4, 2)
    ws = [randn(widths[l + 1], widths[l], g=g) for l in range(4)]
    bs = [randn(widths[l + 1], g=g) for l in range(4)]
    fbs = [None] + [randn(widths[l + 1], widths[l], g=g) for l in range(1, 4)]
    acts = [get_activation(activation)] * 3
    x, y = randn(5, 3, g=g), randn(5, 2, g=g)
    loss = SquaredLoss("sum")
    trace = forward(ws, bs, acts, x)
    gw, gb, _ = chain_backward(trace, loss.output_error(trace.output, y), fbs, acts, with_bias=[True] * 4)
    hand_w = [torch.zeros_like(w) for w in ws]
    hand_b = [torch.zeros_like(b) for b in bs]
    for i in range(5):
        hs, ins = _hand_column_forward(ws, bs, acts, x[i])
        delta = hs[-1] - y[i]
        for l in range(3, -1, -1):
            hand_w[l] += torch.outer(delta, ins[l])
            hand_b[l] += delta
            if l > 0:
                delta = acts[l - 1].derivative(hs[l - 1]) * (fbs[l].T @ delta)
    for l in range(4):
        assert rel_err(gw[l], hand_w[l]) <= 1e-13
        assert rel_err(gb[l], hand_b[l]) <= 1e-13


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_direct_backward_matches_hand_dfa(activation: str) -> None:
    """DFA by hand (claims.md §1.3): delta_L = e, delta_l = phi'(h_l) .* (D_l e) with D_l (n_l x n_L) = stored^T."""
    g = gen(16)
    widths = (3, 6, 5, 4, 2)
    ws = [randn(widths[l + 1], widths[l], g=g) for l in range(4)]
    bs = [None, randn(5, g=g), None, randn(2, g=g)]
    stored = [randn(widths[-1], widths[l + 1], g=g) for l in range(3)]  # D_l^T, shape (n_L, n_l)
    acts = [get_activation(activation)] * 3
    x, y = randn(5, 3, g=g), randn(5, 2, g=g)
    trace = forward(ws, bs, acts, x)
    e_all = SquaredLoss("mean").output_error(trace.output, y)
    gw, gb, _ = direct_backward(trace, e_all, stored, acts, with_bias=[b is not None for b in bs])
    hand_w = [torch.zeros_like(w) for w in ws]
    hand_b = [None if b is None else torch.zeros_like(b) for b in bs]
    for i in range(5):
        hs, ins = _hand_column_forward(ws, bs, acts, x[i])
        e = (hs[-1] - y[i]) / 5.0
        for l in range(4):
            delta = e if l == 3 else acts[l].derivative(hs[l]) * (stored[l].T @ e)
            hand_w[l] += torch.outer(delta, ins[l])
            if hand_b[l] is not None:
                hand_b[l] += delta
    for l in range(4):
        assert rel_err(gw[l], hand_w[l]) <= 1e-13
        assert (gb[l] is None) == (bs[l] is None)
        if gb[l] is not None:
            assert rel_err(gb[l], hand_b[l]) <= 1e-13
