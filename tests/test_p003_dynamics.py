"""P003 through the engine: scalar systems (6)/(10) and GD, the modified scheme (24)-(25)/(28), flows vs closed forms."""

import math

import numpy as np
import pytest
import torch

from falab._checks import FalabInputError
from falab.dynamics import Euler, Problem, simulate_discrete
from falab.dynamics._modified_trapezoid import ModifiedTrapezoid
from falab.experiments.p003 import runs as p3r
from falab.experiments.p003 import systems as p3
from falab.functional import SquaredLoss
from falab.models import MLP, deep_linear
from falab.rules import DirectFeedbackAlignment, FAStar, FeedbackAlignment
from falab.theory import _p003 as th

DT = torch.float64


def _velocity(problem, thetas):
    upd = problem.update(p3.scalar_params(thetas))
    return -p3.scalar_thetas(upd)


def test_scalar_fa_system_is_eq6_and_gd_system_is_gd():
    rng = np.random.default_rng(0)
    th0 = rng.normal(size=(6, 2))
    d, lam = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 5, 6)
    e = lam - th0[:, 0] * th0[:, 1]
    v = _velocity(p3.scalar_system(d, lam), th0)
    assert v[:, 0] == pytest.approx(d * e, rel=1e-14, abs=1e-14)
    assert v[:, 1] == pytest.approx(e * th0[:, 0], rel=1e-14, abs=1e-14)
    g = _velocity(p3.scalar_system(d, lam, rule="gd"), th0)
    assert g[:, 0] == pytest.approx(e * th0[:, 1], rel=1e-14, abs=1e-14)
    assert g[:, 1] == pytest.approx(e * th0[:, 0], rel=1e-14, abs=1e-14)
    with pytest.raises(ValueError, match="Invalid rule"):
        p3.scalar_system(1.0, 1.0, rule="dfa")


def test_deep_scalar_system_is_eq10():
    rng = np.random.default_rng(1)
    ds = (2.0, 2.5, 1.0)
    th0 = rng.normal(size=(4, 3))
    lam = rng.uniform(0.5, 2, 4)
    e = lam - th0.prod(axis=1)
    v = _velocity(p3.deep_scalar_system(ds, lam), th0)
    expected = np.stack([ds[0] * e, ds[1] * e * th0[:, 0], e * th0[:, 0] * th0[:, 1]], axis=1)
    assert v == pytest.approx(expected, rel=1e-13, abs=1e-14)


def test_init_schemes():
    np.testing.assert_allclose(p3.init7([2.0], 4.0), [[2.0, 0.5]])
    np.testing.assert_allclose(p3.init11([1.3], (2.0, 2.5, 1.0))[0], th.deep_init(1.3, (2.0, 2.5, 1.0)), rtol=1e-15)


def test_k0_flow_limit_rate_and_invariant_against_closed_forms():
    d, lam = 2.0, 3.0
    ref = th.k0_limit(d, lam)
    ts = np.linspace(0, 4.0, 2001)
    thetas, _ = p3r.run_flow(p3.scalar_system(d, lam), p3.init7([-3.0, 0.5, 4.0], d), ts)
    p = thetas[..., 0] * thetas[..., 1]
    assert np.abs(thetas[-1, :, 0] - ref.theta1).max() <= 1e-10
    assert np.abs(p[-1] - lam).max() <= 1e-10
    k = thetas[..., 1] - thetas[..., 0] ** 2 / (2 * d)
    assert np.abs(k).max() <= 1e-10
    for i in range(3):
        assert th.fit_log_slope(ts, p[:, i] - lam) == pytest.approx(ref.rate, rel=0.02)


def test_vanishing_time_by_event_detection():
    d, lam = 2.0, 3.0
    theta0 = np.array([-1.0, -5.0])
    _, traj = p3r.run_flow(p3.scalar_system(d, lam), p3.init7(theta0, d), np.array([0.0, 1.0]),
                          events=[p3.theta_event(k) for k in range(2)])
    for k, x in enumerate(theta0):
        assert float(traj.events[k][0]) == pytest.approx(th.vanishing_time(x, d, lam), abs=1e-8)


