r"""Claims as data and the one engine that decides their verdicts.

An experiment measures; it never decides. Each claim declares, as data (:class:`ClaimSpec`):

* ``statement``: the claim as printed; ``reading``: the reconstructed reading when the print is garbled;
* ``holds``: the checks that must all pass for the printed claim to be **confirmed** (quantity, comparison, threshold,
  and optionally the parameter axis over which it must hold);
* ``corrected``: checks of a corrected condition; when ``holds`` fails (the printed claim is measured false) and every
  corrected check passes, the claim is **qualified**;
* ``caveat``: checks that, when ``holds`` passes, establish a measured restriction (e.g. the statement is vacuous in
  the paper's own setting): all passing makes the claim **qualified** too.

Verdicts: ``confirmed`` | ``qualified`` | ``refuted`` | ``inconclusive`` (numerics or sample size cannot decide; never
counted as confirmed). A ``holds`` check marked ``numerical`` measures the accuracy of an exact flow; when it alone
misses, the experiment is rerun with tightened numerics (``RunContext.tighten = 1e-2``: rtol/atol x 1e-2, fixed steps
x 1e-1): a miss that then passes gives ``confirmed`` with ``numerical = True`` ("confirmed (numerical)"); a miss that
shrinks but still misses gives ``inconclusive``; a miss that does not shrink stands.

Deterministic checks are evaluated on every seed and must hold on all of them; when they hold on some seeds only,
the verdict cannot be the printed claim's and the fraction is reported with its Wilson interval. Stochastic checks
(:class:`Proportion`, :class:`Statistic`, :class:`Slope`) pool the draws of every seed and decide on the bound of
their interval; an interval that straddles the threshold is undecided (``inconclusive``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..instruments import Interval, bootstrap_interval, fitted_slope, wilson_interval
from ._catalog import CLAIMS, paper_of

Verdict = Literal["confirmed", "qualified", "refuted", "inconclusive"]
VERDICTS: tuple[str, ...] = ("confirmed", "qualified", "refuted", "inconclusive")
Mode = Literal["flow", "euler", "monte-carlo", "closed-form"]
MODES: tuple[str, ...] = ("flow", "euler", "monte-carlo", "closed-form")
Op = Literal["<=", ">=", "<", ">"]
Outcome = Literal["pass", "fail", "undecided"]

TIGHTEN = 1e-2  # rtol/atol factor of the numerical rerun (fixed steps shrink by its square root)
SHRINK = 3.0  # a numerical miss "shrinks accordingly" when the tightened miss is at least this many times smaller


def _compare(value: float, op: Op, threshold: float) -> bool:
    if not math.isfinite(value):
        return False
    return {"<=": value <= threshold, ">=": value >= threshold, "<": value < threshold, ">": value > threshold}[op]


def _worst(values: Sequence[float], op: Op) -> float:
    """The value closest to failing: the largest for ``<=``/``<``, the smallest for ``>=``/``>`` (NaN if any)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0 or np.isnan(arr).any():
        return float("nan")
    return float(arr.max() if op in ("<=", "<") else arr.min())


@dataclass(frozen=True)
class CheckResult:
    """What one check measured: its outcome, the deciding (worst) value, per-seed values, an interval if stochastic,
    and, for checks over a parameter axis, the axis values where it holds and where it fails."""

    check: AnyCheck
    outcome: Outcome
    value: float
    per_seed: tuple[Any, ...] = ()
    interval: Interval | None = None
    holds_at: tuple[str, ...] = ()
    fails_at: tuple[str, ...] = ()
    seeds_passing: int = 0
    seeds: int = 0

    def to_json(self) -> dict[str, Any]:
        c = self.check
        d: dict[str, Any] = {"quantity": c.quantity, "what": c.what, "condition": c.condition(), "op": c.op,
                             "threshold": c.threshold, "measured": self.value,
                             "outcome": self.outcome, "numerical": getattr(c, "numerical", False),
                             "per_seed": list(self.per_seed)}
        if self.interval is not None:
            d["interval"] = self.interval.as_dict()
        if getattr(c, "axis", ""):
            d["axis"] = c.axis  # type: ignore[union-attr]
        if self.holds_at or self.fails_at:
            d["holds_at"], d["fails_at"] = list(self.holds_at), list(self.fails_at)
        if self.seeds:
            d["seeds_passing"] = f"{self.seeds_passing}/{self.seeds}"
        return d


