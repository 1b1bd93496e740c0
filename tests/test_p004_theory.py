"""P004 oracle (falab.theory._p004): Lemma 1, the exact FA error, Example 1, Monte-Carlo helpers."""

import math

import numpy as np
import pytest

from falab.theory import _p004 as th


@pytest.fixture
def problem():
    rng = np.random.default_rng(11)
    sigma = np.array([3.0, 2.5, 2.0, 1.5, 1.2, 1.0, 0.7, 0.4])
    y, u, v = th.spectral_target(rng, 30, 20, sigma)
    return rng, sigma, y, u, v


def test_spectral_target_has_the_requested_singular_values(problem):
    _, sigma, y, _, _ = problem
    s = np.linalg.svd(y, compute_uv=False)
    np.testing.assert_allclose(s[: sigma.size], sigma, rtol=1e-12)
    assert s[sigma.size] < 1e-12


def test_lemma1_projection_forms_agree_and_project(problem):
    rng, _, y, _, _ = problem
    b = rng.standard_normal((20, 3))
    p = th.lemma1_projection(y, b)
    np.testing.assert_allclose(p, th.lemma1_projection_pinv(y, b), atol=1e-11)
    np.testing.assert_allclose(th.lemma1_projection(p, b), p, atol=1e-11)  # col(PB) = col(YB): idempotent
    assert np.linalg.matrix_rank(p) == 3
    # the residual is orthogonal to col(YB)
    assert np.abs((y @ b).T @ (y - p)).max() < 1e-10


def test_exact_fa_error_formula_matches_projection(problem):
    rng, sigma, y, _, v = problem
    for r in (1, 3, 5):
        b = rng.standard_normal((20, r))
        direct = th.fa_error(y, b) ** 2
        formula = float(th.fa_error_sq_from_g(sigma, v.T @ b))
        assert formula == pytest.approx(direct, rel=1e-10)
        assert direct >= th.optimal_error(sigma, r) ** 2 - 1e-10  # Eckart-Young: FA cannot beat the optimum


def test_theorem2_zero_error_when_r_at_least_rank(problem):
    rng, sigma, y, _, _ = problem
    b = rng.standard_normal((20, sigma.size))
    assert th.fa_error(y, b) / np.linalg.norm(y) < 1e-12


def test_example1_closed_form_solves_its_ode():
    rho, b, u0, yn = 1.3, 0.8, -0.4, 1.1
    t = np.linspace(0.0, 2.0, 2001)
    cf = th.example1(t, yn, rho, b, u0)
    assert cf["u"][0] == pytest.approx(u0, abs=1e-15)
    du = np.gradient(cf["u"], t, edge_order=2)
    np.testing.assert_allclose(du, (b / rho) * (yn**2 - cf["u"] ** 2), atol=1e-5)
    np.testing.assert_allclose(cf["loss"], 0.5 * (yn**2 - cf["u"] ** 2))
    assert np.all(np.diff(cf["alignment"]) > 0)  # A = w b increases when b > 0


def test_theorem3_montecarlo_shapes_and_lower_bound():
    rng = np.random.default_rng(0)
    sigma = th.long_tail_spectrum(3, 60, 0.2)
    ratios = th.theorem3_ratios(sigma, 3, 300, rng, chunk=70)
    assert ratios.shape == (300,)
    assert np.all(ratios >= 1.0 - 1e-12)


def test_theorem4_formulas_match_projection_and_bound():
    rng = np.random.default_rng(1)
    k, eps = 30, 0.4
    ratios, coss = th.theorem4_draws(k, eps, 200, rng)
    assert np.all(ratios <= th.theorem4_ratio_bound(k, eps) + 1e-12)
    assert np.all((coss >= 0) & (coss <= 1))
    # the cosine formula against the projection route for one explicit draw
    sigma = np.concatenate([[1.0], np.full(k - 1, eps)])
    y, u, v = th.spectral_target(rng, k, k, sigma)
    b = rng.standard_normal((k, 1))
    yb = y @ b
    cos_direct = abs(float(u[:, 0] @ yb[:, 0])) / np.linalg.norm(yb)
    g = v.T @ b
    cos_formula = abs(g[0, 0]) / np.sqrt(np.sum(sigma**2 * g[:, 0] ** 2))
    assert cos_direct == pytest.approx(cos_formula, rel=1e-12)


