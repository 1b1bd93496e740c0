"""The reproduction report: ``claims.json`` (one object per answered claim) and ``report.md`` (per paper: the claims
table with verdicts and the deciding numbers, the paper's printed numbers beside ours, each experiment's explanation
and figures). Reads results; never trains, never decides a verdict (the claims engine did)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from ..experiments._catalog import CLAIMS, PAPERS, paper_of
from ..experiments._claims import VERDICTS
from ..experiments._engine import ExperimentRecord


def _json_safe(v: Any) -> Any:
    """Standard JSON: non-finite floats become null (the check's outcome says what happened)."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v[:4]) + (", ..." if len(v) > 4 else "") + "]"
    if isinstance(v, dict):
        return "; ".join(f"{k} = {_fmt(x)}" for k, x in list(v.items())[:4])
    return str(v).replace("|", "\\|").replace("\n", " ")


def claim_rows(records: Sequence[ExperimentRecord]) -> list[dict[str, Any]]:
    """Every answered claim as its ``claims.json`` object, in report order."""
    rows = []
    for r in records:
        rows += [c.to_json() for c in r.claims]
        if r.legacy is not None:  # previous interface (verdict decided in the module)
            for c in r.legacy.claims:
                d = c.to_json()
                d.update(numerical=False, reasons=d.pop("note", ""), reading="", explain="", checks=[],
                         quick=None, seeds=[], n_seeds=1, sizes={}, intervals=[])
                rows.append(d)
    return rows


def _label(row: dict[str, Any]) -> str:
    return row["verdict"] + (" (numerical)" if row.get("numerical") else "")


def _deciding(row: dict[str, Any]) -> str:
    if not row.get("checks"):
        return _fmt(row.get("measured"))
    parts = []
    for c in row["checks"]:
        needs = (f"needs {c['op']} {c['threshold']:g}" + (f" at every {c['axis']}" if c.get("axis") else "")
                 if c["condition"].startswith(c["quantity"] + " ") else c["condition"])
        s = f"{c['quantity']} = {_fmt(c['measured'])} ({needs})"
        if "interval" in c:
            iv = c["interval"]
            s += f", {iv['level']:.0%} CI [{_fmt(iv['low'])}, {_fmt(iv['high'])}], n = {iv['n']}"
        if c.get("fails_at"):
            s += f"; fails at {', '.join(c['fails_at'])}"
        parts.append(s + (" ✓" if c["outcome"] == "pass" else (" ✗" if c["outcome"] == "fail" else " ?")))
    return "<br>".join(parts)


def _claims_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| claim | verdict | deciding measurements (✓ holds, ✗ fails, ? undecided) | seeds | mode |",
             "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['id']} | **{_label(row)}** | {_deciding(row)} | {row.get('n_seeds', 1)} "
                     f"| {row['mode']} |")
    return lines


def _paper_numbers(records: Sequence[ExperimentRecord]) -> list[str]:
    nums = [(r.experiment.id, p) for r in records if r.measured for p in r.measured.paper_numbers]
    if not nums:
        return []
    lines = ["**The paper's numbers beside ours** (at the paper's own axes and horizons):", "",
             "| quantity | paper | ours | where | note |", "|---|---|---|---|---|"]
    lines += [f"| {_fmt(p.quantity)} | {_fmt(p.paper)} | {_fmt(p.ours)} | {_fmt(p.where)} | {_fmt(p.note)} |"
              for _, p in nums]
    return lines + [""]


def _explanations(rows: Sequence[dict[str, Any]]) -> list[str]:
    out = []
    for row in rows:
        text = " ".join(t for t in (row.get("explain", ""), row.get("reasons", "")) if t)
        if row.get("reading"):
            text = f"Reading tested: {row['reading']} " + text
        if text:
            out.append(f"- **{row['id']}** ({_label(row)}): {text}")
    return out


def write_report(records: Sequence[ExperimentRecord], out_dir: Path, *, papers: Sequence[str], quick: bool,
                 environment: dict[str, Any], seeds: Sequence[int] = ()) -> tuple[Path, Path]:
    """Write ``claims.json`` and ``report.md`` under ``out_dir`` atomically; returns their paths."""
    rows = claim_rows(records)
    claims_path, report_path = out_dir / "claims.json", out_dir / "report.md"
    atomic_write_text(claims_path, json.dumps(_json_safe(rows), indent=2, allow_nan=False) + "\n")
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    numerical = sum(bool(r.get("numerical")) for r in rows)
    seed_text = f"seeds {', '.join(map(str, seeds))}" if seeds else "one seed"
    lines = [
        "# falab reproduction report", "",
        f"Mode: {'quick (shrunk sizes and horizons; the same decisions and tolerances)' if quick else 'full'}; "
        f"every claim decided over {seed_text}. falab {environment.get('falab')}, torch {environment.get('torch')}, "
        f"Python {environment.get('python')}, commit {environment.get('git_commit')}.", "",
        f"**{len(rows)} claims answered**: {counts['confirmed']} confirmed ({numerical} of them after tightening the "
        f"numerics), {counts['qualified']} qualified (hold only under a corrected, measured condition), "
        f"{counts['refuted']} refuted, {counts['inconclusive']} inconclusive (the measurements cannot decide). "
        "Each verdict is computed from the measured numbers shown next to it by declared checks; `claims.json` holds "
        "the same entries with every check, seed and interval.", "",
    ]
    failed = [r for r in records if r.error]
    if failed:
        lines += ["## Experiments that failed", ""]
        lines += [f"- {r.experiment.id} ({r.experiment.title}): {r.error}" for r in failed] + [""]
    answered = {r["id"] for r in rows}
    for paper in papers:
        recs = [r for r in records if r.experiment.paper == paper]
        catalog = [cid for cid in CLAIMS if paper_of(cid) == paper]
        if not recs and not catalog:
            continue
        lines += [f"## {paper}: {PAPERS.get(paper, '')}", ""]
        paper_rows = [r for r in rows if r["paper"] == paper]
        if paper_rows:
            lines += _claims_table(paper_rows) + [""]
        lines += _paper_numbers(recs)
        missing = [cid for cid in catalog if cid not in answered]
        if missing:
            lines += ["Not answered in this run: " + ", ".join(missing) + ".", ""]
        for r in recs:
            lines += [f"### {r.experiment.id}: {r.experiment.title}", "",
                      f"Wall time {r.seconds:.1f} s." + (f" **Failed**: {r.error}" if r.error else "")
                      + (f" Rerun with tightened numerics for {', '.join(r.tightened)}." if r.tightened else ""), ""]
            md = r.measured.markdown if r.measured else (r.legacy.markdown if r.legacy is not None else "")
            if md:
                lines += [md.strip(), ""]
            exp_rows = [row for row in rows if row["experiment"] == r.experiment.id]
            notes = _explanations(exp_rows)
            if notes:
                lines += ["What each verdict rests on:", ""] + notes + [""]
            figs = r.measured.figures if r.measured else (r.legacy.figures if r.legacy is not None else [])
            for fig in figs:
                lines += [f"![{Path(fig).stem}]({os.path.relpath(fig, out_dir)})", ""]
    atomic_write_text(report_path, "\n".join(lines) + "\n")
    return claims_path, report_path
