"""Runs an experiment over its seeds and decides every claim it declares (the one place verdicts are computed).

A failing experiment becomes a record with its error (the other experiments' results are kept); claims of a failed
experiment are reported ``inconclusive`` with the error, never silently dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from ._claims import TIGHTEN, ClaimResult, decide, needs_tightening
from ._registry import Experiment, Measured, RunContext


@dataclass
class ExperimentRecord:
    """One experiment as run by ``falab reproduce``: its measurements, the decided claims, the wall time, and the
    error that stopped it (if any). ``tightened``: the claim IDs that needed the numerical rerun."""

    experiment: Experiment
    measured: Measured | None
    claims: list[ClaimResult]
    seconds: float
    error: str = ""
    tightened: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _check_measured(exp: Experiment, ctx: RunContext, m: Any) -> Measured:
    if not isinstance(m, Measured):
        raise TypeError(f"{exp.id}.run returned {type(m).__name__} (expected Measured)")
    if len(m.per_seed) != len(ctx.seeds):
        raise ValueError(f"{exp.id}.run measured {len(m.per_seed)} seeds (expected {len(ctx.seeds)})")
    return m


def _failed_claims(exp: Experiment, ctx: RunContext, error: str) -> list[ClaimResult]:
    return [ClaimResult(s.id, "inconclusive", s.statement, s.mode, exp.id, [], f"The experiment failed: {error}",
                        reading=s.reading, explain=s.explain, quick=ctx.quick, seeds=ctx.seeds)
            for s in exp.claims]


def run_experiment(exp: Experiment, ctx: RunContext) -> ExperimentRecord:
    """Measure ``exp`` on ``ctx.seeds``, rerun it once with tightened numerics if some claim misses only a numerical
    check, and decide every claim."""
    t0 = time.perf_counter()
    try:
        measured = _check_measured(exp, ctx, exp.run(ctx))
        specs = list(exp.claims)
        retry = [s.id for s in specs if needs_tightening(s, measured.per_seed)]
        tightened = None
        if retry:
            ctx.progress(f"tightened numerics for {', '.join(retry)}")
            tight_ctx = replace(ctx, tighten=ctx.tighten * TIGHTEN, write_figures=False)
            tightened = _check_measured(exp, tight_ctx, exp.run(tight_ctx)).per_seed
        claims = []
        for s in specs:
            verdict, numerical, checks, reasons = decide(s, measured.per_seed, tightened if s.id in retry else None)
            claims.append(ClaimResult(s.id, verdict, s.statement, s.mode, exp.id, checks, reasons, numerical,
                                      s.reading, s.explain + (f" {s.if_qualified}" if verdict == "qualified"
                                                              and s.if_qualified else ""),
                                      ctx.quick, ctx.seeds, dict(measured.sizes)))
    except Exception as exc:  # keep every other experiment's result: one failure must not lose the report
        err = f"{type(exc).__name__}: {exc}"
        return ExperimentRecord(exp, None, _failed_claims(exp, ctx, err), time.perf_counter() - t0, error=err)
    return ExperimentRecord(exp, measured, claims, time.perf_counter() - t0, tightened=tuple(retry))
