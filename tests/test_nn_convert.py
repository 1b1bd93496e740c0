"""convert(): nested modules, what is (not) converted and why, parameters kept, DFA wiring, metrics on the result."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from falab._checks import FalabInputError
from falab.instruments import angle_degrees, fa_quantity
from falab.nn import (
    AlignmentMonitor,
    DFAConv2d,
    DFALinear,
    FAConv2d,
    FALinear,
    conserved_quantities,
    convert,
    layer_alignment,
    update_angles,
)
from falab.rules import CopyOfWeight, FeedbackAlignment, Gaussian

D64 = torch.float64


class Block(nn.Module):
    """A torchvision-style residual-free block built by hand (torchvision is not installed)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(Block(1, 4), nn.MaxPool2d(2), Block(4, 8), nn.AdaptiveAvgPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 5))

    def forward(self, x):
        return self.classifier(self.features(x))


@pytest.mark.parametrize("rule", ["fa", "dfa", "usf", "frsf", "brsf"])
def test_convert_nested_model(rule):
    torch.manual_seed(0)
    net = SmallNet()
    params_before = {n: p for n, p in net.named_parameters()}
    x = torch.randn(6, 1, 8, 8)
    report = convert(net, rule, seed=1, example_input=x[:2])
    names = [c.name for c in report.converted]
    assert names == ["features.0.conv", "features.2.conv", "classifier.1", "classifier.3"]
    fa_type = DFAConv2d if rule == "dfa" else FAConv2d
    assert isinstance(net.features[0].conv, fa_type)
    assert isinstance(net.classifier[3], DFALinear if rule == "dfa" else FALinear)
    skipped = {s.name: s.reason for s in report.skipped}
    # attention is converted now (tests/test_nn_attention.py covers it)
    assert "features.0.bn" in skipped and "exact gradients" in skipped["features.0.bn"]
    # The very same Parameter objects are kept (optimizers built before conversion stay valid) ...
    for n, p in net.named_parameters():
        assert p is params_before[n]
    # ... feedback is a buffer, never a parameter, and sits in the state_dict.
    assert not any("feedback" in n for n, _ in net.named_parameters())
    assert sum("feedback" in k for k in net.state_dict()) == 4
    # A training step changes every converted weight (loss.backward() as usual; DFA via the attached broadcast).
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    before = [m.weight.detach().clone() for m in (net.features[0].conv, net.classifier[1], net.classifier[3])]
    nn.functional.cross_entropy(net(x), torch.arange(6) % 5).backward()
    opt.step()
    after = [m.weight for m in (net.features[0].conv, net.classifier[1], net.classifier[3])]
    assert all((a - b).abs().max() > 0 for a, b in zip(after, before))
    assert "converted" in str(report) and report.to_dict()["converted"][0]["name"] == "features.0.conv"


def test_convert_bp_keeps_native_layers_and_bad_rule_is_reported():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    report = convert(net, "bp")
    assert not report.converted and type(net[0]) is nn.Linear
    with pytest.raises(FalabInputError, match=r"Invalid rule: 'xfa' \(expected one of"):
        convert(net, "xfa")
    with pytest.raises(FalabInputError, match="Invalid model"):
        convert(nn.Linear(3, 4), "fa")


def test_feedback_drawn_at_weight_scale_and_rule_objects():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 20))
    convert(net, "fa", seed=0)
    for m in net:
        if isinstance(m, FALinear):
            torch.testing.assert_close(m.feedback.norm(), m.weight.detach().norm())
    net2 = nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 20))
    convert(net2, FeedbackAlignment(feedback=Gaussian(0.5)), seed=0)
    assert abs(float(net2[2].feedback.std()) - 0.5) < 0.05


