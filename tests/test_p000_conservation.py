"""P000 (Robertson & Koyejo): conservation law of FA, its Euler identity, DFA, Thm 5.2 — against the numpy oracle,
the claims engine on P000's specs, and the quick experiments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from falab.dynamics import Euler, Problem, simulate_discrete, simulate_flow
from falab.experiments import EXPERIMENTS, RunContext, decide
from falab.experiments.p000 import claims as p000_claims
from falab.experiments.p000.runs import _law_terms, dfa_variant_feedback, per_seed_drift, rk4
from falab.functional import SquaredLoss
from falab.instruments import FAStepIdentity, fa_quantity
from falab.models import MLP
from falab.rules import DirectFeedbackAlignment, FeedbackAlignment, Gaussian
from falab.theory import _p000 as theory

F64 = torch.float64


def _data(g, n=8, d=5, k=2):
    return torch.randn(n, d, generator=g, dtype=F64), torch.randn(n, k, generator=g, dtype=F64)


# ---------------------------------------------------------------------------------------------------------------------
# theory: closed forms against independent routes, including the degenerate edges of their domains
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, d", [(1, 1), (1, 7), (3, 7), (6, 7), (7, 7), (5, 40)])
def test_min_norm_and_projector_against_lstsq_and_solve(n: int, d: int) -> None:
    """X^+ y against numpy's least-squares minimum-norm solution and X^T (XX^T)^{-1} y (n = d: the unique solution,
    P_perp = 0; n = 1: a rank-one projector), to 1e-12 relative."""
    rng = np.random.default_rng(n * 100 + d)
    x, y = rng.standard_normal((n, d)), rng.standard_normal((n, 1))
    w = theory.min_norm_solution(x, y)
    ref = np.linalg.lstsq(x, y, rcond=None)[0]
    assert np.linalg.norm(w - ref) <= 1e-12 * np.linalg.norm(ref)
    solve = x.T @ np.linalg.solve(x @ x.T, y)
    assert np.linalg.norm(w - solve) <= 1e-12 * np.linalg.norm(solve)
    p = theory.perp_projector(x)
    q, _ = np.linalg.qr(x.T)  # orthonormal basis of span(X^T): P_perp = I - Q Q^T
    assert np.abs(p - (np.eye(d) - q @ q.T)).max() <= 1e-12
    if n == d:
        assert np.abs(p).max() <= 1e-12


def test_span_prediction_rate_bound_and_euler_ratio_edges() -> None:
    rng = np.random.default_rng(2)
    x, w1, w2 = rng.standard_normal((3, 6)), rng.standard_normal((6, 4)), rng.standard_normal((4, 1))
    np.testing.assert_allclose(theory.span_prediction(x, w1, w2), theory.perp_projector(x) @ (w1 @ w2), rtol=1e-12,
                               atol=1e-14)
    t = np.array([0.0, 0.5, 2.0])
    b = theory.rate_bound(2.0, -3.0, 0.5, t, n_samples=4)
    np.testing.assert_allclose(b, 2.0 * np.exp(-3.0 * 0.5 * t / 4), rtol=1e-15)
    assert b[0] == 2.0
    assert np.isinf(theory.rate_bound(1.0, 0.0, 1.0, 0.5)).all()  # Q(0) = 0: no guarantee (edge of the domain)
    assert theory.guaranteed_rate(0.0, 2.0) == 0.0 and theory.guaranteed_rate(-1e-300, 2.0) == 2e-300
    assert theory.guaranteed_rate(-2.0, 3.0, n_samples=4) == 1.5
    for q0, drift in ((-50.0, 1e-3), (1e-8, 1e-12), (-1e-8, 1e-12), (3.0, 0.0)):
        assert abs(theory.euler_ratio(q0, drift) - (1 + drift / q0)) <= 1e-12 * abs(1 + drift / q0)


@pytest.mark.parametrize("copy", [True, False])
def test_theory_init_statistics_monte_carlo(copy: bool) -> None:
    rng = np.random.default_rng(1)
    d, h, s1, m = 6, 20, 0.3, 4000
    w1 = s1 * rng.standard_normal((m, d, h))
    w2 = rng.standard_normal((m, h))
    b = w2 if copy else rng.standard_normal((m, h))
    q = 0.5 * (w1**2).sum((1, 2)) - (w2 * b).sum(1)
    st = theory.init_statistics(d, h, s1, copy_feedback=copy)
    assert abs(q.mean() - st["mean"]) < 4 * st["std"] / np.sqrt(m)
    assert abs(q.std() / st["std"] - 1) < 0.05
    zero = theory.init_statistics(d, h, 0.0, copy_feedback=copy)  # W_1 = 0 edge: only <W_2, B> varies
    assert zero["mean"] == (-h if copy else 0.0) and zero["std"] == pytest.approx(np.sqrt(2 * h if copy else h))


# ---------------------------------------------------------------------------------------------------------------------
# the step-identity instrument in the forms P000 uses (exact step, cancelling-terms scale, per neuron, matrix)
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("act, homogeneous", [("relu", True), ("leaky_relu", True), ("identity", True), ("tanh", False)])
def test_step_identity_per_member_per_neuron(act: str, homogeneous: bool) -> None:
    g = torch.Generator().manual_seed(3)
    x, y = _data(g)
    model = MLP((5, 7, 6, 2), act, bias=True)
    p0 = model.init_params(g, ensemble=2, scheme="kaiming")
    p0 = {k: (0.3 * torch.randn(v.shape, generator=g, dtype=F64) if k.startswith("b") else v) for k, v in p0.items()}
    rule = FeedbackAlignment(Gaussian())
    st = rule.init(model, p0, generator=g)
    prob = Problem(model, rule, SquaredLoss("mean"), x, y, st)
    mon = FAStepIdentity(model, rule, st, eta=0.05, relative_to="terms", per_neuron=True, per_member=True)
    whole = FAStepIdentity(model, rule, st, eta=0.05, relative_to="terms")
    simulate_discrete(prob, p0, Euler(0.05), 50, on_step=lambda *a: (mon(*a), whole(*a)))
    assert tuple(mon.max_rel_violation.shape) == (2, 2) and tuple(mon.max_rel_neuron.shape) == (2, 2)
    assert torch.equal(mon.max_rel_violation.amax(0), whole.max_rel_violation)
    if homogeneous:
        assert float(mon.max_rel_violation.max()) < 1e-12 and float(mon.max_rel_neuron.max()) < 1e-12
    else:
        assert float(mon.max_rel_violation.min()) > 1e-6


def test_step_identity_matrix_form_and_exact_step() -> None:
    """Linear nets: Delta C_i = Delta W_i Delta W_i^T to round-off, and the exact-step whole law agrees with the
    default (float difference of the iterates) form's accumulated drift."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 5, generator=g, dtype=F64)
    y = x @ torch.randn(5, 1, generator=g, dtype=F64)
    model = MLP((5, 6, 1), "identity")
    p0 = model.init_params(g, scheme="kaiming")
    rule = FeedbackAlignment(Gaussian())
    st = rule.init(model, p0, generator=g)
    prob = Problem(model, rule, SquaredLoss("mean"), x, y, st)
    exact = FAStepIdentity(model, rule, st, eta=0.2, relative_to="terms", matrix=True)
    naive = FAStepIdentity(model, rule, st)
    simulate_discrete(prob, p0, Euler(0.2), 3000, on_step=lambda *a: (exact(*a), naive(*a)))
    assert float(exact.max_rel_matrix.max()) < 1e-12 and float(exact.max_rel_violation.max()) < 1e-12
    torch.testing.assert_close(exact.predicted_drift, naive.predicted_drift, rtol=1e-6, atol=0.0)
    assert float(exact.predicted_drift.min()) > 0


