"""P003 closed forms (falab.theory._p003): internal consistency and the reference numbers of claims.md §4.3."""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from falab.theory import _p003 as th


def test_k0_limit_reference_numbers():
    lim = th.k0_limit(2.0, 3.0)
    assert lim.theta1 == pytest.approx(2.2894284851, abs=1e-9)
    assert lim.theta2 == pytest.approx(1.3103706971, abs=1e-9)
    assert lim.rate == pytest.approx(7.8622242, abs=1e-6)
    assert lim.product == pytest.approx(3.0, abs=1e-12)
    assert th.k0_limit(2.0, 10.0).rate == pytest.approx(17.5441064, abs=1e-6)


def test_vanishing_time_equals_implicit_solution_and_reference():
    for theta0, ref in [(-1.0, 0.16335072), (-5.0, 0.42284582), (-50.0, 0.46099601)]:
        t0 = th.vanishing_time(theta0, 2.0, 3.0)
        assert t0 == pytest.approx(ref, abs=1e-8)
        assert float(th.k0_time(theta0, 0.0, 2.0, 3.0)) == pytest.approx(t0, abs=1e-13)
    assert th.vanishing_time_limit(2.0, 3.0) == pytest.approx(0.4613960, abs=1e-7)
    assert th.vanishing_time(-1e6, 2.0, 3.0) == pytest.approx(th.vanishing_time_limit(2.0, 3.0), abs=1e-5)
    with pytest.raises(ValueError, match="Invalid theta0"):
        th.vanishing_time(1.0, 2.0, 3.0)


def test_k0_time_against_an_independent_quadrature():
    d, lam, theta0 = 0.7, 1.3, -2.0
    r = th.k0_root(d, lam)
    sol = solve_ivp(lambda t, y: 0.5 * (r ** 3 - y ** 3), (0, 0.8), [theta0], rtol=1e-12, atol=1e-14, dense_output=True)
    t = 0.8
    assert float(th.k0_time(theta0, sol.sol(t)[0], d, lam)) == pytest.approx(t, abs=1e-9)


@pytest.mark.parametrize("d,K,lam", [(0.5, -4.0, 3.0), (0.5, -4.0, 0.5), (2.0, 1.0, 3.0), (0.2, -67.5, 3.0)])
def test_cubic_roots_are_roots_and_fit_the_target(d, K, lam):
    roots = th.cubic_roots(d, K, lam)
    for r in roots:
        assert r ** 3 + 2 * d * K * r - 2 * d * lam == pytest.approx(0.0, abs=1e-10 * max(1.0, abs(r) ** 3))
        assert r * (r * r / (2 * d) + K) == pytest.approx(lam, rel=1e-10)  # every root is a global minimum
    assert (roots.size == 3) == (th.discriminant(d, K, lam) > 0)
    if roots.size == 1:
        assert th.cardano_root(d, K, lam) == pytest.approx(roots[0], rel=1e-12)


def test_delta_thresholds_and_step_times():
    d, K = 0.5, -4.0
    assert th.max_lambda_three_roots(d, K) == pytest.approx(3.0792014, abs=1e-6)
    assert th.delta_threshold_K(0.5, 1.0) == pytest.approx(-1.88988, abs=1e-5)
    assert th.discriminant(0.5, th.delta_threshold_K(0.5, 2.0), 2.0) == pytest.approx(0.0, abs=1e-9)
    roots = th.cubic_roots(d, K, 3.0)
    assert roots == pytest.approx([(1 - math.sqrt(13)) / 2, -1.0, (1 + math.sqrt(13)) / 2], abs=1e-12)
    ts = [th.backward_step_time(d, K, lam) for lam in (0.5, 1.0, 2.0, 3.0)]
    assert ts == pytest.approx([0.50597638, 0.52544507, 0.63942174, 2.0], abs=1e-7)
    assert all(b > a for a, b in zip(ts, ts[1:]))
    with pytest.raises(ValueError, match="Delta > 0"):
        th.backward_step_time(d, 0.0, 1.0)


def test_flow_limit_rate_is_half_the_slope_of_P_and_eq64():
    d, lam, K = 2.0, 3.0, 0.7
    lim = th.flow_limit(1.0, 0.5 / (2 * d) + K, d, lam)
    r = lim.theta1
    assert lim.rate == pytest.approx((r ** 3 + d * lam) / r, rel=1e-12)  # P003 eq. 64
    assert lim.product == pytest.approx(lam, rel=1e-12)


def test_flow_limit_selects_the_root_by_side_of_r2():
    d, K, lam = 0.5, -4.0, 1.0
    r1, r2, r3 = th.cubic_roots(d, K, lam)
    up = th.flow_limit(r2 + 1e-3, (r2 + 1e-3) ** 2 / (2 * d) + K, d, lam)
    down = th.flow_limit(r2 - 1e-3, (r2 - 1e-3) ** 2 / (2 * d) + K, d, lam)
    assert up.theta1 == pytest.approx(r3) and down.theta1 == pytest.approx(r1)
    assert up.rate == pytest.approx((r3 - r2) * (r3 - r1) / 2) and down.rate == pytest.approx((r1 - r2) * (r1 - r3) / 2)