def test_general_init_flow_limit_with_three_roots():
    d, K, lam = 0.5, -4.0, 1.0
    r1, r2, r3 = th.cubic_roots(d, K, lam)
    starts = np.array([[r2 + 0.3, (r2 + 0.3) ** 2 / (2 * d) + K], [r2 - 0.3, (r2 - 0.3) ** 2 / (2 * d) + K]])
    thetas, _ = p3r.run_flow(p3.scalar_system(d, lam), starts, np.linspace(0, 40, 5))
    assert thetas[-1, 0, 0] == pytest.approx(r3, abs=1e-8)
    assert thetas[-1, 1, 0] == pytest.approx(r1, abs=1e-8)
    assert thetas[-1, :, 0] * thetas[-1, :, 1] == pytest.approx([lam, lam], abs=1e-8)


def test_modified_scheme_equals_the_scalar_recursions_26_27_and_28():
    d, lam, eta = 2.0, 3.0, 0.07
    x = p3r.run_discrete(p3.scalar_system(d, lam), np.array([[0.3, -0.2]]), ModifiedTrapezoid(lr=eta), 30)[:, 0]
    a, b = 0.3, -0.2
    for t in range(30):  # (26)-(27), written out independently
        a_new = a + eta * d * (lam - a * b)
        b = b + 0.5 * eta * (lam - a * b) * (a_new + a)
        a = a_new
        assert x[t + 1] == pytest.approx([a, b], rel=1e-13, abs=1e-14)
    ds, lam3 = (2.0, 2.5, 1.0), 1.0
    y = p3r.run_discrete(p3.deep_scalar_system(ds, [lam3]), np.array([[0.1, 0.2, -0.3]]), ModifiedTrapezoid(lr=0.05), 20)[:, 0]
    s = np.array([0.1, 0.2, -0.3])
    for t in range(20):  # (28): Gauss-Seidel, factor prod_{k<l} (theta_k^t + theta_k^{t+1}) / 2, error at time t
        e = lam3 - s.prod()
        new = s.copy()
        for l in range(3):
            mid = np.prod([(s[k] + new[k]) / 2 for k in range(l)])
            new[l] = s[l] + 0.05 * ds[l] * e * mid
        s = new
        assert y[t + 1] == pytest.approx(s, rel=1e-12, abs=1e-14)


def _matrix_problem(seed=0, d_in=5, h=4, o=3, n=40):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=gen, dtype=DT) @ torch.randn(d_in, d_in, generator=gen, dtype=DT) * 0.5
    y = torch.randn(n, o, generator=gen, dtype=DT)
    model = deep_linear((d_in, h, o))
    p0 = model.init_params(gen, scheme="gaussian", std=0.5)
    rule = FeedbackAlignment()
    state = rule.init(model, p0, generator=gen)
    return Problem(model, rule, SquaredLoss("mean"), x, y, state), p0


def _c_matrix(pb, p):
    m = pb.state["B2"].T  # P003's M (h x o) replaces W2^T
    return p["W1"] @ p["W1"].T - m @ p["W2"] - p["W2"].T @ m.T


def test_modified_scheme_conserves_the_matrix_invariant_exactly_and_euler_adds_eta2_GGT():
    pb, p0 = _matrix_problem()
    traj = simulate_discrete(pb, p0, ModifiedTrapezoid(lr=0.05), 300)
    cs = torch.stack([_c_matrix(pb, p) for p in traj.params])
    assert float((cs - cs[0]).abs().max() / cs[0].abs().max()) <= 1e-13
    eta = 0.05
    changes = []

    def on_step(k, p, upd, new):
        changes.append(float((_c_matrix(pb, new) - _c_matrix(pb, p) - eta ** 2 * upd["W1"] @ upd["W1"].T).abs().max()))

    simulate_discrete(pb, p0, Euler(lr=eta), 50, on_step=on_step)
    assert max(changes) <= 1e-13
    drift = _c_matrix(pb, simulate_discrete(pb, p0, Euler(lr=eta), 50).final) - _c_matrix(pb, p0)
    assert float(drift.abs().max()) > 1e-6  # Euler does not conserve it


def test_modified_scheme_conserves_the_last_dfa_pair_of_a_deep_linear_net():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(30, 4, generator=gen, dtype=DT)
    y = torch.randn(30, 2, generator=gen, dtype=DT)
    model = deep_linear((4, 3, 3, 2))
    p0 = model.init_params(gen, scheme="gaussian", std=0.4)
    rule = DirectFeedbackAlignment()
    st = rule.init(model, p0, generator=gen)
    pb = Problem(model, rule, SquaredLoss("mean"), x, y, st)
    traj = simulate_discrete(pb, p0, ModifiedTrapezoid(lr=0.05), 200)
    m = st["D2"].T

    def c(p):
        return p["W2"] @ p["W2"].T - m @ p["W3"] - p["W3"].T @ m.T

    cs = torch.stack([c(p) for p in traj.params])
    assert float((cs - cs[0]).abs().max() / cs[0].abs().max()) <= 1e-13


