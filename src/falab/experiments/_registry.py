"""Experiments as data: a registry of experiments, each a set of claim specifications and a measuring ``run``.

An experiment's ``run(ctx)`` simulates for every seed in ``ctx.seeds``, writes its figures under ``ctx.figures_dir``
(when ``ctx.write_figures``) and returns :class:`Measured`: one mapping of measured quantities per seed, the sizes it
used, the paper's printed numbers beside ours, and a markdown section. It never decides a verdict: the claims engine
(:mod:`._engine`) evaluates the experiment's :class:`~._claims.ClaimSpec` on those measurements.

(``ExperimentOutput`` / ``ClaimResult`` here are the previous interface, in which an experiment returned verdicts; they
are kept only while the paper modules move to specs and are removed with the last of them.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._checks import check_choice
from ._catalog import CLAIMS, paper_of

Verdict = Literal["confirmed", "qualified", "refuted"]
Mode = Literal["flow", "euler", "monte-carlo", "closed-form"]
VERDICTS = ("confirmed", "qualified", "refuted")
MODES = ("flow", "euler", "monte-carlo", "closed-form")


def _jsonable(v: Any) -> Any:
    """Floats stay floats (NaN/inf become strings so the JSON stays standard); tensors/arrays become lists."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


@dataclass
class ClaimResult:
    """One entry of ``claims.json``: the verdict on a catalog claim and the number that decides it.

    ``verdict``: confirmed | qualified (holds only under corrected conditions, stated in ``note``) | refuted.
    """

    id: str
    verdict: Verdict
    statement: str
    measured: Any
    expected: Any
    tolerance: Any
    mode: Mode
    experiment: str
    note: str = ""
    paper: str = ""

    def __post_init__(self) -> None:
        if self.id not in CLAIMS:
            raise ValueError(f"Invalid claim id: {self.id!r} (expected one of the catalog IDs, see `falab list`)")
        check_choice("verdict", self.verdict, VERDICTS)
        check_choice("mode", self.mode, MODES)
        if not self.paper:
            self.paper = paper_of(self.id)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        order = ["id", "paper", "verdict", "statement", "measured", "expected", "tolerance", "mode", "experiment", "note"]
        return {k: _jsonable(d[k]) for k in order}


@dataclass
class ExperimentOutput:
    """What an experiment hands to the report: claim verdicts, figure paths, a markdown section, extra numbers."""

    claims: list[ClaimResult] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    markdown: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PaperNumber:
    """A number or figure value the paper prints, at the paper's own axes and horizon, and ours beside it."""

    quantity: str
    paper: Any
    ours: Any
    where: str
    note: str = ""


@dataclass
class Measured:
    """What an experiment's ``run`` returns: measurements only.

    ``per_seed[i]`` maps quantity names to numbers, to ``{axis value: number}`` mappings (checks over a parameter
    range) or to sequences of draws (stochastic checks), for ``ctx.seeds[i]``."""

    per_seed: list[dict[str, Any]]
    markdown: str = ""
    figures: list[Path] = field(default_factory=list)
    sizes: dict[str, Any] = field(default_factory=dict)
    paper_numbers: list[PaperNumber] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunContext:
    """Where and how an experiment runs.

    ``seeds``: every seed to measure (claims are decided over all of them); ``tighten``: 1 normally, 1e-2 in the
    numerical rerun (multiply rtol/atol by it and fixed steps by its square root); ``write_figures``: False in reruns;
    ``progress(msg)`` advances the CLI's progress display."""

    quick: bool
    out_dir: Path
    seeds: tuple[int, ...] = (0, 1, 2)
    tighten: float = 1.0
    write_figures: bool = True
    progress: Callable[[str], None] = lambda msg: None

    @property
    def seed(self) -> int:
        """The first seed (figures and single-draw illustrations use it)."""
        return self.seeds[0]

    @property
    def figures_dir(self) -> Path:
        p = self.out_dir / "figures"
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def data_dir(self) -> Path:
        p = self.out_dir / "data"
        p.mkdir(parents=True, exist_ok=True)
        return p


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: ``id`` like ``'EXP-P000-1'``, the paper, a title, and the claims it answers, as
    :class:`~._claims.ClaimSpec` (or, in the previous interface, claim IDs with ``run`` returning verdicts)."""

    id: str
    paper: str
    title: str
    claims: tuple[Any, ...]
    run: Callable[[RunContext], Any]

    @property
    def claim_ids(self) -> tuple[str, ...]:
        return tuple(c if isinstance(c, str) else c.id for c in self.claims)

    @property
    def decided_by_engine(self) -> bool:
        return all(not isinstance(c, str) for c in self.claims)


EXPERIMENTS: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Add an experiment to the registry (module import time)."""
    for c in experiment.claim_ids:
        if c not in CLAIMS:
            raise ValueError(f"Invalid claim id: {c!r} in {experiment.id} (expected a catalog ID)")
    EXPERIMENTS[experiment.id] = experiment
    return experiment


def experiments_for(papers: list[str] | None) -> list[Experiment]:
    """Registered experiments of these papers (all when ``papers`` is empty), in registration order."""
    if not papers:
        return list(EXPERIMENTS.values())
    return [e for e in EXPERIMENTS.values() if e.paper in papers]


def within(measured: float, expected: float, tolerance: float, *, relative: bool = True) -> bool:
    """``|measured - expected| <= tolerance`` (relative to ``|expected|`` when ``relative`` and expected != 0)."""
    if not (math.isfinite(measured) and math.isfinite(expected)):
        return False
    scale = abs(expected) if (relative and expected != 0) else 1.0
    return abs(measured - expected) <= tolerance * scale
