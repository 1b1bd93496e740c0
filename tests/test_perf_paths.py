"""Parity of the engine's fast paths with the plain ones (performance itself is measured by ``falab bench``, never
asserted here).

* Chunked ensemble flows (``simulate_flow(..., chunk_members=c)``) equal one solver run over the whole ensemble to
  the solver's accuracy, and keep measures, recording, divergence and stall handling.
* Ensemble kernels (shared-data GEMM layouts of ``linear`` / ``weight_gradient``) equal a per-member loop to
  rounding.
"""

from __future__ import annotations

import pytest
import torch

from falab.dynamics import Euler, Problem, simulate_discrete, simulate_flow
from falab.functional import AbstractLoss, SquaredLoss, weight_gradient
from falab.functional._forward import linear
from falab.models import MLP, member
from falab.rules import Backprop, FAStar, FeedbackAlignment
from problems import gen, random_mlp


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def _ensemble_problem(rule_factory, activation: str = "tanh", k: int = 7, seed: int = 3):
    model, params, x, y = random_mlp((4, 6, 2), activation, False, seed=seed, ensemble=k)
    rule = rule_factory()
    state = rule.init(model, params, generator=gen(seed + 1))
    return Problem(model, rule, SquaredLoss("mean"), x, y, state), params


LOSS = {"loss": lambda s: s.problem.loss_value(s.params)}


@pytest.mark.parametrize("rule_factory", [Backprop, FeedbackAlignment, FAStar])
def test_chunked_flow_equals_unchunked_flow(rule_factory) -> None:
    """Chunks of 3 members (uneven: 7 = 2 + 3 + 2) agree with one run over the stacked state to 1e-9 relative at
    rtol 1e-10 (each run picks its own steps, so agreement is to solver accuracy, not bitwise)."""
    problem, params = _ensemble_problem(rule_factory)
    ts = [0.0, 0.3, 1.5]
    whole = simulate_flow(problem, params, ts, measures=LOSS, chunk_members=None)
    chunked = simulate_flow(problem, params, ts, measures=LOSS, chunk_members=3)
    assert chunked.info["chunks"] == 3 and "chunks" not in whole.info
    assert chunked.status == whole.status == "ok"
    assert chunked.times == whole.times and chunked.steps == whole.steps
    for pc, pw in zip(chunked.params, whole.params, strict=True):
        assert pc.keys() == pw.keys()
        for name in pw:
            assert pc[name].shape == pw[name].shape
            assert max_rel(pc[name], pw[name]) <= 1e-9, name
    assert chunked.metric("loss").shape == whole.metric("loss").shape
    assert max_rel(chunked.metric("loss"), whole.metric("loss")) <= 1e-9


def test_chunked_flow_reruns_are_bit_identical_and_keep_params_false_still_records_measures() -> None:
    problem, params = _ensemble_problem(FeedbackAlignment)
    ts = [0.0, 0.5, 1.0]
    a = simulate_flow(problem, params, ts, measures=LOSS, chunk_members=2)
    b = simulate_flow(problem, params, ts, measures=LOSS, chunk_members=2, keep_params=False)
    assert b.params == [] and len(b.metric("loss")) == 3
    assert torch.equal(a.metric("loss"), b.metric("loss"))