@dataclass(frozen=True)
class Check:
    """``measurements[quantity] <op> threshold`` on every seed. A measured value may be a number or a mapping
    ``axis value -> number`` (then it must hold at every axis value; the report names where it holds).
    ``numerical``: the quantity is the error of an exact flow/solver, eligible for a tightened rerun."""

    quantity: str
    op: Op
    threshold: float
    what: str
    numerical: bool = False
    axis: str = ""

    def condition(self) -> str:
        return f"{self.quantity} {self.op} {self.threshold:g}" + (f" at every {self.axis}" if self.axis else "")

    def evaluate(self, per_seed: Sequence[Mapping[str, Any]]) -> CheckResult:
        values = [_lookup(m, self.quantity) for m in per_seed]
        worst_per_seed: list[float] = []
        holds: set[str] = set()
        fails: set[str] = set()
        for v in values:
            points = v.items() if isinstance(v, Mapping) else [("", v)]
            vals = []
            for key, x in points:
                x = float(x)
                vals.append(x)
                if key:
                    (holds if _compare(x, self.op, self.threshold) else fails).add(str(key))
            worst_per_seed.append(_worst(vals, self.op))
        passing = sum(_compare(w, self.op, self.threshold) for w in worst_per_seed)
        worst = _worst(worst_per_seed, self.op)
        outcome: Outcome = "pass" if passing == len(values) else "fail"
        return CheckResult(self, outcome, worst, tuple(_plain(v) for v in values), None,
                           tuple(sorted(holds - fails)), tuple(sorted(fails)), passing, len(values))


@dataclass(frozen=True)
class Proportion:
    """The proportion of draws satisfying a condition: ``measurements[quantity]`` is a sequence of booleans per seed
    (pooled over seeds); the check passes when the Wilson interval's bound lies on the right side of ``threshold``,
    fails when the other bound does, and is undecided when the interval straddles it."""

    quantity: str
    op: Literal[">=", "<="]
    threshold: float
    what: str
    level: float = 0.95

    def condition(self) -> str:
        return f"P({self.quantity}) {self.op} {self.threshold:g} ({self.level:.0%} Wilson)"

    def evaluate(self, per_seed: Sequence[Mapping[str, Any]]) -> CheckResult:
        draws = [bool(b) for m in per_seed for b in _lookup(m, self.quantity)]
        iv = wilson_interval(sum(draws), len(draws), self.level)
        return CheckResult(self, _decide_interval(iv, self.op, self.threshold), iv.estimate,
                           tuple(f"{sum(map(bool, _lookup(m, self.quantity)))}/{len(_lookup(m, self.quantity))}"
                                 for m in per_seed), iv)


@dataclass(frozen=True)
class Statistic:
    """The mean (or a quantile ``statistic`` in [0, 1]) of the pooled draws ``measurements[quantity]`` compared with
    ``threshold`` on the bound of its bootstrap interval (pass / fail / undecided as for :class:`Proportion`)."""

    quantity: str
    op: Op
    threshold: float
    what: str
    statistic: str | float = "mean"
    level: float = 0.95

    def condition(self) -> str:
        s = "mean" if self.statistic == "mean" else f"q{float(self.statistic):g}"
        return f"{s}({self.quantity}) {self.op} {self.threshold:g} ({self.level:.0%} bootstrap)"

    def evaluate(self, per_seed: Sequence[Mapping[str, Any]]) -> CheckResult:
        draws = [float(x) for m in per_seed for x in _lookup(m, self.quantity)]
        iv = bootstrap_interval(draws, self.statistic, self.level)
        return CheckResult(self, _decide_interval(iv, self.op, self.threshold), iv.estimate,
                           tuple(len(_lookup(m, self.quantity)) for m in per_seed), iv)


@dataclass(frozen=True)
class Slope:
    """A scaling law: the fitted slope of ``y`` against ``x`` (log-log by default) over the pooled points of every
    seed (``measurements[x]``, ``measurements[y]`` sequences), decided on its t-interval's bound."""

    x: str
    y: str
    op: Op
    threshold: float
    what: str
    loglog: bool = True
    level: float = 0.95

    @property
    def quantity(self) -> str:
        return f"slope({self.y} vs {self.x})"

    def condition(self) -> str:
        return f"{self.quantity} {self.op} {self.threshold:g} ({self.level:.0%} t-interval)"

    def evaluate(self, per_seed: Sequence[Mapping[str, Any]]) -> CheckResult:
        xs = [float(v) for m in per_seed for v in _lookup(m, self.x)]
        ys = [float(v) for m in per_seed for v in _lookup(m, self.y)]
        iv = fitted_slope(xs, ys, loglog=self.loglog, level=self.level)
        return CheckResult(self, _decide_interval(iv, self.op, self.threshold), iv.estimate, (len(xs),), iv)


