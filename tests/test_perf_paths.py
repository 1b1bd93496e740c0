"""Parity of the engine's fast paths with the plain ones (performance itself is measured by ``falab bench``, never
asserted here).

* Chunked ensemble flows (``simulate_flow(..., chunk_members=c)``) equal one solver run over the whole ensemble to
  the solver's accuracy, and keep measures, recording, divergence and stall handling.
* Ensemble kernels (shared-data GEMM layouts of ``linear`` / ``weight_gradient``) equal a per-member loop to
  rounding.
* The backward kernels' reordered products (deltas kept as products through identity layers, cheapest
  association, outer products as broadcast products) equal the plain left-to-right loop to 1e-12.
"""

from __future__ import annotations

import pytest
import torch

from falab.dynamics import Euler, Problem, simulate_discrete, simulate_flow
from falab.functional import AbstractLoss, SquaredLoss, chain_backward, direct_backward, weight_gradient
from falab.functional._forward import _chain_order, chain_matmul, linear, matmul
from falab.models import MLP, member
from falab.rules import Backprop, DirectFeedbackAlignment, FAStar, FeedbackAlignment
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


def _plain_chain_backward(trace, e, feedback, activations, with_bias):
    """The textbook loop (form every delta, multiply left to right), as the reference of the reordered kernel."""
    n = len(trace.pre)
    gw, gb, deltas = [None] * n, [None] * n, [None] * n
    delta = e
    for l in range(n - 1, -1, -1):
        gw[l] = delta.transpose(-1, -2) @ trace.inputs[l]
        gb[l] = delta.sum(dim=-2) if with_bias[l] else None
        deltas[l] = delta
        if l > 0:
            delta = activations[l - 1].derivative(trace.pre[l - 1]) * (delta @ feedback[l])
    return gw, gb, deltas


@pytest.mark.parametrize("activation", ["identity", "relu", "tanh", ("identity", "tanh", "identity")])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("ensemble", [None, 4])
@pytest.mark.parametrize("widths", [(5, 7, 1), (6, 9, 4, 3, 1), (6, 9, 4, 3, 2)])
def test_reordered_chain_backward_equals_the_plain_loop(activation, bias, ensemble, widths) -> None:
    """Deltas kept as products through identity layers and updates evaluated in the cheapest order equal the plain
    left-to-right loop to 1e-12 (float64), for every activation, depth, bias and ensemble shape routed."""
    if isinstance(activation, tuple) and len(widths) != 5:
        activation = activation[0]
    model, params, x, y = random_mlp(widths, activation, bias, seed=21, ensemble=ensemble)
    rule = FeedbackAlignment()
    state = rule.init(model, params, generator=gen(22))
    fb = rule._current(model.layer_weights(params), state)
    trace = model.trace(params, x)
    e = SquaredLoss("mean").output_error(trace.output, y)
    wb = model.with_bias(params)
    ref_w, ref_b, ref_d = _plain_chain_backward(trace, e, fb, model.activations, wb)
    for deltas in (True, False):
        gw, gb, ds = chain_backward(trace, e, fb, model.activations, with_bias=wb, deltas=deltas)
        for g, r in zip(gw, ref_w, strict=True):
            assert g.shape == r.shape and max_rel(g, r) <= 1e-12
        for g, r in zip(gb, ref_b, strict=True):
            assert (g is None) == (r is None) and (g is None or max_rel(g, r) <= 1e-12)
        if deltas:
            for d, r in zip(ds, ref_d, strict=True):
                assert max_rel(d, r) <= 1e-12
        else:
            assert ds == []


@pytest.mark.parametrize("activation", ["identity", "relu"])
def test_reordered_direct_backward_equals_the_plain_loop(activation: str) -> None:
    model, params, x, y = random_mlp((6, 9, 4, 2), activation, True, seed=23, ensemble=3)
    rule = DirectFeedbackAlignment()
    state = rule.init(model, params, generator=gen(24))
    direct = [state["D1"], state["D2"]]
    trace = model.trace(params, x)
    e = SquaredLoss("mean").output_error(trace.output, y)
    gw, gb, ds = direct_backward(trace, e, direct, model.activations, with_bias=[True] * 3)
    for l in range(3):
        delta = e if l == 2 else model.activations[l].derivative(trace.pre[l]) * (e @ direct[l])
        assert max_rel(gw[l], delta.transpose(-1, -2) @ trace.inputs[l]) <= 1e-12
        assert max_rel(gb[l], delta.sum(dim=-2)) <= 1e-12
        assert max_rel(ds[l], delta) <= 1e-12


def test_chain_matmul_picks_the_cheap_order_and_equals_left_to_right() -> None:
    g = gen(31)
    bt = torch.randn(8, 50, 1, generator=g, dtype=torch.float64)
    et = torch.randn(8, 1, 10, generator=g, dtype=torch.float64)
    x = torch.randn(10, 20, generator=g, dtype=torch.float64)
    assert _chain_order((50, 1, 10, 20)) == ((0, (1, 2)),)  # B^T (e^T X): never forms the 50 x 10 product
    assert max_rel(chain_matmul([bt, et, x]), (bt @ et) @ x) <= 1e-12
    mats = [torch.randn(3, a, b, generator=g, dtype=torch.float64) for a, b in [(4, 9), (9, 2), (2, 7), (7, 5)]]
    ref = mats[0] @ mats[1] @ mats[2] @ mats[3]
    assert max_rel(chain_matmul(mats), ref) <= 1e-12
    # an outer product (contraction of length 1) is the broadcast product: bitwise equal to bmm
    assert torch.equal(matmul(bt, et), torch.bmm(bt, et))


def test_overwriting_euler_steps_equal_copying_steps_bitwise() -> None:
    """Without an on_step observer simulate_discrete lets Euler update in place; the bits are those of the copying
    step (taken when on_step is given), params0 is untouched and recorded parameters are not overwritten later."""
    problem, params = _ensemble_problem(FeedbackAlignment, activation="identity")
    before = {k: v.clone() for k, v in params.items()}
    seen: list[int] = []
    copying = simulate_discrete(problem, params, Euler(0.05), 20, record_every=5,
                                on_step=lambda k, p, u, n: seen.append(k))
    overwriting = simulate_discrete(problem, params, Euler(0.05), 20, record_every=5)
    assert seen == list(range(20))
    assert all(torch.equal(before[k], params[k]) for k in params)
    for pc, po in zip(copying.params, overwriting.params, strict=True):
        assert all(torch.equal(pc[k], po[k]) for k in pc)
    assert not torch.equal(overwriting.params[0]["W1"], overwriting.params[-1]["W1"])
