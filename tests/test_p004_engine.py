"""P004 on the engine: matrix factorisation = 2-layer linear network on X = I; FA/FA* identities; Lemma 1; Cor. 5."""

import numpy as np
import pytest
import torch

from falab._checks import FalabInputError
from falab.dynamics import Euler, Problem, simulate_discrete, simulate_flow
from falab.experiments.p004.runs import LOSS, mf_problem
from falab.instruments import matfac as ins
from falab.models._matfac import factors, feedback_slot, from_factors, identity_inputs, matrix_factorization
from falab.theory import _p004 as th


def _small(seed=0, n=30, m=20, k=8, r=3, members=None):
    rng = np.random.default_rng(seed)
    sigma = np.linspace(3.0, 0.5, k)
    y = th.spectral_target(rng, n, m, sigma)[0]
    lead = () if members is None else (members,)
    z0 = rng.standard_normal((*lead, n, r))
    w0 = 0.3 * rng.standard_normal((*lead, r, m))
    b = rng.standard_normal((*lead, m, r))
    return torch.tensor(y), torch.tensor(z0), torch.tensor(w0), torch.tensor(b)


def test_views_round_trip_and_reject_bad_input():
    z, w = torch.randn(5, 2, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    p = from_factors(z, w)
    assert p["W1"].shape == (2, 5) and p["W2"].shape == (4, 2)
    zz, ww = factors(p)
    assert torch.equal(zz, z) and torch.equal(ww, w)
    assert matrix_factorization(5, 2, 4).widths == (5, 2, 4)
    assert torch.equal(identity_inputs(3), torch.eye(3, dtype=torch.float64))
    with pytest.raises(FalabInputError, match="Invalid factors shapes"):
        from_factors(z, torch.randn(3, 4, dtype=torch.float64))
    with pytest.raises(FalabInputError, match="Invalid params"):
        factors({"W1": z})
    with pytest.raises(FalabInputError, match="Invalid matrix_factorization.r"):
        matrix_factorization(5, 0, 4)
    assert feedback_slot(torch.zeros(4, 2))["B2"].shape == (4, 2)


@pytest.mark.parametrize("rule,key", [("GD", "gd"), ("FA", "fa"), ("FA*", "fa_star")])
def test_engine_vector_field_is_p004_eqs_2_to_4(rule, key):
    y, z0, w0, b = _small()
    prob, p = mf_problem(rule, y, z0, w0, b)
    p = prob.constrain(p)
    upd = prob.update(p)
    z, w = factors(p)
    dz, dw = th.mf_vector_field(key, z.numpy(), w.numpy(), y.numpy(), b.numpy())
    np.testing.assert_allclose(-upd["W1"].T.numpy(), dz, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(-upd["W2"].T.numpy(), dw, rtol=1e-12, atol=1e-12)
    if key == "fa_star":  # W slaved to the least-squares optimum
        np.testing.assert_allclose(w.numpy(), th.slaved_w(z.numpy(), y.numpy()), atol=1e-12)


def test_fa_star_flow_conserves_gram_and_satisfies_lemmas_4_5():
    y, z0, w0, b = _small(seed=3)
    prob, p0 = mf_problem("FA*", y, z0, w0, b)
    meas = {"gram": ins.m_gram, "lemma5": ins.m_lemma5, "lemma4": ins.m_lemma4, "surrogate": ins.m_surrogate}
    traj = simulate_flow(prob, p0, np.linspace(0.0, 0.3, 31), measures=meas)
    gram = traj.metric("gram")
    drift = (torch.linalg.matrix_norm(gram - gram[0]) / torch.linalg.matrix_norm(gram[0])).max()
    assert drift < 1e-9
    l5 = traj.metric("lemma5")
    assert l5[:, 0].max() / l5[:, 1].max() < 1e-10
    l4 = traj.metric("lemma4")
    scale = l4[:, 1].abs().max()
    assert (l4[:, 0] - l4[:, 1]).abs().max() / scale < 1e-10          # chain rule = -tr(R A R^T)
    assert (l4[:, 2] - l4[:, 1]).abs().max() / scale < 1e-6           # finite differences along the flow


def test_fa_star_euler_identities_are_exact():
    y, z0, w0, b = _small(seed=4)
    eta = 5e-3
    prob, p0 = mf_problem("FA*", y, z0, w0, b)
    worst = {"gram": 0.0, "align": 0.0}

    def check(k, params, update, new):
        z, w = factors(params)
        d = ins.fa_star_step_identities(z, w, factors(new)[0], y, b, eta)
        for key in worst:
            err = torch.linalg.matrix_norm(d[f"{key}_measured"] - d[f"{key}_predicted"])
            worst[key] = max(worst[key], float(err / torch.linalg.matrix_norm(d[f"{key}_predicted"])))

    simulate_discrete(prob, p0, Euler(lr=eta), 40, record_steps=[0], on_step=check)
    assert worst["gram"] < 1e-9 and worst["align"] < 1e-12


@pytest.mark.parametrize("ratio,holds", [(1.0, True), (3.0, False)])
def test_fa_euler_matrix_identity_needs_equal_steps(ratio, holds):
    y, z0, w0, b = _small(seed=5)
    eta = 2e-3
    prob, p0 = mf_problem("FA", y, z0, w0, b)
    new = simulate_discrete(prob, p0, Euler(lr={"W1": eta, "W2": ratio * eta}), 1, record_steps=[0, 1]).final
    z, w = factors(p0)
    zn, wn = factors(new)
    change = ins.fa_conserved(zn, wn, b) - ins.fa_conserved(z, w, b)
    predicted = eta**2 * ins.gram_rr(z, w, y, b)
    rel = float(torch.linalg.matrix_norm(change - predicted) / torch.linalg.matrix_norm(predicted))
    assert (rel < 1e-6) == holds


def test_fa_flow_conserves_matrix_and_converges_to_lemma1():
    y, z0, w0, b = _small(seed=6, members=2)
    prob, p0 = mf_problem("FA", y, 0.5 * z0, w0, b)
    traj = simulate_flow(prob, p0, np.linspace(0.0, 40.0, 5),
                         measures={"C": ins.m_fa_conserved, "stat": ins.m_stationarity})
    c = traj.metric("C")
    assert (torch.linalg.matrix_norm(c - c[0]) / torch.linalg.matrix_norm(c[0])).max() < 1e-8
    # the adaptive solver (rtol 1e-10) limits how close the flow gets; the exact check is the Euler test below
    assert traj.metric("stat")[-1].max() < 1e-7
    z, w = factors(traj.final)
    for j in range(2):
        p = th.lemma1_projection(y.numpy(), b[j].numpy())
        assert np.linalg.norm((z[j] @ w[j]).numpy() - p) / np.linalg.norm(p) < 1e-6


def test_lemma1_holds_at_fa_star_euler_limit_and_beats_nothing():
    y, z0, w0, b = _small(seed=7)
    prob, p0 = mf_problem("FA*", y, z0, w0, b)
    final = simulate_discrete(prob, p0, Euler(lr=2e-2), 3000, record_steps=[3000]).final
    z, w = factors(final)
    p = th.lemma1_projection(y.numpy(), b.numpy())
    assert np.linalg.norm((z @ w).numpy() - p) / np.linalg.norm(p) < 1e-8
    err = float(torch.linalg.matrix_norm(y - z @ w))
    assert err > th.optimal_error(np.linspace(3.0, 0.5, 8), 3) + 0.1  # r < rank(Y): FA is strictly sub-optimal here


def test_network_on_isotropic_inputs_follows_the_factorisation():
    y, z0, w0, b = _small(seed=8)
    rng = np.random.default_rng(8)
    x_iso = torch.tensor(th.orthonormal_columns(rng, 70, 30))
    for rule in ("GD", "FA", "FA*"):
        prob, p0 = mf_problem(rule, y, z0, w0, b)
        net = Problem(prob.model, prob.rule, LOSS, x_iso, x_iso @ y, prob.state)
        a = simulate_discrete(prob, p0, Euler(lr=1e-2), 30, record_steps=[30]).final
        c = simulate_discrete(net, p0, Euler(lr=1e-2), 30, record_steps=[30]).final
        for k in a:
            assert torch.linalg.matrix_norm(a[k] - c[k]) / torch.linalg.matrix_norm(a[k]) < 1e-12
    # a non-isotropic input breaks the equivalence (the test can fail)
    x_bad = x_iso * torch.linspace(0.5, 1.5, 30, dtype=torch.float64)
    prob, p0 = mf_problem("FA", y, z0, w0, b)
    net = Problem(prob.model, prob.rule, LOSS, x_bad, x_bad @ y, prob.state)
    a = simulate_discrete(prob, p0, Euler(lr=1e-2), 30, record_steps=[30]).final
    c = simulate_discrete(net, p0, Euler(lr=1e-2), 30, record_steps=[30]).final
    assert torch.linalg.matrix_norm(a["W1"] - c["W1"]) / torch.linalg.matrix_norm(a["W1"]) > 1e-3


def test_example1_engine_flow_matches_closed_form():
    rng = np.random.default_rng(9)
    y = th.orthonormal_columns(rng, 40, 1)
    z0 = 0.2 * rng.standard_normal((40, 1))
    z0 = -z0 if float(z0[:, 0] @ y[:, 0]) > 0 else z0
    prob, p0 = mf_problem("FA*", torch.tensor(y), torch.tensor(z0), torch.tensor(th.slaved_w(z0, y)),
                          torch.tensor([[0.7]]))
    ts = np.linspace(0.0, 2.0, 21)
    traj = simulate_flow(prob, p0, ts, measures={"loss": lambda s: s.problem.loss_value(s.params)})
    rho = float(np.linalg.norm(z0))
    cf = th.example1(ts, 1.0, rho, 0.7, float(z0[:, 0] @ y[:, 0]) / rho)
    np.testing.assert_allclose(traj.metric("loss").numpy(), cf["loss"], atol=1e-8)


def test_instruments_basic_relations():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, generator=g, dtype=torch.float64)
    v = ins.unit_vectors(50, 4, g)
    assert torch.allclose(torch.linalg.vector_norm(v, dim=-1), torch.ones(50, dtype=torch.float64))
    assert (ins.quadratic_forms(a, v) >= ins.lam_min(a) - 1e-12).all()
    z1, z2 = torch.randn(10, 1, dtype=torch.float64), torch.randn(10, 1, dtype=torch.float64)
    assert ins.representation_cosine(z1, z2) == pytest.approx(float(ins.subspace_overlap(z1, z2)), rel=1e-12)
    assert ins.subspace_overlap(z1, -3 * z1) == pytest.approx(1.0, rel=1e-12)
    y, z0, w0, b = _small()
    assert ins.surrogate_loss(z0, w0, y, b) == pytest.approx(
        0.5 * float(torch.linalg.matrix_norm(ins.residual(z0, w0, y, b)) ** 2))


def test_step_monitors_match_the_identities_per_member_and_detect_a_wrong_step():
    y, z0, w0, b = _small(seed=10, members=3)
    eta = 4e-3
    prob, p0 = mf_problem("FA*", y, z0, w0, b)
    mon = ins.FAStarStepMonitor(y, b, eta)
    simulate_discrete(prob, p0, Euler(lr=eta), 30, record_steps=[0], on_step=mon)
    assert mon.gram_rel.shape == (3,) and float(mon.gram_rel.max()) < 1e-12
    assert float(mon.align_rel.max()) < 1e-12 and float(mon.gram_rel_inc.max()) < 1e-9
    prob_fa, p0f = mf_problem("FA", y, z0, w0, b)
    fa = ins.FAStepMonitor(y, b, eta)
    simulate_discrete(prob_fa, p0f, Euler(lr=eta), 30, record_steps=[0], on_step=fa)
    assert fa.rel.shape == (3,) and float(fa.rel.max()) < 1e-9
    # a monitor told the wrong step size sees the violation (the identities can fail)
    wrong = ins.FAStepMonitor(y, b, 2 * eta)
    simulate_discrete(prob_fa, p0f, Euler(lr=eta), 5, record_steps=[0], on_step=wrong)
    assert float(wrong.rel.min()) > 0.1


def test_sign_changes_and_log_curve_distance():
    t = torch.linspace(0, 6, 601, dtype=torch.float64)
    x = torch.stack([torch.sin(t), torch.exp(-t), 1e-12 * torch.sin(40 * t) + (t < 1).double()], dim=1)
    assert ins.sign_changes(x).tolist() == [1, 0, 0]       # noise below the floor is ignored
    a = torch.tensor([[1.0], [0.1]], dtype=torch.float64)
    assert float(ins.log_curve_distance(a, a / 10)[0]) == pytest.approx(1.0, rel=1e-12)