def test_mc_pass_threshold_is_the_catalog_rule():
    assert th.mc_pass_threshold(0.99, 2000) == pytest.approx(0.99 - 3 * math.sqrt(0.99 * 0.01 / 2000))


def test_theorem1_bound_scales_as_one_over_t(problem):
    rng, _, y, _, _ = problem
    z0, b = rng.standard_normal((30, 3)), rng.standard_normal((20, 3))
    bound = th.theorem1_bound(z0, y, b, np.array([1.0, 2.0, 4.0]))
    np.testing.assert_allclose(bound * np.array([1.0, 2.0, 4.0]), th.alignment_integral_bound(z0, y, b))


def test_reference_vector_field_rejects_unknown_rule(problem):
    _, _, y, _, _ = problem
    with pytest.raises(ValueError, match="Invalid rule"):
        th.mf_vector_field("dfa", np.zeros((30, 2)), np.zeros((2, 20)), y)


def _mp_fa_error_sq(sigma, g):
    """Independent route: ||(I - P_{Sigma G}) Sigma||_F^2 in 60-digit arithmetic (mpmath)."""
    import mpmath

    mpmath.mp.dps = 60
    s = mpmath.diag([mpmath.mpf(float(x)) for x in sigma])
    m = s * mpmath.matrix(g.tolist())
    res = (mpmath.eye(len(sigma)) - m * mpmath.inverse(m.T * m) * m.T) * s
    return float(sum(res[i, j] ** 2 for i in range(res.rows) for j in range(res.cols)))


@pytest.mark.parametrize("k,r,eps", [(6, 2, 0.3), (6, 5, 0.3), (8, 3, 1e-8), (30, 2, 1e-6), (40, 1, 1e-9),
                                     (12, 11, 1e-7), (20, 1, 1.0), (3, 1, 0.999)])
def test_fa_error_formula_against_60_digit_projection_including_degenerate_edges(k, r, eps):
    rng = np.random.default_rng(k * 100 + r)
    sigma = np.concatenate([np.linspace(2.0, 1.0, r), np.full(k - r, eps)])
    g = rng.standard_normal((k, r))
    ref = _mp_fa_error_sq(sigma, g)
    assert float(th.fa_error_sq_from_g(sigma, g)) == pytest.approx(ref, rel=1e-12)
    if eps < 1e-5:  # the printed difference loses every digit there (why the library does not use it)
        assert abs(float(th.fa_error_sq_from_g_printed(sigma, g)) - ref) > 1e-9 * ref


def test_fa_error_is_exactly_zero_when_r_reaches_rank():
    rng = np.random.default_rng(3)
    sigma = np.array([2.0, 1.0, 0.5])
    assert float(th.fa_error_sq_from_g(sigma, rng.standard_normal((3, 3)))) == 0.0
    assert float(th.fa_error_sq_from_g(sigma, rng.standard_normal((3, 4)))) == 0.0


def test_long_tail_reduction_matches_the_full_formula_and_bartlett_is_wishart():
    rng = np.random.default_rng(4)
    for r, tail, eps in [(1, 1, 0.3), (2, 5, 1e-7), (3, 40, 0.2), (5, 500, 0.1)]:
        sigma = np.concatenate([np.linspace(2, 1, r), np.full(tail, eps)])
        g = rng.standard_normal((20, r + tail, r))
        w = np.swapaxes(g[:, r:], -1, -2) @ g[:, r:]
        np.testing.assert_allclose(th.long_tail_fa_error_sq(g[:, :r], w, sigma[:r], tail, eps),
                                   th.fa_error_sq_from_g(sigma, g), rtol=1e-10)
    w = th.bartlett_wishart(7, 3, 40000, rng)
    np.testing.assert_allclose(w.mean(0), 7 * np.eye(3), atol=0.1)            # E W = dof I
    np.testing.assert_allclose(w[:, 0, 0].var(), 2 * 7, rtol=0.05)            # Var W_11 = 2 dof
    ratios = th.long_tail_ratio_draws(3, 40, 0.2, 4000, rng)
    ref = th.theorem3_ratios(th.long_tail_spectrum(3, 40, 0.2), 3, 4000, rng)
    assert abs(np.median(ratios) - np.median(ref)) < 0.02                     # same distribution


