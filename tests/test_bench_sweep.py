"""The sweep benchmark (issue 13) through ``falab bench --quick --only sweep``: its routes (``falab sweep`` on 2 dask
workers, ``falab run`` processes, in-process runs) must give the same values for the same cells, and a batched flow
must stay within the solver tolerance of one-cell tasks. Rates are reported, never asserted."""

from __future__ import annotations

import json

import pytest

from falab.bench import BENCHES, check_only
from falab.bench._sweep import QUICK_SWEEP, SWEEP
from falab.cli import main
from falab.sweeps import parse_sweep


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_sweep_sizes_are_the_issue_s():
    assert len(parse_sweep(SWEEP).cells) == 64
    assert len(parse_sweep(QUICK_SWEEP).cells) == 8


@pytest.mark.parametrize("only", ["", "sweeps", "core,bogus", "core,"])
def test_only_names_a_known_group_or_exit_2(only, capsys, tmp_path):
    with pytest.raises(Exception, match=r"Invalid --only"):
        check_only(only)
    code, _, err = _cli(["bench", "--only", only, "--json", str(tmp_path / "r.json")], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: Invalid --only: ")
    assert not (tmp_path / "r.json").exists()
    assert check_only("sweep,flows") == ("sweep", "flows") and check_only(None) == BENCHES


def test_quick_sweep_bench_routes_agree_value_for_value(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FALAB_THREADS", "1")
    target = tmp_path / "bench.json"
    code, out, err = _cli(["bench", "--quick", "--only", "sweep", "--json", str(target)], capsys)
    assert code == 0, err
    r = json.loads(target.read_text())
    assert r["sweep_cells"] == 8
    # every cell: falab sweep == in-process falab.runs.run; the first two also == a `falab run` process; bit for bit
    assert r["sweep_route_max_abs_diff"] == 0.0
    # 8 flows as one ensemble share one adaptive step sequence: equal to one-cell tasks within the solver tolerance,
    # yet not identical (it is a different integration)
    assert 0.0 < r["batched_flow_max_rel_diff"] < 1e-7  # rtol 1e-10, as in test_sweeps
    rates = [k for k in r if k.endswith("_cells_per_s")]
    assert set(rates) == {"sweep_cli_cells_per_s", "run_loop_cells_per_s", "inprocess_cells_per_s",
                          "inprocess_batch1_cells_per_s", "inprocess_batch8_cells_per_s"}
    assert all(r[k] > 0 for k in rates) and r["batching_gain_8"] > 0
    assert "sweep of 8 small flows" in out and "routes agree to 0.0e+00" in out
