"""Beyond the papers: the limit of FA/DFA/uSF/GD on diagonal networks (theory/_fa_tensor) against the exact flows of
falab's rules on DiagonalNet, the predictor's own properties, FA = GD parity with structured feedback, and the
phase-transition experiment in quick mode."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from falab.functional import SquaredLoss
from falab.models import CircularConvNet, DiagonalNet, FullyConnectedTensorNet
from falab.rules import Backprop, DirectFeedbackAlignment, FeedbackAlignment
from falab.theory import _fa_tensor as ft

torch.set_num_threads(1)


def _instance(seed: int, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return 1.5 * x / np.linalg.norm(x, axis=1, keepdims=True), rng.standard_normal(n)


# ----------------------------------------------------------------------------------------------------------------------
# against the exact network flows


def test_fa_flow_limit_is_the_predictor_and_conserves_q():
    """Two-layer FA from zero (weighted l_{4/3}), from a finite scale with Q > 0 somewhere (non-monotone P: the
    reduced flow) and with Q <= 0 (monotone): flow limit = predictor to 1e-8, Q conserved to 1e-10."""
    from falab.experiments.beyond import runs

    x, y = _instance(3, 2, 5)
    rng = np.random.default_rng(4)
    b = rng.standard_normal(5)
    ubar, vbar = rng.standard_normal(5), rng.standard_normal(5)
    members = [runs.make_member("fa", 0, x, y, np.zeros((2, 5)), [b]),
               runs.make_member("fa", 0, x, y, np.vstack([0.4 * ubar, 0.4 * vbar]), [b]),
               runs.make_member("fa", 0, x, y, np.vstack([0.3 * ubar, 2.0 * np.sign(b)]), [b])]
    mono = [bool(m.pmap.monotone().all()) for m in members]
    assert mono[0] and not mono[1] and mono[2]
    flow = runs.flow_members(members, 200.0, 1e-12)
    for j, m in enumerate(members):
        lim = ft.predict_limit(m.x, m.y, m.pmap)
        assert ft.relative_error(flow["beta"][j], lim.beta) <= 1e-8, (j, lim.method)
        u, v = flow["layers"][:, j, 0], flow["layers"][:, j, 1]
        q = 0.5 * u**2 - b * v
        assert np.abs(q - q[0]).max() <= 1e-10 * max(1.0, float(np.abs(0.5 * u**2).max()))
    # zero init: the weighted l_{4/3} interpolator of an independent primal solver
    primal = runs.weighted_l43_primal(x, y, b)
    assert ft.relative_error(flow["beta"][0], primal) <= 1e-6


def test_dfa3_usf_gd_flow_limits_are_the_predictor():
    from falab.experiments.beyond import runs

    x, y = _instance(5, 1, 3)
    rng = np.random.default_rng(6)
    cases = [runs.make_member("dfa3", 0, x, y, np.zeros((3, 3)), [rng.standard_normal(3), rng.standard_normal(3)]),
             runs.make_member("usf", 0, x, y, np.vstack([0.3 * rng.standard_normal(3), np.zeros(3)]), []),
             runs.make_member("gd", 0, x, y, 0.5 * rng.standard_normal((2, 3)), [])]
    for m in cases:
        flow = runs.flow_members([m], 60.0, 1e-12)
        lim = ft.predict_limit(m.x, m.y, m.pmap)
        assert ft.relative_error(flow["beta"][0], lim.beta) <= 1e-8, m.rule


def test_conv_predictor_refuses_non_even_data_and_interpolates():
    with pytest.raises(ValueError, match="Invalid x: not even"):
        ft.conv_fa_limit(np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([1.0]), np.ones(4))
    x = np.array([[1.0, 2.0, 0.5, 2.0], [0.3, -1.0, 2.0, -1.0]])
    beta, beta_hat = ft.conv_fa_limit(x, np.array([1.0, -2.0]), np.array([1.0, 0.5, -0.7, 0.5]))
    assert np.allclose(x @ beta, [1.0, -2.0], atol=1e-10) and np.allclose(np.fft.fft(beta).real, beta_hat, atol=1e-12)


@pytest.mark.slow  # ~50 s under load; the quick reproduce measures the same claim (FALAB-CONV) in the default suite
def test_conv_fa_flow_limit_is_the_weighted_dft_l43_interpolator():
    """Even data: FA from zero on CircularConvNet(4) converges to the DFT-domain predictor (to 1e-8), which
    interpolates."""
    from falab.experiments.beyond import runs

    out = runs.conv_flows([0, 1], 4, 1, 20.0, 1e-11)
    for c in out:
        assert ft.relative_error(c["flow"], c["pred"]) <= 1e-8
        assert np.linalg.norm(c["x"] @ c["pred"] - c["y"]) <= 1e-10 * np.linalg.norm(c["y"])


# ----------------------------------------------------------------------------------------------------------------------
# predictor properties (no simulation)


@pytest.mark.parametrize("n,d", [(3, 8), (5, 12), (8, 12)])
def test_predictor_interpolates_and_meets_kkt(n, d):
    x, y = _instance(n * d, n, d)
    rng = np.random.default_rng(d)
    for law in (rng.standard_normal(d), rng.uniform(-1, 1, d), rng.choice([-1.0, 1.0], d)):
        pm = ft.small_init_map(ft.fa_products([law]))
        lim = ft.predict_limit(x, y, pm)
        assert np.linalg.norm(x @ lim.beta - y) <= 1e-10 * np.linalg.norm(y)
        assert ft.kkt_residual(x, lim.beta, pm) <= 1e-10
        # Phi is the weighted l_{4/3} norm; the limit minimises it among interpolators
        w = ft.fa_lp_weights(law)
        assert np.allclose(pm.potential(lim.beta), w * np.abs(lim.beta) ** (4 / 3), rtol=1e-9, atol=1e-14)
        null = np.linalg.svd(x)[2][n:]
        phi = float(np.sum(w * np.abs(lim.beta) ** (4 / 3)))
        for _ in range(5):
            other = lim.beta + 1e-2 * rng.standard_normal(d - n) @ null
            assert float(np.sum(w * np.abs(other) ** (4 / 3))) > phi
        # the dual Newton solution and the reduced flow agree, and the primal route agrees
        red = ft.predict_limit(x, y, pm, method="reduced")
        assert ft.relative_error(red.beta, lim.beta) <= 1e-9
        assert ft.relative_error(ft.weighted_lp_interpolator(x, y, w, 4 / 3), lim.beta) <= 1e-9


def test_feedback_signs_do_not_matter_from_zero_and_depth_exponents():
    x, y = _instance(1, 4, 10)
    rng = np.random.default_rng(2)
    b = rng.standard_normal(10)
    a = ft.predict_limit(x, y, ft.small_init_map(ft.fa_products([b]))).beta
    c = ft.predict_limit(x, y, ft.small_init_map(ft.fa_products([-b * rng.choice([-1, 1], 10)]))).beta
    assert ft.relative_error(c, a) <= 1e-12
    for depth in (2, 3, 4):
        cs = rng.standard_normal((depth, 10))
        cs[-1] = 1.0
        pm = ft.small_init_map(cs)
        assert pm.degree == 2**depth - 1 and pm.monotone().all()
        kappa = np.prod([cs[k] ** (2 ** (depth - 1 - k)) for k in range(depth - 1)], axis=0)
        kappa /= math.prod((2 ** (l - 1)) ** (2 ** (depth - l)) for l in range(2, depth + 1))
        assert np.allclose(pm.coefs[-1], kappa, rtol=1e-12)
        assert ft.small_init_exponent(depth) == pytest.approx(1 + 1 / (2**depth - 1))


def test_two_layer_fa_map_is_monotone_iff_q_nonpositive():
    rng = np.random.default_rng(7)
    u0, v0, b = rng.standard_normal(400), rng.standard_normal(400), rng.standard_normal(400)
    pm = ft.diagonal_map(ft.fa_products([b]), np.vstack([u0, v0]))
    q = 0.5 * u0**2 - b * v0
    keep = np.abs(q) > 1e-9
    assert np.array_equal(pm.monotone()[keep], (q <= 0)[keep])
    z = np.linspace(-3, 3, 7)[:, None]
    u, v = u0 + b * z, v0 + u0 * z + b * z**2 / 2
    assert np.allclose(pm.value(z), u * v, rtol=1e-12, atol=1e-12)


def test_batched_limits_equal_single_limits():
    rng = np.random.default_rng(9)
    xs = rng.standard_normal((6, 4, 9))
    ys = rng.standard_normal((6, 4))
    maps = [ft.GradientMap(1e-3 * np.ones(9), np.zeros(9)) for _ in range(6)]
    maps2 = [ft.small_init_map(ft.dfa_products([rng.standard_normal(9), rng.standard_normal(9)])) for _ in range(6)]
    for ms in (maps, maps2):
        batch = ft.predict_limits(xs, ys, ft.concat_maps(ms))
        for i, m in enumerate(ms):
            assert ft.relative_error(batch[i], ft.predict_limit(xs[i], ys[i], m).beta) <= 1e-9


# ----------------------------------------------------------------------------------------------------------------------
# FA = GD when the feedback is the forward weight (structured feedback)


def _update(rule, net, params, state, x, y, loss):
    """The rule's pseudo-gradients (the contract returns ``(updates, new_state)``; older trees returned updates)."""
    out = rule.update(net, params, state, x, y, loss)
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("net", [DiagonalNet(5, 2), DiagonalNet(5, 3), CircularConvNet(5, (5, 3)),
                                 CircularConvNet(6), FullyConnectedTensorNet((4, 3, 2))])
