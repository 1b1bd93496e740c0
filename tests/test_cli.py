"""The command line: one-line errors with exit code 2 for user mistakes, divergence handling, reproducibility."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from falab.cli import main

BASE = {
    "seed": 0,
    "model": {"widths": [4, 6, 1], "activation": "relu"},
    "data": {"kind": "teacher", "n_samples": 8},
    "rule": {"name": "fa"},
    "loss": {"name": "squared"},
    "dynamics": {"kind": "euler", "lr": 0.05, "steps": 20, "record_every": 5},
}


def _with(path: str, value):
    cfg = yaml.safe_load(yaml.safe_dump(BASE))
    node = cfg
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return cfg


_DELETE = object()


def _run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    old = sys.argv
    sys.argv = ["falab", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _write(tmp_path: Path, cfg) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return p


BAD_CONFIGS = [
    ("unknown rule", _with("rule.name", "backprop2"), r"Invalid rule\.name: 'backprop2' \(expected 'bp', 'fa', 'dfa', 'fa_star', 'usf', 'frsf' or 'brsf'\)"),
    ("unknown activation", _with("model.activation", "swish"), r"Invalid model\.activation: 'swish' \(expected one of identity, relu"),
    ("negative step size", _with("dynamics.lr", -0.1), r"^error: Invalid dynamics\.lr: -0\.1 \(expected greater than 0 or a mapping\)$"),
    ("zero step size", _with("dynamics.lr", 0.0), r"^error: Invalid dynamics\.lr: 0\.0 \(expected greater than 0 or a mapping\)$"),
    ("t_end <= 0", _with("dynamics", {"kind": "flow", "t_end": 0}), r"^error: Invalid dynamics\.t_end: 0 \(expected greater than 0\)$"),
    ("K = 0", _with("ensemble", 0), r"Invalid ensemble: 0 \(expected greater than or equal to 1\)"),
    ("missing rule", _with("rule", _DELETE), r"Invalid rule: missing \(expected this required field\)"),
    ("mistyped steps", _with("dynamics.steps", "many"), r"^error: Invalid dynamics\.steps: 'many' \(expected an integer\)$"),
    ("mistyped widths", _with("model.widths", "4-6-1"), r"^error: Invalid model\.widths: '4-6-1' \(expected a list\)$"),
    ("widths too short", _with("model.widths", [4]), r"^error: Invalid model\.widths: \[4\] \(expected a list of at least 2 items\)$"),
    ("unknown loss", _with("loss.name", "hinge"), r"Invalid loss\.name: 'hinge' \(expected 'squared', 'exponential' or 'cross_entropy'\)"),
    ("bad reduction", _with("loss.reduction", "avg"), r"Invalid loss\.reduction: 'avg' \(expected 'mean' or 'sum'\)"),
    ("unknown dynamics kind", _with("dynamics.kind", "leapfrog"), r"Invalid dynamics\.kind: 'leapfrog' \(expected one of 'flow', 'euler', 'sgd', 'modified_trapezoid'\)"),
    ("misspelled field", _with("modle", 1), r"^error: Invalid modle: 1 \(expected one of the fields seed, ensemble, model, data, rule, loss, dynamics, measures\)$"),
    ("sgd without batch", _with("dynamics.kind", "sgd"), r"^error: Invalid dynamics\.batch_size: None \(expected an integer >= 1 \(required for kind 'sgd'\)\)$"),
    ("negative seed", _with("seed", -3), r"^error: Invalid seed: -3 \(expected an integer with 0 <= seed < 2\*\*63\)$"),
    ("unknown measure", _with("measures", ["loss", "entropy"]), r"^error: Invalid measures\.1: 'entropy' \(expected 'loss', 'layer_norms'"),
    ("negative feedback std", _with("rule.feedback", {"kind": "gaussian", "std": -1}), r"Invalid rule\.feedback\.std: -1 \(expected greater than 0\)"),
    ("exponential loss, 2 outputs", _with("model.widths", [4, 6, 2]) | {"loss": {"name": "exponential"}},
     r"Invalid model\.widths: 2 \(expected a last width of 1 for the exponential loss\)"),
    ("zero layer out of range", _with("model.init", {"scheme": "xavier", "zero_layers": [3]}),
     r"Invalid model\.init\.zero_layers: 3 \(expected layer indices in 1\.\.2\)"),
    ("widths inconsistent with data", _with("data", {"kind": "digits", "n_samples": 20}) | {"model": {"widths": [10, 5, 10]}},
     r"Invalid model\.widths\[0\]: 10 \(expected the data's input width 64"),
    ("batch larger than data", _with("dynamics", {"kind": "sgd", "lr": 0.1, "steps": 3, "batch_size": 100}),
     r"^error: Invalid dynamics\.batch_size: 100 \(expected at most the number of samples \(8\)\)$"),
    ("config is a list", "- 1\n- 2\n", r"Invalid config: 'list' \(expected a mapping"),
    ("invalid YAML", "model: [1, 2\n", r"Invalid config YAML: 'cfg\.yaml' \(expected valid YAML"),
]


@pytest.mark.parametrize(("label", "cfg", "pattern"), BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_is_one_line_exit_2(label, cfg, pattern, tmp_path, capsys):
    code, out, err = _run_cli(["run", str(_write(tmp_path, cfg)), "--out", str(tmp_path / "out")], capsys)
    assert code == 2, (label, out, err)
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    import re

    assert re.search(pattern, lines[0]), lines[0]


def test_non_finite_data_file(tmp_path, capsys):
    x = np.ones((5, 4))
    x[2, 1] = np.nan
    np.savez(tmp_path / "d.npz", X=x, y=np.ones((5, 1)))
    cfg = _with("data", {"kind": "file", "path": str(tmp_path / "d.npz")})
    code, _, err = _run_cli(["run", str(_write(tmp_path, cfg))], capsys)
    assert code == 2
    assert err.strip() == "error: Invalid data X: 1 non-finite entries (expected finite values only)"


def test_unknown_paper_and_missing_file(tmp_path, capsys):
    code, _, err = _run_cli(["reproduce", "P001", "--out", str(tmp_path)], capsys)
    assert (code, err.strip()) == (2, "error: Invalid paper: 'P001' (expected one of P000, P002, P003, P004, NN, FALAB)")
    code, _, err = _run_cli(["run", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "Invalid config path" in err


def test_divergence_keeps_metrics_and_exits_1(tmp_path, capsys):
    cfg = _with("dynamics.lr", 50.0) | {"model": {"widths": [4, 30, 1], "activation": "identity"}}
    cfg["dynamics"]["steps"] = 400
    cfg["dynamics"]["record_every"] = 1
    out = tmp_path / "out"
    code, _, err = _run_cli(["run", str(_write(tmp_path, cfg)), "--out", str(out)], capsys)
    assert code == 1
    assert "diverged" in err and "Traceback" not in err
    table = pd.read_csv(out / "metrics.csv")
    losses = table[table.measure == "loss"].value.to_numpy()
    assert len(losses) >= 2 and np.all(np.isfinite(losses))
    assert losses[-1] > 1e3 * losses[0]  # it really was blowing up when it stopped
    assert yaml.safe_load((out / "manifest.json").read_text())["status"] == "diverged"


@pytest.mark.parametrize("dynamics", [
    {"kind": "euler", "lr": 0.05, "steps": 30, "record_every": 3},
    {"kind": "flow", "t_end": 2.0, "n_points": 5},
    {"kind": "flow", "t_end": 0.5, "n_points": 3, "method": "rk4", "step_size": 0.01},
])
def test_rerun_is_byte_identical(dynamics, tmp_path, capsys):
    cfg = _with("dynamics", dynamics)
    if dynamics.get("method") != "rk4":  # adaptive solvers need a smooth field (ReLU can stall them)
        cfg["model"]["activation"] = "tanh"
    cfg["ensemble"] = 3
    cfg["measures"] = ["loss", "layer_norms", "conserved", "feedback_angle", "update_angle"]
    path = _write(tmp_path, cfg)
    for name in ("a", "b"):
        code, _, err = _run_cli(["run", str(path), "--out", str(tmp_path / name)], capsys)
        assert code == 0, err
    for f in ("metrics.csv", "manifest.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    manifest = yaml.safe_load((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["environment"]["torch"] and manifest["environment"]["git_commit"]
    table = pd.read_csv(tmp_path / "a" / "metrics.csv")
    assert set(table.member) == {0, 1, 2}


def test_stalled_relu_flow_keeps_records(tmp_path, capsys):
    cfg = _with("dynamics", {"kind": "flow", "t_end": 0.5, "n_points": 5, "max_evaluations": 3000})
    cfg["ensemble"] = 3
    out = tmp_path / "out"
    code, _, err = _run_cli(["run", str(_write(tmp_path, cfg)), "--out", str(out)], capsys)
    if code == 0:  # this seed may never stall; then the run must have reached t_end
        assert pd.read_csv(out / "metrics.csv").time.max() == 0.5
        return
    assert code == 1 and "stalled" in err and "rk4" in err
    assert (pd.read_csv(out / "metrics.csv").time == 0.0).any()


def test_console_script_exit_code():
    """The installed entry point itself (not just main()) exits with 2 and prints no traceback."""
    proc = subprocess.run([sys.executable, "-m", "falab.cli", "reproduce", "P9"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: Invalid paper: 'P9' (expected one of P000, P002, P003, P004, NN, FALAB)"


@pytest.mark.parametrize("kind", ["usf", "frsf", "brsf"])
def test_sign_symmetry_feedback_from_config(kind, tmp_path, capsys):
    """Sign-concordant feedback has <W, B> = sum |W_ij| |B_ij| > 0, so the measured angle stays below 90 degrees at every
    record (a Gaussian B starts near 90); the run must reach its last step."""
    cfg = _with("rule", {"name": "fa", "feedback": {"kind": kind}})
    cfg["measures"] = ["loss", "feedback_angle"]
    out = tmp_path / kind
    code, _, err = _run_cli(["run", str(_write(tmp_path, cfg)), "--out", str(out)], capsys)
    assert code == 0, err
    table = pd.read_csv(out / "metrics.csv")
    angles = table[table.measure == "feedback_angle"].value
    assert len(angles) == 5 and (angles < 89.0).all() and table.step.max() == 20


# ---------------------------------------------------------------------------------------------- hardening (issue 12)


def test_interrupt_exits_130_with_one_line_saying_what_was_kept(tmp_path, capsys, monkeypatch):
    import falab.runs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(falab.runs, "run", interrupted)
    code, _, err = _run_cli(["run", str(_write(tmp_path, BASE)), "--out", str(tmp_path / "out")], capsys)
    assert code == 130
    assert err.strip().splitlines() == ["interrupted: kept --out/metrics.csv with the rows recorded so far "
                                        "(manifest.json says status running; --resume reruns it)"]
    assert not (tmp_path / "out").exists()


def test_allow_large_overrides_the_memory_bound(tmp_path, capsys, monkeypatch):
    import falab._checks

    monkeypatch.setattr(falab._checks, "available_memory", lambda: 1000)  # 1 kB available
    path = _write(tmp_path, BASE)
    code, _, err = _run_cli(["run", str(path), "--out", str(tmp_path / "a")], capsys)
    assert code == 2 and not (tmp_path / "a").exists()
    assert err.startswith("error: Invalid run size: about ") and "(expected at most the 0.0 MB of available memory" in err
    assert err.rstrip().endswith("; --allow-large overrides)")
    code, _, err = _run_cli(["run", str(path), "--out", str(tmp_path / "b"), "--allow-large"], capsys)
    assert code == 0, err
    assert (tmp_path / "b" / "metrics.csv").is_file()


def test_outputs_are_written_atomically_and_symlinks_are_not_followed(tmp_path, capsys):
    from falab._io import atomic_write_text, atomic_writer

    out = tmp_path / "out"
    code, _, err = _run_cli(["run", str(_write(tmp_path, BASE)), "--out", str(out)], capsys)
    assert code == 0, err
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no temporary file left behind
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = out / "link.txt"
    link.symlink_to(victim)
    atomic_write_text(link, "new")  # the link itself is replaced by a regular file
    assert victim.read_text() == "precious" and not link.is_symlink() and link.read_text() == "new"
    with pytest.raises(RuntimeError), atomic_writer(out / "metrics.csv") as fh:
        fh.write("half a file")
        raise RuntimeError("disk full")
    assert (out / "metrics.csv").read_text().startswith("time,step,member,measure,index,value\n")
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_thread_counts_are_clamped_to_the_machine_with_a_warning(tmp_path, capsys, monkeypatch):
    from falab._checks import clamp_threads, machine_cpus

    warnings: list[str] = []
    assert clamp_threads("threads", 100000, warnings.append) == machine_cpus()
    assert warnings == [f"warning: threads = 100000 exceeds the {machine_cpus()} CPU(s) of this machine; using "
                        f"{machine_cpus()}"]
    assert clamp_threads("threads", "1", warnings.append) == 1 and len(warnings) == 1
    monkeypatch.setenv("FALAB_THREADS", "100000")
    code, _, err = _run_cli(["run", str(_write(tmp_path, BASE)), "--out", str(tmp_path / "out")], capsys)
    assert code == 0
    assert err.splitlines()[0].startswith("warning: FALAB_THREADS = 100000 exceeds the ")


def test_one_seed_validator():
    from falab._checks import FalabInputError, check_seed

    assert check_seed("seed", 0) == 0 and check_seed("seed", 2**63 - 1) == 2**63 - 1
    assert check_seed("seed", np.int64(5)) == 5
    for bad in (-1, 2**63, 2**64, True, 1.0, "3", None):
        with pytest.raises(FalabInputError, match=r"^Invalid seed: .* \(expected an integer with 0 <= seed < 2\*\*63\)$"):
            check_seed("seed", bad)


def test_yaml_boundary_accepts_yaml_1_2_floats_and_bom(tmp_path, capsys):
    """`lr: 1e-3` is a number (PyYAML alone reads it as a string, which strict validation would reject); a UTF-8 BOM
    is dropped; the config's own files still load."""
    from falab._io import load_yaml

    assert load_yaml("a: 1e-3\nb: -2E+2\nc: .5\nd: 1.0.0\ne: 12\n") == {"a": 0.001, "b": -200.0, "c": 0.5,
                                                                       "d": "1.0.0", "e": 12}
    text = yaml.safe_dump(BASE).replace("lr: 0.05", "lr: 5e-2")
    p = tmp_path / "bom.yaml"
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())
    code, _, err = _run_cli(["run", str(p), "--out", str(tmp_path / "out")], capsys)
    assert code == 0, err
    configs = Path(__file__).resolve().parents[1] / "configs"
    for name in ("quickstart_fa_flow.yaml", "relu_fa_euler.yaml", "nn_digits.yaml", "nn_mnist1d.yaml"):
        loader = "falab.nn" if name.startswith("nn_") else "falab.runs"
        __import__(loader, fromlist=["load_config"]).load_config(configs / name)


