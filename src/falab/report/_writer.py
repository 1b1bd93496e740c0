"""The reproduction report: ``claims.json`` (one object per answered claim) and ``report.md`` (per paper: the claims
table with verdicts and deciding numbers, each experiment's explanation and figures). Reads results; never trains."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..experiments import CLAIMS, PAPERS, ClaimResult, Experiment, ExperimentOutput
from ..experiments._catalog import paper_of


@dataclass
class ExperimentRecord:
    """One experiment as run by ``falab reproduce``: its output, or the error that stopped it, and its wall time."""

    experiment: Experiment
    output: ExperimentOutput | None
    seconds: float
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v[:4]) + (", ..." if len(v) > 4 else "") + "]"
    if isinstance(v, dict):
        return "; ".join(f"{k}={_fmt(x)}" for k, x in list(v.items())[:4])
    s = str(v)
    return s.replace("|", "\\|").replace("\n", " ")


def _claims_table(results: Sequence[ClaimResult]) -> list[str]:
    lines = ["| claim | verdict | measured | expected | tolerance | mode | experiment |",
             "|---|---|---|---|---|---|---|"]
    for c in results:
        lines.append(f"| {c.id} | **{c.verdict}** | {_fmt(c.measured)} | {_fmt(c.expected)} | {_fmt(c.tolerance)} "
                     f"| {c.mode} | {c.experiment} |")
    return lines


def write_report(records: Sequence[ExperimentRecord], out_dir: Path, *, papers: Sequence[str], quick: bool,
                 environment: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``claims.json`` and ``report.md`` under ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    claims: list[ClaimResult] = [c for r in records if r.output for c in r.output.claims]
    (out_dir / "claims.json").write_text(json.dumps([c.to_json() for c in claims], indent=2) + "\n")

    answered = {c.id for c in claims}
    counts = {v: sum(c.verdict == v for c in claims) for v in ("confirmed", "qualified", "refuted")}
    lines = [
        "# falab reproduction report",
        "",
        f"Mode: {'quick (shrunk sizes and horizons)' if quick else 'full'}. falab {environment.get('falab')}, "
        f"torch {environment.get('torch')}, Python {environment.get('python')}, commit {environment.get('git_commit')}.",
        "",
        f"**{len(claims)} claims answered**: {counts['confirmed']} confirmed, {counts['qualified']} qualified "
        f"(hold only under corrected conditions, stated in the notes), {counts['refuted']} refuted. "
        "Every verdict is decided by the measured number shown next to it; `claims.json` holds the same entries.",
        "",
    ]
    failed = [r for r in records if r.error]
    if failed:
        lines += ["## Experiments that failed", ""]
        lines += [f"- {r.experiment.id} ({r.experiment.title}): {r.error}" for r in failed]
        lines.append("")
    for paper in papers:
        recs = [r for r in records if r.experiment.paper == paper]
        catalog = [cid for cid in CLAIMS if paper_of(cid) == paper]
        if not recs and not catalog:
            continue
        lines += [f"## {paper}: {PAPERS.get(paper, '')}", ""]
        paper_claims = [c for c in claims if c.paper == paper]
        if paper_claims:
            lines += _claims_table(paper_claims)
            lines.append("")
        missing = [cid for cid in catalog if cid not in answered]
        if missing:
            lines += ["Not answered in this run: " + ", ".join(missing) + ".", ""]
        for r in recs:
            lines += [f"### {r.experiment.id}: {r.experiment.title}", "",
                      f"Wall time {r.seconds:.1f} s." + (f" **Failed**: {r.error}" if r.error else ""), ""]
            if r.output is None:
                continue
            if r.output.markdown:
                lines += [r.output.markdown.strip(), ""]
            notes = [c for c in r.output.claims if c.note]
            if notes:
                lines += ["Notes on the verdicts:", ""]
                lines += [f"- **{c.id}** ({c.verdict}): {c.note}" for c in notes]
                lines.append("")
            for fig in r.output.figures:
                rel = os.path.relpath(fig, out_dir)
                lines += [f"![{Path(fig).stem}]({rel})", ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return out_dir / "claims.json", report
