"""Stop conditions (issue 14 item 2): each ends a flow and a discrete run at the time a closed form predicts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from falab.dynamics import Euler, Event, Problem, Stop, simulate_discrete, simulate_flow
from falab.experiments.p003.systems import init7, scalar_params, scalar_system
from falab.functional import SquaredLoss
from falab.models import deep_linear
from falab.rules import Backprop
from falab.theory import euler_recursion, vanishing_time

DT = torch.float64
LAM = 1.0


def _regression(w0: list[float]) -> tuple[Problem, dict[str, torch.Tensor]]:
    """``w' = lam - w`` (one-weight linear regression, x = 1, y = lam, mean squared loss): an ensemble of len(w0).

    Closed forms: ``L(t) = (w0 - lam)^2 e^{-2t} / 2`` and ``|field(t)| = |w0 - lam| e^{-t}``."""
    k = len(w0)
    prob = Problem(deep_linear((1, 1)), Backprop(), SquaredLoss("mean"), torch.ones(1, 1, dtype=DT),
                   torch.full((k, 1, 1), LAM, dtype=DT))
    return prob, {"W1": torch.tensor(w0, dtype=DT).view(k, 1, 1)}


def _theta1(t: float, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Under init (7) (K = 0, theta2 = theta1^2 / 2d) the product vanishes exactly when theta1 does; theta1 crosses
    with slope d * lam (the product itself has a triple zero there, so its crossing time is ill-conditioned)."""
    return p["W1"].reshape(-1)


def test_flow_stops_at_p003_vanishing_time_per_member():
    """System (6), init (7): the product theta1 theta2 crosses 0 at T0 (P003 eqs 16-17); a per-member terminal
    event stops each member there to 1e-10, and a member stopping early leaves the others unchanged."""
    theta0 = np.array([-0.5, -1.0, -2.0])
    prob = scalar_system(1.0, LAM)
    prob = Problem(prob.model, prob.rule, prob.loss, prob.x, prob.y.expand(3, 1, 1).clone(),
                   {k: v.expand(3, 1, 1).clone() for k, v in prob.state.items()})
    p0 = scalar_params(init7(theta0, 1.0))
    stop = Stop(events=[Event(_theta1, terminal=True, direction=1, name="product vanishes")])
    traj = simulate_flow(prob, p0, [0.0, 10.0], stop=stop, rtol=1e-12, atol=1e-14)
    t0 = [vanishing_time(float(a), 1.0, LAM) for a in theta0]
    stops = sorted(traj.stops, key=lambda s: s.member)
    assert [s.member for s in stops] == [0, 1, 2]
    for s, want in zip(stops, t0):
        assert s.reason == "event" and s.detail == "product vanishes"
        assert abs(s.time - want) < 1e-10, (s.time, want)
    assert traj.stop is not None and traj.stop.time == pytest.approx(max(t0), abs=1e-10)
    assert traj.times[-1] == traj.stop.time  # the stop state is recorded last
    assert float(traj.final["W1"].abs().max()) < 1e-12  # each member frozen on the crossing
    # the member alone: the same stop time and state (stopping the others did not change it)
    alone = simulate_flow(scalar_system(1.0, LAM), scalar_params(init7(theta0[2:], 1.0)), [0.0, 10.0], stop=stop,
                          rtol=1e-12, atol=1e-14)
    assert alone.stop is not None and alone.stop.member == 0
    assert abs(alone.stop.time - stops[2].time) < 1e-11
    assert torch.allclose(alone.final["W1"][0], traj.final["W1"][2], atol=1e-11, rtol=0)
    json.dumps(traj.info["stops"], allow_nan=False)