def test_bench_peer_runs_in_its_own_interpreter(tmp_path):
    """The peer is probed and run with its own python (isolated mode); another version is refused; nothing of
    biotorch is imported here."""
    from falab._checks import FalabInputError
    from falab.bench import PEER_SCRIPT, biotorch_setup_command, peer_version, run_peer

    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\nif [ "$2" = "-c" ]; then echo 0.0.16; exit 0; fi\n'
                    'echo \'{"biotorch_fa_over_bp_mlp": 1.04, "biotorch_version": "0.0.16"}\'\n')
    fake.chmod(0o755)
    assert peer_version(fake) == "0.0.16"
    lines: list[str] = []
    assert run_peer(fake, echo=lines.append) == {"biotorch_fa_over_bp_mlp": 1.04}
    fake.write_text("#!/bin/sh\necho 0.1.0\n")
    with pytest.raises(FalabInputError, match=r"^Invalid biotorch version in .*: '0\.1\.0' \(expected 0\.0\.16"):
        peer_version(fake)
    # the peer script itself refuses an environment without the pinned version (here: no biotorch at all)
    proc = subprocess.run([sys.executable, "-I", str(PEER_SCRIPT)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and "error" in proc.stdout
    cmd = biotorch_setup_command()
    assert " -I -m pip install --no-deps --require-hashes -r " in cmd and "biotorch-requirements.txt" in cmd
    req = (PEER_SCRIPT.parent / "biotorch-requirements.txt").read_text()
    assert "biotorch==0.0.16 --hash=sha256:03d6764c8f39110327439e14027155d10c188849cbccc429f0d4a73441dbfccd" in req
    assert "biotorch" not in sys.modules


@pytest.mark.parametrize("command", ["run", "train", "reproduce"])
def test_read_only_out_is_refused_before_anything_runs(command, tmp_path, capsys, monkeypatch):
    """A directory we may not write into (simulated: the tests run as root, which may write anywhere)."""
    import falab._io

    real = falab._io._writable
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(falab._io, "_writable", lambda p: False if Path(p) == ro else real(p))
    args = {"run": ["run", str(_write(tmp_path, BASE))], "train": ["train", str(_write(tmp_path, {"epochs": 1}))],
            "reproduce": ["reproduce", "P004"]}[command]
    code, _, err = _run_cli([*args, "--out", str(ro)], capsys)
    assert code == 2 and err.strip() == f"error: Invalid --out: '{ro}' (expected a writable directory)"
    code, _, err = _run_cli([*args, "--out", str(ro / "new")], capsys)
    assert code == 2 and err.strip() == (f"error: Invalid --out: '{ro / 'new'}' (expected a directory that can be "
                                         f"created ({ro} is not writable))")
    assert list(ro.iterdir()) == []


def test_interrupted_train_keeps_the_finished_runs(tmp_path, capsys, monkeypatch):
    import json

    import falab.nn._train as tr

    real, calls = tr.train_one, []

    def one_then_interrupt(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tr, "train_one", one_then_interrupt)
    cfg = _write(tmp_path, {"models": ["mlp"], "rules": ["bp", "fa"], "seeds": [0], "epochs": 1, "hidden": 8})
    code, _, err = _run_cli(["train", str(cfg), "--out", str(tmp_path / "out")], capsys)
    assert code == 130
    assert err.strip().splitlines()[-1].startswith("interrupted: kept --out/runs.json with every run finished")
    runs = json.loads((tmp_path / "out" / "runs.json").read_text())
    assert [r["rule"] for r in runs] == ["bp"]


def test_every_paper_with_experiments_can_be_chosen_by_reproduce():
    """``falab reproduce PAPER`` accepts every paper key the registry holds (FALAB was once registered but refused)."""
    from falab.cli import PAPER_CHOICES
    from falab.experiments import EXPERIMENTS

    assert {e.paper for e in EXPERIMENTS.values()} == set(PAPER_CHOICES)
