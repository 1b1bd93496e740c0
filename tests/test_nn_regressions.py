"""Regressions for the defects of the packaged peer (BioTorch 0.0.16) listed in issue 7, plus the training API."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from falab._checks import FalabInputError
from falab.nn import (
    FALinear,
    convert,
    layer_alignment,
    load_config,
    load_split,
    train_from_config,
)

RULES = ["fa", "dfa", "usf", "frsf", "brsf"]
INITS = {
    "default": lambda w: None,
    "xavier_uniform": nn.init.xavier_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "kaiming_uniform": nn.init.kaiming_uniform_,
    "kaiming_normal": nn.init.kaiming_normal_,
    "normal": lambda w: nn.init.normal_(w, 0.0, 0.05),
    "uniform": lambda w: nn.init.uniform_(w, -0.1, 0.1),
    "orthogonal": nn.init.orthogonal_,
}


def _net(bias: bool) -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(2, 3, 3, padding=1, bias=bias), nn.ReLU(), nn.Flatten(),
        nn.Linear(3 * 6, 8, bias=bias), nn.ReLU(), nn.Linear(8, 4, bias=bias))


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("init", list(INITS))
def test_weights_change_after_a_step_with_every_option(rule, bias, init):
    """BioTorch's constrain_weights rebinds the parameter in forward, so the optimizer's weights never move; brSF with
    a non-Xavier init crashed on a missing import. Here: every rule x bias x init trains."""
    torch.manual_seed(0)
    net = _net(bias)
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            INITS[init](m.weight)
    convert(net, rule, seed=0, example_input=torch.randn(2, 2, 6))
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    x, y = torch.randn(5, 2, 6), torch.tensor([0, 1, 2, 3, 0])
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    for n, p in net.named_parameters():
        assert torch.isfinite(p).all()
        assert (p - before[n]).abs().max() > 0, f"{n} did not move"


def test_no_module_backward_hooks_and_no_targets_in_forward():
    net = _net(True)
    report = convert(net, "dfa", seed=0, output_dim=4, example_input=torch.randn(1, 2, 6))
    for m in net.modules():
        assert not m._backward_hooks and not m._backward_pre_hooks
    assert not torch.nn.modules.module._global_backward_hooks
    out = net(torch.randn(3, 2, 6))  # forward takes the input only
    nn.functional.cross_entropy(out, torch.tensor([0, 1, 2])).backward()
    assert net[0].weight.grad is not None
    report.handle.remove()  # the broadcast can be detached again
    assert not net._forward_hooks


def test_feedback_matrices_are_not_optimised():
    net = _net(True)
    convert(net, "fa", seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    fb = net[3].feedback.clone()
    nn.functional.cross_entropy(net(torch.randn(3, 2, 6)), torch.tensor([0, 1, 2])).backward()
    opt.step()
    assert torch.equal(net[3].feedback, fb)
    assert all(p.requires_grad for p in net.parameters()) and not net[3].feedback.requires_grad


def test_fa_layer_accepts_sequences():
    """BioTorch's FA layers accept only 2-D inputs."""
    layer = FALinear(4, 3)
    x = torch.randn(2, 7, 4, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad.shape == x.shape


def test_brsf_angle_uses_last_used_matrix():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    convert(net, "brsf", seed=0)
    nn.functional.cross_entropy(net(torch.randn(4, 6)), torch.tensor([0, 1, 2, 0])).backward()
    used = net[2]._last_feedback
    a = {x.name: x for x in layer_alignment(net)}["2"]
    w = net[2].weight.detach().double()
    cos = float((w * used.double()).sum() / (w.norm() * used.double().norm()))
    assert abs(a.feedback_angle - float(np.degrees(np.arccos(cos)))) < 1e-4


def test_split_is_fixed_and_disjoint_and_selection_uses_validation(tmp_path):
    s1, s2 = load_split("digits"), load_split("digits")
    assert torch.equal(s1.x_test, s2.x_test) and s1.sizes() == s2.sizes()
    rows = {tuple(r) for r in s1.x_train.numpy().round(5).tolist()}
    assert not any(tuple(r) in rows for r in s1.x_test.numpy().round(5).tolist()[:50])
    cfg = {"models": ["mlp"], "rules": ["bp", "fa"], "seeds": [0], "epochs": 3, "hidden": 32}
    res = train_from_config(cfg, tmp_path / "a")
    for run in res["runs"]:
        assert run["best_epoch"] == int(np.argmax(run["curves"]["val_acc"])) + 1
        assert run["val_acc"] == max(run["curves"]["val_acc"])
    assert (tmp_path / "a" / "summary.md").is_file() and (tmp_path / "a" / "nn_curves_digits_mlp.png").is_file()
    # Run twice into another folder: identical numbers (seeded, deterministic).
    res2 = train_from_config(cfg, tmp_path / "b")
    assert [r["test_acc"] for r in res["runs"]] == [r["test_acc"] for r in res2["runs"]]
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert saved["epochs"] == 3 and saved["optimizer"]["name"] == "adam"


@pytest.mark.parametrize("bad,match", [
    ({"rules": ["fa", "xfa"]}, r"^Invalid rules\.1: 'xfa' \(expected 'bp', 'fa', 'dfa', 'usf', 'frsf' or 'brsf'\)$"),
    ({"epochs": 0}, r"^Invalid epochs: 0 \(expected greater than or equal to 1\)$"),
    ({"datasets": ["mnist"]}, r"^Invalid datasets\.0: 'mnist' \(expected 'digits', 'mnist1d' or 'pystdlib'\)$"),
    ({"optimizer": {"lr": -1}}, r"^Invalid optimizer\.lr: -1 \(expected greater than 0\)$"),
    ({"unknown_field": 1}, r"^Invalid unknown_field: 1 \(expected one of the fields name, datasets, models, rules, seeds, .*deterministic\)$"),
])
def test_config_errors_are_one_line_falab_errors(bad, match):
    with pytest.raises(FalabInputError, match=match) as info:
        load_config(bad)
    assert "\n" not in str(info.value)


def test_config_from_yaml_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("datasets: [digits]\nmodels: [mlp]\nrules: [bp]\nseeds: [0]\nepochs: 2\n")
    assert load_config(p).epochs == 2
    with pytest.raises(FalabInputError, match="Invalid config"):
        load_config(tmp_path / "missing.yaml")