def test_fa_and_dfa_with_forward_feedback_are_gd(net):
    g = torch.Generator().manual_seed(0)
    params = {f"v{l + 1}": torch.randn(k, generator=g, dtype=torch.float64) for l, k in enumerate(net.param_sizes)}
    x = torch.randn(7, net.input_dim, generator=g, dtype=torch.float64)
    y = torch.randn(7, 1, generator=g, dtype=torch.float64)
    loss = SquaredLoss("mean")
    gd = _update(Backprop(), net, params, {}, x, y, loss)
    fb = net.structured_feedback("fa", [params[f"v{l}"] for l in range(2, net.n_layers + 1)])
    fa = _update(FeedbackAlignment(), net, params, fb, x, y, loss)
    for k in gd:
        assert torch.allclose(fa[k], gd[k], rtol=1e-12, atol=1e-12), k
    # autograd agrees with BP through the tensor parametrisation
    leaf = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    loss.value(net(leaf, x), y).backward()
    for k in gd:
        assert torch.allclose(leaf[k].grad, gd[k], rtol=1e-12, atol=1e-12), k
    # DFA with rows equal to the chains W_L .. W_{l+1} is GD as well
    ws = net.layer_weights(params)
    chains, chain = [], ws[-1]
    for l in range(net.n_layers - 1, 0, -1):
        chains.insert(0, chain[..., 0, :])
        chain = chain @ ws[l - 1]
    dfa = _update(DirectFeedbackAlignment(), net, params, net.structured_feedback("dfa", chains), x, y, loss)
    for k in gd:
        assert torch.allclose(dfa[k], gd[k], rtol=1e-12, atol=1e-12), k


