"""The optional diffrax comparator of ``falab bench --only flows`` (skipped when diffrax is not installed): its JAX field
must be falab's FA field, and its vmapped Dopri8 must land where falab's per-member DOP853 lands."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffrax")

from falab.bench import _diffrax  # noqa: E402
from falab.dynamics import Problem, simulate_flow, vector_field  # noqa: E402
from falab.functional import SquaredLoss  # noqa: E402
from falab.models import MLP, member  # noqa: E402
from falab.rules import FeedbackAlignment, Gaussian  # noqa: E402


def test_diffrax_field_and_finals_are_falabs():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(5)
    model, rule, k = MLP((3, 4, 2), "tanh"), FeedbackAlignment(Gaussian()), 4
    p0 = model.init_params(g, ensemble=k)
    state = rule.init(model, p0, generator=g)
    x = torch.randn(k, 5, 3, generator=g, dtype=torch.float64)
    y = torch.randn(k, 5, 2, generator=g, dtype=torch.float64)
    ens = Problem(model, rule, SquaredLoss("mean"), x, y, state)
    one = Problem(model, rule, SquaredLoss("mean"), x[1], y[1], member(state, 1))
    ref = vector_field(one)(member(p0, 1))
    arrays = [t.numpy() for t in (p0["W1"], p0["W2"], state["B2"], x, y)]
    err = _diffrax.field_agreement(*(a[1] for a in arrays), reference=(ref["W1"].numpy(), ref["W2"].numpy()))
    assert err <= 1e-14
    res = _diffrax.solve_ensemble(*arrays, t_end=1.0, rtol=1e-10, atol=1e-12)
    fl = simulate_flow(ens, p0, [0.0, 1.0], method="dop853-members")
    for n in ("W1", "W2"):
        assert abs(res[n] - fl.final[n].numpy()).max() <= 1e-8 * abs(fl.final[n].numpy()).max()