def test_degenerate_discriminant_roots():
    d, lam = 0.5, 2.0
    K = th.delta_threshold_K(d, lam)
    lim_below = th.flow_limit(-5.0, 25 / (2 * d) + K, d, lam)
    assert lim_below.theta1 == pytest.approx(-((d * lam) ** (1 / 3)), rel=1e-12)  # double root, one-sided
    assert lim_below.rate == pytest.approx(0.0, abs=1e-9)
    lim_above = th.flow_limit(0.0, K, d, lam)
    assert lim_above.theta1 == pytest.approx(2 * (d * lam) ** (1 / 3), rel=1e-12)


def test_deep_constants_reference():
    dc = th.deep_constants((2.0, 2.5, 1.0))
    assert dc.c == pytest.approx((1.0, 0.625, 0.078125))
    assert dc.K == pytest.approx(25 / 512) and dc.gamma == 7
    r, rate = th.deep_limit(1.0, (2.0, 2.5, 1.0))
    assert r == pytest.approx(1.5393339588, abs=1e-9) and rate == pytest.approx(9.0948, abs=1e-4)
    assert th.deep_modified_eta_max(1.0, (2.0, 2.5, 1.0)) == pytest.approx(0.1099524, abs=1e-7)
    # two layers: the deep formulas reduce to the K = 0 ones
    r2, rate2 = th.deep_limit(3.0, (2.0, 1.0))
    assert r2 == pytest.approx(th.k0_root(2.0, 3.0)) and rate2 == pytest.approx(th.k0_limit(2.0, 3.0).rate)
    assert th.deep_modified_eta_max(3.0, (2.0, 1.0)) == pytest.approx(th.modified_eta_max(2.0, 3.0))
    assert th.deep_init(1.3, (2.0, 2.5, 1.0)) == pytest.approx([1.3, 0.625 * 1.3 ** 2, 0.078125 * 1.3 ** 4])


def test_discrete_bounds_reference():
    s_star, eta = th.euler_step_bound(2.0, 3.0)
    assert s_star == pytest.approx(2.675889, abs=1e-6) and eta == pytest.approx(0.049338, abs=1e-6)
    assert th.modified_eta_max(2.0, 3.0) == pytest.approx(0.1271905, abs=1e-7)
    assert th.modified_one_step_eta(2.0, 3.0) == pytest.approx(0.3815714, abs=1e-7)
    x = th.euler_limit_point(0.56746295, 2.0, 3.0)
    assert x == pytest.approx(2.37201467, abs=1e-7)
    assert x ** 3 - 0.56746295 * x == pytest.approx(12.0, abs=1e-9)


def test_fit_log_slope_recovers_an_exponential():
    t = np.linspace(0, 10, 1001)
    assert th.fit_log_slope(t, 2.0 * np.exp(-1.7 * t)) == pytest.approx(1.7, rel=1e-10)
    assert math.isnan(th.fit_log_slope(t[:2], np.ones(2) * 1e-5))


# ------------------------------------------------------------------ closed forms over their domain, independent routes
def _brentq_roots(d, K, lam):
    """Real roots of theta^3 + 2dK theta - 2d lambda by bracketing between the critical points (brentq, xtol ~ 0)."""
    from scipy.optimize import brentq

    def p(x):
        return x ** 3 + 2 * d * K * x - 2 * d * lam
    big = 2.0 * (1.0 + abs(2 * d * K) ** 0.5 + abs(2 * d * lam) ** (1 / 3))
    cuts = [-big, big]
    if K < 0:
        c = math.sqrt(-2 * d * K / 3)
        cuts = [-big, -c, c, big]
    roots = []
    for a, b in zip(cuts, cuts[1:]):
        if p(a) == 0:
            roots.append(a)
        elif p(a) * p(b) < 0:
            roots.append(brentq(p, a, b, xtol=1e-300, rtol=8.9e-16, maxiter=500))
    return np.array(sorted(roots))


_D = (1e-3, 0.5, 2.0, 50.0)
_LAM = (1e-9, 0.3, 3.0, 1e3)


def _k_grid(d, lam):
    kt = th.delta_threshold_K(d, lam)
    return (-1e3 * abs(kt), 2 * kt, kt * (1 + 1e-3), kt * (1 - 1e-3), -1e-10, 0.0, 1e-10, 1e-3, 5.0, 1e4)


@pytest.mark.parametrize("d", _D)
@pytest.mark.parametrize("lam", _LAM)
def test_cubic_roots_against_brentq_over_the_domain(d, lam):
    for K in _k_grid(d, lam):
        ours, ref = th.cubic_roots(d, K, lam), _brentq_roots(d, K, lam)
        assert ours.size == ref.size, (d, K, lam)
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0, err_msg=f"d={d} K={K} lam={lam}")
        if ours.size == 1:
            assert th.cardano_root(d, K, lam) == pytest.approx(ref[0], rel=1e-12, abs=0)


