"""P002 predictors against brute-force numerics and the reference values of claims.md §4.2."""

import itertools

import numpy as np
import pytest
from scipy import integrate, optimize

from falab.theory import _p002 as theory

H_REF = {2: (0.0049835298, 0.4128007432, 13.6912732463), 3: (0.0049673460, 0.3659810893, 9.0714871779),
         4: (0.0049514382, 0.3347498141, 7.2020132802)}


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_big_h_reference_values_closed_and_general(depth):
    t = np.array([0.1, 1.0, 10.0])
    np.testing.assert_allclose(theory.big_h(t, depth), H_REF[depth], atol=1e-9)
    np.testing.assert_allclose(theory.big_h_closed(t, depth), H_REF[depth], atol=1e-9)
    np.testing.assert_allclose(theory.h_fn(np.linspace(-0.9, 0.9, 7), depth),
                               theory.h_closed(np.linspace(-0.9, 0.9, 7), depth), rtol=1e-11)


@pytest.mark.parametrize("depth", [2, 3, 5, 7])
def test_big_h_is_integral_of_h_inverse(depth):
    for t in (0.3, 2.0, 7.0):
        quad, _ = integrate.quad(lambda s: float(theory.h_inv(s, depth)), 0, t, epsabs=1e-13, epsrel=1e-12)
        assert abs(float(theory.big_h(t, depth)) - quad) <= 1e-9 * max(1, quad)


