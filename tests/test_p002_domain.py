"""P002 closed forms over their whole domain (alpha -> 0 and large alpha, L = 2 vs L >= 3, near the blow-up c_L)
against independent routes (elementary closed forms, quad + brentq, solve_ivp at rtol 1e-13), the basis-independent
Theorem 6 gap, and the P002 instruments."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize

from falab.instruments import _p002 as inst
from falab.theory import _p002 as theory

EDGE = np.array([1e-300, 1e-12, 1e-6, 0.1, 0.5, 0.9, 1 - 1e-3, 1 - 1e-6, 1 - 1e-9])  # fractions of c_L


def _q_exact(t, depth):
    if depth == 3:
        return np.tan(t)
    if depth == 4:
        return t / np.sqrt(1 - t * t)
    raise ValueError


@pytest.mark.parametrize("depth", [3, 4])
def test_q_near_blowup_and_tiny_t_against_elementary_forms(depth):
    c = theory.half_width(depth)
    t = np.concatenate([c * EDGE, -c * EDGE[1:]])
    cond = c / (c - np.abs(t))  # relative condition number of q near the blow-up
    rel = np.abs(theory.q_fn(t, depth) / _q_exact(t, depth) - 1)
    assert np.all(rel <= 1e-12 * np.maximum(1.0, cond) * 4)
    # and h_L against its closed form over the same points (condition ~ L/(L-2) c/(c - t))
    rel_h = np.abs(theory.h_fn(t, depth) / theory.h_closed(t, depth) - 1)
    assert np.all(rel_h <= 1e-12 * np.maximum(1.0, cond) * 4 * depth)


def test_q_depth2_over_a_wide_range():
    t = np.array([1e-300, 1e-12, 1e-3, 1.0, 10.0, 300.0])
    np.testing.assert_allclose(theory.q_fn(t, 2), np.sinh(t), rtol=1e-15)
    np.testing.assert_allclose(theory.h_fn(t[:-1], 2), np.sinh(2 * t[:-1]) / 2, rtol=1e-13)


@pytest.mark.parametrize("depth", [5, 6])
def test_q_general_depth_against_quadrature_and_brentq(depth):
    c = theory.half_width(depth)

    def g(th):  # int_0^q (1 + u^2)^(-(L-1)/2) du with u = tan(theta)
        return integrate.quad(lambda a: math.cos(a) ** (depth - 3), 0, th, epsabs=0, epsrel=1e-13, limit=200)[0]

    for frac in (1e-6, 0.3, 0.9, 0.999):
        t = frac * c
        q_ref = math.tan(optimize.brentq(lambda th, t=t: g(th) - t, 0, math.pi / 2, xtol=1e-300, rtol=1e-15,
                                         maxiter=500))
        assert float(theory.q_fn(t, depth)) == pytest.approx(q_ref, rel=1e-11 / (1 - frac))


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_big_h_closed_and_general_over_the_domain(depth):
    tiny = np.array([1e-12, 1e-8])
    for fn in (theory.big_h, theory.big_h_closed):
        np.testing.assert_allclose(fn(tiny, depth), tiny**2 / 2, rtol=1e-12)  # H ~ t^2/2 (next term ~ t^4)
    t = np.array([1e-3, 0.1, 1.0, 10.0, 1e3, 1e6])
    np.testing.assert_allclose(theory.big_h(t, depth), theory.big_h_closed(t, depth), rtol=1e-12)
    for tt in (1e-3, 1.0, 10.0):
        quad = integrate.quad(lambda s: float(theory.h_inv(s, depth)), 0, tt, epsabs=0, epsrel=1e-13)[0]
        assert float(theory.big_h_closed(tt, depth)) == pytest.approx(quad, rel=1e-12)
    np.testing.assert_allclose(theory.big_h(-t, depth), theory.big_h(t, depth), rtol=1e-15)  # even


@pytest.mark.parametrize("depth", [2, 3, 4, 6])
def test_h_inverse_round_trip_up_to_the_blowup(depth):
    c = theory.half_width(depth)
    t = np.array([1e-10, 0.1, 1.0, 3.0]) if depth == 2 else c * np.array([1e-10, 0.1, 0.5, 0.9, 0.999])
    np.testing.assert_allclose(theory.h_inv(theory.h_fn(t, depth), depth), t, rtol=1e-12)


@pytest.mark.parametrize("depth", [2, 3])
def test_q_norm_limits_weighted_l1_and_l2(depth):
    """Remark 4 at the level of Q: alpha -> 0 gives c_L sum |rho| / |eta|^(L-2) alpha^(2-L) (L >= 3; L = 2 adds a
    log(1/alpha) factor), alpha -> inf gives sum rho^2 / (2 eta^(2L-2) alpha^(2L-2))."""
    rho, eta = np.array([0.7, -1.3, 0.2]), np.array([0.6, 1.1, 1.4])
    big = 1e4
    l2 = theory.q_norm(rho, big, eta, depth) * big ** (2 * depth - 2)
    assert l2 == pytest.approx(float(np.sum(rho**2 / (2 * eta ** (2 * depth - 2)))), rel=1e-6)
    if depth >= 3:
        a = 1e-5
        l1 = theory.q_norm(rho, a, eta, depth) * a ** (depth - 2) / theory.half_width(depth)
        assert l1 == pytest.approx(float(np.sum(np.abs(rho) / eta ** (depth - 2))), rel=1e-3)


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("alpha", [1e-3, 0.1, 1.0, 30.0])
def test_theorem5_one_point_against_brentq_on_the_dual(depth, alpha):
    rng = np.random.default_rng(depth)
    x, y = rng.standard_normal((1, 4)), np.array([0.8])
    eta = rng.uniform(0.5, 1.5, 4)
    sol = theory.theorem5_limit(x, y, np.eye(4), eta, alpha, depth, tol=1e-14)
    cj = alpha ** (depth - 2) * eta ** (depth - 2)
    cl = theory.half_width(depth)
    hi = 0.999999999999 * cl / float(np.max(cj * np.abs(x[0]))) if depth >= 3 else 50.0 / float(np.max(cj * np.abs(x[0])))

    def residual(nu):
        return float(x[0] @ theory.theorem5_rho(np.array([nu]), x, np.eye(4), eta, alpha, depth)) - y[0]

    nu = optimize.brentq(residual, 0.0, hi, xtol=1e-300, rtol=1e-15, maxiter=1000)
    rho = theory.theorem5_rho(np.array([nu]), x, np.eye(4), eta, alpha, depth)
    np.testing.assert_allclose(sol["beta"], rho, rtol=1e-9, atol=1e-12 * np.abs(rho).max())
    assert theory.theorem5_kkt_residual(x, np.eye(4), eta, alpha, depth, sol) <= 1e-8


def _two_layer_flow(m, v1, v2, y, t_end):
    k1 = len(v1)

    def rhs(t, z):
        a, b = z[:k1], z[k1:-1]
        r = a @ m @ b - y
        return np.concatenate([-r * (m @ b), -r * (m.T @ a), [-r]])

    sol = integrate.solve_ivp(rhs, (0, t_end), np.concatenate([v1, v2, [0.0]]), method="DOP853", rtol=1e-13,
                              atol=1e-15, dense_output=True)
    return sol


@pytest.mark.parametrize("alpha", [0.01, 0.5, 3.0])
@pytest.mark.parametrize("arch", ["diag", "conv", "fc"])
def test_theorem6_limit_and_curve_against_solve_ivp(arch, alpha):
    x = np.array([1.0, 2.0])
    m = {"fc": theory.data_tensor_fc(x, (2, 2)), "diag": theory.data_tensor_diag(x, 2),
         "conv": theory.data_tensor_conv(x, (2, 2))}[arch]
    vb1 = {"fc": 2 * np.eye(2).reshape(-1, order="F"), "diag": np.array([2.0, 2.0]), "conv": np.array([2.0, 0.0])}[arch]
    vb2 = np.array([0.3, -0.4])
    sol = _two_layer_flow(m, alpha * vb1, alpha * vb2, 1.0, 400.0)
    k1 = len(vb1)
    lim = theory.theorem6_limit(m, vb1, vb2, alpha, 1.0)
    np.testing.assert_allclose(sol.y[:k1, -1], lim["v1"], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(sol.y[k1:-1, -1], lim["v2"], rtol=1e-9, atol=1e-10)
    for t in (0.5, 5.0):  # the whole trajectory lies on the exact curve at nu(t) = -int r
        z = sol.sol(t)
        c1, c2 = theory.theorem6_curve(m, vb1, vb2, alpha, np.array([z[-1]]))
        np.testing.assert_allclose(np.concatenate([c1[0], c2[0]]), z[:-1], rtol=1e-10, atol=1e-11 * alpha)


def test_theorem6_gap_is_basis_independent_for_repeated_singular_values():
    rng = np.random.default_rng(0)
    x = np.array([1.0, 2.0])
    m = theory.data_tensor_fc(x, (2, 2))  # s = (sqrt5, sqrt5): one block of multiplicity 2
    vb1, vb2 = 2 * np.eye(2).reshape(-1, order="F"), np.array([0.3, -0.4])
    gap = theory.theorem6_gap(m, vb1, vb2)
    # brute force over the block's rotations: the best basis's smallest per-coordinate gap
    u1, s, u2t = np.linalg.svd(m, full_matrices=False)
    e1, e2 = u1.T @ vb1, u2t @ vb2
    best = -np.inf
    for th in np.linspace(0, np.pi, 20001):
        q = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        best = max(best, float(np.min((q.T @ e1) ** 2 - (q.T @ e2) ** 2)))
    assert gap == pytest.approx(best, abs=1e-4)  # the max-min is a kink: grid error linear in the step
    assert gap == pytest.approx((e1 @ e1 - e2 @ e2) / 2, rel=1e-13)
    # invariant under orthogonal changes of coordinates on both sides (numpy then picks another SVD basis)
    r1, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    r2, _ = np.linalg.qr(rng.standard_normal((2, 2)))
    assert theory.theorem6_gap(r1 @ m @ r2.T, r1 @ vb1, r2 @ vb2) == pytest.approx(gap, rel=1e-12)


def test_theorem6_gap_distinct_singular_values_is_the_per_coordinate_minimum():
    m = np.diag([3.0, 1.0])
    assert theory.theorem6_gap(m, np.array([2.0, 1.5]), np.array([0.5, 1.0])) == pytest.approx(min(4 - 0.25, 2.25 - 1))


def test_lemma4_ode_routes():
    for depth in (3, 4):
        c = theory.half_width(depth)
        grid = np.linspace(0, 0.95 * c, 30)
        np.testing.assert_allclose(theory.lemma4_ode_h(grid, depth), theory.h_closed(grid, depth), rtol=1e-9)
        q_hit = 1e4
        exact = math.atan(q_hit) if depth == 3 else q_hit / math.sqrt(1 + q_hit**2)  # int_0^q (1+u^2)^(-(L-1)/2)
        assert theory.lemma4_blowup_time(depth, q_hit) == pytest.approx(exact, rel=1e-10)


def test_euler_balancedness_identity_is_exact_and_drift_is_zero_for_constants():
    g = torch.Generator().manual_seed(1)
    p = {"v1": torch.randn(5, 3, generator=g, dtype=torch.float64), "v2": torch.randn(5, 3, generator=g,
                                                                                      dtype=torch.float64)}
    c = torch.randn(5, 3, generator=g, dtype=torch.float64)  # a 2-layer diagonal net's gradients: g_1 = c v_2, g_2 = c v_1
    upd = {"v1": c * p["v2"], "v2": c * p["v1"]}
    lr = 0.1
    new = {k: p[k] - lr * upd[k] for k in p}
    res, live = inst.euler_balancedness_residual(p, upd, new, lr)
    assert bool(live.all()) and float(res.max()) <= 1e-12
    wrong = {k: p[k] - 1.01 * lr * upd[k] for k in p}
    assert float(inst.euler_balancedness_residual(p, upd, wrong, lr)[0].min()) > 1e-3
    series = torch.stack([inst.layer_norm_gaps(p, 2)] * 3)
    assert inst.relative_drift(series) == 0.0
    assert inst.mode_gaps({"v1": p["v1"], "v2": p["v2"]}, 2).shape == (5, 3)
    w = [torch.eye(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)[:, :1]]
    inv = inst.fc_matrix_invariants(w)
    assert float(inv.abs().max()) == pytest.approx(1.0) and inv.shape == (9,)


def test_singular_alignment_on_exact_singular_vectors():
    m = np.diag([3.0, 1.0])
    cos, ratio = inst.singular_alignment([np.array([2.0, 0.0]), np.array([2.0, 0.0])], m, theory.contract)
    assert cos == pytest.approx(1.0, abs=1e-15) and ratio == pytest.approx(0.0, abs=1e-15)
    cos, ratio = inst.singular_alignment([np.array([1.0, 1.0]), np.array([2.0, 0.0])], m, theory.contract)
    assert cos < 0.9 and ratio > 0.05
    assert math.isclose(float(inst.cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0]))), 1 / math.sqrt(2))
