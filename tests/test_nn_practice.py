"""The practice benchmarks of falab.nn: reference models, the fair protocol (per-rule tuning on validation, paired
intervals), the sequence benchmarks, and (slow) BP on MNIST-1D against the published accuracies."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from falab.experiments._registry import RunContext
from falab.experiments.nn_practice import _baseline_rows, _configs
from falab.instruments._stats import bootstrap_interval
from falab.nn._baselines import PUBLISHED, REFERENCE_TRAINER
from falab.nn._data import PYSTDLIB_FILES, PYSTDLIB_VOCAB, load_split, pystdlib_source
from falab.nn._train import (
    RefCNN,
    RefMLP,
    RefMLP256,
    build_model,
    choose,
    load_config,
    summarise,
    train_from_config,
)

TINY = {"steps": 4, "eval_every": 2, "batch_size": 16, "select": "final", "refit": True, "rules": ["bp", "dfa"],
        "seeds": [0, 1], "tune": {"lr": [1e-3, 1e-2], "seeds": [7]},
        "transformer": {"d_model": 8, "heads": 2, "layers": 1, "ff": 16}}


def test_reference_models_have_the_published_architectures():
    """MNIST-1D's notebooks print 15,210 parameters for MLPBase and 5,210 for ConvBase (40 inputs, 10 classes);
    MLPBase at get_model_args' hidden_size 256 has 40*256+256 + 256*256+256 + 256*10+10 = 78,858."""
    assert sum(p.numel() for p in RefMLP(40, 10).parameters()) == 15210
    assert sum(p.numel() for p in RefMLP256(40, 10).parameters()) == 78858
    cnn = RefCNN(40, 10)
    assert sum(p.numel() for p in cnn.parameters()) == 5210
    assert cnn(torch.randn(3, 40)).shape == (3, 10)


@pytest.mark.parametrize("dataset,models", [("digits", ["mlp", "cnn"]),
                                            ("mnist1d", ["mlp_ref", "mlp_ref256", "cnn_ref", "transformer"]),
                                            ("pystdlib", ["transformer"])])
def test_each_benchmark_model_trains_under_the_protocol_and_writes_table_and_figure(tmp_path, dataset, models):
    res = train_from_config({**TINY, "datasets": [dataset], "models": models}, tmp_path)
    md = (tmp_path / "summary.md").read_text()
    for mk in models:
        assert (tmp_path / f"nn_curves_{dataset}_{mk}.png").stat().st_size > 1000
        assert f"| {dataset} | {mk} | dfa |" in md
    tuning = json.loads((tmp_path / "tuning.json").read_text())
    assert set(tuning) == {f"{dataset}/{mk}/{r}" for mk in models for r in ("bp", "dfa")}
    runs = res["runs"]
    tune = [r for r in runs if r["phase"] == "tune"]
    test = [r for r in runs if r["phase"] == "test"]
    assert len(tune) == 2 * 2 * len(models) and len(test) == 2 * 2 * len(models)
    assert all(r["test_acc"] is None for r in tune)  # tuning never reads the test split
    for r in test:  # evaluation runs: refit on train + validation, at the chosen rate, the same budget for all
        assert r["refit"] and r["steps"] == 4 and r["lr"] == tuning[f"{dataset}/{r['model']}/{r['rule']}"][
            "chosen_lr"]
        assert r["train_size"] == len(load_split(dataset).y_train) + len(load_split(dataset).y_val)
    lm = dataset == "pystdlib"
    for row in res["summary"]:
        assert math.isfinite(row["test_acc_low"]) and row["test_acc_low"] <= row["test_acc_mean"] <= row[
            "test_acc_high"]
        assert math.isfinite(row["test_bpc_mean"]) == lm
        if row["rule"] == "dfa":
            assert math.isfinite(row["gap_low"]) and row["gap_low"] <= row["gap_high"]


