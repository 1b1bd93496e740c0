"""falab sweep (issue 13): expansion and validation, equality with falab run, batching, resume, locking, crash safety
of driver and workers, the manifest, load/statuses, falab plot and the example sweeps.

One 2-worker LocalCluster (single-threaded worker processes) serves the whole module; subprocess drivers reach it
with --scheduler. The test that kills a worker runs last.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from falab._checks import FalabInputError
from falab.cli import main
from falab.sweeps import load, load_sweep, make_batches, parse_sweep, read_manifest, run_sweep, statuses

ROOT = Path(__file__).resolve().parents[1]
TINY: dict[str, Any] = {
    "model": {"widths": [3, 5, 1], "activation": "tanh", "init": {"scheme": "gaussian", "std": 0.5}},
    "data": {"kind": "teacher", "n_samples": 8},
    "rule": {"name": "fa"},
    "loss": {"name": "squared"},
    "dynamics": {"kind": "euler", "lr": 0.05, "steps": 40, "record_every": 10},
    "measures": ["loss", "layer_norms", "conserved", "feedback_angle"],
}
# about 0.3 s per cell: long enough to kill a driver or a worker in the middle of a sweep
SLOW = {**TINY, "model": {"widths": [10, 200, 10], "activation": "tanh"},
        "dynamics": {"kind": "euler", "lr": 0.01, "steps": 1500, "record_every": 100}, "measures": ["loss"]}


@pytest.fixture(scope="module")
def client():
    import logging

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL, env={"OMP_NUM_THREADS": "1", "FALAB_THREADS": "1"}) as cluster, \
            Client(cluster) as c:
        import importlib

        c.run(importlib.import_module, "falab.sweeps._cell")  # the workers' one import of falab and torch
        yield c


def _sweep_file(tmp: Path, doc: dict[str, Any], name: str = "sweep.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _cell_files(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "cells").iterdir())


# ------------------------------------------------------------------------------------------ expansion / validation


def test_grid_and_zip_expand_in_order_with_null_removing_a_field():
    doc = {"base": TINY, "grid": {"model.widths.1": [4, 6], "seed": [0, 1, 2]},
           "zip": [{"rule.name": ["bp", "fa"], "rule.feedback.kind": [None, "gaussian"],
                    "rule.feedback.std": [None, 0.5]}]}
    sw = parse_sweep(doc)
    assert len(sw.cells) == 2 * 3 * 2
    assert sw.axes == ["model.widths.1", "seed", "rule.name", "rule.feedback.kind", "rule.feedback.std"]
    first, last = sw.cells[0], sw.cells[-1]
    assert first.axes == {"model.widths.1": 4, "seed": 0, "rule.name": "bp", "rule.feedback.kind": None,
                          "rule.feedback.std": None}
    assert first.config.rule.name == "bp" and "feedback" not in first.config_json["rule"]
    assert last.config.model.widths == [3, 6, 1] and last.config.seed == 2 and last.config.rule.feedback.std == 0.5
    assert len({c.hash for c in sw.cells}) == 12  # distinct configs, distinct hashes
    assert parse_sweep(doc).cells[5].hash == sw.cells[5].hash  # the hash is a function of the config


MALFORMED = [
    ("unknown field path", {"grid": {"model.init.sdt": [0.1]}}, r"^error: Invalid model\.init\.sdt in sweep cell 0 "),
    ("empty axis", {"grid": {"seed": []}}, r"^error: Invalid sweep axis seed: \[\] \(expected a non-empty list"),
    ("zipped lengths differ", {"zip": [{"seed": [0, 1], "model.init.std": [0.1, 0.2, 0.3]}]},
     r"^error: Invalid sweep zip group 0: seed has 2, model\.init\.std has 3 \(expected zipped axes of one length\)$"),
    ("cell fails validation", {"grid": {"model.init.std": [0.1, -1.0]}},
     r"^error: Invalid model\.init\.std in sweep cell 1 \(model\.init\.std=-1\.0\): "),
    ("list index out of range", {"grid": {"model.widths.7": [3]}},
     r"^error: Invalid sweep axis in sweep cell 0 \(model\.widths\.7=3\): 'model\.widths\.7' \(expected an index below 3 "
     r"into the list model\.widths\)$"),
    ("axis not a list", {"grid": {"seed": 3}}, r"^error: Invalid sweep axis seed: 3 \(expected a list of values\)$"),
    ("no axes", {}, r"^error: Invalid sweep axes: none \(expected at least one axis"),
    ("unknown key", {"grids": {"seed": [0]}}, r"^error: Invalid sweep key: 'grids' \(expected one of base, grid"),
    ("same cell twice", {"grid": {"model.init.std": [0.5, 0.5]}},
     r"^error: Invalid sweep cell 1: model\.init\.std=0\.5 \(expected a run config different .*cell 0 is the same run\)\)$"),
    ("path through a value", {"grid": {"rule.name.x": [1]}}, r"^error: Invalid sweep axis in sweep cell 0 \(rule\.name\.x=1\): 'rule\.name\.x' \(expected a path"),
    ("bad batch", {"grid": {"seed": [0]}, "batch": 0}, r"^error: Invalid sweep batch: 0 \(expected an integer >= 1"),
]


@pytest.mark.parametrize("doc,pattern", [(d, p) for _, d, p in MALFORMED], ids=[i for i, _, _ in MALFORMED])
def test_malformed_sweep_files_give_one_line_and_exit_2(doc, pattern, tmp_path, capsys):
    import re

    path = _sweep_file(tmp_path, {"base": TINY, **doc})
    code, out, err = _cli(["sweep", str(path), "--out", str(tmp_path / "out")], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err + out, err
    assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()  # nothing runs, nothing is written


def test_base_from_a_file_relative_to_the_sweep(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "base.yaml").write_text(yaml.safe_dump(TINY))
    sw = load_sweep(_sweep_file(tmp_path / "configs", {"base": "base.yaml", "grid": {"seed": [0, 1]}}))
    assert [c.config.seed for c in sw.cells] == [0, 1]


def test_batches_group_cells_that_keep_shapes_and_dynamics():
    doc = {"base": TINY, "grid": {"dynamics.lr": [0.01, 0.02], "model.init.std": [0.1, 0.2], "seed": [0, 1, 2]}}
    sw = parse_sweep(doc)
    batches = make_batches(sw.cells, 4)
    assert sorted(len(b) for b in batches) == [2, 2, 4, 4]  # 6 cells per step size, in batches of at most 4
    assert all(len({c.config.dynamics.lr for c in b}) == 1 for b in batches)
    sgd = parse_sweep({"base": {**TINY, "dynamics": {"kind": "sgd", "lr": 0.05, "steps": 4, "batch_size": 4}},
                       "grid": {"seed": [0, 1, 2]}})
    assert [len(b) for b in make_batches(sgd.cells, 8)] == [1, 1, 1]  # per-run minibatch generators: never batched


# ------------------------------------------------------------------------------------------------------- running


def _csv_of_run(cfg: dict[str, Any], out: Path, capsys) -> pd.DataFrame:
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, _, err = _cli(["run", str(path), "--out", str(out)], capsys)
    assert code == 0, err
    return pd.read_csv(out / "metrics.csv")


KEYS = ["time", "step", "member", "measure", "index"]


def test_sweep_equals_falab_run_cell_by_cell_value_for_value(client, tmp_path, capsys):
    doc = {"base": {**TINY, "ensemble": 2}, "grid": {"model.init.std": [0.2, 0.7]},
           "zip": [{"rule.name": ["bp", "fa"], "rule.feedback": [None, {"kind": "gaussian", "std": 0.3}]}]}
    sw = parse_sweep(doc)
    out = tmp_path / "sweep"
    summary = run_sweep(sw, out, client=client, batch=1)
    assert summary.ran == 4 and summary.counts == {"ok": 4} and not summary.failures
    table = load(out)
    assert set(table.columns) == {"cell", *sw.axes, *KEYS, "value"}
    for cell in sw.cells:
        mine = table[table.cell == cell.hash]
        assert (mine["model.init.std"] == cell.axes["model.init.std"]).all()
        ref = _csv_of_run(cell.config_json, tmp_path / f"run{cell.index}", capsys)
        merged = ref.merge(mine, on=KEYS, suffixes=("_run", "_sweep"), validate="one_to_one")
        assert len(merged) == len(ref) == len(mine) > 0
        a, b = merged.value_run.to_numpy(), merged.value_sweep.to_numpy()
        assert np.array_equal(a, b, equal_nan=True)  # value for value, bit for bit


def test_batched_cells_equal_cells_run_alone(client, tmp_path):
    """Cells that differ in seed and init scale, run as one ensemble: Euler steps agree to rounding; a batched flow
    shares one adaptive step-size sequence, so it agrees to the solver tolerance."""
    doc = {"base": TINY, "grid": {"model.init.std": [0.2, 0.7], "seed": [0, 1, 2]}}
    flow = {"base": {**TINY, "dynamics": {"kind": "flow", "t_end": 2.0, "n_points": 5, "rtol": 1e-10, "atol": 1e-12}},
            "grid": {"seed": [0, 1, 2]}}
    for name, d, tol in (("euler", doc, 1e-12), ("flow", flow, 1e-7)):
        sw = parse_sweep(d)
        run_sweep(sw, tmp_path / f"{name}1", client=client, batch=1)
        s = run_sweep(sw, tmp_path / f"{name}6", client=client, batch=6)
        assert s.counts == {"ok": len(sw.cells)}
        batched = [json.loads((tmp_path / f"{name}6" / "cells" / f"{c.hash}.json").read_text())["batched_with"]
                   for c in sw.cells]
        assert batched == [len(sw.cells)] * len(sw.cells)
        merged = load(tmp_path / f"{name}1").merge(load(tmp_path / f"{name}6"), on=["cell", *KEYS], validate="1:1")
        assert len(merged) == len(load(tmp_path / f"{name}1"))
        x, y = merged.value_x.to_numpy(), merged.value_y.to_numpy()
        ok = np.isfinite(x)
        assert np.array_equal(ok, np.isfinite(y))
        assert np.max(np.abs(x[ok] - y[ok]) / np.maximum(np.abs(x[ok]), 1e-3)) < tol, name


def test_failed_cells_do_not_stop_the_others_and_exit_1(client, tmp_path, capsys):
    # a linear network with lr 1e5 diverges; a data file that does not exist fails when the cell builds its data
    doc = {"base": TINY, "zip": [{"dynamics.lr": [0.05, 1e5, 0.05, 0.05],
                                  "model.activation": ["tanh", "identity", "tanh", "tanh"],
                                  "data.kind": ["teacher", "teacher", "file", "teacher"],
                                  "data.n_samples": [8, 8, None, 6],
                                  "data.path": [None, None, str(tmp_path / "missing.npz"), None]}]}
    path = _sweep_file(tmp_path, doc)
    out = tmp_path / "out"
    address = client.scheduler.address
    code, stdout, err = _cli(["sweep", str(path), "--out", str(out), "--scheduler", address], capsys)
    assert code == 1 and "Traceback" not in err
    assert "4 cells: 1 diverged, 1 error, 2 ok" in stdout
    assert "cell 1 (" in err and "diverged: non-finite" in err and "cell 2 (" in err and "error:" in err
    assert err.strip().splitlines()[-1] == "error: 2 of 4 cells failed"
    st = statuses(out).set_index("index")
    assert list(st.status) == ["ok", "diverged", "error", "ok"]
    assert "missing.npz" in st.message[2]
    table = load(out)
    assert set(table.cell) == set(st.hash[[0, 1, 3]])  # the diverged cell keeps the records before its divergence
    assert set(load(out, statuses_of=("ok",)).cell) == set(st.hash[[0, 3]])
    # a rerun retries the error cell only (diverged is a finished outcome)
    summary = run_sweep(load_sweep(path), out, client=client)
    assert (summary.skipped, summary.ran, [f["index"] for f in summary.failures]) == (3, 1, [2])


def test_resume_skips_finished_cells_and_a_changed_sweep_is_refused(client, tmp_path, capsys):
    path = _sweep_file(tmp_path, {"base": TINY, "grid": {"seed": [0, 1, 2]}})
    out = tmp_path / "out"
    first = run_sweep(load_sweep(path), out, client=client)
    assert (first.skipped, first.ran) == (0, 3)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    again = run_sweep(load_sweep(path), out, client=client)
    assert (again.skipped, again.ran) == (3, 0)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()} == stamps  # nothing rewritten
    path.write_text(path.read_text().replace("- 2", "- 2\n  - 3"))
    code, _, err = _cli(["sweep", str(path), "--out", str(out), "--scheduler", client.scheduler.address], capsys)
    assert code == 2 and err.strip().startswith("error: Invalid sweep file: ")
    assert "--resume-changed" in err and len(err.strip().splitlines()) == 1
    changed = run_sweep(load_sweep(path), out, client=client, resume_changed=True)
    assert (changed.skipped, changed.ran) == (3, 1)
    manifest = read_manifest(out)
    assert len(manifest["cells"]) == 4 and len(manifest["history"]) == 3
    assert len(load(out).cell.unique()) == 4


def test_manifest_records_sweep_hashes_versions_and_the_imported_commit(client, tmp_path):
    path = _sweep_file(tmp_path, {"base": TINY, "grid": {"seed": [0, 1]}})
    out = tmp_path / "out"
    sw = load_sweep(path)
    run_sweep(sw, out, client=client)
    text = (out / "sweep.json").read_text()
    manifest = json.loads(text)
    assert manifest["sweep_text"] == path.read_text()
    assert [c["hash"] for c in manifest["cells"]] == [c.hash for c in sw.cells]
    assert manifest["packages"]["dask"] and manifest["packages"]["torch"] and manifest["packages"]["pyarrow"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert manifest["git_commit"].split("+")[0] == head
    for p in (out / "cells").glob("*.json"):
        assert "NaN" not in p.read_text() and "Infinity" not in p.read_text()
    dataset = load(out, as_dataset=True)
    assert dataset.count_rows() == len(load(out))


@pytest.mark.slow  # a fresh interpreter importing falab: ~15 s on a loaded machine
def test_git_commit_is_unknown_for_a_package_not_tracked_by_the_enclosing_repository(tmp_path):
    """An installed copy inside some other git repository must not report that repository's commit."""
    import shutil

    repo = tmp_path / "other"
    (repo / "site").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q",
                    "--allow-empty", "-m", "x"], check=True)
    shutil.copytree(ROOT / "src" / "falab", repo / "site" / "falab")
    code = "from falab.runs import git_commit; print(git_commit())"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(repo / "site")}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "unknown"


