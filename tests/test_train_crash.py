"""`falab train` is crash-safe: every finished run is on disk at once (a kill -9 keeps it), a diverged run is a failed
run (exit 1, null numbers, strict JSON), a non-empty --out needs --resume or --overwrite, and one writer per
directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FALAB = [sys.executable, "-m", "falab.cli"] if not (ROOT / ".venv" / "bin" / "falab").exists() else [
    str(ROOT / ".venv" / "bin" / "falab")]
ENV = {**os.environ, "FALAB_THREADS": "1"}

GRID = {"datasets": ["digits"], "models": ["mlp"], "rules": ["bp", "fa"], "seeds": [0, 1, 2], "epochs": 1,
        "hidden": 8}
N_RUNS = 6


def _strict(text: str) -> object:
    def no_constant(name: str) -> object:
        raise AssertionError(f"non-JSON constant {name}")

    return json.loads(text, parse_constant=no_constant)


def _cfg(tmp: Path, data: dict, name: str = "cfg.yaml") -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(data))
    return p


def _train(capsys, *args: str) -> tuple[int, str]:
    """``falab train ARGS`` in this process (the CLI's own entry point): (exit code, stderr)."""
    from falab.cli import main

    old = sys.argv
    sys.argv = ["falab", "train", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


def test_killed_train_keeps_finished_runs_and_resume_completes_the_grid(tmp_path, capsys, monkeypatch):
    cfg, out = _cfg(tmp_path, GRID), tmp_path / "out"
    proc = subprocess.Popen([*FALAB, "train", str(cfg), "--out", str(out)], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    runs_dir = out / "runs"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if runs_dir.is_dir() and len(list(runs_dir.glob("*.json"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the grid finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = sorted(runs_dir.glob("*.json"))
    assert 2 <= len(kept) < N_RUNS
    assert not list(runs_dir.glob("*.tmp*")) or all(p.suffix != ".json" for p in runs_dir.glob("*.tmp*"))
    before = {p.name: p.read_text() for p in kept}
    for text in before.values():
        run = _strict(text)
        assert run["status"] == "ok" and 0 <= run["test_acc"] <= 100
    _strict((out / "runs.json").read_text())  # the running list is whole, never half-written
    # a rerun into the non-empty directory is refused without touching it
    monkeypatch.setenv("FALAB_THREADS", "1")
    code, err = _train(capsys, str(cfg), "--out", str(out))
    assert code == 2 and err.strip().startswith(f"error: Invalid out: '{out}' (expected an empty")
    assert {p.name: p.read_text() for p in sorted(runs_dir.glob("*.json"))} == before
    # --resume runs only the rest: the kept files are not rewritten, every run is there exactly once
    code, err = _train(capsys, str(cfg), "--out", str(out), "--resume")
    assert code == 0, err
    for name, text in before.items():
        assert (runs_dir / name).read_text() == text
    runs = _strict((out / "runs.json").read_text())
    keys = [(r["rule"], r["seed"]) for r in runs]
    assert len(keys) == len(set(keys)) == N_RUNS and len(list(runs_dir.glob("*.json"))) == N_RUNS
    assert (out / "summary.md").is_file() and not (out / ".falab.lock").exists()
    # --overwrite starts again
    code, err = _train(capsys, str(_cfg(tmp_path, {**GRID, "rules": ["bp"], "seeds": [0]}, "small.yaml")), "--out",
                       str(out), "--overwrite")
    assert code == 0, err
    assert [r["rule"] for r in _strict((out / "runs.json").read_text())] == ["bp"]
    assert len(list(runs_dir.glob("*.json"))) == 1


def test_diverged_run_is_a_failed_run_with_strict_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FALAB_THREADS", "1")
    cfg = _cfg(tmp_path, {**GRID, "rules": ["bp", "fa"], "seeds": [0], "epochs": 1,
                          "optimizer": {"name": "sgd", "lr": 1e30}})
    out = tmp_path / "out"
    code, err = _train(capsys, str(cfg), "--out", str(out))
    assert code == 1
    assert "failed run digits/mlp/bp/seed 0: non-finite" in err
    assert err.strip().splitlines()[-1] == f"error: 2 run(s) failed (recorded in {out}/runs.json with status 'failed')"
    text = (out / "runs.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    runs = _strict(text)
    assert [r["status"] for r in runs] == ["failed", "failed"]
    assert all(r["test_acc"] is None and r["message"].startswith("non-finite") for r in runs)
    summary = (out / "summary.md").read_text()
    assert "| bp | 1e+30, m 0.9 | 0 (1 failed) | – [–, –] |" in summary
    _strict((out / "tuning.json").read_text())
    # an infinite learning rate is bad input, refused before anything runs
    code, err = _train(capsys, str(_cfg(tmp_path, {**GRID, "optimizer": {"lr": float("inf")}}, "inf.yaml")), "--out",
                       str(tmp_path / "inf"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: Invalid optimizer.lr: inf")
    assert not (tmp_path / "inf").exists()


def test_second_writer_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FALAB_THREADS", "1")
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from falab._lock import output_lock\n"
                               f"with output_lock(Path({str(out)!r})):\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, err = _train(capsys, str(_cfg(tmp_path, {**GRID, "rules": ["bp"], "seeds": [0]})), "--out", str(out),
                           "--overwrite")
        assert code == 2
        assert f"process {holder.pid} holds .falab.lock" in err
        assert sorted(p.name for p in out.iterdir()) == [".falab.lock"]
    finally:
        holder.kill()
        holder.wait()