def test_metrics_angles_ratios_update_angles_and_conserved_quantity():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3)).to(D64)
    convert(net, FeedbackAlignment(feedback=CopyOfWeight()), seed=0)  # B = W(0): update = gradient at t = 0
    x, y = torch.randn(9, 5, dtype=D64), torch.randn(9, 3, dtype=D64)
    loss_fn = lambda f, t: 0.5 * ((f - t) ** 2).sum() / f.shape[0]  # noqa: E731
    angles = update_angles(net, loss_fn, x, y)
    assert set(angles) == {"0", "2", "4"} and max(angles.values()) < 1e-5
    loss_fn(net(x), y).backward()
    al = {a.name: a for a in layer_alignment(net)}
    assert not al["0"].informative and al["2"].informative  # the first layer sends no signal
    assert al["2"].feedback_angle < 1e-5 and abs(al["2"].norm_ratio - 1) < 1e-12
    # P000 Euler identity through the nn route: Q_i(k+1) - Q_i(k) = 0.5 eta^2 (||G_i||^2 + ||g_i||^2) exactly.
    net2 = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3)).to(D64)
    convert(net2, "fa", seed=2)
    q0 = conserved_quantities(net2)
    assert set(q0) == {"0|2", "2|4"}
    w = [net2[i].weight.detach() for i in (0, 2, 4)]
    hand = fa_quantity(w, {2: net2[2].feedback, 3: net2[4].feedback}, [net2[0].bias.detach(), net2[2].bias.detach(), None])
    assert abs(q0["0|2"] - float(hand[0])) < 1e-12 and abs(q0["2|4"] - float(hand[1])) < 1e-12
    eta = 0.01
    opt = torch.optim.SGD(net2.parameters(), lr=eta)
    loss_fn(net2(x), y).backward()
    pred = [0.5 * eta**2 * float(net2[i].weight.grad.pow(2).sum() + net2[i].bias.grad.pow(2).sum()) for i in (0, 2)]
    opt.step()
    q1 = conserved_quantities(net2)
    for key, p in zip(("0|2", "2|4"), pred):
        assert abs((q1[key] - q0[key]) - p) <= 1e-12 * max(1.0, abs(q0[key]))


def test_frsf_angle_uses_effective_feedback_and_monitor_records():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 10), nn.ReLU(), nn.Linear(10, 4))
    convert(net, "frsf", seed=0)
    x, y = torch.randn(16, 8), torch.randint(0, 4, (16,))
    nn.functional.cross_entropy(net(x), y).backward()
    al = {a.name: a for a in layer_alignment(net)}
    w, stored = net[2].weight.detach(), net[2].feedback
    effective = float(angle_degrees(w.double(), (stored * torch.sign(w)).double()))
    stored_angle = float(angle_degrees(w.double(), stored.double()))
    assert abs(al["2"].feedback_angle - effective) < 1e-4
    assert abs(al["2"].feedback_angle - stored_angle) > 10  # BioTorch's defect: |B0| instead of |B0|*sign(W)
    assert effective < 90
    mon = AlignmentMonitor(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    handle = mon.attach(opt, every=1)
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    handle.remove()
    row = mon.record(99, loss_fn=nn.functional.cross_entropy, x=x, y=y)
    assert len(mon.rows) == 4 and math.isnan(row["angle/0"]) and "update_angle/2" in row
    assert mon.to_frame().shape[0] == 4


def test_dfa_rejects_feedback_kinds_without_meaning():
    from falab.nn import UniformSignFeedback
    from falab.rules import DirectFeedbackAlignment

    for kind in (CopyOfWeight(), UniformSignFeedback()):
        with pytest.raises(FalabInputError, match="Invalid DFA feedback"):
            convert(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), DirectFeedbackAlignment(feedback=kind))


def test_conserved_quantity_euler_identity_through_conv_and_pooling():
    """P000's law is a statement about adjacent layers joined by a positively homogeneous map; conv -> ReLU ->
    max-pool -> conv -> flatten -> linear qualifies, so one SGD step adds exactly 0.5 eta^2 ||G_i||^2 to Q_i."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2), nn.Conv1d(4, 3, 3, bias=False),
                        nn.ReLU(), nn.Flatten(), nn.Linear(9, 2)).to(D64)
    convert(net, "fa", seed=1)
    x, y = torch.randn(5, 2, 10, dtype=D64), torch.randn(5, 2, dtype=D64)
    q0 = conserved_quantities(net)
    assert set(q0) == {"0|3", "3|6"}
    eta = 0.02
    opt = torch.optim.SGD(net.parameters(), lr=eta)
    (0.5 * ((net(x) - y) ** 2).sum()).backward()
    g0 = net[0].weight.grad.pow(2).sum() + net[0].bias.grad.pow(2).sum()
    g3 = net[3].weight.grad.pow(2).sum()
    opt.step()
    q1 = conserved_quantities(net)
    assert abs((q1["0|3"] - q0["0|3"]) - 0.5 * eta**2 * float(g0)) < 1e-12
    assert abs((q1["3|6"] - q0["3|6"]) - 0.5 * eta**2 * float(g3)) < 1e-12


@pytest.mark.parametrize("rule", ["dfa", "brsf"])
def test_converted_models_survive_deepcopy_and_pickle(rule):
    import copy
    import pickle

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    convert(net, rule, seed=0)
    x = torch.randn(5, 3)
    for twin in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        twin(x).sum().backward()
        assert twin[0].weight.grad is not None
        if rule == "dfa":
            assert twin[0].broadcast is twin[2].broadcast is not net[0].broadcast
