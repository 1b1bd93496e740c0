"""The reproduction report: ``claims.json`` (one object per answered claim) and ``report.md`` (per paper: the claims
table with verdicts and the deciding numbers, the paper's printed numbers beside ours, each experiment's explanation
and figures). Reads results; never trains, never decides a verdict (the claims engine did).

How each claim's numbers were integrated comes from the experiment's own records (``Measured.numbers["integration"]``,
format in :mod:`falab.experiments._methods`): the method, its settings and the accuracy it reached are shown in the
claim's mode column and listed per experiment; ``claims.json`` carries them as ``integration`` per claim."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from ..experiments._catalog import CLAIMS, PAPERS, paper_of
from ..experiments._claims import VERDICTS
from ..experiments._engine import ExperimentRecord
from ..experiments._registry import EXPERIMENTS


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
    """Every answered claim of these records as its ``claims.json`` object, in run order."""
    return [c.to_json() for r in records for c in r.claims]


def record_json(r: ExperimentRecord, out_dir: Path, quick: bool, seeds: Sequence[int]) -> dict[str, Any]:
    """One experiment's stored record (``OUT/records/<id>.json``): its decided claims, text, figures (relative to
    ``out_dir``), the paper's numbers, and the settings it ran with."""
    m = r.measured
    return {
        "experiment": r.experiment.id, "paper": r.experiment.paper, "title": r.experiment.title,
        "seconds": r.seconds, "error": r.error, "tightened": list(r.tightened),
        "quick": quick, "seeds": list(seeds),
        "claims": [c.to_json() for c in r.claims],
        "markdown": m.markdown if m else "",
        "figures": [os.path.relpath(f, out_dir) for f in (m.figures if m else [])],
        "paper_numbers": [asdict(p) for p in (m.paper_numbers if m else [])],
        "integration": list(m.numbers.get("integration", [])) if m else [],
    }


def method_text(e: dict[str, Any]) -> str:
    """One integration record as text: the method and its settings, then the accuracy it reached."""
    m = str(e.get("method", "?"))
    if m == "rk4":
        s = f"RK4 dt {e['step_size']:g}"
    elif m == "euler":
        s = f"Euler η = {e['step_size']:g}, {e['steps']} steps"
    else:
        s = m + (f" rtol {e['rtol']:g}, atol {e['atol']:g}" if "rtol" in e and "atol" in e else "")
    if e.get("jacobian"):
        s += f", Jacobian by {e['jacobian']}"
    if e.get("requested") and e["requested"] != m:
        s += f" (chosen by method='{e['requested']}')"
    if e.get("nfev"):
        s += f", {e['nfev']} field evaluations"
    acc = e.get("accuracy")
    if acc:
        s += f"; reached {acc['quantity']} = {_fmt(acc['value'])}"
    return s


def _attach_methods(recs: Sequence[dict[str, Any]]) -> None:
    """Each claim row gets the integration records of its experiment that name it (``integration``: texts)."""
    for r in recs:
        for c in r["claims"]:
            c["integration"] = [f"{e['part']}: {method_text(e)}" for e in r.get("integration", [])
                                if c["id"] in e.get("claims", ())]


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
    lines = ["| claim | verdict | deciding measurements (✓ holds, ✗ fails, ? undecided) | seeds | mode, method, accuracy |",
             "|---|---|---|---|---|"]
    for row in rows:
        how = "".join(f"<br>{_fmt(t)}" for t in row.get("integration", ()))
        lines.append(f"| {row['id']} | **{_label(row)}** | {_deciding(row)} | {row.get('n_seeds', 1)} "
                     f"| {row['mode']}{how} |")
    return lines


def _paper_numbers(records: Sequence[dict[str, Any]]) -> list[str]:
    nums = [p for r in records for p in r["paper_numbers"]]
    if not nums:
        return []
    lines = ["**The paper's numbers beside ours** (at the paper's own axes and horizons):", "",
             "| quantity | paper | ours | where | note |", "|---|---|---|---|---|"]
    lines += [f"| {_fmt(p['quantity'])} | {_fmt(p['paper'])} | {_fmt(p['ours'])} | {_fmt(p['where'])} "
              f"| {_fmt(p['note'])} |" for p in nums]
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


