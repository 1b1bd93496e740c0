"""The main job end to end: `falab reproduce --quick` answers every catalog claim and writes report and figures."""

from __future__ import annotations

import json
import sys

from falab.cli import main
from falab.experiments._catalog import CLAIMS

FIELDS = {"id", "paper", "verdict", "statement", "measured", "expected", "tolerance", "mode", "experiment", "note"}


def test_reproduce_quick_answers_all_56_claims(tmp_path, monkeypatch):
    out = tmp_path / "quick"
    monkeypatch.setattr(sys, "argv", ["falab", "reproduce", "--quick", "--out", str(out)])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None)
    claims = json.loads((out / "claims.json").read_text())
    assert len(claims) == 56 and {c["id"] for c in claims} == set(CLAIMS)
    for c in claims:
        assert set(c) >= FIELDS, c["id"]
        assert c["verdict"] in ("confirmed", "qualified", "refuted"), c["id"]
        assert c["mode"] in ("flow", "euler", "monte-carlo", "closed-form"), c["id"]
        assert c["measured"] not in (None, "", {}, []) and c["note"], c["id"]
        assert c["id"].startswith(c["paper"] + "-")
    report = (out / "report.md").read_text()
    assert all(cid in report for cid in CLAIMS)
    figures = {p.name for p in (out / "figures").glob("*.png")}
    for paper in ("p000", "p002", "p003", "p004", "nn"):
        assert any(name.startswith(paper + "_") for name in figures), (paper, sorted(figures))
        assert f"figures/{paper}_" in report