@pytest.mark.parametrize("k,eps", [(2, 0.5), (30, 1e-9), (1001, 0.1), (50, 1.0)])
def test_theorem4_statistics_against_the_projection_route(k, eps):
    rng = np.random.default_rng(k)
    sigma = np.concatenate([[1.0], np.full(k - 1, eps)])
    g = rng.standard_normal((k, 1))
    ratio, cos = th.theorem4_statistics(g[0, 0] ** 2, float(np.sum(g[1:] ** 2)), k, eps)
    fa2 = float(th.fa_error_sq_from_g(sigma, g))
    assert float(ratio) == pytest.approx(np.sqrt(fa2 / th.optimal_error(sigma, 1) ** 2), rel=1e-12)
    assert float(cos) == pytest.approx(abs(g[0, 0]) / np.sqrt(np.sum(sigma**2 * g[:, 0] ** 2)), rel=1e-12)
    assert float(ratio) <= th.theorem4_ratio_bound(k, eps) * (1 + 1e-15)


def test_lemma1_projection_against_least_squares_including_edges():
    rng = np.random.default_rng(5)
    y = th.spectral_target(rng, 12, 9, np.array([3.0, 1.0, 1e-6]))[0]
    for r in (1, 2, 3, 5):                                  # r = rank(Y) = 3 and beyond: the projection is Y
        b = rng.standard_normal((9, r))
        yb = y @ b
        via_lstsq = yb @ np.linalg.lstsq(yb, y, rcond=None)[0]
        p = th.lemma1_projection(y, b)
        assert np.linalg.norm(p - via_lstsq) <= 1e-12 * np.linalg.norm(y)
        if r >= 3:
            assert np.linalg.norm(p - y) <= 1e-12 * np.linalg.norm(y)
    _, _, v = np.linalg.svd(y)
    b_perp = v[3:].T @ rng.standard_normal((6, 2))             # B orthogonal to row(Y): YB = 0, projection 0
    assert np.abs(th.lemma1_projection(y, b_perp)).max() == 0.0


@pytest.mark.parametrize("y_norm,rho,b,u0,ivp_tol", [
    (1.0, 1.0, 1.0, -0.3, 1e-11), (1.0, 1.1, 1.0, 0.0, 1e-11), (2.0, 0.5, -0.7, 1.2, 1e-11),
    (1.0, 1.0, 1.0, -1e-9, 1e-11),
    (1.0, 0.9, 2.0, -0.999999, 1e-8),  # next to the repelling fixed point -||y||: the ODE route amplifies its errors
])
def test_example1_against_solve_ivp_and_60_digit_evaluation(y_norm, rho, b, u0, ivp_tol):
    import mpmath
    from scipy.integrate import solve_ivp

    mpmath.mp.dps = 60
    t = np.linspace(0.0, 3.0, 31)
    sol = solve_ivp(lambda _, u: (b / rho) * (y_norm**2 - u**2), (0.0, 3.0), [u0], t_eval=t, rtol=1e-13,
                    atol=1e-15, method="DOP853")
    cf = th.example1(t, y_norm, rho, b, u0)
    np.testing.assert_allclose(cf["u"], sol.y[0], rtol=ivp_tol, atol=1e-12)
    exact = [float(y_norm * mpmath.tanh(mpmath.mpf(b) * y_norm * mpmath.mpf(float(x)) / rho
                                        + mpmath.atanh(mpmath.mpf(u0) / y_norm))) for x in t]
    np.testing.assert_allclose(cf["u"], exact, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(cf["loss"], 0.5 * (y_norm**2 - np.asarray(exact) ** 2), rtol=1e-10, atol=1e-15)
