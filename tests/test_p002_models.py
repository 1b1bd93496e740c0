"""P002 tensor-network models: exact gradients through the engine, the data-tensor definition, adjoint pullbacks."""

import numpy as np
import pytest
import torch

from falab.functional import ExponentialLoss, SquaredLoss
from falab.models._tensor_nets import CircularConvNet, DeepMatrixSensing, DiagonalNet, FullyConnectedTensorNet
from falab.rules import Backprop
from falab.theory import _p002 as theory

F64 = torch.float64

CASES = [
    (FullyConnectedTensorNet((3, 4, 2)), lambda x: theory.data_tensor_fc(x, (3, 4, 2))),
    (FullyConnectedTensorNet((3, 2)), lambda x: theory.data_tensor_fc(x, (3, 2))),
    (DiagonalNet(4, 3), lambda x: theory.data_tensor_diag(x, 3)),
    (CircularConvNet(5, (3, 2)), lambda x: theory.data_tensor_conv(x, (3, 2, 5))),
    (CircularConvNet(4), lambda x: theory.data_tensor_conv(x, (4, 4))),
    (CircularConvNet(3, (1,)), lambda x: theory.data_tensor_conv(x, (1, 3))),
]


def _params(model, g, k=3):
    return {f"v{l + 1}": torch.randn(k, s, generator=g, dtype=F64) for l, s in enumerate(model.param_sizes)}


@pytest.mark.parametrize("model,tensor", CASES)
@pytest.mark.parametrize("loss", [SquaredLoss("sum"), ExponentialLoss("sum")])
def test_backprop_is_exact_gradient(model, tensor, loss):
    g = torch.Generator().manual_seed(1)
    params = {k: 0.5 * v for k, v in _params(model, g).items()}
    x = torch.randn(5, model.input_dim, generator=g, dtype=F64)
    y = torch.randn(5, 1, generator=g, dtype=F64)
    if isinstance(loss, ExponentialLoss):
        y = torch.sign(y)
    upd = Backprop().update(model, params, {}, x, y, loss)[0]
    leaf = {k: v.clone().requires_grad_() for k, v in params.items()}
    loss.value(model(leaf, x), y).sum().backward()
    for k in params:
        ref = leaf[k].grad
        assert torch.allclose(upd[k], ref, rtol=1e-12, atol=1e-12 * float(ref.abs().max()))


@pytest.mark.parametrize("model,tensor", CASES)
def test_output_is_data_tensor_contraction(model, tensor):
    g = torch.Generator().manual_seed(2)
    params = _params(model, g)
    x = torch.randn(4, model.input_dim, generator=g, dtype=F64)
    out = model(params, x)[..., 0]
    for k in range(3):
        vs = [params[f"v{l + 1}"][k].numpy() for l in range(model.n_layers)]
        ref = [float(theory.contract(tensor(xi.numpy()), vs)) for xi in x]
        np.testing.assert_allclose(out[k].numpy(), ref, rtol=1e-12, atol=1e-12)
        basis = [tensor(e) for e in np.eye(model.input_dim)]
        np.testing.assert_allclose(model.beta(params)[k].numpy(), theory.beta_of(basis, vs), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("model,tensor", CASES)
def test_pullback_is_adjoint(model, tensor):
    g = torch.Generator().manual_seed(3)
    params = _params(model, g, k=1)
    for l in range(model.n_layers):
        v = params[f"v{l + 1}"]
        w = model.dense(l, v)
        gm = torch.randn(w.shape, generator=g, dtype=F64)
        lhs = float((w * gm).sum())
        rhs = float((v * model.dense_adjoint(l, gm)).sum())
        assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))


def test_conv_dense_is_circular_cross_correlation():
    model = CircularConvNet(5, (3,))
    g = torch.Generator().manual_seed(4)
    w = torch.randn(3, generator=g, dtype=F64)
    a = torch.randn(5, generator=g, dtype=F64)
    ref = torch.stack([sum(a[(i + j) % 5] * w[j] for j in range(3)) for i in range(5)])
    assert torch.allclose(model.dense(0, w) @ a, ref, atol=1e-14)


def test_matrix_sensing_gradient_and_output():
    model = DeepMatrixSensing(3, 3)
    g = torch.Generator().manual_seed(5)
    params = {f"W{l}": torch.randn(2, 3, 3, generator=g, dtype=F64) for l in (1, 2, 3)}
    a = torch.randn(4, 3, 3, generator=g, dtype=F64)
    a = a + a.transpose(-1, -2)
    x, y = a.reshape(4, 9), torch.randn(4, 1, generator=g, dtype=F64)
    f = model(params, x)[..., 0]
    assert torch.allclose(f, torch.einsum("nab,kab->kn", a, model.product(params)), atol=1e-12)
    upd = Backprop().update(model, params, {}, x, y, SquaredLoss("sum"))[0]
    leaf = {k: v.clone().requires_grad_() for k, v in params.items()}
    pred = torch.einsum("nab,kab->kn", a, model.product(leaf))[..., None]
    SquaredLoss("sum").value(pred, y).sum().backward()
    for k in params:
        assert torch.allclose(upd[k], leaf[k].grad, rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("depth", [2, 3])
def test_conv_orthogonal_decomposition(depth):
    """Assumption 1 for full-length conv: M(x) = sum_j [S x]_j outer(U[:, j], ..), S = d^((L-1)/2) F, U = conj(F)."""
    d = 5
    x = np.random.default_rng(0).standard_normal(d)
    s_mat, u = theory.conv_decomposition(d, depth)
    sx = s_mat @ x
    m = np.zeros((d,) * depth, dtype=complex)
    for j in range(d):
        t = sx[j]
        for _ in range(depth):
            t = np.multiply.outer(t, u[:, j])
        m += t
    np.testing.assert_allclose(m, theory.data_tensor_conv(x, (d,) * depth), atol=1e-12)


def test_bad_input_messages():
    with pytest.raises(ValueError, match="Invalid filter size"):
        CircularConvNet(3, (4,))
    with pytest.raises(ValueError, match="Invalid depth"):
        DiagonalNet(3, 1)