def test_rk4_converges_to_dop853_with_fourth_order() -> None:
    g = torch.Generator().manual_seed(5)
    x, y = _data(g)
    model = MLP((5, 6, 2), "tanh")
    p0 = model.init_params(g, scheme="kaiming")
    rule = FeedbackAlignment(Gaussian())
    prob = Problem(model, rule, SquaredLoss("mean"), x, y, rule.init(model, p0, generator=g))
    ref = simulate_flow(prob, p0, [0.0, 1.0]).final["W1"]
    errs = [float((rk4(prob, p0, dt, 1.0, 1, {}, keep_params=True).final["W1"] - ref).abs().max()) for dt in (0.1, 0.05)]
    assert 10 < errs[0] / errs[1] < 24  # 2^4 = 16


def test_relu_flow_conserves_q_and_dfa_only_last_pair() -> None:
    g = torch.Generator().manual_seed(6)
    x, y = _data(g)
    model = MLP((5, 8, 8, 2), "relu")
    p0 = model.init_params(g, ensemble=2, scheme="kaiming")
    for rule, pairs_conserved in ((FeedbackAlignment(Gaussian()), (True, True)),
                                  (DirectFeedbackAlignment(Gaussian()), (False, True))):
        st = rule.init(model, p0, generator=g)
        fb = rule.feedback_used(model, p0, st) if isinstance(rule, FeedbackAlignment) else dfa_variant_feedback(st, 3)
        tr = rk4(Problem(model, rule, SquaredLoss("mean"), x, y, st), p0, 5e-4, 0.5, 10,
                 {"q": lambda s, fb=fb: _law_terms(model, s.params, fb)})
        v = tr.metric("q")
        for i, conserved in enumerate(pairs_conserved):
            drift = float(per_seed_drift(v[:, 0, :, i], v[:, 1, :, i], 1).max())
            assert (drift < 1e-4) if conserved else (drift > 1e-3), (rule.name, i, drift)


