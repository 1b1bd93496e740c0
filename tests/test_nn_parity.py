"""Two routes, one rule: an MLP of falab.nn layers trained with torch.optim.SGD gives the same weights as the
functional route (falab.rules + falab.dynamics.simulate_discrete with Euler steps), to 1e-12 in float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from falab.dynamics import Euler, Problem, simulate_discrete
from falab.functional import CrossEntropyLoss, SquaredLoss
from falab.models import MLP
from falab.nn import (
    BatchRandomMagnitudeSignFeedback,
    DFALinear,
    ErrorBroadcast,
    FALinear,
    FixedRandomMagnitudeSignFeedback,
    UniformSignFeedback,
    convert,
)
from falab.rules import Backprop, DirectFeedbackAlignment, FeedbackAlignment, Gaussian

D64 = torch.float64
WIDTHS = (5, 8, 7, 6, 3)
STEPS, LR = 25, 0.05


def _problem_data(loss_name):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(12, WIDTHS[0], generator=g, dtype=D64)
    if loss_name == "squared":
        y = torch.randn(12, WIDTHS[-1], generator=g, dtype=D64)
    else:
        y = torch.nn.functional.one_hot(torch.randint(0, WIDTHS[-1], (12,), generator=g), WIDTHS[-1]).to(D64)
    return x, y


def _nn_loss(loss_name):
    if loss_name == "squared":
        return lambda f, y: 0.5 * ((f - y) ** 2).sum() / f.shape[0]  # SquaredLoss('mean')
    return lambda f, y: torch.nn.functional.cross_entropy(f, y.argmax(-1))  # CrossEntropyLoss('mean')


def _functional(rule, feedback, loss_name, params0):
    model = MLP(WIDTHS, "relu", bias=True)
    x, y = _problem_data(loss_name)
    loss = SquaredLoss("mean") if loss_name == "squared" else CrossEntropyLoss("mean")
    state = rule.init(model, params0, generator=torch.Generator().manual_seed(0), feedback=feedback)
    traj = simulate_discrete(Problem(model, rule, loss, x, y, state), params0, Euler(lr=LR), STEPS)
    return traj.params[-1], state


def _nn_train(net, loss_name, out=None):
    x, y = _problem_data(loss_name)
    loss_fn = _nn_loss(loss_name)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    for _ in range(STEPS):
        opt.zero_grad()
        f = net(x) if out is None else out(net(x))
        loss_fn(f, y).backward()
        opt.step()


def _params0():
    return MLP(WIDTHS, "relu", bias=True).init_params(torch.Generator().manual_seed(5), scheme="kaiming")


def _layers(params0, make):
    mods: list[nn.Module] = []
    n = len(WIDTHS) - 1
    for l in range(1, n + 1):
        lin = make(l)
        with torch.no_grad():
            lin.weight.copy_(params0[f"W{l}"])
            lin.bias.copy_(params0[f"b{l}"])
        mods.append(lin)
        if l < n:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def _compare(net, final):
    lins = [m for m in net if hasattr(m, "weight")]
    for l, lin in enumerate(lins, start=1):
        torch.testing.assert_close(lin.weight.detach(), final[f"W{l}"], rtol=0, atol=1e-12)
        torch.testing.assert_close(lin.bias.detach(), final[f"b{l}"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("loss_name", ["squared", "cross_entropy"])
@pytest.mark.parametrize("kind", ["fa", "usf", "frsf", "brsf"])
def test_fa_family_parity_with_functional_route(loss_name, kind):
    params0 = _params0()
    n = len(WIDTHS) - 1
    g = torch.Generator().manual_seed(3)
    if kind == "fa":
        fb = {f"B{l}": 0.4 * torch.randn(params0[f"W{l}"].shape, generator=g, dtype=D64) for l in range(2, n + 1)}
        rule = FeedbackAlignment(feedback=Gaussian())
        kind_obj = Gaussian()
    else:
        kind_obj = {"usf": UniformSignFeedback, "frsf": FixedRandomMagnitudeSignFeedback,
                    "brsf": BatchRandomMagnitudeSignFeedback}[kind]()
        rule = FeedbackAlignment(feedback=kind_obj)
        fb = None
    final, state = _functional(rule, fb, loss_name, params0)
    net = _layers(params0, lambda l: FALinear(WIDTHS[l - 1], WIDTHS[l], feedback=kind_obj, dtype=D64))
    lins = [m for m in net if hasattr(m, "weight")]
    with torch.no_grad():
        for l in range(2, n + 1):
            lins[l - 1].feedback.copy_(state[f"B{l}"])
            if f"B{l}:seed" in state:  # brSF: the layer draws step k's |R| from the same (seed, k)
                lins[l - 1].set_feedback_state(int(state[f"B{l}:seed"]))
    _nn_train(net, loss_name)
    _compare(net, final)


@pytest.mark.parametrize("loss_name", ["squared", "cross_entropy"])
def test_dfa_parity_with_functional_route(loss_name):
    params0 = _params0()
    n = len(WIDTHS) - 1
    g = torch.Generator().manual_seed(4)
    fb = {f"D{l}": 0.4 * torch.randn(WIDTHS[-1], WIDTHS[l], generator=g, dtype=D64) for l in range(1, n)}
    final, _ = _functional(DirectFeedbackAlignment(), fb, loss_name, params0)
    b = ErrorBroadcast()
    net = _layers(params0, lambda l: DFALinear(WIDTHS[l - 1], WIDTHS[l], output_dim=WIDTHS[-1], broadcast=b,
                                               dtype=D64))
    lins = [m for m in net if hasattr(m, "weight")]
    with torch.no_grad():
        for l in range(1, n):  # the nn layer l+1 sends e D_l to its input a_l
            lins[l].feedback.copy_(fb[f"D{l}"])
    _nn_train(net, loss_name, out=b)
    _compare(net, final)


def test_converted_native_model_matches_functional_route_and_bp_matches_autograd():
    params0 = _params0()
    n = len(WIDTHS) - 1
    final_bp, _ = _functional(Backprop(), None, "squared", params0)
    net = _layers(params0, lambda l: nn.Linear(WIDTHS[l - 1], WIDTHS[l], dtype=D64))
    _nn_train(net, "squared")
    _compare(net, final_bp)
    # convert() of a native model, then copy its drawn feedback into the functional state.
    net = _layers(params0, lambda l: nn.Linear(WIDTHS[l - 1], WIDTHS[l], dtype=D64))
    convert(net, "fa", seed=7)
    lins = [m for m in net if hasattr(m, "weight")]
    fb = {f"B{l}": lins[l - 1].feedback.clone() for l in range(2, n + 1)}
    final, _ = _functional(FeedbackAlignment(), fb, "squared", params0)
    _nn_train(net, "squared")
    _compare(net, final)


def test_sign_symmetry_kinds_serve_functional_ensembles():
    """The sign-symmetry kinds are ordinary feedback kinds of the functional route: an ensemble of K networks
    (leading dimension) gives the same update as each member alone, and feedback_used is s*sign(W) / |R|*sign(W)."""
    from falab.models import member, stack_params

    model = MLP((4, 6, 5, 2), "relu")
    g = torch.Generator().manual_seed(0)
    members = [model.init_params(g) for _ in range(3)]
    ens = stack_params(members)
    x = torch.randn(7, 4, generator=g, dtype=D64)
    y = torch.randn(7, 2, generator=g, dtype=D64)
    loss = SquaredLoss("mean")
    for kind in (UniformSignFeedback(), FixedRandomMagnitudeSignFeedback()):
        rule = FeedbackAlignment(feedback=kind)
        state = rule.init(model, ens, generator=torch.Generator().manual_seed(1))
        upd = rule.update(model, ens, state, x, y, loss)[0]
        for k in range(3):
            st_k = {n: t[k] for n, t in state.items()}
            upd_k = rule.update(model, member(ens, k), st_k, x, y, loss)[0]
            for name in upd_k:
                torch.testing.assert_close(upd[name][k], upd_k[name], rtol=1e-13, atol=1e-14)
        used = rule.feedback_used(model, ens, state)
        assert torch.equal(torch.sign(used[2]), torch.sign(ens["W2"]))
