"""P000 (Robertson & Koyejo): conservation law of FA, its Euler identity, DFA, Thm 5.2 — against the numpy oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from falab.dynamics import Euler, Problem, simulate_discrete, simulate_flow
from falab.experiments import EXPERIMENTS, RunContext
from falab.experiments.p000_conservation import StepLaws, _dfa_variant_feedback, _fa_terms, _rel_drift, _rk4_flow
from falab.functional import SquaredLoss
from falab.instruments import fa_quantity
from falab.models import MLP
from falab.rules import DirectFeedbackAlignment, FeedbackAlignment, Gaussian
from falab.theory import _p000 as theory

F64 = torch.float64


def _data(g, n=8, d=5, k=2):
    return torch.randn(n, d, generator=g, dtype=F64), torch.randn(n, k, generator=g, dtype=F64)


def test_theory_min_norm_and_projector() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 9)), rng.standard_normal((4, 1))
    w = theory.min_norm_solution(x, y)
    np.testing.assert_allclose(x @ w, y, atol=1e-12)
    np.testing.assert_allclose(w, x.T @ np.linalg.solve(x @ x.T, y), atol=1e-12)
    p = theory.perp_projector(x)
    np.testing.assert_allclose(x @ p, 0.0, atol=1e-12)
    np.testing.assert_allclose(p @ p, p, atol=1e-12)
    assert theory.guaranteed_rate(1.0, 2.0) == 0.0
    assert np.isinf(theory.rate_bound(1.0, 1.0, 1.0, 0.5))


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


@pytest.mark.parametrize("act, homogeneous", [("relu", True), ("leaky_relu", True), ("identity", True), ("tanh", False)])
def test_euler_identity_per_step(act: str, homogeneous: bool) -> None:
    g = torch.Generator().manual_seed(3)
    x, y = _data(g)
    model = MLP((5, 7, 6, 2), act, bias=True)
    p0 = model.init_params(g, ensemble=2, scheme="kaiming")
    p0 = {k: (0.3 * torch.randn(v.shape, generator=g, dtype=F64) if k.startswith("b") else v) for k, v in p0.items()}
    rule = FeedbackAlignment(Gaussian())
    st = rule.init(model, p0, generator=g)
    mon = StepLaws(model, rule.feedback_used(model, p0, st), 0.05)
    simulate_discrete(Problem(model, rule, SquaredLoss("mean"), x, y, st), p0, Euler(0.05), 50, on_step=mon)
    if homogeneous:
        assert mon.rel["law"] < 1e-12 and mon.rel["neuron"] < 1e-12
    else:
        assert mon.rel["law"] > 1e-6


def test_matrix_identity_linear() -> None:
    g = torch.Generator().manual_seed(4)
    x, y = _data(g)
    model = MLP((5, 6, 4, 2), "identity")
    p0 = model.init_params(g, scheme="kaiming")
    rule = FeedbackAlignment(Gaussian())
    st = rule.init(model, p0, generator=g)
    mon = StepLaws(model, rule.feedback_used(model, p0, st), 0.05, matrix=True)
    simulate_discrete(Problem(model, rule, SquaredLoss("mean"), x, y, st), p0, Euler(0.05), 50, on_step=mon)
    assert mon.rel["matrix"] < 1e-12


def test_rk4_converges_to_dop853_with_fourth_order() -> None:
    g = torch.Generator().manual_seed(5)
    x, y = _data(g)
    model = MLP((5, 6, 2), "tanh")
    p0 = model.init_params(g, scheme="kaiming")
    rule = FeedbackAlignment(Gaussian())
    prob = Problem(model, rule, SquaredLoss("mean"), x, y, rule.init(model, p0, generator=g))
    ref = simulate_flow(prob, p0, [0.0, 1.0]).final["W1"]
    errs = [float((_rk4_flow(prob, p0, dt, int(round(1 / dt)), 10**6, {}, keep_params=True).final["W1"] - ref).abs().max())
            for dt in (0.1, 0.05)]
    assert 10 < errs[0] / errs[1] < 24  # 2^4 = 16


def test_relu_flow_conserves_q_and_dfa_only_last_pair() -> None:
    g = torch.Generator().manual_seed(6)
    x, y = _data(g)
    model = MLP((5, 8, 8, 2), "relu")
    p0 = model.init_params(g, ensemble=2, scheme="kaiming")
    for rule, pairs_conserved in ((FeedbackAlignment(Gaussian()), (True, True)),
                                  (DirectFeedbackAlignment(Gaussian()), (False, True))):
        st = rule.init(model, p0, generator=g)
        fb = rule.feedback_used(model, p0, st) if isinstance(rule, FeedbackAlignment) else _dfa_variant_feedback(st, 3)
        tr = _rk4_flow(Problem(model, rule, SquaredLoss("mean"), x, y, st), p0, 5e-4, 1000, 100,
                       {"q": lambda s, fb=fb: torch.stack(_fa_terms(model, s.params, fb))})
        v = tr.metric("q")
        for i, conserved in enumerate(pairs_conserved):
            drift = _rel_drift(v[:, 0, :, i], v[:, 1, :, i])
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


def test_p000_experiments_quick(tmp_path) -> None:
    ctx = RunContext(quick=True, out_dir=tmp_path)
    verdicts = {}
    for eid in ("EXP-P000-1", "EXP-P000-2", "EXP-P000-3"):
        out = EXPERIMENTS[eid].run(ctx)
        verdicts.update({c.id: c.verdict for c in out.claims})
        assert all(p.exists() for p in out.figures)
    assert len(verdicts) == 11
    assert verdicts["P000-T5.1"] == "confirmed" and verdicts["P000-E.minnorm"] == "refuted"
    assert verdicts["P000-L.A1"] == "qualified" and verdicts["P000-T5.2"] == "qualified"
