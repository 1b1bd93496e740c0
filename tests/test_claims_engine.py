"""The claims engine: verdicts follow from declared checks on measurements, tightened numerics decide solver misses,
intervals decide stochastic checks, and no experiment module spells a verdict."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from falab.experiments import (
    Check,
    ClaimSpec,
    Experiment,
    Measured,
    Proportion,
    RunContext,
    Slope,
    Statistic,
    decide,
    run_experiment,
)
from falab.instruments._stats import bootstrap_interval, fitted_slope, wilson_interval

DRIFT = Check("drift", "<=", 1e-9, "conserved-quantity drift of the exact flow", numerical=True)
SPEC = ClaimSpec("P004-F3", "FA* flow keeps Z^T Z constant.", (DRIFT,), "flow")


def test_all_checks_on_all_seeds_confirm():
    verdict, numerical, checks, _ = decide(SPEC, [{"drift": 1e-12}, {"drift": 5e-10}, {"drift": 0.0}])
    assert (verdict, numerical) == ("confirmed", False)
    assert checks[0].value == 5e-10 and checks[0].seeds_passing == 3


def test_one_seed_failing_is_not_confirmed_and_reports_the_fraction():
    spec = ClaimSpec("P000-E.Fig1", "ratio nearly constant", (Check("dev", "<=", 0.01, "ratio deviation"),), "euler")
    verdict, _, _, reasons = decide(spec, [{"dev": 0.005}, {"dev": 0.012}, {"dev": 0.001}])
    assert verdict == "refuted"
    assert "2/3 seeds" in reasons and "depends on the draw" in reasons


def test_solver_miss_that_vanishes_when_tightened_is_confirmed_numerically():
    loose = [{"drift": 2.3e-9}, {"drift": 1e-12}]
    tight = [{"drift": 2.3e-11}, {"drift": 1e-14}]
    verdict, numerical, _, reasons = decide(SPEC, loose, tight)
    assert (verdict, numerical) == ("confirmed", True)
    assert "tightening" in reasons


def test_miss_that_survives_tightening_refutes():
    verdict, numerical, _, _ = decide(SPEC, [{"drift": 1e-3}], [{"drift": 0.9e-3}])
    assert (verdict, numerical) == ("refuted", False)


def test_miss_that_shrinks_but_still_misses_is_inconclusive():
    verdict, _, _, _ = decide(SPEC, [{"drift": 1e-6}], [{"drift": 1e-8}])
    assert verdict == "inconclusive"


def test_non_numerical_miss_is_not_retried():
    spec = ClaimSpec("P004-F3", "s", (Check("drift", "<=", 1e-9, "a scientific quantity"),), "flow")
    verdict, numerical, _, _ = decide(spec, [{"drift": 2e-9}], [{"drift": 0.0}])
    assert (verdict, numerical) == ("refuted", False)


CORRECTED = ClaimSpec(
    "P003-T9", "linear convergence for eta < eta_max",
    (Check("printed_violation", "<=", 0.0, "violation of the printed (3/2) eta r^2 bound"),), "euler",
    corrected=(Check("corrected_violation", "<=", 1e-12, "violation of the corrected bound"),))


def test_qualified_needs_the_printed_claim_to_fail_and_the_corrected_one_to_hold():
    assert decide(CORRECTED, [{"printed_violation": 1.5, "corrected_violation": 0.0}])[0] == "qualified"
    # printed holds: confirmed, whatever the corrected check says
    assert decide(CORRECTED, [{"printed_violation": 0.0, "corrected_violation": 1.0}])[0] == "confirmed"
    # both fail: refuted
    assert decide(CORRECTED, [{"printed_violation": 1.5, "corrected_violation": 1e-3}])[0] == "refuted"


def test_caveat_qualifies_a_claim_that_holds():
    spec = ClaimSpec("P000-R.A1", "zero init keeps the identity", (Check("gap", "<=", 1e-8, "identity gap"),),
                     "flow", caveat=(Check("relu_motion", "<=", 0.0, "ReLU layers never move"),))
    assert decide(spec, [{"gap": 0.0, "relu_motion": 0.0}])[0] == "qualified"
    assert decide(spec, [{"gap": 0.0, "relu_motion": 0.3}])[0] == "confirmed"


def test_axis_check_names_where_the_claim_holds():
    spec = ClaimSpec("P002-T1", "direction", (Check("one_minus_cos", "<=", 0.02, "1 - cos", axis="alpha"),),
                     "flow")
    verdict, _, checks, reasons = decide(spec, [{"one_minus_cos": {"0.01": 1e-4, "0.1": 0.01, "1": 0.035}}])
    assert verdict == "refuted"
    assert checks[0].holds_at == ("0.01", "0.1") and checks[0].fails_at == ("1",)
    assert "fails at alpha = 1" in reasons


def test_proportion_decides_on_the_wilson_bound():
    spec = ClaimSpec("P004-T3", "w.p. >= 0.99", (Proportion("suboptimal", ">=", 0.9, "FA sub-optimal"),),
                     "monte-carlo")
    assert decide(spec, [{"suboptimal": [True] * 100}, {"suboptimal": [True] * 100}])[0] == "confirmed"
    assert decide(spec, [{"suboptimal": [True] * 9 + [False]}])[0] == "inconclusive"  # 0.9, interval straddles
    assert decide(spec, [{"suboptimal": [True] * 50 + [False] * 50}])[0] == "refuted"


def test_statistic_and_slope_decide_on_their_intervals():
    rng = np.random.default_rng(0)
    spec = ClaimSpec("P004-FAimpl", "paired difference", (Statistic("diff", "<=", 0.0, "FA - FA* loss gap"),),
                     "euler")
    assert decide(spec, [{"diff": list(-1 + 0.1 * rng.standard_normal(30))}])[0] == "confirmed"
    assert decide(spec, [{"diff": list(0.1 * rng.standard_normal(30))}])[0] == "inconclusive"
    x = np.logspace(-3, -1, 8)
    slope = ClaimSpec("P004-T4", "O(eps sqrt k)", (Slope("x", "y", ">=", 0.8, "log-log slope"),), "monte-carlo")
    assert decide(slope, [{"x": list(x), "y": list(3 * x * np.exp(0.01 * rng.standard_normal(8)))}])[0] == "confirmed"
    assert decide(slope, [{"x": list(x), "y": list(3 * x**0.5)}])[0] == "refuted"


def test_intervals_against_independent_routes():
    from scipy import stats

    iv = wilson_interval(7, 20)
    lo, hi = stats.binomtest(7, 20).proportion_ci(0.95, method="wilson")
    assert abs(iv.low - lo) < 1e-12 and abs(iv.high - hi) < 1e-12
    assert wilson_interval(0, 5).low == 0.0 and wilson_interval(5, 5).high == 1.0
    b = bootstrap_interval([1.0, 2.0, 3.0, 10.0], 0.5)
    assert b.estimate == 2.5 and b.low <= 2.5 <= b.high
    s = fitted_slope([1.0, 2.0, 3.0, 4.0], [2.0, 4.1, 5.9, 8.0], loglog=False)
    ref = stats.linregress([1, 2, 3, 4], [2.0, 4.1, 5.9, 8.0])
    assert abs(s.estimate - ref.slope) < 1e-12 and s.low < ref.slope < s.high


def test_engine_reruns_with_tightened_numerics_and_keeps_failures(tmp_path):
    calls = []

    def run(ctx: RunContext) -> Measured:
        calls.append(ctx.tighten)
        return Measured([{"drift": 2e-9 * ctx.tighten} for _ in ctx.seeds])

    exp = Experiment("EXP-TEST", "P004", "test", (SPEC,), run)
    rec = run_experiment(exp, RunContext(quick=True, out_dir=tmp_path, seeds=(0, 1, 2)))
    assert calls == [1.0, 1e-2] and rec.tightened == ("P004-F3",)
    assert rec.claims[0].verdict == "confirmed" and rec.claims[0].numerical
    assert rec.claims[0].to_json()["n_seeds"] == 3

    def broken(ctx: RunContext) -> Measured:
        raise RuntimeError("solver stalled")

    rec = run_experiment(Experiment("EXP-TEST", "P004", "test", (SPEC,), broken),
                         RunContext(quick=True, out_dir=tmp_path))
    assert rec.error.startswith("RuntimeError") and rec.claims[0].verdict == "inconclusive"


def test_claim_spec_rejects_unknown_ids_and_empty_checks():
    with pytest.raises(ValueError, match="Invalid claim id"):
        ClaimSpec("P999-X", "s", (DRIFT,), "flow")
    with pytest.raises(ValueError, match="Invalid holds"):
        ClaimSpec("P004-F3", "s", (), "flow")


EXPERIMENTS_DIR = Path(__file__).resolve().parents[1] / "src" / "falab" / "experiments"
ENGINE_FILES = {"_claims.py", "_engine.py", "_registry.py", "_catalog.py", "__init__.py"}
VERDICT_LITERAL = re.compile(r"""["'](confirmed|qualified|refuted|inconclusive)["']""")


# Modules still on the previous interface (they return their own verdicts); emptied as each paper moves to specs.
LEGACY: set[str] = set()


def _experiment_sources() -> list[Path]:
    return sorted(p for p in EXPERIMENTS_DIR.rglob("*.py")
                  if not (p.parent == EXPERIMENTS_DIR and p.name in ENGINE_FILES | LEGACY))


@pytest.mark.parametrize("path", _experiment_sources(), ids=lambda p: str(p.relative_to(EXPERIMENTS_DIR)))
def test_no_experiment_module_decides_or_spells_a_verdict(path):
    hits = [f"{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1)
            if VERDICT_LITERAL.search(line)]
    assert not hits, "verdicts are computed by the claims engine only:\n" + "\n".join(hits)
