"""MNIST-1D's own training protocol (``tests/mnist1d_reference.py``) against the published 68 % MLP and against
falab's protocol. The facts, one test each: falab's reference MLPs are MNIST-1D's ``MLPBase`` (fast); with its own
trainer, the 100-wide MLP the notebooks print misses 68 % by more than 2 points (slow); falab's protocol gives what
that trainer gives on it (slow); at ``get_model_args``' ``hidden_size=256`` the same trainer is within 2 points of
68 % (slow). That falab's BP on the 256-wide MLP is within 2 points of 68 % is the slow test of
``tests/test_nn_practice.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from falab.instruments import bootstrap_interval
from falab.nn._baselines import PUBLISHED, REFERENCE_TRAINER
from falab.nn._train import RefMLP, RefMLP256, train_from_config
from mnist1d_reference import MLPBase, default_dataset, train_reference_mlp

SEEDS = [42, 43, 44, 45, 46]  # get_model_args' seed 42 and the next four
PUBLISHED_MLP = PUBLISHED[("mnist1d", "mlp_ref256")]  # the README's 68 %


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return default_dataset()


@pytest.fixture(scope="module")
def printed(data):
    """The reference trainer's test accuracies of the printed ``MLPBase(40, 10)`` (15,210 parameters), seeds 42-46."""
    return [train_reference_mlp(data, s) for s in SEEDS]


@pytest.mark.parametrize("hidden,ours", [(100, RefMLP), (256, RefMLP256)])
def test_reference_mlp_is_falabs_mlp_ref(hidden, ours):
    """Same layers, same initialisation from the same seed, same function (``mlp_ref``: width 100; ``mlp_ref256``:
    width 256)."""
    torch.manual_seed(3)
    ref = MLPBase(40, 10, hidden)
    torch.manual_seed(3)
    mine = ours(40, 10)
    assert [p.shape for p in ref.parameters()] == [p.shape for p in mine.parameters()]
    x = torch.randn(7, 40)
    assert torch.equal(ref(x), mine(x))


@pytest.mark.slow
def test_the_dataset_trainer_on_the_printed_mlp_misses_the_published_68_by_more_than_two_points(printed):
    """The reference trainer with its own defaults (``MLPBase(40, 10)``, Adam 1e-2, batch 100, 8001 steps in fixed
    order, final weights) on the locally generated default data set: measured 64.82 % [64.28, 65.26] over seeds
    42-46 (64.80, 63.80, 65.50, 64.90, 65.10), the number ``falab.nn._baselines.REFERENCE_TRAINER`` records."""
    iv = bootstrap_interval(printed)
    assert iv.high < PUBLISHED_MLP - 2.0, (iv, printed)
    assert abs(iv.estimate - REFERENCE_TRAINER[("mnist1d", "mlp_ref")][0]) <= 0.5, printed


@pytest.mark.slow
def test_falab_protocol_on_the_printed_mlp_gives_what_the_dataset_trainer_gives(printed, tmp_path):
    """falab's protocol (shuffled batches, 8000 steps, the same model, data, optimiser and seeds) lands within 1.5
    points of the reference trainer's mean on ``mlp_ref``: measured 64.58 % [63.44, 65.72] (66.5, 63.3, 65.0, 62.9,
    65.2) against the trainer's 64.82 %, 0.24 points apart."""
    res = train_from_config({"datasets": ["mnist1d"], "models": ["mlp_ref"], "rules": ["bp"], "seeds": SEEDS,
                             "steps": 8000, "eval_every": 8000, "batch_size": 100, "select": "final", "refit": True,
                             "optimizer": {"name": "adam", "lr": 1e-2}, "split": {"standardize": False}},
                            Path(tmp_path))
    (row,) = res["summary"]
    assert row["seeds"] == len(SEEDS) and row["failed"] == 0
    assert abs(row["test_acc_mean"] - bootstrap_interval(printed).estimate) <= 1.5, (row["test_acc_mean"], printed)


@pytest.mark.slow
def test_get_model_args_hidden_size_256_is_within_two_points_of_the_published_mlp(data):
    """``get_model_args`` declares ``hidden_size=256``, which the notebooks never pass to ``MLPBase`` (its default is
    100). With it (78,858 parameters) the same trainer gives 67.50 % [66.22, 68.78] over seeds 42-46 (67.30, 65.90,
    66.00, 69.60, 68.70): the published 68 % is reached by the wider MLP, not by the 15,210-parameter one the
    notebooks print."""
    wide = [train_reference_mlp(data, s, hidden_size=256) for s in SEEDS]
    assert abs(bootstrap_interval(wide).estimate - PUBLISHED_MLP) <= 2.0, wide
    assert abs(bootstrap_interval(wide).estimate - REFERENCE_TRAINER[("mnist1d", "mlp_ref256")][0]) <= 0.5, wide
