"""Jacobians of the flow field from torch.func, implicit solvers and method='auto' (issue 17 item 2)."""

from __future__ import annotations

import numpy as np
import torch

from falab.dynamics import Problem, simulate_flow
from falab.dynamics._jacobian import FieldJacobian, jacobian_of
from falab.functional import SquaredLoss
from falab.models import MLP, DiagonalNet
from falab.rules import Backprop, FeedbackAlignment, Gaussian

DT = torch.float64


def _fa_ensemble(k: int = 3):
    g = torch.Generator().manual_seed(3)
    model = MLP((3, 4, 2), "tanh")
    p0 = model.init_params(g, ensemble=k)
    rule = FeedbackAlignment(Gaussian())
    state = rule.init(model, p0, generator=g)
    x, y = torch.randn(k, 5, 3, generator=g, dtype=DT), torch.randn(k, 5, 2, generator=g, dtype=DT)
    return Problem(model, rule, SquaredLoss("mean"), x, y, state), p0


def _flat_field(prob: Problem, names, shapes, sizes):
    def f(vec: torch.Tensor) -> torch.Tensor:
        parts, off = {}, 0
        for n, s, k in zip(names, shapes, sizes):
            parts[n] = vec[off:off + k].reshape(s)
            off += k
        upd = prob.update(parts)
        return -torch.cat([upd[n].reshape(-1) for n in names])
    return f


def test_jacobian_matches_autograd_and_finite_differences_block_diagonal():
    prob, p0 = _fa_ensemble()
    names = list(p0)
    shapes = [tuple(p0[n].shape) for n in names]
    sizes = [p0[n].numel() for n in names]
    vec = torch.cat([p0[n].reshape(-1) for n in names])
    f = _flat_field(prob, names, shapes, sizes)
    auto = torch.autograd.functional.jacobian(f, vec).numpy()
    for sparse in (False, True):
        jac = FieldJacobian(prob, names, shapes, sizes, 3, True, sparse)(0.0, vec.numpy())
        dense = jac.toarray() if hasattr(jac, "toarray") else np.asarray(jac)
        np.testing.assert_allclose(dense, auto, rtol=0, atol=1e-13)
    h = 1e-6
    fd = np.stack([(f(vec + h * e) - f(vec - h * e)).numpy() / (2 * h) for e in torch.eye(len(vec), dtype=DT)], 1)
    np.testing.assert_allclose(auto, fd, rtol=0, atol=1e-8)
    # members do not couple: the off-block entries are exactly zero
    one = jacobian_of(Problem(prob.model, prob.rule, prob.loss, prob.x[0], prob.y[0],
                              {k: v[0] for k, v in prob.state.items()}), {k: v[0] for k, v in p0.items()}).numpy()
    member0 = [i for n, s in zip(names, sizes) for i in range(sum(sizes[:names.index(n)]),
                                                                 sum(sizes[:names.index(n)]) + s // 3)]
    np.testing.assert_allclose(auto[np.ix_(member0, member0)], one, rtol=0, atol=1e-13)


def _diag_problem(d: int = 6, n: int = 4):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, d, generator=g, dtype=DT)
    y = x[:, :2] @ torch.tensor([[1.0], [-2.0]], dtype=DT)
    prob = Problem(DiagonalNet(d=d, depth=2), Backprop(), SquaredLoss("mean"), x, y)
    return prob, {"v1": torch.full((d,), 0.1, dtype=DT), "v2": torch.full((d,), 0.1, dtype=DT)}


def test_implicit_solvers_with_jacobian_reproduce_dop853():
    prob, p0 = _fa_ensemble(1)
    one = Problem(prob.model, prob.rule, prob.loss, prob.x[0], prob.y[0], {k: v[0] for k, v in prob.state.items()})
    q0 = {k: v[0] for k, v in p0.items()}
    ts = [0.0, 0.25, 1.0]
    ref = simulate_flow(one, q0, ts, method="DOP853", rtol=1e-13, atol=1e-15)
    for m in ("Radau", "BDF", "LSODA"):
        tr = simulate_flow(one, q0, ts, method=m, rtol=1e-12, atol=1e-14)
        assert tr.status == "ok" and tr.info["solver"] == m and "torch.func" in tr.info["jacobian"]
        assert m == "LSODA" or tr.info["njev"] > 0  # LSODA only asks for it once stiff
        for a, b in zip(ref.params, tr.params):
            for k in a:
                assert float((a[k] - b[k]).abs().max()) < 1e-9, (m, k)


def test_ensemble_jacobian_route_equals_members_alone():
    prob, p0 = _fa_ensemble(2)
    ts = [0.0, 0.5]
    tr = simulate_flow(prob, p0, ts, method="BDF", rtol=1e-12, atol=1e-14)
    assert "block-diagonal" in tr.info["jacobian"]
    for m in range(2):
        one = Problem(prob.model, prob.rule, prob.loss, prob.x[m], prob.y[m], {k: v[m] for k, v in prob.state.items()})
        alone = simulate_flow(one, {k: v[m] for k, v in p0.items()}, ts, method="DOP853", rtol=1e-13, atol=1e-15)
        for k in p0:
            assert float((tr.final[k][m] - alone.final[k]).abs().max()) < 1e-9


def test_auto_picks_by_stiffness_and_records_it():
    prob, p0 = _diag_problem()
    short = simulate_flow(prob, p0, [0.0, 1.0], method="auto")
    long = simulate_flow(prob, p0, [0.0, 5e4], method="auto")
    assert short.info["auto"]["chosen"] == "DOP853" and short.info["solver"] == "DOP853"
    assert long.info["auto"]["chosen"] == "LSODA" and long.info["solver"] == "LSODA"
    assert long.info["auto"]["rho_times_horizon"] > 1e4 > short.info["auto"]["rho_times_horizon"]
    relu = MLP((2, 3, 1), "relu")
    pr = Problem(relu, Backprop(), SquaredLoss("mean"), torch.ones(2, 2, dtype=DT), torch.ones(2, 1, dtype=DT))
    assert simulate_flow(pr, relu.init_params(torch.Generator().manual_seed(0)), [0.0, 0.1],
                         method="auto").info["solver"] == "events"
