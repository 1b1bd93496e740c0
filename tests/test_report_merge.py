"""A partial rerun of `falab reproduce` into an existing directory replaces only the claims and figures of the
experiments it reran; records made with other settings (quick/full, seeds) are dropped with their figures."""

from __future__ import annotations

import json

from falab.experiments import EXPERIMENTS, ClaimResult, ExperimentRecord, Measured
from falab.report import write_report

ENV = {"falab": "test", "torch": "x", "python": "3", "git_commit": "abc"}


def _record(tmp_path, exp_id: str, claim_id: str, text: str) -> ExperimentRecord:
    exp = EXPERIMENTS[exp_id]
    fig = tmp_path / "figures" / f"{exp_id}.png"
    fig.parent.mkdir(parents=True, exist_ok=True)
    fig.write_bytes(b"png")
    claim = ClaimResult(claim_id, "confirmed", "statement", "flow", exp_id, [], f"because {text}")
    return ExperimentRecord(exp, Measured([{}], markdown=text, figures=[fig]), [claim], 1.0)


def _claims(tmp_path) -> dict[str, str]:
    return {c["id"]: c["reasons"] for c in json.loads((tmp_path / "claims.json").read_text())}


def test_partial_rerun_merges_and_other_settings_are_dropped(tmp_path):
    a = ("EXP-P003-Fig1a", "P003-INV")
    b = ("EXP-P003-Fig1b", "P003-O.zero")
    kw = {"papers": ["P003"], "environment": ENV}
    write_report([_record(tmp_path, *a, "first A"), _record(tmp_path, *b, "first B")], tmp_path, quick=True,
                 seeds=(0, 1, 2), **kw)
    assert _claims(tmp_path) == {"P003-INV": "because first A", "P003-O.zero": "because first B"}

    write_report([_record(tmp_path, *a, "second A")], tmp_path, quick=True, seeds=(0, 1, 2), **kw)
    assert _claims(tmp_path) == {"P003-INV": "because second A", "P003-O.zero": "because first B"}
    report = (tmp_path / "report.md").read_text()
    assert "second A" in report and "first A" not in report and "first B" in report
    assert "Kept from an earlier run with the same settings (not rerun now): EXP-P003-Fig1b" in report

    write_report([_record(tmp_path, *a, "full A")], tmp_path, quick=False, seeds=(0, 1, 2), **kw)
    assert _claims(tmp_path) == {"P003-INV": "because full A"}
    assert not (tmp_path / "figures" / "EXP-P003-Fig1b.png").exists()
    assert not (tmp_path / "records" / "EXP-P003-Fig1b.json").exists()
    assert "Dropped from an earlier run with other settings: EXP-P003-Fig1b" in (tmp_path / "report.md").read_text()


def test_foreign_files_in_the_records_folder_are_left_alone(tmp_path):
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "notes.json").write_text("not a record")
    write_report([_record(tmp_path, "EXP-P003-Fig1a", "P003-INV", "A")], tmp_path, quick=True, seeds=(0,),
                 papers=["P003"], environment=ENV)
    assert (tmp_path / "records" / "notes.json").read_text() == "not a record"
    assert list(_claims(tmp_path)) == ["P003-INV"]
