"""Experiments as data: a registry of experiments, each a set of claim specifications and a measuring ``run``.

An experiment's ``run(ctx)`` simulates for every seed in ``ctx.seeds``, writes its figures under ``ctx.figures_dir``
(when ``ctx.write_figures``) and returns :class:`Measured`: one mapping of measured quantities per seed, the sizes it
used, the paper's printed numbers beside ours, and a markdown section. It never decides a verdict: the claims engine
(:mod:`._engine`) evaluates the experiment's :class:`~._claims.ClaimSpec` on those measurements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._catalog import CLAIMS
from ._claims import ClaimSpec


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
    :class:`~._claims.ClaimSpec`; ``run`` measures them."""

    id: str
    paper: str
    title: str
    claims: tuple[ClaimSpec, ...]
    run: Callable[[RunContext], Measured]

    @property
    def claim_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.claims)


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