def test_modified_scheme_first_layer_equals_euler_and_with_biases():
    gen = torch.Generator().manual_seed(2)
    model = MLP((3, 4, 2), "tanh", bias=True)
    p0 = model.init_params(gen, scheme="gaussian", std=0.5)
    p0["b1"] = 0.1 * torch.randn(4, generator=gen, dtype=DT)
    rule = FeedbackAlignment()
    st = rule.init(model, p0, generator=gen)
    x, y = torch.randn(10, 3, generator=gen, dtype=DT), torch.randn(10, 2, generator=gen, dtype=DT)
    pb = Problem(model, rule, SquaredLoss("mean"), x, y, st)
    lrs = {k: 0.1 for k in p0}
    upd = pb.update(p0)
    new = ModifiedTrapezoid(lr=0.1).step(pb, p0, upd, lrs, None)
    for k in ("W1", "b1", "b2"):  # no layer below: identical to Euler; biases use delta(t) only
        assert torch.allclose(new[k], p0[k] - 0.1 * upd[k], rtol=0, atol=1e-15)
    assert not torch.allclose(new["W2"], p0["W2"] - 0.1 * upd["W2"])  # uses the midpoint input


def test_modified_scheme_rejects_fa_star():
    pb, p0 = _matrix_problem()
    bad = Problem(pb.model, FAStar(), pb.loss, pb.x, pb.y, pb.state)
    with pytest.raises(FalabInputError, match="Invalid rule"):
        ModifiedTrapezoid(lr=0.1).step(bad, p0, p0, {k: 0.1 for k in p0}, None)


def test_euler_identity_and_limit_point_t8():
    d, lam, eta = 2.0, 3.0, 0.05
    x = p3r.run_discrete(p3.scalar_system(d, lam), np.zeros((1, 2)), Euler(lr=eta), 300)[:, 0]
    s = np.concatenate([[0.0], np.cumsum(np.diff(x[:, 0]) ** 2)])
    assert np.abs(x[:, 1] - (x[:, 0] ** 2 - s) / (2 * d)).max() <= 1e-12
    assert abs(x[-1, 0] * x[-1, 1] - lam) <= 1e-10
    assert x[-1, 0] == pytest.approx(th.euler_limit_point(s[-1], d, lam), abs=1e-10)
    assert abs(x[-1, 0] - th.k0_root(d, lam)) > 0.05  # a different point of the hyperbola than the flow's


def test_modified_scheme_bound_t9():
    d, lam = 2.0, 3.0
    for eta in (0.05, 0.99 * th.modified_eta_max(d, lam)):
        x = p3r.run_discrete(p3.scalar_system(d, lam), np.zeros((1, 2)), ModifiedTrapezoid(lr=eta), 200)[:, 0]
        t = np.arange(201)
        assert np.abs(x[:, 1] - x[:, 0] ** 2 / (2 * d)).max() <= 1e-13
        assert np.all(np.abs(x[:, 0] * x[:, 1] - lam) <= th.modified_bound(t, eta, d, lam) + 1e-12)


def test_deep_flow_t5_and_modified_t10():
    ds, lam = (2.0, 2.5, 1.0), 1.0
    dc = th.deep_constants(ds)
    r, rate = th.deep_limit(lam, ds)
    ts = np.linspace(0, 4.0, 2001)
    thetas, _ = p3r.run_flow(p3.deep_scalar_system(ds, [lam, lam]), p3.init11([-0.8, 1.9], ds), ts)
    for l in range(3):
        assert np.abs(thetas[..., l] - dc.c[l] * thetas[..., 0] ** (2 ** l)).max() <= 1e-10
    assert np.abs(thetas[-1, :, 0] - r).max() <= 1e-8
    p = thetas.prod(-1)
    assert th.fit_log_slope(ts, p[:, 0] - lam) == pytest.approx(rate, rel=0.02)
    eta = 0.05
    y = p3r.run_discrete(p3.deep_scalar_system(ds, [lam]), np.zeros((1, 3)), ModifiedTrapezoid(lr=eta), 300)[:, 0]
    for l in range(3):
        assert np.abs(y[:, l] - dc.c[l] * y[:, 0] ** (2 ** l)).max() <= 1e-13
    assert abs(y[-1, 0] - r) <= 1e-12
    q = math.exp(-th.fit_log_slope(np.arange(301), y.prod(-1) - lam, 1e-12, 1e-4))
    assert (1 - q) == pytest.approx(1 - th.deep_modified_rate(eta, lam, ds), rel=0.02)


