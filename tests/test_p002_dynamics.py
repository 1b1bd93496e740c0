"""P002 through the engine: GD flow / GD of tensor networks against the Theorem 5/6 predictors and exact identities."""

import numpy as np
import torch

from falab.dynamics import Euler, Problem, simulate_discrete, simulate_flow
from falab.functional import SquaredLoss
from falab.models._tensor_nets import CircularConvNet, DiagonalNet, FullyConnectedTensorNet
from falab.rules import Backprop
from falab.theory import _p002 as theory

F64 = torch.float64
X = torch.tensor([[1.0, 2.0]], dtype=F64)
Y = torch.tensor([[1.0]], dtype=F64)
ZBARS = np.array([[0.6, -0.8], [-0.28, 0.96]])


def _toy(arch):
    if arch == "fc":
        return FullyConnectedTensorNet((2, 2)), 2 * np.eye(2).reshape(-1, order="F"), lambda v: theory.data_tensor_fc(
            v, (2, 2))
    if arch == "diag":
        return DiagonalNet(2, 2), np.array([2.0, 2.0]), lambda v: theory.data_tensor_diag(v, 2)
    return CircularConvNet(2), np.array([2.0, 0.0]), lambda v: theory.data_tensor_conv(v, (2, 2))


def test_theorem6_flow_and_gd_all_architectures():
    for arch in ("fc", "diag", "conv"):
        model, v1, mk = _toy(arch)
        alphas = (0.5, 1.0)
        keys = [(a, z) for a in alphas for z in ZBARS]
        p0 = {"v1": torch.tensor(np.stack([a * v1 for a, _ in keys]), dtype=F64),
              "v2": torch.tensor(np.stack([a * z / 2 for a, z in keys]), dtype=F64)}
        pred = np.stack([theory.theorem6_limit(mk(X[0].numpy()), v1, z / 2, a, 1.0, [mk(e) for e in np.eye(2)])["beta"]
                         for a, z in keys])
        problem = Problem(model, Backprop(), SquaredLoss("sum"), X, Y)
        flow = simulate_flow(problem, p0, [0.0, 20.0])
        assert np.abs(model.beta(flow.final).numpy() - pred).max() <= 1e-8
        lr = 1e-2
        gd = simulate_discrete(problem, p0, Euler(lr=lr), 2000, record_every=2000)
        assert np.abs(model.beta(gd.final).numpy() - pred).max() <= 0.5 * lr


def test_balancedness_flow_and_exact_euler_identity():
    model = DiagonalNet(3, 3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, generator=g, dtype=F64)
    y = torch.randn(2, 1, generator=g, dtype=F64)
    p0 = {f"v{l}": 0.8 * torch.randn(3, generator=g, dtype=F64) for l in (1, 2, 3)}
    problem = Problem(model, Backprop(), SquaredLoss("sum"), x, y)
    tr = simulate_flow(problem, p0, np.linspace(0, 3, 4))
    inv = torch.stack([p["v1"] ** 2 - p["v3"] ** 2 for p in tr.params])  # per mode (Assumption 1, S = U = I)
    assert float((inv - inv[0]).abs().max()) <= 1e-8 * float(inv[0].abs().max())
    lr = 0.05
    errs = []

    def on_step(k, p, upd, new):
        ch = [float(((new[n] - p[n]) * (new[n] + p[n])).sum()) for n in ("v1", "v2")]
        pred = lr**2 * float((upd["v1"] ** 2).sum() - (upd["v2"] ** 2).sum())
        errs.append(abs(ch[0] - ch[1] - pred) / (lr**2 * float((upd["v1"] ** 2).sum() + (upd["v2"] ** 2).sum())))

    simulate_discrete(problem, p0, Euler(lr=lr), 20, on_step=on_step)
    assert max(errs) <= 1e-9


def test_theorem5_flow_depth3_diagonal():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((2, 4)), rng.standard_normal(2)
    eta = rng.uniform(0.5, 1.5, 4)
    alpha = 1.0
    model = DiagonalNet(4, 3)
    p0 = {"v1": torch.tensor(alpha * eta), "v2": torch.tensor(alpha * eta), "v3": torch.zeros(4, dtype=F64)}
    problem = Problem(model, Backprop(), SquaredLoss("sum"), torch.tensor(x), torch.tensor(y[:, None]))
    tr = simulate_flow(problem, p0, [0.0, 30.0])
    assert float(problem.loss_value(tr.final)) < 1e-14
    pred = theory.theorem5_limit(x, y, np.eye(4), eta, alpha, 3)["beta"]
    assert np.abs(model.beta(tr.final).numpy() - pred).max() <= 1e-6


def test_theorem3_gd_iterates_follow_exact_curve():
    """Single-point classification (exp loss): GD iterates lie on the cosh/sinh curve up to O(eta)."""
    from falab.functional import ExponentialLoss

    model, v1, mk = _toy("conv")
    m = mk(X[0].numpy())
    alpha, lr = 0.5, 1e-2
    p0 = {"v1": torch.tensor(np.stack([alpha * v1] * 2)), "v2": torch.tensor(alpha * ZBARS / 2)}
    problem = Problem(model, Backprop(), ExponentialLoss("sum"), X, Y)
    tr = simulate_discrete(problem, p0, Euler(lr=lr), 400, record_every=50)
    worst = 0.0
    for rec in tr.params:
        for k, z in enumerate(ZBARS):
            a, b = rec["v1"][k].numpy(), rec["v2"][k].numpy()
            nu = theory.theorem6_fit_nu(m, v1, z / 2, alpha, float(theory.contract(m, [a, b])))
            c1, c2 = theory.theorem6_curve(m, v1, z / 2, alpha, np.array([nu]))
            worst = max(worst, float(np.abs(np.concatenate([c1[0] - a, c2[0] - b])).max()))
    assert 0 < worst <= 2 * lr