def test_paired_interval_is_the_bootstrap_of_per_seed_differences():
    def run(rule, seed, acc, status="ok"):
        return {"dataset": "d", "model": "m", "rule": rule, "seed": seed, "phase": "test", "status": status,
                "lr": 0.01, "momentum": None, "test_acc": acc if status == "ok" else None, "test_bpc": None,
                "val_acc": 50.0, "final_angle": 40.0, "final_update_angle": 30.0, "seconds": 1.0}

    bp = [70.0, 72.0, 71.0, 69.0, 73.0]
    fa = [65.0, 70.0, 64.0, 66.0, 69.0]
    runs = [run("bp", s, a) for s, a in enumerate(bp)] + [run("fa", s, a) for s, a in enumerate(fa)]
    runs.append(run("fa", 5, 0.0, status="failed"))
    rows = {r["rule"]: r for r in summarise(runs)}
    diffs = [f - b for f, b in zip(fa, bp)]
    iv = bootstrap_interval(diffs)
    assert rows["fa"]["gap_to_bp"] == pytest.approx(np.mean(diffs), abs=1e-12)
    assert (rows["fa"]["gap_low"], rows["fa"]["gap_high"]) == (iv.low, iv.high)
    assert rows["fa"]["seeds"] == 5 and rows["fa"]["failed"] == 1
    # the paired interval is narrower than the difference of two unpaired intervals here (correlated seeds)
    assert iv.high - iv.low < (rows["fa"]["test_acc_high"] - rows["fa"]["test_acc_low"]) + (
        rows["bp"]["test_acc_high"] - rows["bp"]["test_acc_low"])


def test_choice_is_the_best_validation_mean_and_never_a_diverged_point():
    def t(lr, val, status="ok"):
        return {"lr": lr, "momentum": None, "status": status, "val_acc": val, "val_bpc": None}

    runs = [t(1e-3, 60.0), t(1e-3, 62.0), t(1e-2, 70.0), t(1e-2, 0.0, "failed"), t(3e-3, 64.0), t(3e-3, 63.0)]
    lr, mom, table = choose(runs, lm=False)
    assert lr == 3e-3 and mom is None and table["0.01"] is None and table["0.003"] == pytest.approx(63.5)
    lm_runs = [{"lr": a, "momentum": None, "status": "ok", "val_acc": 1.0, "val_bpc": b} for a, b in
               ((1e-3, 3.0), (3e-3, 2.5))]
    assert choose(lm_runs, lm=True)[0] == 3e-3  # fewer bits per character is better
    with pytest.raises(ValueError):
        choose([t(1e-2, 0.0, "failed")], lm=False)


def test_pystdlib_split_is_fixed_disjoint_and_recorded():
    assert not set(PYSTDLIB_FILES["train"]) & (set(PYSTDLIB_FILES["val"]) | set(PYSTDLIB_FILES["test"]))
    s = load_split("pystdlib")
    assert s.task == "lm" and s.x_train.dtype == torch.int64 and s.x_train.shape[1] == 49
    assert int(s.x_train.min()) >= 0 and int(s.x_train.max()) < PYSTDLIB_VOCAB
    src = pystdlib_source()
    assert src["train"]["chars"] >= 48 * len(s.y_train) and len(src["train"]["sha256"]) == 16
    model = build_model("transformer", s, 8, load_config({"datasets": ["pystdlib"], "models": ["transformer"]}
                                                         ).transformer)
    out = model(s.x_val[:2, :-1])
    assert out.shape == (2, 48, PYSTDLIB_VOCAB)
    # causal: the prediction at position t does not depend on characters after t
    x = s.x_val[:1, :-1].clone()
    y0 = model(x)[0, 10].detach()
    x[0, 11:] = 0
    assert torch.allclose(model(x)[0, 10], y0, atol=1e-6)