def test_p1_finite_batch_fa_equals_eq3_with_empirical_covariances():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(200, 6, generator=gen, dtype=DT) * torch.linspace(0.3, 2, 6, dtype=DT)
    y = torch.randn(200, 3, generator=gen, dtype=DT)
    sxx, sxy = x.T @ x / 200, y.T @ x / 200
    model = deep_linear((6, 4, 3))
    p = model.init_params(gen, scheme="gaussian", std=0.5)
    rule = FeedbackAlignment()
    st = rule.init(model, p, generator=gen)
    upd = rule.update(model, p, st, x, y, SquaredLoss("mean"))[0]
    m = st["B2"].T
    e = sxy - p["W2"] @ p["W1"] @ sxx
    assert torch.allclose(-upd["W1"], m @ e, rtol=0, atol=1e-13)
    assert torch.allclose(-upd["W2"], e @ p["W1"].T, rtol=0, atol=1e-13)


def test_covariance_data_reproduces_sigma():
    gen = torch.Generator().manual_seed(6)
    x, a = p3.autoencoder_data(gen, n=300)
    sigma = x.T @ x / 300
    xc = p3.covariance_data(sigma)
    assert torch.allclose(xc.T @ xc / xc.shape[0], sigma, rtol=0, atol=1e-12)
    assert a.shape == (20, 5) and float(a.min()) >= 0.0


def test_engine_flows_follow_the_reduced_odes_13_and_82():
    from scipy.integrate import solve_ivp

    d, lam, start = 0.5, 1.0, np.array([[0.4, -2.0]])
    K = th.invariant_K(0.4, -2.0, d)
    ts = np.linspace(0, 3, 7)
    thetas, _ = p3r.run_flow(p3.scalar_system(d, lam), start, ts)
    ref = solve_ivp(lambda t, y: th.reduced_rhs(y, d, K, lam), (0, 3), [0.4], t_eval=ts, rtol=1e-12, atol=1e-14)
    assert thetas[:, 0, 0] == pytest.approx(ref.y[0], abs=1e-9)
    ds = (2.0, 2.5, 1.0)
    thetas, _ = p3r.run_flow(p3.deep_scalar_system(ds, [1.0]), p3.init11([0.3], ds), ts)
    ref = solve_ivp(lambda t, y: th.reduced_deep_rhs(y, 1.0, ds), (0, 3), [0.3], t_eval=ts, rtol=1e-12, atol=1e-14)
    assert thetas[:, 0, 0] == pytest.approx(ref.y[0], abs=1e-9)


def test_eq8_instrument_is_the_gd_gradient_when_the_feedback_is_the_transposed_forward_path():
    from falab.instruments._p003 import linear_fa_update

    gen = torch.Generator().manual_seed(8)
    ws = [torch.randn(5, 4, generator=gen, dtype=DT), torch.randn(3, 5, generator=gen, dtype=DT),
          torch.randn(2, 3, generator=gen, dtype=DT)]
    a = torch.randn(4, 4, generator=gen, dtype=DT)
    sxx, sxy = a @ a.T, torch.randn(2, 4, generator=gen, dtype=DT)
    ms = [(ws[2] @ ws[1]).T, ws[2].T]  # M_l = (W_L ... W_{l+1})^T turns eq. (8) into GD
    wr = [w.clone().requires_grad_(True) for w in ws]
    theta = wr[2] @ wr[1] @ wr[0]
    loss = 0.5 * torch.trace(theta @ sxx @ theta.T) - torch.trace(sxy.T @ theta)  # population loss up to a constant
    grads = torch.autograd.grad(loss, wr)
    for g, u in zip(grads, linear_fa_update(ws, ms, sxx, sxy)):
        assert torch.allclose(u, g, rtol=1e-12, atol=1e-12)
