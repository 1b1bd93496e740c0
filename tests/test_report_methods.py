"""The report states how every experiment was integrated (method, settings, the accuracy reached) from the records
the experiment made, in the claim's row, in the experiment's section and in claims.json."""

from __future__ import annotations

import json

from falab.experiments import EXPERIMENTS, ClaimResult, ExperimentRecord, Measured, RunContext, run_experiment
from falab.report import write_report
from falab.report._writer import method_text

ENV = {"falab": "test", "torch": "x", "python": "3", "git_commit": "abc"}


def test_method_text_states_settings_and_accuracy() -> None:
    ev = {"part": "p", "method": "events", "rtol": 1e-10, "atol": 1e-12, "nfev": 4777,
          "accuracy": {"quantity": "max_t |Q(t)/Q(0) − 1|", "value": 1.77e-12}, "claims": ["P000-T5.1"]}
    assert method_text(ev) == ("events rtol 1e-10, atol 1e-12, 4777 field evaluations; reached "
                               "max_t |Q(t)/Q(0) − 1| = 1.77e-12")
    assert method_text({"method": "rk4", "step_size": 4e-4, "accuracy": None}) == "RK4 dt 0.0004"
    assert method_text({"method": "euler", "step_size": 5e-4, "steps": 2000}) == "Euler η = 0.0005, 2000 steps"
    auto = {"method": "LSODA", "rtol": 1e-8, "atol": 1e-10, "jacobian": "torch.func (forward mode)",
            "requested": "auto"}
    assert method_text(auto) == ("LSODA rtol 1e-08, atol 1e-10, Jacobian by torch.func (forward mode) "
                                 "(chosen by method='auto')")


def test_report_of_a_quick_experiment_names_its_method(tmp_path) -> None:
    """EXP-P000-2 (the Fig. 1 Euler runs, one seed): its step and step count are in the row of the claim it decides,
    in its section and in claims.json; a record naming no claim is listed as figure/text only."""
    exp = EXPERIMENTS["EXP-P000-2"]
    rec = run_experiment(exp, RunContext(quick=True, out_dir=tmp_path, seeds=(0,), write_figures=False))
    assert not rec.error and rec.measured is not None
    rec.measured.numbers["integration"].append({"part": "an illustration", "method": "DOP853", "rtol": 1e-10,
                                                "atol": 1e-12, "accuracy": None, "claims": []})
    write_report([rec], tmp_path, papers=["P000"], quick=True, environment=ENV, seeds=(0,))
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    row = next(line for line in report.splitlines() if line.startswith("| P000-E.Fig2 "))
    assert row.endswith("| euler<br>Fig. 1 Euler runs, linear and ReLU: Euler η = 0.0005, 2000 steps |")
    assert "mode, method, accuracy |" in report
    assert "- Fig. 1 Euler runs, linear and ReLU: Euler η = 0.0005, 2000 steps (P000-E.Fig2)" in report
    assert "- an illustration: DOP853 rtol 1e-10, atol 1e-12 (figure and text only)" in report
    (claim,) = json.loads((tmp_path / "claims.json").read_text())
    assert claim["integration"] == ["Fig. 1 Euler runs, linear and ReLU: Euler η = 0.0005, 2000 steps"]
    record = json.loads((tmp_path / "records" / "EXP-P000-2.json").read_text())
    assert record["integration"][0]["step_size"] == 5e-4 and record["integration"][0]["steps"] == 2000


def test_an_experiment_that_records_no_integration_keeps_its_bare_mode(tmp_path) -> None:
    exp = EXPERIMENTS["EXP-P003-Fig1a"]
    claim = ClaimResult("P003-INV", "confirmed", "statement", "flow", exp.id, [], "because")
    write_report([ExperimentRecord(exp, Measured([{}]), [claim], 1.0)], tmp_path, papers=["P003"], quick=True,
                 environment=ENV, seeds=(0,))
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert next(line for line in report.splitlines() if line.startswith("| P003-INV ")).endswith(" | flow |")
    assert "How it was integrated" not in report
    assert json.loads((tmp_path / "claims.json").read_text())[0]["integration"] == []
