"""P002 claims through the engine: every spec decides on the quick-mode measurements, qualified verdicts change when
their qualification does not hold, and (slow) the verdict table does not depend on the seed."""

import copy

import pytest

from falab.experiments import EXPERIMENTS, ClaimSpec, RunContext, decide, run_experiment
from falab.experiments.p002 import claims

P002 = ("EXP-P002-1", "EXP-P002-2", "EXP-P002-3")


def _spec_quantities(spec: ClaimSpec) -> set[str]:
    out = set()
    for c in spec.holds + spec.corrected + spec.caveat:
        out |= {c.x, c.y} if hasattr(c, "x") else {c.quantity}
    return out


@pytest.fixture(scope="module")
def quick_records(tmp_path_factory):
    out = tmp_path_factory.mktemp("p002")
    return {eid: run_experiment(EXPERIMENTS[eid], RunContext(quick=True, out_dir=out, seeds=(0, 1),
                                                             write_figures=False)) for eid in P002}


def test_quick_run_measures_every_quantity_and_every_spec_decides(quick_records):
    verdicts = {}
    for eid, rec in quick_records.items():
        assert not rec.error, rec.error
        specs = EXPERIMENTS[eid].claims
        for m in rec.measured.per_seed:
            assert set().union(*(_spec_quantities(s) for s in specs)) <= set(m)
        verdicts |= {c.id: c.verdict for c in rec.claims}
        assert {c.id for c in rec.claims} == {s.id for s in specs}
    assert verdicts == {
        "P002-T6": "confirmed", "P002-E.reg": "confirmed", "P002-BAL": "confirmed", "P002-T1": "qualified",
        "P002-C1": "confirmed", "P002-C2": "qualified", "P002-C3": "qualified", "P002-T2": "confirmed",
        "P002-E.cls": "confirmed", "P002-T3": "qualified", "P002-C4": "confirmed", "P002-L4": "confirmed",
        "P002-T5": "confirmed", "P002-R4": "confirmed", "P002-C5": "confirmed", "P002-C6": "confirmed",
        "P002-C7": "confirmed", "P002-T7": "confirmed"}


def test_records_state_how_every_simulated_claim_was_integrated(quick_records):
    """Every claim that is not closed-form names the integration records its numbers come from; the flows to
    convergence of Corollaries 2 and 3 use the Jacobian route (LSODA + torch.func Jacobian), the others DOP853."""
    for rec in quick_records.values():
        assert rec.measured is not None
        named = {c for e in rec.measured.numbers["integration"] for c in e["claims"]}
        assert {s.id for s in rec.experiment.claims if s.mode != "closed-form"} <= named
    parts = {e["part"].split(" flows")[0]: e for e in quick_records["EXP-P002-3"].measured.numbers["integration"]}
    for name in ("Corollary 2", "Corollary 3"):
        assert parts[name]["method"] == "LSODA" and parts[name]["jacobian"].startswith("torch.func")
    for name in ("Theorem 5", "Corollary 5", "Theorem 7"):
        assert parts[name]["method"] == "DOP853" and "jacobian" not in parts[name]
        assert 0 < parts[name]["accuracy"]["value"] < 1e-14 and parts[name]["nfev"] > 0  # stopped below loss 1e-14


def test_quick_numbers_are_where_the_verdicts_say(quick_records):
    m = quick_records["EXP-P002-2"].measured.per_seed[0]
    assert m["c2_cos"]["1"] < 0.98 <= m["c2_cos"]["0.01"]  # diagonal: not converged at alpha = 1 by t = 1e12
    assert m["t1_ratio"]["1"] > 0.05 and m["t1_ratio_small"] < 1e-3
    assert m["t3_printed_ratio"] > 1.01 and m["t3_bound_ratio"] <= 1 + 1e-9  # the fixed L(0) < 1 member
    e3 = quick_records["EXP-P002-3"].measured.per_seed[0]
    assert e3["t5_flow_err"] <= 1e-6 and e3["t5_bound_ratio"] <= 1 + 1e-9 and e3["t5_gd_err_rel"] <= 10


def _qualified_case(quick_records, eid: str, spec: ClaimSpec):
    per_seed = copy.deepcopy(quick_records[eid].measured.per_seed)
    verdict, *_ = decide(spec, per_seed)
    assert verdict == "qualified"
    return per_seed


@pytest.mark.parametrize("spec, key", [(claims.C2, "c2_trend"), (claims.C3, "c3_trend"), (claims.T1, "t1_trend")])
def test_direction_claims_are_refuted_when_the_direction_stops_converging(quick_records, spec, key):
    per_seed = _qualified_case(quick_records, "EXP-P002-2", spec)
    per_seed[0][key]["1"] = 1.2  # the farthest direction moved away between t = 1e6 and 1e12
    assert decide(spec, per_seed)[0] == "refuted"


@pytest.mark.parametrize("spec, prefix", [(claims.C2, "c2"), (claims.C3, "c3"), (claims.T1, "t1")])
def test_direction_claims_are_confirmed_when_every_alpha_has_converged(quick_records, spec, prefix):
    per_seed = _qualified_case(quick_records, "EXP-P002-2", spec)
    for m in per_seed:
        m[f"{prefix}_cos"] = {a: 0.999 for a in m[f"{prefix}_cos"]}
        if prefix == "t1":
            m["t1_ratio"] = {a: 1e-3 for a in m["t1_ratio"]}
    assert decide(spec, per_seed)[0] == "confirmed"


def test_theorem3_printed_bound_holding_confirms_and_corrected_failing_refutes(quick_records):
    per_seed = _qualified_case(quick_records, "EXP-P002-2", claims.T3)
    ok = copy.deepcopy(per_seed)
    for m in ok:
        m["t3_printed_ratio"] = 1.0
    assert decide(claims.T3, ok)[0] == "confirmed"
    for m in per_seed:
        m["t3_bound_ratio"] = 1.5
    assert decide(claims.T3, per_seed, tightened=per_seed)[0] == "refuted"


def test_theorem7_slope_below_the_law_is_refuted():
    alphas = [0.1, 0.03, 0.01]
    per_seed = [{"t7_alpha": alphas, "t7_err_rel": [a**0.5 for a in alphas], "t7_bound_ratio": 1.0,
                 "t7_identity_err": 1e-9} for _ in range(3)]
    assert decide(claims.T7, per_seed)[0] == "refuted"
    for m in per_seed:
        m["t7_err_rel"] = [a**1.0 for a in alphas]
    assert decide(claims.T7, per_seed)[0] == "confirmed"


@pytest.mark.slow
def test_verdict_table_is_the_same_for_five_base_seeds(tmp_path):
    tables = []
    for base in range(5):
        table = {}
        for eid in P002:
            rec = run_experiment(EXPERIMENTS[eid], RunContext(quick=True, out_dir=tmp_path,
                                                              seeds=(base, base + 1, base + 2), write_figures=False))
            table |= {c.id: c.verdict for c in rec.claims}
        tables.append(table)
    assert all(t == tables[0] for t in tables)