def _merge(current: list[dict[str, Any]], out_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The current records plus the stored records of experiments this run did not rerun, when those ran with the
    same settings (quick or full, seeds); stored records of other settings are dropped with their figures."""
    store = out_dir / "records"
    store.mkdir(parents=True, exist_ok=True)
    for rec in current:
        atomic_write_text(store / f"{rec['experiment']}.json", json.dumps(_json_safe(rec), indent=1) + "\n")
    ids = {r["experiment"] for r in current}
    settings = {(r["quick"], tuple(r["seeds"])) for r in current}
    kept, dropped = list(current), []
    for path in sorted(store.glob("*.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            exp_id = rec["experiment"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a record of ours: leave it alone, never report it
        if exp_id in ids:
            continue
        if (rec.get("quick"), tuple(rec.get("seeds", ()))) in settings and exp_id in EXPERIMENTS:
            kept.append(rec)
        else:
            dropped.append(exp_id)
            for fig in rec.get("figures", []):
                (out_dir / fig).unlink(missing_ok=True)
            path.unlink(missing_ok=True)
    order = {e: i for i, e in enumerate(EXPERIMENTS)}
    kept.sort(key=lambda r: order.get(r["experiment"], len(order)))
    return kept, dropped


def write_report(records: Sequence[ExperimentRecord], out_dir: Path, *, papers: Sequence[str], quick: bool,
                 environment: dict[str, Any], seeds: Sequence[int] = ()) -> tuple[Path, Path]:
    """Write ``claims.json`` and ``report.md`` under ``out_dir`` atomically; returns their paths.

    Each experiment's record is stored in ``OUT/records/``; a run into a directory that holds records of other
    experiments made with the same settings merges them (a partial rerun replaces only the claims and figures of the
    experiments it reran); records made with other settings are dropped, with their figures."""
    current = [record_json(r, out_dir, quick, seeds) for r in records]
    recs, dropped = _merge(current, out_dir)
    _attach_methods(recs)
    rows = [c for r in recs for c in r["claims"]]
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
    own = sum(r["paper"] == "FALAB" for r in rows)  # Beyond the papers: falab's own claims, counted apart
    if own:
        lines += [f"Of these, {len(rows) - own} are claims of the seed papers and {own} are falab's own results "
                  "(section *FALAB: Beyond the papers*; derivation in docs/theory/fa_tensor_networks.md), decided by "
                  "the same engine.", ""]
    rerun = {r["experiment"] for r in current}
    merged = [r["experiment"] for r in recs if r["experiment"] not in rerun]
    if merged:
        lines += [f"Kept from an earlier run with the same settings (not rerun now): {', '.join(merged)}.", ""]
    if dropped:
        lines += [f"Dropped from an earlier run with other settings: {', '.join(dropped)}.", ""]
    failed = [r for r in recs if r["error"]]
    if failed:
        lines += ["## Experiments that failed", ""]
        lines += [f"- {r['experiment']} ({r['title']}): {r['error']}" for r in failed] + [""]
    answered = {r["id"] for r in rows}
    shown = list(dict.fromkeys(list(papers) + [r["paper"] for r in recs]))
    for paper in shown:
        lines += _paper_section(paper, [r for r in recs if r["paper"] == paper], rows, answered, out_dir)
    atomic_write_text(report_path, "\n".join(lines) + "\n")
    return claims_path, report_path


def _paper_section(paper: str, recs: list[dict[str, Any]], rows: list[dict[str, Any]], answered: set[str],
                   out_dir: Path) -> list[str]:
    catalog = [cid for cid in CLAIMS if paper_of(cid) == paper]
    if not recs and not catalog:
        return []
    lines = [f"## {paper}: {PAPERS.get(paper, '')}", ""]
    paper_rows = [r for r in rows if r["paper"] == paper]
    if paper_rows:
        lines += _claims_table(paper_rows) + [""]
    lines += _paper_numbers(recs)
    missing = [cid for cid in catalog if cid not in answered]
    if missing:
        lines += ["Not answered in this run: " + ", ".join(missing) + ".", ""]
    for r in recs:
        lines += [f"### {r['experiment']}: {r['title']}", "",
                  f"Wall time {r['seconds']:.1f} s." + (f" **Failed**: {r['error']}" if r["error"] else "")
                  + (f" Rerun with tightened numerics for {', '.join(r['tightened'])}." if r["tightened"] else ""),
                  ""]
        if r["markdown"]:
            lines += [r["markdown"].strip(), ""]
        if r.get("integration"):
            lines += ["How it was integrated (method, settings, accuracy reached; the claims each part decides):", ""]
            lines += [f"- {e['part']}: {method_text(e)}" + (f" ({', '.join(e['claims'])})" if e.get("claims")
                                                           else " (figure and text only)")
                      for e in r["integration"]] + [""]
        notes = _explanations(r["claims"])
        if notes:
            lines += ["What each verdict rests on:", ""] + notes + [""]
        lines += [f"![{Path(fig).stem}]({fig})" for fig in r["figures"] if (out_dir / fig).exists()]
        lines += [""] if r["figures"] else []
    return lines
