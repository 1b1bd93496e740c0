"""Per-member error control for ensemble flows (issue 17 item 3): ``simulate_flow(..., method="dop853-members")``
and ``"dopri5-members"``.

Each member of the batched DOP853 / Dormand-Prince 5(4) has its own step size, error norm, acceptance and controller,
so a member's arithmetic does not depend on the others: the tests check that it equals the member integrated alone
(DOP853 per member takes scipy's DOP853 steps exactly), that members of different time scales take different numbers
of steps, that a member stopping early leaves the others' results unchanged, and that FA's conserved quantity holds
along the batched flow.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from falab._checks import FalabInputError
from falab.dynamics import Event, Problem, Stop, simulate_flow
from falab.functional import SquaredLoss
from falab.instruments import fa_quantity
from falab.models import MLP, deep_linear, member
from falab.rules import Backprop, FeedbackAlignment, Gaussian

DT = torch.float64
ROUTE = "dop853-members"
ROUTES = ("dop853-members", "dopri5-members")
SCALES = (0.5, 1.0, 2.0, 4.0)  # input scales per member: the field scales ~ c^2, so the time scales differ


def _ensemble(k: int, activation: str = "tanh", scales: tuple[float, ...] | None = None, seed: int = 0):
    """K FA networks 3-4-2 with Gaussian feedback, 6 samples each (per-member data)."""
    g = torch.Generator().manual_seed(seed)
    model = MLP((3, 4, 2), activation)
    p0 = model.init_params(g, ensemble=k)
    rule = FeedbackAlignment(Gaussian())
    state = rule.init(model, p0, generator=g)
    x, y = torch.randn(k, 6, 3, generator=g, dtype=DT), torch.randn(k, 6, 2, generator=g, dtype=DT)
    if scales is not None:
        x = x * torch.tensor(scales, dtype=DT)[:, None, None]
    return model, rule, Problem(model, rule, SquaredLoss("mean"), x, y, state), p0


def _alone(prob: Problem, m: int) -> Problem:
    return Problem(prob.model, prob.rule, prob.loss, prob.x[m], prob.y[m], member(prob.state, m))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


@pytest.mark.parametrize("route", ROUTES)
def test_each_member_equals_the_member_integrated_alone(route):
    """Members of four time scales: each takes its own number of accepted steps (measured 4, 19, 27, 35 by DOP853,
    18, 71, 102, 119 by DP5) and its trajectory is bit-identical to the same route run on that member alone (as a
    single network and as an ensemble of one): nothing in a member's step sequence depends on the others. Against
    DOP853 alone at rtol 1e-12 (the reference) every member agrees to <= 1e-9 relative: rtol = 1e-10 bounds each
    step's local error, the global error of <= 120 steps measured <= 1.3e-11, and 1e-9 (10 rtol) is the bound
    asserted."""
    model, rule, prob, p0 = _ensemble(4, scales=SCALES)
    ts = [0.0, 0.5, 1.0]
    traj = simulate_flow(prob, p0, ts, method=route)
    assert traj.status == "ok" and traj.times == ts
    steps = traj.info["member_steps"]
    assert steps == sorted(steps) and len(set(steps)) == 4, steps  # larger input scale = faster flow = more steps
    assert steps[-1] >= 3 * steps[0], steps
    assert traj.info["member_status"] == ["ok"] * 4
    for m in range(4):
        alone = _alone(prob, m)
        single = simulate_flow(alone, member(p0, m), ts, method=route)
        one = simulate_flow(Problem(model, rule, prob.loss, prob.x[m:m + 1], prob.y[m:m + 1],
                                    {n: v[m:m + 1] for n, v in prob.state.items()}),
                            {n: v[m:m + 1] for n, v in p0.items()}, ts, method=route)
        assert single.info["member_steps"] == [steps[m]] == one.info["member_steps"]
        ref = simulate_flow(alone, member(p0, m), ts, rtol=1e-12, atol=1e-14)
        for i in range(len(ts)):
            for n in p0:
                assert torch.equal(traj.params[i][n][m], single.params[i][n]), (m, i, n)
                assert torch.equal(traj.params[i][n][m], one.params[i][n][0]), (m, i, n)
                assert _rel(traj.params[i][n][m], ref.params[i][n]) <= 1e-9, (m, i, n)


def test_member_blocks_change_no_member_result(monkeypatch):
    """Members run in blocks of at most BLOCK_NUMBERS state numbers (cache-sized); with blocks of 2 members (44
    numbers) instead of one block the members take the same steps and land on the same states (bit-identical here,
    where the field's batched kernels are row-independent; asserted to 1e-14 relative)."""
    from falab.dynamics import _batched

    _, _, prob, p0 = _ensemble(5, scales=(0.5, 1.0, 2.0, 4.0, 1.5))
    ts = [0.0, 0.5, 1.0]
    whole = simulate_flow(prob, p0, ts, method=ROUTE)
    monkeypatch.setattr(_batched, "BLOCK_NUMBERS", 44)
    blocked = simulate_flow(prob, p0, ts, method=ROUTE)
    assert blocked.info["member_steps"] == whole.info["member_steps"]
    assert blocked.info["iterations"] > whole.info["iterations"]  # the blocks ran one after the other
    for i in range(len(ts)):
        for n in p0:
            assert _rel(blocked.params[i][n], whole.params[i][n]) <= 1e-14, (i, n)


def test_dop853_members_takes_scipys_dop853_steps_member_by_member():
    """Same coefficients (Hairer's DOP853), error norm, controller and starting step as scipy's DOP853: every member
    of the batched route costs exactly the evaluations scipy's DOP853 spends on that member alone (dense outputs
    included) and lands on the same states to rounding (<= 1e-13 relative; measured <= 3.7e-15)."""
    _, _, prob, p0 = _ensemble(4, scales=SCALES)
    ts = [0.0, 0.5, 1.0]
    traj = simulate_flow(prob, p0, ts, method="dop853-members")
    for m in range(4):
        ref = simulate_flow(_alone(prob, m), member(p0, m), ts, method="DOP853")
        assert traj.info["member_nfev"][m] == ref.info["nfev"], m
        for i in range(len(ts)):
            for n in p0:
                assert _rel(traj.params[i][n][m], ref.params[i][n]) <= 1e-13, (m, i, n)


@pytest.mark.parametrize("route", ROUTES)
def test_a_member_stopped_early_leaves_the_others_bit_identical(route):
    """A loss target only the fastest member (input scale 4, targets scaled by 0.01 so its loss can fall far below
    the others') reaches before t = 2: it stops at the located time with loss = target (to 1e-10 relative) and the
    same stop time as DOP853 on that member alone (to 1e-8), while the other members' records are bit-identical to
    the run without the stop."""
    _, _, prob, p0 = _ensemble(4, scales=SCALES)
    y = prob.y.clone()
    y[3] *= 0.01
    prob = Problem(prob.model, prob.rule, prob.loss, prob.x, y, prob.state)
    ts = np.linspace(0.0, 2.0, 21).tolist()
    loss = {"loss": lambda s: s.problem.loss_value(s.params)}
    free = simulate_flow(prob, p0, ts, method=route, measures=loss)
    curves = free.metric("loss")  # (T, K)
    fast = 3
    target = float(curves[10, fast])  # the fast member's loss at t = 1: reached at t <= 1
    others_min = float(curves[:, :fast].min())
    assert others_min > 2 * target, (others_min, target)  # the instance: nobody else gets near the target
    stopped = simulate_flow(prob, p0, ts, method=route, measures=loss, stop=Stop(loss=target))
    assert [s.member for s in stopped.stops] == [fast] and stopped.stops[0].reason == "loss"
    assert stopped.stop is None  # the others ran to the horizon
    t_stop = stopped.stops[0].time
    assert 0 < t_stop <= 1.0 + 1e-12
    assert stopped.times == ts and stopped.info["member_status"] == ["ok"] * 4
    for i, t in enumerate(ts):
        for n in p0:
            assert torch.equal(stopped.params[i][n][:fast], free.params[i][n][:fast]), (i, n)
        if t > t_stop:  # frozen at its stop state, where the loss equals the target
            assert abs(float(stopped.metric("loss")[i, fast]) / target - 1) <= 1e-10
    alone = simulate_flow(_alone(prob, fast), member(p0, fast), ts, stop=Stop(loss=target))
    assert alone.stop is not None and abs(alone.stop.time - t_stop) <= 1e-8


@pytest.mark.parametrize("route", ROUTES)
def test_stop_times_per_member_match_the_closed_form(route):
    """``w' = lam - w`` per member (one-weight regression): the loss ``(w0 - lam)^2 e^{-2t} / 2`` reaches the target
    at ``t* = ln((w0 - lam)^2 / (2 target)) / 2``; every member stops there to 1e-9 max(1, t*) (the bound of the
    scipy route's test: near the target dt* = dw / (2 |w - lam|) ~ 350 dw, so a 1e-12 state error moves t* by ~4e-10;
    scipy's DOP853 misses by up to 3.9e-10 here, the batched routes by <= 3.3e-10) and, all stopped, the run ends at
    the last stop time with each member frozen at its own stop state (to 1e-12)."""
    w0, lam, target = [3.0, 1.5, -2.0], 1.0, 1e-6
    k = len(w0)
    prob = Problem(deep_linear((1, 1)), Backprop(), SquaredLoss("mean"), torch.ones(1, 1, dtype=DT),
                   torch.full((k, 1, 1), lam, dtype=DT))
    p0 = {"W1": torch.tensor(w0, dtype=DT).view(k, 1, 1)}
    traj = simulate_flow(prob, p0, [0.0, 1.0, 100.0], method=route, stop=Stop(loss=target), rtol=1e-12,
                         atol=1e-14)
    want = [0.5 * math.log((w - lam) ** 2 / (2 * target)) for w in w0]
    stops = sorted(traj.stops, key=lambda s: s.member)
    assert [s.member for s in stops] == [0, 1, 2]
    for s, t_star in zip(stops, want):
        assert abs(s.time - t_star) <= 1e-9 * max(1.0, t_star), (s.time, t_star)
    assert traj.stop is not None and traj.times == [0.0, 1.0, pytest.approx(max(want), abs=1e-8)]
    final = traj.final["W1"].reshape(-1)
    for m, w in enumerate(w0):  # frozen at loss = target: |w - lam| = sqrt(2 target) on the side it started
        assert abs(float(final[m]) - (lam + math.copysign(math.sqrt(2 * target), w - lam))) <= 1e-12
    assert traj.info["stops"][0]["member"] == 1
    # the update-norm condition (its update is the step's last stage): |field| = |w0 - lam| e^{-t} = tol at
    # t* = ln(|w0 - lam| / tol), well conditioned (dt* = d|field| / |field|)
    tol = 1e-3
    traj = simulate_flow(prob, p0, [0.0, 100.0], method=route, stop=Stop(update_norm=tol), rtol=1e-12, atol=1e-14)
    got = {s.member: s.time for s in traj.stops}
    assert all(s.reason == "update_norm" for s in traj.stops)
    for m, w in enumerate(w0):
        assert abs(got[m] - math.log(abs(w - lam) / tol)) <= 1e-10 * max(1.0, got[m]), m


def test_single_network_stops_on_a_terminal_event_with_its_own_parameters():
    """A single network runs as an ensemble of one; its events see its own parameters and a float time."""
    prob = Problem(deep_linear((1, 1)), Backprop(), SquaredLoss("mean"), torch.ones(1, 1, dtype=DT),
                   torch.ones(1, 1, dtype=DT))
    seen: list[type] = []

    def g(t, p):
        seen.append(type(t))
        return p["W1"][0, 0] - 0.5  # w(t) = 1 - e^{-t} crosses 0.5 at ln 2

    traj = simulate_flow(prob, {"W1": torch.zeros(1, 1, dtype=DT)}, [0.0, 5.0], method=ROUTE,
                         events=[Event(g, terminal=True, name="half")], rtol=1e-12, atol=1e-14)
    assert traj.stop is not None and traj.stop.member is None and traj.stop.detail == "half"
    assert abs(traj.stop.time - math.log(2)) <= 1e-10
    assert traj.final["W1"].shape == (1, 1) and abs(float(traj.final["W1"]) - 0.5) <= 1e-12
    assert set(seen) == {float}


@pytest.mark.parametrize("route", ROUTES)
def test_time_dependent_terminal_event_sees_each_members_own_time(route):
    """Terminal events get ``t`` as the tensor of the active members' own times (members at different times): the
    event ``g = t - 0.35`` stops every member at 0.35 to 1e-12, each located on its own step's dense output, and
    the run ends there with every member frozen at its own state."""
    _, _, prob, p0 = _ensemble(3, scales=(0.5, 1.0, 4.0))
    shapes: list[tuple[int, ...]] = []

    def g(t, p):
        shapes.append(tuple(t.shape))
        return t - 0.35

    traj = simulate_flow(prob, p0, [0.0, 1.0], method=route, events=[Event(g, terminal=True, name="t = 0.35")])
    assert sorted(s.member for s in traj.stops) == [0, 1, 2]
    for s in traj.stops:
        assert s.reason == "event" and abs(s.time - 0.35) <= 1e-12, s
    assert traj.times == [0.0, pytest.approx(0.35, abs=1e-12)]
    assert all(len(sh) == 1 for sh in shapes) and {sh[0] for sh in shapes} >= {3}
    free = simulate_flow(prob, p0, [0.0, 0.35], method=route)
    # frozen where the free flow is at t = 0.35: two step sequences, one of them interpolated (DP5's dense output
    # is of order 4: measured 2.1e-10), so the bound is the 10 rtol of the members-alone test
    assert _rel(traj.final["W1"], free.final["W1"]) <= 1e-9


@pytest.mark.parametrize("route", ROUTES)
def test_shared_data_ensemble_equals_its_members_alone(route):
    """The quick-start kind of ensemble: data shared by all members (x, y without a member axis), members differing by
    their initial weights and feedback. Each member takes the steps it takes alone, and lands on the same states to
    rounding (the shared-data matmul is one batched kernel whose rounding may depend on the batch: <= 1e-13 asserted)."""
    g = torch.Generator().manual_seed(3)
    model = MLP((5, 6, 1), "identity")
    p0 = model.init_params(g, ensemble=3, scheme="gaussian", std=0.3)
    rule = FeedbackAlignment(Gaussian(6 ** -0.5))
    state = rule.init(model, p0, generator=g)
    x, y = torch.randn(7, 5, generator=g, dtype=DT), torch.randn(7, 1, generator=g, dtype=DT)
    prob = Problem(model, rule, SquaredLoss("mean"), x, y, state)
    ts = [0.0, 1.0, 4.0]
    traj = simulate_flow(prob, p0, ts, method=route)
    for m in range(3):
        alone = simulate_flow(Problem(model, rule, prob.loss, x, y, member(state, m)), member(p0, m), ts, method=route)
        assert alone.info["member_steps"] == [traj.info["member_steps"][m]]
        for i in range(len(ts)):
            for n in p0:
                assert _rel(traj.params[i][n][m], alone.params[i][n]) <= 1e-13, (m, i, n)


@pytest.mark.parametrize("route", ROUTES)
def test_fa_conserved_quantity_along_the_batched_flow(route):
    """Linear FA networks: Q = |W1|^2 / 2 - <W2, B2> (P000 Thm 5.1) is conserved along the exact flow; on the
    batched routes at rtol 1e-10 each member's Q stays within 1e-10 relative (measured 1.6e-11 by DP5) to t = 5."""
    model, _, prob, p0 = _ensemble(6, activation="identity", seed=1)
    ts = np.linspace(0.0, 5.0, 11).tolist()
    meas = {"Q": lambda s: fa_quantity(model.layer_weights(s.params), {2: s.problem.state["B2"]})[..., 0]}
    traj = simulate_flow(prob, p0, ts, method=route, measures=meas)
    q = traj.metric("Q")
    assert q.shape == (11, 6)
    assert float(((q - q[0]).abs() / q[0].abs()).max()) <= 1e-10
    loss0 = prob.loss_value(p0)
    assert bool((prob.loss_value(traj.final) < 0.9 * loss0).all())  # the flow moved: the law is not trivial


def test_a_member_over_its_budget_stalls_alone():
    """An evaluation budget between the slow and the fast member's needs: the slow-dynamics member finishes ok,
    the fast one stalls; the trajectory says so and keeps the records every member reached."""
    _, _, prob, p0 = _ensemble(2, scales=(0.5, 4.0))
    ts = [0.0, 0.1, 2.0]
    full = simulate_flow(prob, p0, ts, method=ROUTE)
    need = full.info["member_nfev"]
    assert need[0] < need[1]
    traj = simulate_flow(prob, p0, ts, method=ROUTE, max_evaluations=(need[0] + need[1]) // 2)
    assert traj.info["member_status"] == ["ok", "stalled"]
    assert traj.status == "stalled" and "member 1 stalled" in traj.message
    assert traj.times == ts[:len(traj.times)] and len(traj.times) < len(ts)
    assert traj.info["member_time"][0] == 2.0 and traj.info["member_time"][1] < 2.0
    for i in range(len(traj.times)):
        assert torch.equal(traj.params[i]["W1"], full.params[i]["W1"])


@pytest.mark.parametrize("route", ROUTES)
def test_a_non_finite_member_diverges_alone(route):
    """A member whose state is NaN rejects every step (a NaN error estimate is never accepted) and is reported
    ``diverged``; the others finish ``ok`` (same steps as without it); a NaN recorded at t = 0 ends the run there."""
    _, _, prob, p0 = _ensemble(3)
    bad = {n: v.clone() for n, v in p0.items()}
    bad["W1"][1, 0, 0] = float("nan")
    clean = simulate_flow(prob, p0, [0.5, 1.0], method=route)
    traj = simulate_flow(prob, bad, [0.5, 1.0], method=route)
    assert traj.status == "diverged" and traj.times == [] and "member 1 diverged" in traj.message
    assert traj.info["member_status"] == ["ok", "diverged", "ok"]
    assert traj.info["member_steps"][1] == 0 and traj.info["member_time"] == [1.0, 0.0, 1.0]
    assert [traj.info["member_steps"][m] for m in (0, 2)] == [clean.info["member_steps"][m] for m in (0, 2)]
    at0 = simulate_flow(prob, bad, [0.0, 1.0], method=route)
    assert at0.status == "diverged" and at0.times == [] and "members [1]" in at0.message
    assert at0.info["member_status"] == ["unfinished", "diverged", "unfinished"]


def test_bad_method_and_unsupported_events_are_refused():
    _, _, prob, p0 = _ensemble(2)
    with pytest.raises(FalabInputError, match=r"^Invalid flow.method: 'dopri5' \(expected one of .*'dop853-members', "
                       r"'dopri5-members'"):
        simulate_flow(prob, p0, [0.0, 1.0], method="dopri5")
    with pytest.raises(FalabInputError, match=r"^Invalid flow.events: 1 non-terminal event\(s\) \(expected terminal"):
        simulate_flow(prob, p0, [0.0, 1.0], method=ROUTE, events=[lambda t, p: 1.0])