def test_structured_feedback_rejects_bad_input():
    net = DiagonalNet(4, 3)
    with pytest.raises(ValueError, match="Invalid feedback vectors"):
        net.structured_feedback("fa", [torch.ones(4)])
    with pytest.raises(ValueError, match="Invalid feedback b_2 length"):
        net.structured_feedback("fa", [torch.ones(3), torch.ones(4)])
    with pytest.raises(ValueError, match="Invalid rule"):
        net.structured_feedback("bp", [torch.ones(4), torch.ones(4)])
    fb = net.structured_feedback("fa", [torch.arange(4.0), torch.ones(4)])
    assert torch.equal(fb["B2"], torch.diag(torch.arange(4.0, dtype=torch.float64))) and fb["B3"].shape == (1, 4)


# ----------------------------------------------------------------------------------------------------------------------
# the phase-transition experiment in quick mode


def test_phase_transition_quick_produces_figure_and_claims(tmp_path):
    from falab.experiments import EXPERIMENTS, RunContext, run_experiment

    rec = run_experiment(EXPERIMENTS["EXP-FALAB-2"], RunContext(quick=True, out_dir=tmp_path))
    assert not rec.error
    assert {c.id for c in rec.claims} == {"FALAB-PT-GD", "FALAB-PT-FA", "FALAB-PT-SUPPORT", "FALAB-PT-DEPTH"}
    assert all(c.verdict in ("confirmed", "qualified", "refuted", "inconclusive") for c in rec.claims)
    assert all(c.checks and c.checks[0].interval is not None for c in rec.claims)
    assert rec.measured is not None and (tmp_path / "figures" / "falab_phase_transition.png").stat().st_size > 10_000
    assert "n50 exact" in rec.measured.markdown


