"""falab run's crash guarantees (issue 13): metrics appended as they are recorded (a kill -9 keeps a readable file),
one writer per --out, an earlier run refused unless --resume or --overwrite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from falab.cli import main

LONG = {  # ~minutes of Euler steps: it is killed long before the end
    "model": {"widths": [10, 100, 10], "activation": "tanh"},
    "data": {"kind": "teacher", "n_samples": 50},
    "rule": {"name": "fa"},
    "dynamics": {"kind": "euler", "lr": 0.01, "steps": 10_000_000, "record_every": 200},
    "measures": ["loss", "layer_norms"],
}
SHORT = {**LONG, "dynamics": {"kind": "euler", "lr": 0.01, "steps": 20, "record_every": 5}}


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _rows(path: Path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except OSError:
        return 0


def test_killed_run_keeps_its_rows_and_a_second_writer_is_refused(tmp_path, capsys):
    long_cfg, short_cfg = tmp_path / "long.yaml", tmp_path / "short.yaml"
    long_cfg.write_text(yaml.safe_dump(LONG))
    short_cfg.write_text(yaml.safe_dump(SHORT))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "falab.cli", "run", str(long_cfg), "--out", str(out)],
                            env={**os.environ, "FALAB_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 180
        while _rows(out / "metrics.csv") < 3 * 4 and time.monotonic() < end:  # 3 records x (loss + 2 norms + ...)
            time.sleep(0.05)
        assert _rows(out / "metrics.csv") >= 3 * 4, "the run recorded nothing in time"
        # a second run into the directory is refused while the first one writes, and damages nothing
        prefix = (out / "metrics.csv").read_bytes()
        code, _, err = _cli(["run", str(short_cfg), "--out", str(out), "--overwrite"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert f"process {proc.pid} holds .falab.lock" in err
        assert (out / "metrics.csv").read_bytes().startswith(prefix)
        assert json.loads((out / "manifest.json").read_text())["config"]["dynamics"]["steps"] == 10_000_000
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # what the killed run recorded is a readable table of whole records, and the manifest says it did not finish
    table = pd.read_csv(out / "metrics.csv")
    per_record = table.groupby("step").size()
    assert len(per_record) >= 3 and (per_record == per_record.iloc[0]).all()  # no half record
    assert list(table.columns) == ["time", "step", "member", "measure", "index", "value"]
    assert table.value.notna().all()
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    # a rerun is refused without --resume/--overwrite; --resume refuses a different config
    code, _, err = _cli(["run", str(short_cfg), "--out", str(out)], capsys)
    assert code == 2 and "--resume keeps or finishes it, --overwrite replaces it" in err
    code, _, err = _cli(["run", str(short_cfg), "--out", str(out), "--resume"], capsys)
    assert code == 2 and "made by a different config" in err
    code, _, err = _cli(["run", str(short_cfg), "--out", str(out), "--resume", "--overwrite"], capsys)
    assert code == 2 and err.startswith("error: Invalid --resume: with --overwrite")
    # --overwrite replaces it; --resume then keeps the finished run untouched
    code, _, err = _cli(["run", str(short_cfg), "--out", str(out), "--overwrite"], capsys)
    assert code == 0, err
    assert pd.read_csv(out / "metrics.csv").step.max() == 20
    stamp = (out / "metrics.csv").stat().st_mtime_ns
    code, stdout, _ = _cli(["run", str(short_cfg), "--out", str(out), "--resume"], capsys)
    assert code == 0 and "already holds this run, finished with status ok (5 records); nothing rerun" in stdout
    assert (out / "metrics.csv").stat().st_mtime_ns == stamp
    assert not (out / ".falab.lock").exists()


def test_an_interrupted_run_is_finished_by_resume(tmp_path, capsys):
    """A run stopped mid-way (manifest status running, some rows) is rerun from the start by --resume: the rows come
    out byte-identical to an uninterrupted run's."""
    cfg = tmp_path / "short.yaml"
    cfg.write_text(yaml.safe_dump(SHORT))
    code, _, err = _cli(["run", str(cfg), "--out", str(tmp_path / "ref")], capsys)
    assert code == 0, err
    out = tmp_path / "out"
    out.mkdir()
    ref_rows = (tmp_path / "ref" / "metrics.csv").read_text().splitlines()
    (out / "metrics.csv").write_text("\n".join(ref_rows[: len(ref_rows) // 2]) + "\n")  # what a kill leaves
    manifest = json.loads((tmp_path / "ref" / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    code, _, err = _cli(["run", str(cfg), "--out", str(out), "--resume"], capsys)
    assert code == 0, err
    assert (out / "metrics.csv").read_bytes() == (tmp_path / "ref" / "metrics.csv").read_bytes()
    assert json.loads((out / "manifest.json").read_text())["status"] == "ok"
