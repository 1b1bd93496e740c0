"""Every example config in configs/*.yaml runs (``falab run`` configs in-process) and gives the number it is there
for: a distance to its predictor, a conserved quantity, a stop time. A new config must add its check here (the set of
files is asserted). configs/sweeps/ is tested by the sweeps suite."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from falab.runs import load_config, run
from falab.runs._runner import RunResult

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _final(res: RunResult, name: str) -> torch.Tensor:
    return res.trajectory.metric(name)[-1].reshape(-1)


def _stop(res: RunResult) -> dict:
    stop = json.loads((res.out_dir / "manifest.json").read_text())["solver"]["stop"]
    assert stop is not None, "the run was expected to end at its stop condition"
    return stop


def _conserved_drift(res: RunResult) -> float:
    c = res.trajectory.metric("conserved").reshape(len(res.trajectory.times), -1)
    return float((c - c[0]).abs().max() / c[0].abs().max().clamp_min(1.0))


def quickstart_fa_flow(res: RunResult) -> None:
    # P000: FA's flow conserves W1 W1^T - B W2 - W2^T B^T (here measured to the solver's tolerance), loss -> 0
    assert _conserved_drift(res) <= 1e-7
    assert float(_final(res, "loss")[0]) <= 1e-6 * float(res.trajectory.metric("loss")[0].reshape(-1)[0])


def relu_fa_euler(res: RunResult) -> None:
    # Euler adds 0.5 eta^2 sum ||G||^2 >= 0 to the conserved quantity per step: it grows, the loss falls
    c = res.trajectory.metric("conserved").reshape(len(res.trajectory.times), -1)[:, 0]
    assert bool((c[1:] >= c[:-1] - 1e-12).all()) and float(c[-1] - c[0]) > 1e-3
    assert float(_final(res, "loss")[0]) < 0.01 * float(res.trajectory.metric("loss")[0].reshape(-1)[0])


def diagonal_fa_flow(res: RunResult) -> None:
    stop = _stop(res)  # FA on a depth-3 diagonal network, stopped when the loss reaches 1e-12
    assert stop["reason"] == "loss" and abs(stop["time"] / 966.7629 - 1) < 1e-4
    assert abs(float(_final(res, "loss")[0]) - 1e-12) <= 1e-15


def _theorem6(res: RunResult) -> None:
    assert _stop(res)["reason"] == "loss"
    assert float(_final(res, "distance_to_theorem6")[0]) <= 1e-9  # measured 3.3e-12 (fc), 8.3e-12 (conv)


def fully_connected_gd_theorem6(res: RunResult) -> None:
    _theorem6(res)
    assert float(_final(res, "distance_to_min_l2")[0]) > 0.1  # the limit is not the min-norm solution here


def matfac_fa_star_flow(res: RunResult) -> None:
    stop = _stop(res)  # FA* reaches the rank-2 target: loss 1e-20 at t ~ 8.1
    assert stop["reason"] == "loss" and 5.0 < stop["time"] < 12.0


def deep_linear_fa_trapezoid(res: RunResult) -> None:
    assert _conserved_drift(res) <= 1e-12  # exact for the modified scheme (P003 eqs 24-25); Euler drifts O(eta^2)
    assert float(_final(res, "loss")[0]) < 1e-3 * float(res.trajectory.metric("loss")[0].reshape(-1)[0])


def mlp_brsf_sgd(res: RunResult) -> None:
    loss = res.trajectory.metric("loss").reshape(-1)
    assert float(loss[-1]) < 0.2 * float(loss[0])
    angles = _final(res, "feedback_angle")
    assert bool(((angles > 0) & (angles < 90)).all())  # sign-concordant feedback: aligned within 90 degrees


def mlp_dfa_euler(res: RunResult) -> None:
    stop = _stop(res)
    assert stop["reason"] == "loss" and stop["step"] == 1868 and float(_final(res, "loss")[0]) <= 5e-3


def matrix_sensing_gd_euler(res: RunResult) -> None:
    stop = _stop(res)
    assert stop["reason"] == "loss" and stop["step"] == 991 and float(_final(res, "loss")[0]) <= 1e-10


RUN_CHECKS: dict[str, Callable[[RunResult], None]] = {
    "quickstart_fa_flow": quickstart_fa_flow,
    "relu_fa_euler": relu_fa_euler,
    "diagonal_fa_flow": diagonal_fa_flow,
    "fully_connected_gd_theorem6": fully_connected_gd_theorem6,
    "circular_conv_gd_theorem6": _theorem6,
    "matfac_fa_star_flow": matfac_fa_star_flow,
    "deep_linear_fa_trapezoid": deep_linear_fa_trapezoid,
    "mlp_brsf_sgd": mlp_brsf_sgd,
    "mlp_dfa_euler": mlp_dfa_euler,
    "matrix_sensing_gd_euler": matrix_sensing_gd_euler,
}
OTHER_COMMANDS = {"laws_atlas": "laws", "nn_digits": "train", "nn_mnist1d": "train", "nn_mnist1d_ref256": "train",
                  "nn_sequence": "train"}


def test_every_config_file_is_checked() -> None:
    names = {p.stem for p in CONFIGS.glob("*.yaml")}
    assert names == set(RUN_CHECKS) | (set(OTHER_COMMANDS) & names)
    assert set(OTHER_COMMANDS) & names >= {"laws_atlas", "nn_digits"}


@pytest.mark.parametrize("name", sorted(RUN_CHECKS))
def test_example_config_runs_and_gives_its_number(name: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    res = run(load_config(CONFIGS / f"{name}.yaml"), tmp_path / "out")
    assert res.trajectory.status == "ok"
    RUN_CHECKS[name](res)


def test_brsf_config_reruns_identically(tmp_path: Path) -> None:
    """brSF's per-step draws come from the seed: two runs write the same metrics.csv, byte for byte."""
    cfg = load_config(CONFIGS / "mlp_brsf_sgd.yaml")
    a, b = run(cfg, tmp_path / "a"), run(cfg, tmp_path / "b")
    assert (a.out_dir / "metrics.csv").read_bytes() == (b.out_dir / "metrics.csv").read_bytes()