@pytest.mark.parametrize("depth", [2, 3, 4, 6])
def test_h_matches_lemma4_ode_and_inverse(depth):
    c = theory.half_width(depth)
    t_end = 2.0 if depth == 2 else 0.9 * c
    grid = np.linspace(0, t_end, 20)
    sol = integrate.solve_ivp(lambda t, z: [z[0] ** (depth - 2) * z[1], z[0] ** (depth - 1)], (0, t_end), [1.0, 0.0],
                              t_eval=grid, rtol=1e-12, atol=1e-14, method="DOP853")
    np.testing.assert_allclose(theory.h_fn(grid, depth), sol.y[0] ** (depth - 1) * sol.y[1], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(theory.h_inv(theory.h_fn(grid, depth), depth), grid, atol=1e-11)
    if depth >= 3:
        assert theory.half_width(depth) == pytest.approx(integrate.quad(
            lambda u: (1 + u * u) ** (-(depth - 1) / 2), 0, np.inf)[0], rel=1e-10)


def test_half_widths():
    assert theory.half_width(2) == np.inf
    assert theory.half_width(3) == pytest.approx(np.pi / 2, rel=1e-14)
    assert theory.half_width(4) == pytest.approx(1.0, rel=1e-14)


def test_toy_interpolators_and_margins():
    x, y = np.array([[1.0, 2.0]]), np.array([1.0])
    np.testing.assert_allclose(theory.min_l2_interpolator(x, y), [0.2, 0.4], atol=1e-12)
    np.testing.assert_allclose(theory.min_l1_interpolator(x, y), [0.0, 0.5], atol=1e-9)
    np.testing.assert_allclose(theory.min_dft_l1_interpolator(x, y), [1 / 3, 1 / 3], atol=1e-9)
    xc, yc = np.array([[1.0, 2.0], [0.0, -3.0]]), np.array([1.0, -1.0])
    np.testing.assert_allclose(theory.max_margin_l2(xc, yc), [0.2, 0.4], atol=1e-9)
    np.testing.assert_allclose(theory.max_margin_l1(xc, yc), [0.0, 0.5], atol=1e-9)
    np.testing.assert_allclose(theory.max_margin_dft_l1(xc, yc), [1 / 3, 1 / 3], atol=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_l1_lp_matches_enumeration(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((2, 5)), rng.standard_normal(2)
    lp = theory.min_l1_interpolator(x, y)
    brute = theory.min_l1_by_enumeration(x, y)
    assert np.abs(lp).sum() == pytest.approx(np.abs(brute).sum(), rel=1e-9)
    np.testing.assert_allclose(x @ lp, y, atol=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_l2_max_margin_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 4))
    y = np.array([1.0, -1.0, 1.0])
    z = theory.max_margin_l2(x, y)
    best = None
    for k in range(1, 4):  # enumerate active sets: z = A_S^T (A_S A_S^T)^{-1} 1
        for s in itertools.combinations(range(3), k):
            a = x[list(s)] * y[list(s), None]
            cand = a.T @ np.linalg.solve(a @ a.T, np.ones(k))
            if np.all(y * (x @ cand) >= 1 - 1e-9) and (best is None or cand @ cand < best @ best):
                best = cand
    np.testing.assert_allclose(z, best, atol=1e-8)


def test_dft_l1_polygon_is_accurate_for_complex_transforms():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((2, 5)), rng.standard_normal(2)
    z = theory.min_dft_l1_interpolator(x, y)
    f = theory.dft_matrix(5)
    null = np.linalg.svd(x)[2][2:].T
    res = optimize.minimize(lambda w: np.abs(f @ (z + null @ w)).sum(), np.zeros(3), method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
    np.testing.assert_allclose(x @ z, y, atol=1e-9)
    assert np.abs(f @ z).sum() <= res.fun * (1 + 1e-4)


T6_REF = {("fc", 0.01): (1.918836, (0.202921, 0.398539)), ("fc", 1.0): (0.095545, (1.018327, -0.009164)),
          ("diag", 0.5): (0.243023, (0.426460, 0.286770)), ("diag", 0.01): (2.237948, (0.011620, 0.494190)),
          ("conv", 0.01): (1.484509, (0.332791, 0.333604)), ("conv", 1.0): (0.096795, (0.992658, 0.003671))}


@pytest.mark.parametrize("key", list(T6_REF))
def test_theorem6_reference_table(key):
    arch, alpha = key
    x = np.array([1.0, 2.0])
    mk = {"fc": lambda v: theory.data_tensor_fc(v, (2, 2)), "diag": lambda v: theory.data_tensor_diag(v, 2),
          "conv": lambda v: theory.data_tensor_conv(v, (2, 2))}[arch]
    v1 = {"fc": 2 * np.eye(2).reshape(-1, order="F"), "diag": np.array([2.0, 2.0]), "conv": np.array([2.0, 0.0])}[arch]
    out = theory.theorem6_limit(mk(x), v1, np.array([0.6, -0.8]) / 2, alpha, 1.0, [mk(e) for e in np.eye(2)])
    nu, beta = T6_REF[key]
    assert out["nu"] == pytest.approx(nu, abs=1e-6)
    np.testing.assert_allclose(out["beta"], beta, atol=1e-6)
    assert float(theory.contract(mk(x), [out["v1"], out["v2"]])) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("alpha", [0.1, 1.0])
def test_theorem5_matches_direct_minimisation(depth, alpha):
    rng = np.random.default_rng(depth)
    x, y = rng.standard_normal((2, 4)), rng.standard_normal(2)
    eta = rng.uniform(0.5, 1.5, 4)
    sol = theory.theorem5_limit(x, y, np.eye(4), eta, alpha, depth)
    np.testing.assert_allclose(x @ sol["beta"], y, atol=1e-9)
    null = np.linalg.svd(x)[2][2:].T
    base = sol["beta"]
    val0 = theory.q_norm(base, alpha, eta, depth)
    res = optimize.minimize(lambda w: theory.q_norm(base + null @ w, alpha, eta, depth), np.zeros(2),
                            method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-15})
    assert val0 <= res.fun + 1e-10 * max(1, abs(val0))
    assert np.linalg.norm(res.x) <= 1e-5


def test_remark4_limits():
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((2, 4)), rng.standard_normal(2)
    eta = rng.uniform(0.5, 1.5, 4)
    small = theory.theorem5_limit(x, y, np.eye(4), eta, 1e-3, 3)["beta"]
    large = theory.theorem5_limit(x, y, np.eye(4), eta, 1e2, 3)["beta"]
    np.testing.assert_allclose(small, theory.weighted_l1_limit(x, y, np.eye(4), eta, 3), atol=1e-3)
    np.testing.assert_allclose(large, theory.weighted_l2_limit(x, y, np.eye(4), eta, 3), atol=1e-8)


def test_corollary4_reference_direction():
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(theory.corollary4_direction(x, 1.0, 2), np.array([7, 8, 9]) / np.sqrt(194), atol=1e-14)
    m = theory.data_tensor_conv(x, (2, 3))
    np.testing.assert_allclose(np.linalg.svd(m, compute_uv=False), [5, np.sqrt(3)], atol=1e-12)
    basis = [theory.data_tensor_conv(e, (2, 3)) for e in np.eye(3)]
    np.testing.assert_allclose(theory.theorem3_direction(m, 1.0, basis), np.array([7, 8, 9]) / np.sqrt(194), atol=1e-12)
