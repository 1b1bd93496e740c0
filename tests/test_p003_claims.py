"""P003 claims as data: each qualification needs its measured reason (fed measurements where it does not hold give a
different verdict), and every P003 experiment measures what its specs need in quick mode."""

from __future__ import annotations

import pytest

from falab.experiments import EXPERIMENTS, RunContext, decide, experiments_for, run_experiment
from falab.experiments.p003 import claims as K

T9_OK = {"modified_invariant": 1e-15, "modified_decreasing_steps": 0, "corrected_bound_violation": 0.0}


def _seeds(m, n=3):
    return [dict(m) for _ in range(n)]


def test_t9_qualified_only_when_the_three_halves_reading_is_violated():
    assert decide(K.T9, _seeds(T9_OK | {"printed_bound_violation": 2.8}))[0] == "qualified"
    assert decide(K.T9, _seeds(T9_OK | {"printed_bound_violation": 0.0}))[0] == "confirmed"
    bad = T9_OK | {"printed_bound_violation": 2.8, "corrected_bound_violation": 1e-3}
    assert decide(K.T9, _seeds(bad))[0] == "refuted"


T10_OK = {"modified_invariant": 1e-15, "modified_limit_error": 1e-15, "modified_rate_rel_error": 1e-4}


def _t10(cs):
    etas = [0.01, 0.02, 0.04, 0.06, 0.08, 0.1]
    return [T10_OK | {"eta": etas[i::3], "C_needed": cs[i::3]} for i in range(3)]


def test_t10_qualified_by_a_growing_constant_and_confirmed_when_it_does_not_grow():
    growing = [1.0, 2.1, 3.9, 6.2, 8.1, 9.8]
    assert decide(K.T10, _t10(growing))[0] == "qualified"
    falling = [9.8, 8.1, 6.2, 3.9, 2.1, 1.0]
    assert decide(K.T10, _t10(falling))[0] == "confirmed"
    flat = [3.0, 3.1, 2.9, 3.05, 2.95, 3.0]  # a constant C: the slope interval straddles 0 either way
    assert decide(K.T10, _t10(flat))[0] == "inconclusive"


BW_OK = {"step_time_rel_error": 1e-6, "step_order_violations": 0, "printed_cubic_rel_error": 1e-6,
         "anti_order_violations": 0, "k0_order_violations": 0}


@pytest.mark.parametrize("spec", [K.T67, K.T6I], ids=["T6/T7", "T6i"])
def test_backward_learning_qualified_only_when_the_component_already_fits_at_t0(spec):
    spike = BW_OK | {"error_at_t0_rel": 1e-8, "peak_over_t0_error_min": 4e8}
    assert decide(spec, _seeds(spike))[0] == "qualified"
    learning = BW_OK | {"error_at_t0_rel": 0.9, "peak_over_t0_error_min": 1.0}  # a genuine learning step
    assert decide(spec, _seeds(learning))[0] == "confirmed"
    no_spike = BW_OK | {"error_at_t0_rel": 1e-8, "peak_over_t0_error_min": 0.5}
    assert decide(spec, _seeds(no_spike))[0] == "refuted"


def test_t67_refuted_when_the_step_times_are_wrong():
    wrong = BW_OK | {"step_time_rel_error": 0.1, "error_at_t0_rel": 1e-8, "peak_over_t0_error_min": 4e8}
    assert decide(K.T67, _seeds(wrong))[0] == "refuted"


STAT_OK = {"bottleneck_velocity": 1e-10, "wide_velocity": 1e-10, "wide_limit_error": 1e-20}


def test_ostat_qualified_only_by_a_bottleneck_above_the_global_minimum():
    assert decide(K.OSTAT, _seeds(STAT_OK | {"bottleneck_error_over_global_min": 2.6}))[0] == "qualified"
    assert decide(K.OSTAT, _seeds(STAT_OK | {"bottleneck_error_over_global_min": 1.0}))[0] == "confirmed"
    both = STAT_OK | {"bottleneck_error_over_global_min": 2.6, "wide_limit_error": 0.3}
    assert decide(K.OSTAT, _seeds(both))[0] == "refuted"


AE_SCALED = {"fa_faster": [True] * 10, "fa3_plateau_fraction": [0.7, 0.72, 0.68, 0.75]}
AE_STATED_FAILS = {"stated_fa_faster": [False] * 10, "stated_gd3_final_trace_norm": 1.0}


def test_oae_qualified_only_when_the_stated_setting_fails():
    assert decide(K.OAE, _seeds(AE_SCALED | AE_STATED_FAILS))[0] == "qualified"
    stated_ok = {"stated_fa_faster": [True] * 10, "stated_gd3_final_trace_norm": 1e-12}
    assert decide(K.OAE, _seeds(AE_SCALED | stated_ok))[0] == "confirmed"
    no_steps = AE_SCALED | AE_STATED_FAILS | {"fa3_plateau_fraction": [0.1, 0.12, 0.09, 0.11]}
    assert decide(K.OAE, _seeds(no_steps))[0] == "refuted"
    few = [AE_SCALED | AE_STATED_FAILS | {"fa_faster": [False, True]}]  # 1/2: the Wilson interval straddles 0.5
    assert decide(K.OAE, few)[0] == "inconclusive"


EXPECTED = {"P003-INV": "confirmed", "P003-T3": "confirmed", "P003-O.zero": "confirmed",
            "P003-O.nonmono": "confirmed", "P003-T2": "confirmed", "P003-VT": "confirmed", "P003-T8": "confirmed",
            "P003-T9": "qualified", "P003-T5": "confirmed", "P003-T10": "qualified", "P003-T6/T7": "qualified",
            "P003-T6i": "qualified", "P003-P1": "confirmed", "P003-O.stat": "qualified", "P003-O.AE": "qualified"}


def test_every_p003_experiment_measures_its_specs_in_quick_mode(tmp_path):
    verdicts = {}
    for exp in experiments_for(["P003"]):
        rec = run_experiment(exp, RunContext(quick=True, out_dir=tmp_path, seeds=(0, 1, 2),
                                             write_figures=exp.id == "EXP-P003-Fig2"))
        assert not rec.error, rec.error
        assert len(rec.measured.per_seed) == 3
        for spec in exp.claims:
            for check in (*spec.holds, *spec.corrected, *spec.caveat):
                keys = (check.x, check.y) if hasattr(check, "x") else (check.quantity,)
                assert all(k in m for k in keys for m in rec.measured.per_seed), (spec.id, keys)
        verdicts |= {c.id: c.verdict for c in rec.claims}
        assert all(f.exists() for f in rec.measured.figures)
    assert verdicts == EXPECTED
    assert set(EXPECTED) == {c for e in EXPERIMENTS.values() if e.paper == "P003" for c in e.claim_ids}


@pytest.mark.slow
def test_p003_verdicts_are_the_same_for_five_base_seeds(tmp_path):
    for base in range(5):
        seeds = (base, base + 1, base + 2)
        got = {}
        for exp in experiments_for(["P003"]):
            rec = run_experiment(exp, RunContext(quick=True, out_dir=tmp_path, seeds=seeds, write_figures=False))
            got |= {c.id: c.verdict for c in rec.claims}
        assert got == EXPECTED, base
