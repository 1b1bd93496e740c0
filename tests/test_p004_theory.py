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