def _start_driver(path: Path, out: Path, address: str) -> subprocess.Popen:
    env = {**os.environ, "FALAB_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "falab.cli", "sweep", str(path), "--out", str(out), "--scheduler",
                             address], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(cond, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_a_second_writer_is_refused_and_touches_nothing(client, tmp_path, capsys):
    """A live process holding OUT/.falab.lock (here a sleeping child) keeps every other sweep out."""
    path = _sweep_file(tmp_path, {"base": TINY, "grid": {"seed": [0, 1]}})
    out = tmp_path / "out"
    run_sweep(load_sweep(path), out, client=client)
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    holder = subprocess.Popen(["sleep", "60"])
    try:
        (out / ".falab.lock").write_text(str(holder.pid))
        code, _, err = _cli(["sweep", str(path), "--out", str(out), "--scheduler", client.scheduler.address], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert f"process {holder.pid} holds .falab.lock" in err
    finally:
        holder.kill()
        holder.wait()
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".falab.lock"} == {
        k: v for k, v in before.items() if k != ".falab.lock"}
    assert run_sweep(load_sweep(path), out, client=client).skipped == 2  # a dead holder's lock is taken over


@pytest.mark.slow  # a subprocess driver (a fresh interpreter importing falab and dask) and 8 cells of ~0.3 s
def test_second_writer_refused_then_driver_killed_then_rerun_completes(client, tmp_path, capsys):
    path = _sweep_file(tmp_path, {"base": SLOW, "grid": {"seed": list(range(8))}})
    out = tmp_path / "out"
    proc = _start_driver(path, out, client.scheduler.address)
    try:
        _wait_for(lambda: len(list((out / "cells").glob("*.json"))) >= 2 if (out / "cells").is_dir() else False)
        done = {p.name: p.read_bytes() for p in (out / "cells").iterdir() if not p.name.startswith(".")}
        # a second sweep into the same directory is refused, touching nothing
        code, _, err = _cli(["sweep", str(path), "--out", str(out), "--scheduler", client.scheduler.address], capsys)
        assert code == 2 and "holds .falab.lock" in err and len(err.strip().splitlines()) == 1
        with pytest.raises(FalabInputError, match="holds .falab.lock"):
            run_sweep(load_sweep(path), out, client=client)
        for name, data in done.items():
            assert (out / "cells" / name).read_bytes() == data
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = len(statuses(out).query("status == 'ok'"))
    assert 2 <= before < 8  # killed mid-sweep
    summary = run_sweep(load_sweep(path), out, client=client)  # the stale lock of the dead driver is taken over
    assert summary.skipped >= before and summary.skipped + summary.ran == 8 and not summary.failures
    _wait_for(lambda: not any(client.processing().values()))
    names = _cell_files(out)
    assert not [n for n in names if n.startswith(".")]  # no partial (temporary) file
    hashes = [c.hash for c in load_sweep(path).cells]
    assert names == sorted([f"{h}.json" for h in hashes] + [f"{h}.parquet" for h in hashes])
    table = load(out)
    assert sorted(table.groupby("cell").size().unique()) == [16]  # every cell once: 16 loss records


# --------------------------------------------------------------------------------------------------------- plots


def test_plot_lines_curves_heat_maps_and_bad_options(client, tmp_path, capsys):
    doc = {"base": TINY, "grid": {"model.init.std": [0.1, 0.3, 1.0], "model.widths.1": [3, 6], "seed": [0, 1]}}
    out = tmp_path / "sw"
    run_sweep(parse_sweep(doc), out, client=client, batch=4)
    for args, name in ((["--x", "model.init.std", "--y", "loss", "--hue", "model.widths.1"], "loss_vs_model.init.std"),
                       (["--x", "time", "--y", "layer_norms:1", "--facet", "model.widths.1"], "layer_norms_1_vs_time"),
                       (["--x", "model.init.std", "--heat", "model.widths.1", "--y", "loss"],
                        "loss_vs_model.init.std_model.widths.1"),
                       (["--x", "model.init.std", "--y", "loss", "--threshold", "0.5"], "loss_vs_model.init.std")):
        code, stdout, err = _cli(["plot", str(out), *args], capsys)
        png = out / "figures" / f"{name}.png"
        assert code == 0, err
        assert stdout.strip() == f"wrote {png}" and png.read_bytes()[:4] == b"\x89PNG"
    for args, pattern in ((["--x", "nope", "--y", "loss"], "Invalid --x: 'nope' (expected one of the sweep's axes"),
                          (["--x", "seed", "--y", "accuracy"], "Invalid --y: 'accuracy' (expected a recorded measure"),
                          (["--x", "seed", "--y", "loss", "--hue", "seed"], "(expected different axes)")):
        code, _, err = _cli(["plot", str(out), *args], capsys)
        assert code == 2 and pattern in err and len(err.strip().splitlines()) == 1, err
    from falab.plots._sweeps import final_values

    table = load(out)
    finals = final_values(table[(table.measure == "loss") & (table["index"] == 0)])
    assert len(finals) == 12 and (finals.time == 40 * 0.05).all()


# ------------------------------------------------------------------------------------------------ example sweeps


def _tiny(example: Path) -> dict[str, Any]:
    """An example sweep with two values per axis and a short horizon (the real ones take minutes)."""
    doc = yaml.safe_load(example.read_text())
    base = doc["base"]
    dyn = base["dynamics"]
    if dyn["kind"] == "flow":
        dyn.update(t_end=1.0, n_points=3)
    else:
        dyn.update(steps=10, record_every=5)
    if base["data"]["kind"] == "digits":
        base["data"]["n_samples"] = 100
    doc["grid"] = {k: v[:2] for k, v in doc.get("grid", {}).items()}
    doc["zip"] = [{k: v[:2] for k, v in z.items()} for z in doc.get("zip", [])]
    return doc


@pytest.mark.parametrize("name", ["p000_minnorm", "p003_fa_vs_gd_speed", "digits_rule_lr"])
def test_example_sweeps_validate_and_run_tiny(name, client, tmp_path):
    example = ROOT / "configs" / "sweeps" / f"{name}.yaml"
    full = load_sweep(example)  # the real sweep validates
    assert len(full.cells) >= 18
    tiny = parse_sweep(_tiny(example))
    summary = run_sweep(tiny, tmp_path / name, client=client)
    assert summary.counts == {"ok": len(tiny.cells)}, summary.failures
    table = load(tmp_path / name)
    named = {m if isinstance(m, str) else f"distance_to_{m.predictor}" for m in full.cells[0].config.measures}
    assert set(table.measure) == named
    if name == "p000_minnorm":  # from W1 != 0 the FA limit is near, not at, X^+ y
        d = table[table.measure == "distance_to_pinv"]
        assert np.isfinite(d.value).all() and (d.value > 0).all()


# ------------------------------------------------------------------------------------ killed worker (runs last)


@pytest.mark.slow  # the nanny restarts the killed worker, which imports falab and torch again
def test_a_worker_killed_mid_task_is_retried_and_the_sweep_completes(client, tmp_path):
    path = _sweep_file(tmp_path, {"base": SLOW, "grid": {"seed": list(range(6))}})
    out = tmp_path / "out"
    result: dict[str, Any] = {}
    driver = threading.Thread(target=lambda: result.update(s=run_sweep(load_sweep(path), out, client=client)))
    driver.start()
    _wait_for(lambda: any(client.processing().values()))
    time.sleep(0.2)
    busy = next(addr for addr, keys in client.processing().items() if keys)
    pid = client.run(os.getpid, workers=[busy])[busy]
    os.kill(pid, signal.SIGKILL)
    driver.join(timeout=300)
    assert not driver.is_alive()
    summary = result["s"]
    assert summary.counts == {"ok": 6} and not summary.failures
    assert not [n for n in _cell_files(out) if n.startswith(".")]
    assert len(load(out).cell.unique()) == 6
    client.wait_for_workers(2, timeout=120)