class _BlowUp(AbstractLoss):
    """A "loss" whose output error is ``-f^2``: for ``f = W x`` with ``x = 1`` and BP, ``dW/dt = W^2`` blows up at
    ``t = 1 / W(0)`` (a finite-time divergence for the tests)."""

    name = "blow_up"

    def value(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (f - y).sum(dim=(-2, -1))

    def output_error(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        del y
        return -f * f


def test_chunked_flow_reports_divergence_of_one_member() -> None:
    """Member 4 blows up at t = 0.5: the stitched run stops where that member's chunk stopped, as an unchunked run
    does, and keeps the records before."""
    w0 = torch.full((7, 1, 1), 0.01, dtype=torch.float64)
    w0[4] = 2.0
    problem = Problem(MLP((1, 1), "identity"), Backprop(), _BlowUp(), torch.ones(1, 1, dtype=torch.float64),
                      torch.zeros(1, 1, dtype=torch.float64))
    ts = [0.0, 0.25, 0.75, 1.0]
    for chunk in (None, 3):
        traj = simulate_flow(problem, {"W1": w0}, ts, chunk_members=chunk, measures=LOSS)
        assert traj.status == "diverged", chunk
        assert traj.times == [0.0, 0.25]
        assert torch.allclose(traj.final["W1"][4], torch.tensor(2.0 / (1 - 2.0 * 0.25), dtype=torch.float64))
        assert len(traj.metric("loss")) == 2


def test_chunked_flow_stalls_like_an_unchunked_one_and_keeps_records() -> None:
    problem, params = _ensemble_problem(FeedbackAlignment)
    ts = [0.0, 1e-3, 50.0]
    for chunk in (None, 3):
        traj = simulate_flow(problem, params, ts, chunk_members=chunk, max_evaluations=60)
        assert traj.status == "stalled"
        assert traj.times == [0.0, 1e-3]


def test_events_and_single_networks_are_never_chunked() -> None:
    problem, params = _ensemble_problem(FeedbackAlignment)
    traj = simulate_flow(problem, params, [0.0, 0.5], chunk_members=2,
                         events=[lambda t, p: float(p["W2"][0, 0, 0]) - 123.0])
    assert "chunks" not in traj.info and traj.events[0].size == 0
    single = Problem(problem.model, problem.rule, problem.loss, problem.x, problem.y[0], member(problem.state, 0))
    assert "chunks" not in simulate_flow(single, member(params, 0), [0.0, 0.5], chunk_members=1).info


def test_chunked_flow_with_per_member_inputs() -> None:
    """Per-member data (x with the ensemble's leading dimension) is split with the members."""
    problem, params = _ensemble_problem(FeedbackAlignment, k=5)
    x = torch.randn(5, *problem.x.shape, generator=gen(9), dtype=torch.float64)
    problem = Problem(problem.model, problem.rule, problem.loss, x, problem.y, problem.state)
    whole = simulate_flow(problem, params, [0.0, 1.0], chunk_members=None)
    chunked = simulate_flow(problem, params, [0.0, 1.0], chunk_members=2)
    for name in params:
        assert max_rel(chunked.final[name], whole.final[name]) <= 1e-9


@pytest.mark.parametrize("activation", ["identity", "relu", "tanh"])
@pytest.mark.parametrize("bias", [False, True])
def test_ensemble_kernels_equal_a_per_member_loop(activation: str, bias: bool) -> None:
    """Shared-data GEMM layouts of the ensemble kernels equal per-member products to rounding (1e-12)."""
    k = 6
    model, params, x, y = random_mlp((5, 7, 3, 2), activation, bias, seed=11, ensemble=k)
    w = params["W1"]
    h = linear(x, w, params.get("b1"))
    delta = torch.randn(k, x.shape[0], w.shape[1], generator=gen(12), dtype=torch.float64)
    g = weight_gradient(delta, x)
    for m in range(k):
        b = params["b1"][m] if bias else None
        assert max_rel(h[m], linear(x, w[m], b)) <= 1e-12
        assert max_rel(g[m], delta[m].T @ x) <= 1e-12
    rule = FeedbackAlignment()
    state = rule.init(model, params, generator=gen(13))
    problem = Problem(model, rule, SquaredLoss("mean"), x, y, state)
    ens = simulate_discrete(problem, params, Euler(0.05), 5, record_every=5)
    for m in range(k):
        single = Problem(model, rule, SquaredLoss("mean"), x, y[m], member(state, m))
        seq = simulate_discrete(single, member(params, m), Euler(0.05), 5, record_every=5)
        for name in params:
            assert max_rel(ens.final[name][m], seq.final[name]) <= 1e-12, name