def test_flow_stops_at_loss_target_and_update_norm():
    w0 = [3.0, 1.5, -2.0]
    prob, p0 = _regression(w0)
    target = 1e-6
    traj = simulate_flow(prob, p0, np.linspace(0, 30, 7).tolist(), stop=Stop(loss=target), rtol=1e-12, atol=1e-15)
    want = [0.5 * math.log(0.5 * (w - LAM) ** 2 / target) for w in w0]
    got = {s.member: s.time for s in traj.stops}
    for m, t in enumerate(want):
        assert abs(got[m] - t) < 1e-9 * max(1, t), (got[m], t)
    assert all(s.reason == "loss" for s in traj.stops)
    assert traj.times[-1] == pytest.approx(max(want), abs=1e-9)
    assert all(t <= traj.times[-1] for t in traj.times)
    loss = prob.loss_value(traj.final)
    assert torch.allclose(loss, torch.full((3,), target, dtype=DT), rtol=1e-7, atol=0)
    # the whole-run stop of a single network: member None, times before the stop recorded as usual
    single, q0 = _regression([3.0])
    q0 = {"W1": q0["W1"][0]}
    single = Problem(single.model, single.rule, single.loss, single.x, single.y[0])
    tol = 1e-3
    tr = simulate_flow(single, q0, np.linspace(0, 30, 31).tolist(), stop=Stop(update_norm=tol), rtol=1e-12,
                       atol=1e-15)
    t_star = math.log(abs(3.0 - LAM) / tol)
    assert tr.stop is not None and tr.stop.member is None and tr.stop.reason == "update_norm"
    assert abs(tr.stop.time - t_star) < 1e-9 * t_star
    assert tr.times[:-1] == [float(t) for t in range(int(t_star) + 1)]
    assert tr.info["stop"]["reason"] == "update_norm"
    json.dumps(tr.info, allow_nan=False)


def test_flow_already_met_stops_at_start_and_unmet_runs_to_horizon():
    prob, p0 = _regression([1.0 + 1e-9])
    tr = simulate_flow(prob, p0, [0.0, 1.0], stop=Stop(loss=1e-12))
    assert tr.stop is not None and tr.stop.time == 0.0 and tr.times == [0.0]
    tr = simulate_flow(prob, {"W1": p0["W1"] + 1.0}, [0.0, 1.0], stop=Stop(loss=1e-30))
    assert tr.stop is None and tr.times == [0.0, 1.0] and tr.info["stop"] is None


def test_euler_stops_at_the_predicted_step_index():
    """Euler on w' = lam - w: e_k = (1 - eta)^k e_0, so loss <= target first at k* = ceil(ln(target/L0) / 2ln(1-eta))."""
    eta, w0 = 0.1, [3.0, 2.0]
    prob, p0 = _regression(w0)
    target = 1e-9
    traj = simulate_discrete(prob, p0, Euler(lr=eta), 10_000, record_every=50, stop=Stop(loss=target))
    ks = [math.ceil(math.log(target / (0.5 * (w - LAM) ** 2)) / (2 * math.log(1 - eta))) for w in w0]
    got = {s.member: s for s in traj.stops}
    for m, k in enumerate(ks):
        assert got[m].step == k and got[m].time == pytest.approx(eta * k)
    assert traj.steps[-1] == max(ks) and traj.stop is not None and traj.stop.step == max(ks)
    # member 1 is held at its stop step: its final weight is the closed form at k*
    assert float(traj.final["W1"][1]) == pytest.approx(LAM + (w0[1] - LAM) * (1 - eta) ** ks[1], rel=1e-13)
    # update norm |e_k| <= tol first at k = ceil(ln(tol/|e0|)/ln(1-eta))
    tol = 1e-5
    tr = simulate_discrete(prob, p0, Euler(lr=eta), 10_000, record_every=10_000, stop=Stop(update_norm=tol))
    ku = [math.ceil(math.log(tol / abs(w - LAM)) / math.log(1 - eta)) for w in w0]
    assert sorted(s.step for s in tr.stops) == sorted(ku)


def test_euler_terminal_event_at_the_recursions_sign_change():
    """P003 Euler scheme (22)-(23) from init (7): the step at which theta1 theta2 first turns >= 0 (theta1 >= 0)."""
    eta, theta0 = 0.05, -1.5
    prob = scalar_system(1.0, LAM)
    th = init7([theta0], 1.0)
    traj = simulate_discrete(prob, scalar_params(th), Euler(lr=eta), 2000, record_every=2000,
                             stop=Stop(events=[Event(_theta1, terminal=True, direction=1)]))
    x, y = euler_recursion(float(th[0, 0]), float(th[0, 1]), eta, 1.0, LAM, 2000)
    k = int(np.argmax(x >= 0))
    assert k > 0 and traj.stop is not None and traj.stop.step == k
    assert float(traj.final["W1"].reshape(-1)[0]) == pytest.approx(x[k], rel=1e-12)


def test_stop_rejects_bad_input():
    from falab._checks import FalabInputError

    with pytest.raises(FalabInputError, match="Invalid stop.loss"):
        Stop(loss=-1.0)
    with pytest.raises(FalabInputError, match="Invalid event.direction"):
        Event(_theta1, direction=2)
    prob, p0 = _regression([2.0])
    with pytest.raises(FalabInputError, match="Invalid flow.stop"):
        simulate_flow(prob, p0, [0.0, 1.0], method="rk4", step_size=0.1, stop=Stop(loss=1e-3))
