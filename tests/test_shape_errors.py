"""Shape errors at every Python entry point where parameters, feedback or data enter: one ``Invalid <name> shape:
<got> (expected <shape>, i.e. <meaning>)`` line instead of a bare torch matmul error (the CLI entry points are rows of
tests/test_input_corpus.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from falab._checks import FalabInputError
from falab.dynamics import Euler, Problem, simulate_discrete, simulate_flow
from falab.functional import SquaredLoss
from falab.models import MLP, DeepMatrixSensing, DiagonalNet, FullyConnectedTensorNet, deep_linear, from_factors
from falab.nn import FALinear
from falab.rules import FeedbackAlignment
from falab.systems import mf_problem

F64 = torch.float64


def _mlp() -> tuple[MLP, dict[str, torch.Tensor]]:
    model = MLP((15, 30, 2), "tanh")
    return model, model.init_params(torch.Generator().manual_seed(0))


def _raises(pattern: str):
    return pytest.raises(FalabInputError, match="^" + re.escape(pattern) + "$")


def test_model_forward_transposed_weight():
    model, p = _mlp()
    p["W1"] = p["W1"][:7]
    with _raises("Invalid W1 shape: (7, 15) (expected (30, 15), i.e. (n_1, n_0))"):
        model(p, torch.zeros(4, 15, dtype=F64))
    p = model.init_params(torch.Generator().manual_seed(0))
    p["W2"] = p["W2"].T.contiguous()
    with _raises("Invalid W2 shape: (30, 2) (expected (2, 30), i.e. (n_2, n_1))"):
        model(p, torch.zeros(4, 15, dtype=F64))


def test_model_forward_ensemble_dimensions_must_agree():
    model = MLP((15, 30, 2), "tanh")
    p = model.init_params(torch.Generator().manual_seed(0), ensemble=3)
    p["W2"] = p["W2"][:2]
    with _raises("Invalid W2 shape: (2, 2, 30) (expected the leading (ensemble) dimensions (3,) of W1, then (2, 30), "
                 "i.e. (n_2, n_1))"):
        model(p, torch.zeros(4, 15, dtype=F64))
    p = model.init_params(torch.Generator().manual_seed(0), ensemble=3)
    p["W1"] = p["W1"][:, :7]
    with _raises("Invalid W1 shape: (3, 7, 15) (expected (..., 30, 15), i.e. (n_1, n_0))"):
        model(p, torch.zeros(4, 15, dtype=F64))


def test_model_forward_keys_bias_and_data():
    model, p = _mlp()
    with _raises("Invalid params: ['W1'] (expected exactly the keys W1, W2, b1, b2)"):
        model({"W1": p["W1"]}, torch.zeros(4, 15, dtype=F64))
    biased = MLP((15, 30, 2), "tanh", bias=True)
    pb = biased.init_params(torch.Generator().manual_seed(0))
    pb["b1"] = torch.zeros(2, dtype=F64)
    with _raises("Invalid b1 shape: (2,) (expected (30,), i.e. (n_1,))"):
        biased(pb, torch.zeros(4, 15, dtype=F64))
    with _raises("Invalid x shape: (15, 4) (expected (N, 15), i.e. (N, n_0): samples in rows)"):
        model(p, torch.zeros(15, 4, dtype=F64))
    with _raises("Invalid x shape: (15,) (expected (N, 15), i.e. (N, n_0): samples in rows)"):
        model(p, torch.zeros(15, dtype=F64))
    # the right shapes still work (and the output is what the unchecked trace computes)
    x = torch.randn(4, 15, dtype=F64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model(p, x), model.trace(p, x).output, rtol=0, atol=0)


def test_tensor_network_parameters():
    net = DiagonalNet(5, 3)
    p = {f"v{l}": torch.ones(5, dtype=F64) for l in (1, 2, 3)}
    p["v2"] = torch.ones(4, dtype=F64)
    with _raises("Invalid v2 shape: (4,) (expected (5,), i.e. (k_2,))"):
        net(p, torch.zeros(2, 5, dtype=F64))
    fc = FullyConnectedTensorNet((3, 2))
    with _raises("Invalid v1 shape: (3,) (expected (6,), i.e. (k_1,))"):
        fc({"v1": torch.ones(3, dtype=F64), "v2": torch.ones(2, dtype=F64)}, torch.zeros(1, 3, dtype=F64))
    dms = DeepMatrixSensing(3, 2)
    q = dms.init_params(0.5)
    q["W2"] = torch.zeros(3, 2, dtype=F64)
    with _raises("Invalid W2 shape: (3, 2) (expected (3, 3), i.e. (d, d))"):
        dms(q, torch.zeros(1, 9, dtype=F64))


def test_rule_init_feedback_shape():
    model, p = _mlp()
    with pytest.raises(FalabInputError, match=r"^Invalid feedback B2 shape: \(30, 2\) \(expected \(2, 30\)"):
        FeedbackAlignment().init(model, p, generator=torch.Generator(), feedback={"B2": torch.zeros(30, 2, dtype=F64)})


def test_problem_construction_data_shapes():
    model = MLP((15, 30, 2), "tanh")
    with _raises("Invalid problem.x shape: (15, 6) (expected (N, 15), i.e. (N, n_0): samples in rows)"):
        Problem(model, FeedbackAlignment(), SquaredLoss(), torch.zeros(15, 6, dtype=F64), torch.zeros(6, 2, dtype=F64))
    with _raises("Invalid problem.y shape: (2, 6) (expected (N, 2), i.e. (N, n_L): samples in rows)"):
        Problem(model, FeedbackAlignment(), SquaredLoss(), torch.zeros(6, 15, dtype=F64), torch.zeros(2, 6, dtype=F64))
    with _raises("Invalid problem.x shape: (3, 6, 14) (expected (..., N, 15), i.e. (..., N, n_0): samples in rows)"):
        Problem(model, FeedbackAlignment(), SquaredLoss(), torch.zeros(3, 6, 14, dtype=F64),
                torch.zeros(6, 2, dtype=F64))


@pytest.mark.parametrize("route", ["flow", "discrete"])
def test_simulation_entry_checks_initial_parameters(route):
    model = deep_linear((15, 30, 2))
    p = model.init_params(torch.Generator().manual_seed(0))
    state = FeedbackAlignment().init(model, p, generator=torch.Generator().manual_seed(1))
    prob = Problem(model, FeedbackAlignment(), SquaredLoss(), torch.randn(6, 15, dtype=F64), torch.zeros(6, 2, dtype=F64),
                   state)
    bad = {"W1": p["W1"].T.contiguous(), "W2": p["W2"]}
    with _raises("Invalid W1 shape: (15, 30) (expected (30, 15), i.e. (n_1, n_0))"):
        if route == "flow":
            simulate_flow(prob, bad, [0.0, 1.0])
        else:
            simulate_discrete(prob, bad, Euler(lr=0.1), 2)


def test_nn_layer_feedback_setter():
    layer = FALinear(15, 30, dtype=F64)
    with _raises("Invalid FALinear.feedback shape: (15, 30) (expected (30, 15), i.e. the shape of the stored "
                 "feedback)"):
        layer.set_feedback(torch.zeros(15, 30, dtype=F64))
    b = torch.randn(30, 15, dtype=F64, generator=torch.Generator().manual_seed(0))
    layer.set_feedback(b)  # the right shape is accepted and used by the backward pass
    assert torch.equal(layer.feedback, b) and torch.equal(layer.feedback_matrix(), b)
    x = torch.randn(4, 15, dtype=F64, requires_grad=True, generator=torch.Generator().manual_seed(1))
    layer(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(4, 30, dtype=F64) @ b, rtol=1e-12, atol=1e-12)


def test_matrix_factorisation_entry():
    y = torch.ones(4, 3, dtype=F64)
    with pytest.raises(FalabInputError, match=r"^Invalid factors shapes: \(\(4, 2\), \(3, 2\)\)"):
        from_factors(torch.ones(4, 2, dtype=F64), torch.ones(3, 2, dtype=F64))
    with pytest.raises(FalabInputError, match=r"^Invalid feedback B2 shape: \(2, 3\) \(expected \(3, 2\)"):
        mf_problem("FA", y, torch.ones(4, 2, dtype=F64), torch.ones(2, 3, dtype=F64), torch.ones(2, 3, dtype=F64))
    prob, p0 = mf_problem("GD", y, torch.ones(4, 2, dtype=F64), torch.ones(2, 3, dtype=F64), None)
    assert np.isfinite(float(prob.loss_value(p0)))
