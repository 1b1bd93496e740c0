"""P004 experiments: registration, claim coverage, and quick-mode runs with their deciding numbers."""


from falab.experiments import EXPERIMENTS, RunContext
from falab.experiments._catalog import CLAIMS

P004_IDS = ("EXP-P004-Fig2", "EXP-P004-Fig3a", "EXP-P004-Fig3b", "EXP-P004-Fig4", "EXP-P004-Fig5", "EXP-P004-FigF")


def _run(exp_id, tmp_path):
    return EXPERIMENTS[exp_id].run(RunContext(quick=True, out_dir=tmp_path, seeds=(0,)))


def test_every_p004_claim_is_answered_exactly_once():
    exps = [e for e in EXPERIMENTS.values() if e.paper == "P004"]
    assert tuple(e.id for e in exps) == P004_IDS
    answered = [c for e in exps for c in e.claims]
    expected = sorted(c for c in CLAIMS if c.startswith("P004-"))
    assert sorted(answered) == expected and len(answered) == len(set(answered)) == 12


def test_example1_experiment(tmp_path):
    out = _run("EXP-P004-Fig3a", tmp_path)
    (claim,) = out.claims
    assert claim.id == "P004-Ex1" and claim.verdict == "confirmed"
    assert claim.measured["max_abs_err_u"] < 1e-8
    assert claim.measured["FA_dA_dt"] < 0
    assert all(p.exists() for p in out.figures)


def test_appendix_experiment_baldi_and_corollary5(tmp_path):
    out = _run("EXP-P004-FigF", tmp_path)
    res = {c.id: c for c in out.claims}
    assert res["P004-Cor5"].measured["max_rel_traj_diff"] < 1e-12
    assert res["P004-Baldi"].measured["flow_max_rel_drift_C"] < 1e-8
    assert res["P004-Baldi"].measured["euler_identity_max_rel_violation"] < 1e-9
    assert {c.verdict for c in out.claims} == {"confirmed"}


def test_fa_vs_fa_star_experiment_orders_the_step_size_variants(tmp_path):
    out = _run("EXP-P004-Fig5", tmp_path)
    (claim,) = out.claims
    m = claim.measured
    assert m["frac_draws_10x_closer_than_equal"] == 1.0              # the larger W step tracks FA* better
    assert m["median_curve_dist_10x_W_step"] < m["median_curve_dist_equal_steps"]
    assert m["median_rel_extra_term_10x"] < m["median_rel_extra_term_equal"]
    assert claim.verdict in ("confirmed", "qualified")


def test_all_p004_experiments_quick(tmp_path):
    verdicts = {}
    for exp_id in P004_IDS:
        out = _run(exp_id, tmp_path)
        assert all(p.exists() for p in out.figures)
        verdicts.update({c.id: c.verdict for c in out.claims})
    assert len(verdicts) == 12
    assert all(v == "confirmed" for k, v in verdicts.items() if k != "P004-FAimpl")