AnyCheck = Check | Proportion | Statistic | Slope


def _decide_interval(iv: Interval, op: Op, threshold: float) -> Outcome:
    if op in (">=", ">"):
        return "pass" if _compare(iv.low, op, threshold) else ("fail" if not _compare(iv.high, op, threshold)
                                                               else "undecided")
    return "pass" if _compare(iv.high, op, threshold) else ("fail" if not _compare(iv.low, op, threshold)
                                                            else "undecided")


def _lookup(m: Mapping[str, Any], key: str) -> Any:
    if key not in m:
        raise KeyError(f"measurement {key!r} missing (measured: {', '.join(sorted(m)) or 'nothing'})")
    return m[key]


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): float(x) for k, x in v.items()}
    return float(v) if isinstance(v, (int, float, np.floating, np.integer)) else v


@dataclass(frozen=True)
class ClaimSpec:
    """A catalog claim and its decision, as data (see the module docstring for the verdict rules).

    ``explain``: one sentence of what is measured; ``if_qualified``: what the qualification means when ``corrected``
    or ``caveat`` decides it; both are reported next to the verdict."""

    id: str
    statement: str
    holds: tuple[AnyCheck, ...]
    mode: Mode
    reading: str = ""
    corrected: tuple[AnyCheck, ...] = ()
    caveat: tuple[AnyCheck, ...] = ()
    explain: str = ""
    if_qualified: str = ""

    def __post_init__(self) -> None:
        if self.id not in CLAIMS:
            raise ValueError(f"Invalid claim id: {self.id!r} (expected one of the catalog IDs, see `falab list`)")
        if self.mode not in MODES:
            raise ValueError(f"Invalid mode: {self.mode!r} (expected one of {', '.join(MODES)})")
        if not self.holds:
            raise ValueError(f"Invalid holds: () for {self.id} (expected at least one check)")
        if self.corrected and self.caveat:
            raise ValueError(f"Invalid claim {self.id}: corrected and caveat both given (expected one)")


@dataclass
class ClaimResult:
    """One row of ``claims.json``: the verdict the engine computed and every check behind it."""

    id: str
    verdict: Verdict
    statement: str
    mode: Mode
    experiment: str
    checks: list[CheckResult]
    reasons: str
    numerical: bool = False
    reading: str = ""
    explain: str = ""
    quick: bool = False
    seeds: tuple[int, ...] = ()
    sizes: dict[str, Any] = field(default_factory=dict)
    paper: str = ""

    def __post_init__(self) -> None:
        if not self.paper:
            self.paper = paper_of(self.id)

    @property
    def label(self) -> str:
        return self.verdict + (" (numerical)" if self.numerical else "")

    @property
    def intervals(self) -> list[dict[str, Any]]:
        return [{"quantity": r.check.quantity, **r.interval.as_dict()} for r in self.checks if r.interval is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "paper": self.paper, "verdict": self.verdict, "numerical": self.numerical,
            "statement": self.statement, "reading": self.reading, "explain": self.explain, "reasons": self.reasons,
            "mode": self.mode, "experiment": self.experiment, "quick": self.quick, "seeds": list(self.seeds),
            "n_seeds": len(self.seeds), "sizes": self.sizes, "intervals": self.intervals,
            "measured": {r.check.quantity: r.value for r in self.checks},
            "tolerance": {r.check.quantity: r.check.condition() for r in self.checks},
            "checks": [r.to_json() for r in self.checks],
        }


def _all_pass(results: Sequence[CheckResult]) -> Outcome:
    if all(r.outcome == "pass" for r in results):
        return "pass"
    if any(r.outcome == "fail" for r in results):
        return "fail"
    return "undecided"