def test_thm52_min_norm_span_and_rate_against_oracle() -> None:
    g = torch.Generator().manual_seed(7)
    n, d, h = 3, 7, 12
    x = torch.randn(n, d, generator=g, dtype=F64)
    y = torch.randn(n, 1, generator=g, dtype=F64)
    model = MLP((d, h, 1), "identity")
    b = torch.randn(2, 1, h, generator=g, dtype=F64)
    w1_0 = torch.stack([torch.zeros(h, d, dtype=F64), 0.3 * torch.randn(h, d, generator=g, dtype=F64)])
    p0 = {"W1": w1_0, "W2": b.clone()}
    rule = FeedbackAlignment(Gaussian())
    st = rule.init(model, p0, generator=g, feedback={"B2": b})
    tr = simulate_flow(Problem(model, rule, SquaredLoss("sum"), x, y, st), p0, np.linspace(0, 3, 61))
    xn, yn = x.numpy(), y.numpy()
    w_inf = (tr.final["W2"] @ tr.final["W1"])[:, 0, :].numpy()
    w_mn = theory.min_norm_solution(xn, yn)[:, 0]
    assert np.linalg.norm(w_inf[0] - w_mn) / np.linalg.norm(w_mn) < 1e-6
    assert np.linalg.norm(w_inf[1] - w_mn) / np.linalg.norm(w_mn) > 1e-3  # off-span init: not min-norm
    pred = theory.span_prediction(xn, w1_0[1].T.numpy(), tr.final["W2"][1].T.numpy())[:, 0]
    np.testing.assert_allclose(theory.perp_projector(xn) @ w_inf[1], pred, atol=1e-12)
    lam = float(np.linalg.eigvalsh(xn @ xn.T).min())
    q0 = fa_quantity([p0["W1"], p0["W2"]], {2: b})[..., 0].numpy()
    for k in range(2):
        errs = np.array([np.linalg.norm(xn @ (p["W2"] @ p["W1"])[k, 0].numpy() - yn[:, 0]) for p in tr.params])
        bound = theory.rate_bound(errs[0], float(q0[k]), lam, np.asarray(tr.times))
        keep = errs > 1e-6 * errs[0]
        assert np.all(errs[keep] <= bound[keep] * (1 + 1e-6))


# ---------------------------------------------------------------------------------------------------------------------
# the engine on P000's specs: each qualification is measured, and measurements where it fails change the verdict
# ---------------------------------------------------------------------------------------------------------------------


def _verdict(spec, **m) -> str:
    return decide(spec, [m])[0]


def test_minnorm_qualification_needs_the_n_ge_d_arm_and_the_vanishing_gap() -> None:
    spec = p000_claims.MINNORM
    ok = {"minnorm_dist_n_lt_d": 0.9, "minnorm_dist_n_ge_d": 1e-9, "sweep_w1_scale": [0.01, 0.1, 1.0] * 2,
          "sweep_dist": [0.01, 0.1, 1.0, 0.02, 0.2, 2.0]}
    assert _verdict(spec, **ok) == "qualified"
    assert _verdict(spec, **{**ok, "minnorm_dist_n_ge_d": 2e-3}) == "refuted"  # n >= d arm misses three digits
    flat = {**ok, "sweep_dist": [1.0, 0.5, 0.25, 1.0, 0.5, 0.25]}  # the gap grows as the init shrinks
    assert _verdict(spec, **flat) == "refuted"
    assert _verdict(spec, **{**ok, "minnorm_dist_n_lt_d": 4e-4}) == "confirmed"