# ----------------------------------------------------------------------------------------------------------------------
# classification (exponential loss): the weighted-l_{4/3} max-margin direction


def _cls_instance(seed: int, n: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng([99, seed])
    x = rng.standard_normal((n, d))
    return x, rng.choice([-1.0, 1.0], n), rng.standard_normal(d)


@pytest.mark.parametrize("seed,n,d", [(0, 4, 8), (1, 3, 9), (2, 6, 8), (3, 12, 6)])
def test_max_margin_predictor_meets_kkt_and_is_feasible(seed, n, d):
    """The weighted-l_{4/3} max-margin point: KKT residual <= 1e-8, every margin >= 1 with equality on the support
    vectors, no feasible perturbation lowers the potential, and it agrees with an SLSQP solve of the primal; the same
    solver with q = 2 is the hard-margin SVM (P002's NNLS). (3, 12, 6): n > d, separable only by chance, so a
    separable one is drawn."""
    from scipy import optimize

    from falab.theory._p002 import max_margin_l2

    x, y, b = _cls_instance(seed, n, d)
    if n > d:
        y = np.sign(x @ np.random.default_rng(seed).standard_normal(d))  # separable by construction
    lim = ft.fa_max_margin(x, y, b)
    margins = y * (x @ lim.beta)
    assert lim.kkt <= 1e-8
    assert margins.min() >= 1.0 - 1e-12
    assert np.abs(margins[lim.active] - 1.0).max() <= 1e-10 and (lim.lam[lim.active] > 0).all()
    assert np.allclose(lim.lam[~lim.active], 0.0)
    w = ft.fa_lp_weights(b)
    phi = float(np.sum(w * np.abs(lim.beta) ** (4 / 3)))
    rng = np.random.default_rng(seed + 10)
    for _ in range(20):
        other = lim.beta + 1e-2 * np.linalg.norm(lim.beta) * rng.standard_normal(d)
        other = other / float(np.min(y * (x @ other)))  # rescaled to the constraint (min margin exactly 1)
        if np.min(y * (x @ other)) > 0:
            assert float(np.sum(w * np.abs(other) ** (4 / 3))) > phi
    a = y[:, None] * x
    res = optimize.minimize(lambda v: float(np.sum(w * np.abs(v) ** (4 / 3))), lim.beta * 1.1,
                            jac=lambda v: (4 / 3) * w * np.sign(v) * np.abs(v) ** (1 / 3), method="SLSQP",
                            constraints=[{"type": "ineq", "fun": lambda v: a @ v - 1.0, "jac": lambda v: a}],
                            options={"ftol": 1e-15, "maxiter": 1000})
    assert ft.relative_error(res.x, lim.beta) <= 1e-5
    l2 = ft.max_margin_point(x, y, ft.PowerMap(np.ones(d), 2.0))
    assert ft.relative_error(l2.beta, max_margin_l2(x, y)) <= 1e-9 and l2.kkt <= 1e-8
    # the residual sees a wrong point: the l2 point is not the l_{4/3} optimum
    assert ft.margin_kkt_residual(x, y, l2.beta, ft.PowerMap(w, 4 / 3)) > 1e-3


def test_max_margin_point_for_the_depth3_dfa_potential():
    """Depth-3 DFA from zero: P = kappa z^7 (a PolynomialMap, inverted by bisection) has the potential
    (7/8) kappa^{-1/7} |beta|^{8/7}; its max-margin point equals the PowerMap route's to 1e-9, both meet KKT."""
    x, y, _ = _cls_instance(5, 4, 8)
    rng = np.random.default_rng(5)
    pm = ft.small_init_map(ft.dfa_products([rng.standard_normal(8), rng.standard_normal(8)]))
    kappa = pm.coefs[-1]
    lim = ft.max_margin_point(x, y, pm)
    alt = ft.max_margin_point(x, y, ft.PowerMap(0.875 * kappa ** (-1 / 7), 8 / 7))
    assert lim.kkt <= 1e-8 and alt.kkt <= 1e-8
    assert ft.relative_error(lim.beta, alt.beta) <= 1e-9
    assert ft.relative_error(lim.beta, ft.fa_max_margin(x, y, np.ones(8)).beta) > 1e-2  # a different potential


def test_max_margin_predictor_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"Invalid y"):
        ft.fa_max_margin(np.eye(2), np.array([1.0, 0.5]), np.ones(2))
    with pytest.raises(ValueError, match=r"Invalid data: not linearly separable"):
        ft.fa_max_margin(np.array([[1.0, 0.0], [2.0, 0.0]]), np.array([1.0, -1.0]), np.ones(2))
    assert ft.angle(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == pytest.approx(math.pi / 2, abs=1e-15)
    assert ft.angle(np.array([1.0, 1e-9]), np.array([1.0, 0.0])) == pytest.approx(1e-9, rel=1e-6)


def test_fa_classification_flow_direction_nears_the_predictor():
    """Exponential loss, one fixed instance (n = 4, d = 8): along the exact FA flow from zero grad Phi(beta(t))
    stays in range(X^T) (mirror flow) to 1e-8, the angle to the weighted-l_{4/3} max-margin direction falls from
    t = 1e2 to 1e6, and at 1e6 it is smaller than the angles to the l1 and l2 max-margin directions."""
    import dataclasses

    from falab.experiments.beyond import configs, runs

    cfg = dataclasses.replace(configs.classification(True), per_seed=1, horizon=1e6, with_gd=False)
    row = runs.cls_flows([0], cfg)[0][0]
    ts = list(row["times"])
    i0, i1 = ts.index(1e2), ts.index(1e6)
    ang = row["fa"]
    assert row["mirror_resid"] <= 1e-8
    assert ang["l43"][i1] < ang["l43"][i0] - 0.01
    assert ang["l43"][i1] < min(ang["l1"][i1], ang["l2"][i1]) - 0.05


def test_classification_quick_produces_its_claim(tmp_path):
    from falab.experiments import EXPERIMENTS, RunContext, run_experiment

    rec = run_experiment(EXPERIMENTS["EXP-FALAB-3"], RunContext(quick=True, out_dir=tmp_path))
    assert not rec.error
    assert [c.id for c in rec.claims] == ["FALAB-CLS"]
    claim = rec.claims[0]
    assert claim.verdict == "confirmed", claim
    assert [c.interval is not None for c in claim.checks] == [False, False, True, True]
    assert rec.measured is not None and (tmp_path / "figures" / "falab_classification.png").stat().st_size > 10_000
    assert "weighted ℓ_{4/3} for" in rec.measured.markdown