def _describe(results: Sequence[CheckResult], outcome: str) -> str:
    parts = []
    for r in results:
        if r.outcome != outcome:
            continue
        s = f"{r.check.quantity} = {r.value:.3g} (needs {r.check.op} {r.check.threshold:g})"
        if r.interval is not None:
            s += f", {r.interval.level:.0%} interval [{r.interval.low:.3g}, {r.interval.high:.3g}], n = {r.interval.n}"
        if r.seeds and r.seeds_passing not in (0, r.seeds):
            iv = wilson_interval(r.seeds_passing, r.seeds)
            s += (f"; holds on {r.seeds_passing}/{r.seeds} seeds (Wilson 95% [{iv.low:.2f}, {iv.high:.2f}]): "
                  "depends on the draw")
        if r.fails_at:
            s += f"; fails at {getattr(r.check, 'axis', '')} = {', '.join(r.fails_at)}"
            if r.holds_at:
                s += f", holds at {', '.join(r.holds_at)}"
        parts.append(s)
    return "; ".join(parts)


def decide(spec: ClaimSpec, per_seed: Sequence[Mapping[str, Any]],
           tightened: Sequence[Mapping[str, Any]] | None = None) -> tuple[Verdict, bool, list[CheckResult], str]:
    """The verdict of ``spec`` on measurements (one mapping per seed), with ``tightened`` the same measurements from
    the rerun with tightened numerics (``None`` when there was none). Returns ``(verdict, numerical, checks,
    reasons)``; :func:`needs_tightening` says when to provide ``tightened``."""
    holds = [c.evaluate(per_seed) for c in spec.holds]
    numerical = False
    failing = [r for r in holds if r.outcome == "fail"]
    if failing and tightened is not None and all(getattr(r.check, "numerical", False) for r in failing):
        retried = {id(r.check): r.check.evaluate(tightened) for r in failing}
        new = []
        for r in holds:
            t = retried.get(id(r.check))
            if t is None:
                new.append(r)
                continue
            if t.outcome == "pass":
                numerical = True
                new.append(t)
            elif _shrank(r, t):
                new.append(CheckResult(r.check, "undecided", t.value, t.per_seed, None, t.holds_at, t.fails_at,
                                       t.seeds_passing, t.seeds))
            else:
                new.append(t)
        holds = new
    extra: list[CheckResult] = []
    status = _all_pass(holds)
    if status == "pass":
        if spec.caveat:
            extra = [c.evaluate(per_seed) for c in spec.caveat]
            if _all_pass(extra) == "pass":
                return "qualified", numerical, holds + extra, (
                    "The printed claim holds; the measured caveat: " + _describe(extra, "pass") + ".")
        why = "Every check passes on every seed" + (" after tightening the numerics" if numerical else "") + "."
        return "confirmed", numerical, holds + extra, why
    if status == "undecided":
        return "inconclusive", False, holds, ("Undecided: " + _describe(holds, "undecided")
                                              + ". More draws or tighter numerics would decide it.")
    why_fail = _describe(holds, "fail")
    if spec.corrected:
        extra = [c.evaluate(per_seed) for c in spec.corrected]
        st = _all_pass(extra)
        if st == "pass":
            return "qualified", False, holds + extra, (f"As printed it fails ({why_fail}); the corrected condition "
                                                       "holds: " + _describe(extra, "pass") + ".")
        if st == "undecided":
            return "inconclusive", False, holds + extra, (f"As printed it fails ({why_fail}); the corrected condition "
                                                          "is undecided: " + _describe(extra, "undecided") + ".")
        return "refuted", False, holds + extra, (f"Fails ({why_fail}) and so does the corrected condition ("
                                                 + _describe(extra, "fail") + ").")
    return "refuted", False, holds, f"Fails: {why_fail}."


def _shrank(before: CheckResult, after: CheckResult) -> bool:
    b, a = abs(before.value - before.check.threshold), abs(after.value - after.check.threshold)
    miss_b, miss_a = abs(before.value), abs(after.value)
    return math.isfinite(miss_a) and miss_a * SHRINK <= miss_b and a < b


def needs_tightening(spec: ClaimSpec, per_seed: Sequence[Mapping[str, Any]]) -> bool:
    """True when the only failing ``holds`` checks are numerical (a tightened rerun could change the verdict)."""
    failing = [r for r in (c.evaluate(per_seed) for c in spec.holds) if r.outcome == "fail"]
    return bool(failing) and all(getattr(r.check, "numerical", False) for r in failing)