@pytest.mark.parametrize("name", sorted(OTHER_COMMANDS))
def test_configs_of_other_commands_parse(name: str) -> None:
    path = CONFIGS / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"{path.name} not present")
    if OTHER_COMMANDS[name] == "laws":
        from falab.laws._atlas import load_atlas

        assert load_atlas(path).entries
    else:
        from falab.nn._train import load_config as load_train

        assert load_train(path).rules


@pytest.mark.parametrize("method", ["events", "auto", "dop853-members", "dopri5-members"])
def test_run_config_accepts_falabs_flow_routes(method: str, tmp_path: Path) -> None:
    """``dynamics.method`` of a run config names falab's own routes too; on the quick-start FA flow each gives DOP853's
    final loss (rtol 1e-10) to 1e-8 relative and conserves FA's law as the config's own check demands."""
    torch.set_num_threads(1)
    cfg = yaml.safe_load((CONFIGS / "quickstart_fa_flow.yaml").read_text())
    ref = run(cfg, tmp_path / "ref")
    cfg["dynamics"]["method"] = method
    res = run(cfg, tmp_path / method)
    assert res.trajectory.status == "ok"
    # the route ran (auto picks DOP853 for this smooth, non-stiff flow and says it was asked for auto)
    assert res.trajectory.info.get("requested", res.trajectory.info["solver"]) == method
    a, b = float(_final(ref, "loss")[0]), float(_final(res, "loss")[0])
    assert abs(b - a) <= 1e-8 * abs(a), (a, b)
    quickstart_fa_flow(res)