def test_la1_t52_ra1_qualifications_flip_when_their_measurements_do() -> None:
    la1 = {"la1_printed_hypothesis_perp": 0.05, "la1_zero_init_perp": 1e-15, "la1_span_identity": 1e-14}
    assert _verdict(p000_claims.LA1, **la1) == "qualified"
    assert _verdict(p000_claims.LA1, **{**la1, "la1_span_identity": 1e-6}) == "refuted"
    assert _verdict(p000_claims.LA1, **{**la1, "la1_printed_hypothesis_perp": 1e-15}) == "confirmed"
    q = [10.0, 40.0, 160.0]
    t52 = {"t52_bound_excess": -0.1, "t52_rate_over_guaranteed": 1.2, "t52_minus_q0": q,
           "t52_fitted_rate": [1.1 * v * (1 + 0.01 * i) for i, v in enumerate(q)],
           "t52_printed_hypothesis_dist": 0.05, "t52_zero_init_dist": 1e-12}
    assert _verdict(p000_claims.T52, **t52) == "qualified"
    assert _verdict(p000_claims.T52, **{**t52, "t52_zero_init_dist": 1e-3}) == "refuted"
    assert _verdict(p000_claims.T52, **{**t52, "t52_rate_over_guaranteed": 0.5}) == "refuted"
    ra1 = {"zero_linear_identity_gap": 1e-12, "zero_linear_growth": 0.5, "zero_relu_motion": 0.0}
    assert _verdict(p000_claims.RA1, **ra1) == "qualified"
    assert _verdict(p000_claims.RA1, **{**ra1, "zero_relu_motion": 0.3}) == "confirmed"


def test_relu_drift_is_numerical_and_uses_one_tolerance() -> None:
    """A ReLU drift above the RK4 tolerance that shrinks 10x with the step is confirmed (numerical)."""
    base = {"relu_flow_rel_drift": 1.2e-5, "linear_flow_rel_drift": 1e-12, "relu_euler_identity_rel": 1e-16,
            "linear_euler_identity_rel": 1e-16}
    v, numerical, _, _ = decide(p000_claims.T51, [base], [{**base, "relu_flow_rel_drift": 1.2e-6}])
    assert (v, numerical) == ("confirmed", True)
    assert decide(p000_claims.T51, [base], [base])[0] == "refuted"


# ---------------------------------------------------------------------------------------------------------------------
# the quick experiments: every spec decides on measured quantities
# ---------------------------------------------------------------------------------------------------------------------


def test_p000_experiments_quick(tmp_path) -> None:
    ctx = RunContext(quick=True, out_dir=tmp_path, seeds=(0, 1))
    verdicts, m, methods = {}, {}, {}
    for eid in ("EXP-P000-1", "EXP-P000-2", "EXP-P000-3"):
        exp = EXPERIMENTS[eid]
        out = exp.run(ctx)
        assert len(out.per_seed) == 2 and all(p.exists() for p in out.figures) and out.paper_numbers
        # every claim's numbers come from integration records the experiment made (method, settings, accuracy)
        named = {c for e in out.numbers["integration"] for c in e["claims"]}
        assert named == set(exp.claim_ids)
        methods.update({e["part"]: e for e in out.numbers["integration"]})
        for spec in exp.claims:
            verdicts[spec.id] = decide(spec, out.per_seed)[0]
        m.update(out.per_seed[0])
        assert "{'" not in out.markdown and "± 0.00" not in out.markdown  # no raw dicts, no one-seed spreads
    assert len(verdicts) == 11
    assert verdicts["P000-T5.1"] == "confirmed" and verdicts["P000-E.minnorm"] == "qualified"
    assert verdicts["P000-L.A1"] == "qualified" and verdicts["P000-T5.2"] == "qualified"
    assert m["relu_flow_rel_drift"] <= 1e-5 and m["relu_euler_identity_rel"] <= 1e-12
    assert m["minnorm_dist_n_lt_d"] > 0.1 and m["minnorm_dist_n_ge_d"] < 1e-4
    assert m["dfa_relu_variant"] > 1e-3 and m["fig2_loss_rises"] == 0
    # the claims' ReLU flow is the event route and conserves Q far below RK4's first-order drift on the same nets
    ev, rk = methods["Fig. 1 ReLU flow, B = W_2(0) nets"], methods[
        "Fig. 1 ReLU flow, independent-B readings (figure) and the comparison"]
    assert ev["method"] == "events" and ev["claims"] == ["P000-T5.1", "P000-C5.1"] and ev["nfev"] > 0
    assert ev["accuracy"]["value"] >= m["relu_flow_rel_drift"]  # the worst over the seeds
    assert ev["accuracy"]["value"] <= 1e-10 < rk["accuracy"]["value"] and rk["method"] == "rk4"
    assert methods["Fig. 1 Euler runs, linear and ReLU"]["steps"] == 2000