def test_cardano_as_K_goes_to_zero_keeps_every_digit():
    # the printed form cbrt(dl + q) + cbrt(dl - q) loses the digits here; the stable one keeps them
    d, lam = 2.0, 3.0
    for K in (1e-4, 1e-6, 1e-9, -1e-9, -1e-6):
        ref = _brentq_roots(d, K, lam)[-1]
        assert th.cardano_root(d, K, lam) == pytest.approx(ref, rel=1e-13, abs=0)
    assert th.cardano_root(2.0, 0.0, 0.0) == 0.0


@pytest.mark.parametrize("d,lam", [(0.05, 0.2), (2.0, 3.0), (7.0, 40.0)])
def test_vanishing_time_against_quadrature_including_both_edges(d, lam):
    from scipy.integrate import quad

    r = th.k0_root(d, lam)
    for theta0 in (-1e-9 * r, -1e-4 * r, -0.3 * r, -r, -2 * r, -2.5 * r, -20 * r, -1e4 * r):
        # T_0 = int_{theta_0}^0 2 / (r^3 - theta^3) d theta (from theta_1' = (r^3 - theta_1^3)/2 under K = 0)
        ref, err = quad(lambda x: 2.0 / (r ** 3 - x ** 3), theta0, 0.0, epsabs=0, epsrel=2e-14, limit=200)
        assert th.vanishing_time(theta0, d, lam) == pytest.approx(ref, rel=1e-12, abs=0), theta0
    big = -1e8 * r
    assert th.vanishing_time(big, d, lam) == pytest.approx(th.vanishing_time_limit(d, lam), rel=1e-7)
    assert th.vanishing_time(-math.inf, d, lam) == th.vanishing_time_limit(d, lam)


def test_k0_time_against_quadrature():
    from scipy.integrate import quad

    d, lam = 0.7, 1.3
    r = th.k0_root(d, lam)
    for a, b in ((-3.0, 0.5), (0.0, 0.99 * r), (4.0, 1.01 * r), (-50.0, -1.0)):
        ref, _ = quad(lambda x: 2.0 / (r ** 3 - x ** 3), a, b, epsabs=0, epsrel=2e-14, limit=200)
        assert float(th.k0_time(a, b, d, lam)) == pytest.approx(ref, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("ds", [(2.0, 2.5, 1.0), (0.01, 1.0), (3.0, 0.2, 5.0, 1.0)])
@pytest.mark.parametrize("lam", [1e-6, 1.0, 50.0])
def test_deep_limit_and_rate_against_brentq_and_a_derivative(ds, lam):
    from scipy.optimize import brentq

    dc = th.deep_constants(ds)
    r, rate = th.deep_limit(lam, ds)
    ref = brentq(lambda x: lam - dc.K * x ** dc.gamma, 0.0, 10 * (1 + (lam / dc.K) ** (1 / dc.gamma)), xtol=1e-300,
                 rtol=8.9e-16)
    assert r == pytest.approx(ref, rel=1e-12)
    # local rate = -d/dx of the reduced field (82) at r, exact derivative d_1 gamma K r^(gamma - 1)
    assert rate == pytest.approx(ds[0] * dc.gamma * dc.K * ref ** (dc.gamma - 1), rel=1e-12)
    assert th.deep_modified_eta_max(lam, ds) == pytest.approx(1.0 / rate, rel=1e-12)


def test_backward_step_time_is_the_inverse_repelling_rate_near_the_threshold():
    d = 0.5
    for lam in (1e-6, 0.5, 3.0):
        for K in (th.delta_threshold_K(d, lam) * (1 + 1e-3), -4.0 if lam < 3.07 else -10.0, -1e3):
            r1, r2, r3 = _brentq_roots(d, K, lam)
            assert th.backward_step_time(d, K, lam) == pytest.approx(-2.0 / th.cubic_slope(r2, d, K), rel=1e-9)


def test_depressed_form_reproduces_the_printed_cubic():
    f = th.depressed_form(-2.0, 1.0, 2.0)
    assert f.shift == pytest.approx(1 / 3) and f.lam == pytest.approx(-35 / 27, rel=1e-15)
    np.testing.assert_allclose(th.cubic_roots(f.d, f.K, f.lam) + f.shift, [-2.0, 1.0, 2.0], rtol=1e-14, atol=1e-14)
    assert th.backward_step_time(f.d, f.K, f.lam) == pytest.approx(th.factored_cubic_step_time(-2.0, 1.0, 2.0))


def test_modified_scheme_reduces_to_the_scalar_recursion_and_stays_below_the_bound():
    d, lam = 2.0, 3.0
    r = th.k0_root(d, lam)
    for eta in (1e-4, 0.05, 0.99 * th.modified_eta_max(d, lam)):
        x, errs = 0.0, []
        for _ in range(400):  # x_{t+1} = x_t + eta d lambda (1 - x_t^3/r^3) (invariant y = x^2/(2d))
            errs.append(abs(x * x * x / (2 * d) - lam))
            x = x + eta * d * lam * (1 - x ** 3 / r ** 3)
        t = np.arange(400)
        assert np.all(np.array(errs) <= th.modified_bound(t, eta, d, lam) + 1e-12)
