"""P004 experiments: registration, claim coverage, a quick run decided by the engine over three seeds, and the
qualified verdicts turning into others when their qualification is measured absent."""

import numpy as np
import pytest

from falab.experiments import EXPERIMENTS, RunContext, decide, run_experiment
from falab.experiments._catalog import CLAIMS
from falab.experiments.p004 import claims as C
from falab.experiments.p004 import configs, measure, runs

P004_IDS = ("EXP-P004-Fig2", "EXP-P004-Fig3a", "EXP-P004-Fig3b", "EXP-P004-Fig4", "EXP-P004-Fig5", "EXP-P004-FigF")
EXPECTED = {"P004-T1": "qualified", "P004-FAimpl": "qualified"}   # every other P004 claim: confirmed


def test_every_p004_claim_is_answered_exactly_once():
    exps = [e for e in EXPERIMENTS.values() if e.paper == "P004"]
    assert tuple(e.id for e in exps) == P004_IDS and all(e.claims for e in exps)
    answered = [c for e in exps for c in e.claim_ids]
    assert sorted(answered) == sorted(c for c in CLAIMS if c.startswith("P004-")) and len(set(answered)) == 12


@pytest.fixture(scope="module")
def quick_records(tmp_path_factory):
    out = tmp_path_factory.mktemp("p004")
    return {e: run_experiment(EXPERIMENTS[e], RunContext(quick=True, out_dir=out, seeds=(0, 1, 2))) for e in P004_IDS}


def test_quick_run_measures_every_quantity_and_decides_the_expected_table(quick_records):
    verdicts = {}
    for rec in quick_records.values():
        assert not rec.error and len(rec.measured.per_seed) == 3
        for spec in rec.experiment.claims:
            for chk in (*spec.holds, *spec.corrected, *spec.caveat):
                keys = (chk.x, chk.y) if hasattr(chk, "x") else (chk.quantity,)
                assert all(k in m for k in keys for m in rec.measured.per_seed)
        assert all(p.exists() for p in rec.measured.figures)
        verdicts.update({c.id: c.label for c in rec.claims})
    assert verdicts == {c: EXPECTED.get(c, "confirmed") for c in CLAIMS if c.startswith("P004-")}


def test_quick_run_numbers_that_could_fail(quick_records):
    m = {e: r.measured.per_seed for e, r in quick_records.items()}
    t = m["EXP-P004-Fig2"]
    assert sum(len(s["t3_fa_exceeds_optimum"]) for s in t) >= 400                 # engine-trained draws, Wilson
    assert max(s["t3_fa_vs_formula"] for s in t) < 1e-8 and max(s["t4_cos_vs_formula"] for s in t) < 1e-8
    slope = np.polyfit(np.log(t[0]["t4_eps_sqrt_k"]), np.log(t[0]["t4_median_cos"]), 1)[0]
    assert -1.1 < slope < -0.9
    assert max(s["f3_flow_drift"] for s in m["EXP-P004-Fig3b"]) < 1e-8
    assert all(s["ex1_rate_start"] > 0 > s["ex1_rate_end"] for s in m["EXP-P004-Fig3a"])
    assert max(s["cor5_trajectory"] for s in m["EXP-P004-FigF"]) < 1e-12
    diffs = [x for s in m["EXP-P004-Fig5"] for x in s["fa5_big_minus_equal"]]
    assert len(diffs) >= 20 and np.mean(diffs) < 0


def test_example1_sees_a_rise_shorter_than_the_record_spacing():
    cfg = configs.Ex1Config(points=3)                                         # records at t = 0, 2.5, 5
    res = runs.example1(cfg, (0,), 1.0)
    per = measure.example1(res)[0]
    assert res.loss[1, 0] < res.loss[0, 0]                                    # the grid misses the peak ...
    assert per["ex1_rate_start"] > 0                                          # ... the vector field does not


def test_t1_is_confirmed_when_the_loss_is_highly_non_monotone_on_most_draws():
    base = {"t1_bound_margin": 1.0, "t1_integral_vs_gain": 1e-6, "t1_gain_over_bound": 0.5, "t1_residual_ratio": 1e-6}
    assert decide(C.T1, [{**base, "t1_highly_nonmonotone": [False] * 20 + [True]}] * 3)[0] == "qualified"
    assert decide(C.T1, [{**base, "t1_highly_nonmonotone": [True] * 18 + [False] * 3}] * 3)[0] == "confirmed"
    assert decide(C.T1, [{**base, "t1_residual_ratio": 0.5, "t1_highly_nonmonotone": [False] * 21}] * 3)[0] \
        == "refuted"


def test_faimpl_is_confirmed_when_equal_steps_beat_random_w0_and_refuted_without_the_w_step_effect():
    rng = np.random.default_rng(0)
    neg, pos = list(-0.02 + 0.003 * rng.standard_normal(21)), list(0.02 + 0.003 * rng.standard_normal(21))
    qualified = {"fa5_big_minus_equal": neg, "fa5_equal_minus_random": pos, "fa5_big_minus_random": neg}
    assert decide(C.FAIMPL, [qualified])[0] == "qualified"
    assert decide(C.FAIMPL, [{**qualified, "fa5_equal_minus_random": neg}])[0] == "confirmed"
    assert decide(C.FAIMPL, [{**qualified, "fa5_big_minus_equal": pos}])[0] == "refuted"


def test_t3_and_t4_decide_on_the_engine_trained_draws():
    ok = {"t3_fa_exceeds_optimum": [True] * 140, "t3_fa_vs_formula": 1e-12, "t3_gd_vs_optimum": 1e-14,
          "t3_fa_stationarity": 1e-15, "t3_formula_r5": [True] * 5000, "t3_formula_r10": [True] * 5000}
    assert decide(C.T3, [ok] * 3)[0] == "confirmed"
    assert decide(C.T3, [{**ok, "t3_fa_exceeds_optimum": [True] * 100}])[0] == "inconclusive"  # too few draws
    assert decide(C.T3, [{**ok, "t3_fa_exceeds_optimum": [True] * 120 + [False] * 20}] * 3)[0] == "refuted"
    x = [3.0, 6.0, 12.0, 25.0, 50.0]
    t4 = {"t4_within_bound": [True] * 140, "t4_cos_vs_formula": 1e-12, "t4_stationarity": 1e-14,
          "t4_eps_sqrt_k": x, "t4_median_cos": [0.67 / v for v in x]}
    assert decide(C.T4, [t4] * 3)[0] == "confirmed"
    assert decide(C.T4, [{**t4, "t4_median_cos": [0.67 / v**0.5 for v in x]}] * 3)[0] == "refuted"  # slower rate


@pytest.mark.slow
def test_quick_verdict_table_is_the_same_for_five_base_seeds(tmp_path):
    tables = []
    for base in range(5):
        seeds = (base, base + 1, base + 2)
        recs = [run_experiment(EXPERIMENTS[e], RunContext(quick=True, out_dir=tmp_path, seeds=seeds,
                                                          write_figures=False)) for e in P004_IDS]
        tables.append({c.id: c.label for r in recs for c in r.claims})
    assert all(t == tables[0] for t in tables)
    assert tables[0] == {c: EXPECTED.get(c, "confirmed") for c in CLAIMS if c.startswith("P004-")}