def test_full_protocol_declares_grids_seeds_and_one_budget_per_benchmark(tmp_path):
    cfgs = _configs(RunContext(quick=False, out_dir=tmp_path, seeds=(0, 1, 2)))
    assert [c["name"] for c in cfgs] == ["nn_digits", "nn_mnist1d", "nn_mnist1d_printed", "nn_sequence"]
    for c in cfgs:
        cfg = load_config(c)
        assert len(cfg.seeds) >= 5 and cfg.select == "final" and cfg.refit
        if c["name"] != "nn_mnist1d_printed":  # every rule comparison tunes per rule
            assert cfg.tune is not None and len(cfg.tune.lr) >= 2
    mn, printed = load_config(cfgs[1]), load_config(cfgs[2])
    assert (mn.steps, mn.batch_size, mn.optimizer.name) == (8000, 100, "adam") and 1e-2 in mn.tune.lr
    # the rules are compared on the MLP whose BP meets the published 68 %; the printed MLP is a BP baseline row at
    # the reference budget and learning rate
    assert mn.models == ["mlp_ref256", "cnn_ref"] and all(m in PUBLISHED for m in [("mnist1d", k) for k in mn.models])
    assert (printed.models, printed.rules, printed.tune) == (["mlp_ref"], ["bp"], None)
    assert (printed.steps, printed.batch_size, printed.optimizer.lr) == (8000, 100, 1e-2)
    quick = _configs(RunContext(quick=True, out_dir=tmp_path, seeds=(0, 1, 2)))
    assert len(quick) == 1 and quick[0]["epochs"] == 5


def test_baseline_rows_put_each_mnist1d_mlp_beside_its_own_reference():
    """mlp_ref256 and cnn_ref are checked against the published 68 / 94 %; the printed 100-wide mlp_ref against the
    dataset's own trainer measured on it (64.82 %), so a 65 % BP is "within 2 points" of its reference there and a
    rule comparison on mlp_ref256 needs BP within 2 points of 68 %."""
    def row(model, acc):
        return {"dataset": "mnist1d", "model": model, "rule": "bp", "test_acc_mean": acc, "test_acc_low": acc - 1,
                "test_acc_high": acc + 1}

    lines, numbers = _baseline_rows([row("mlp_ref", 65.3), row("mlp_ref256", 65.3), row("cnn_ref", 92.5)], {})
    assert numbers["reference_acc_mnist1d_mlp_ref"] == REFERENCE_TRAINER[("mnist1d", "mlp_ref")][0] == 64.82
    assert numbers["reference_acc_mnist1d_mlp_ref256"] == 68.0 and numbers["reference_acc_mnist1d_cnn_ref"] == 94.0
    assert numbers["bp_minus_reference_mnist1d_mlp_ref256"] == pytest.approx(-2.7)
    verdicts = {ln.split(" | ")[1]: ln.rstrip(" |").rsplit(" | ", 1)[-1] for ln in lines[2:]}
    assert verdicts == {"mlp_ref": "yes", "mlp_ref256": "NO", "cnn_ref": "yes"}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mlp_ref256", "cnn_ref"])
def test_bp_on_mnist1d_within_two_points_of_the_published_accuracies(tmp_path, model):
    """The models the rules are compared on, at the reference budget (Adam 1e-2, batch 100, 8000 steps, final
    weights, 4000 training examples, the 1000 test examples), 3 seeds: BP's mean within 2 points of 68 % (the
    256-wide reference MLP; measured 69.17 %: 69.3, 70.5, 67.7) and 94 % (CNN; 92.50 % [92.22, 92.88] over 5
    seeds). The printed 100-wide MLP is not held to 68 %: the dataset's own trainer gives 64.82 % on it, and falab's
    protocol agrees with that trainer (tests/test_nn_mnist1d_reference.py)."""
    res = train_from_config({"datasets": ["mnist1d"], "models": [model], "rules": ["bp"],
                             "seeds": [0, 1, 2], "steps": 8000, "eval_every": 4000, "batch_size": 100,
                             "select": "final", "refit": True, "optimizer": {"name": "adam", "lr": 1e-2},
                             "split": {"standardize": False}}, Path(tmp_path))
    (row,) = res["summary"]
    assert row["seeds"] == 3 and row["failed"] == 0
    assert abs(row["test_acc_mean"] - PUBLISHED[("mnist1d", model)]) <= 2.0, row["test_acc_mean"]
