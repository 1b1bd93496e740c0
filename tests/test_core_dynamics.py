"""falab.dynamics: flows and Euler against closed forms, ensembles against sequential runs, Euler -> flow at order one,
recording, divergence and events."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from falab.dynamics import Euler, Problem, simulate_discrete, simulate_flow, vector_field
from falab.functional import SquaredLoss
from falab.models import MLP, member, stack_params
from falab.rules import Backprop, DirectFeedbackAlignment, FAStar, FeedbackAlignment
from problems import DT, gen, linear_regression, random_mlp, two_layer_linear_fa

LOSS = {"loss": lambda s: s.problem.loss_value(s.params)}


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


# ------------------------------------------------------------------------------------------- closed forms
def test_flow_matches_the_matrix_exponential_solution_of_linear_regression() -> None:
    lr_problem = linear_regression()
    model = MLP((4, 3), "identity")
    problem = Problem(model, Backprop(), SquaredLoss("mean"), lr_problem.x, lr_problem.y)
    ts = [0.0, 0.3, 1.0, 2.5]
    traj = simulate_flow(problem, {"W1": lr_problem.w0}, ts)
    assert traj.status == "ok" and traj.times == ts
    for t, w in zip(ts, traj.param("W1")):
        ref = torch.from_numpy(lr_problem.flow(t))
        assert max_rel(w, ref) <= 1e-9, t


def test_euler_matches_the_matrix_power_solution_of_linear_regression() -> None:
    lr_problem = linear_regression(seed=1)
    model = MLP((4, 3), "identity")
    problem = Problem(model, Backprop(), SquaredLoss("mean"), lr_problem.x, lr_problem.y)
    eta = 0.07
    traj = simulate_discrete(problem, {"W1": lr_problem.w0}, Euler(lr=eta), 60, record_steps=[0, 1, 17, 60])
    assert traj.steps == [0, 1, 17, 60]
    assert traj.times == pytest.approx([eta * k for k in traj.steps], rel=1e-15)
    for k, w in zip(traj.steps, traj.param("W1")):
        assert max_rel(w, torch.from_numpy(lr_problem.euler(eta, k))) <= 1e-12, k


def test_two_layer_linear_fa_from_zero_first_layer_converges_to_the_min_norm_interpolator() -> None:
    """P000 Thm 5.2 setting (N < d, scalar output, W1(0) = 0): the end-to-end map tends to (X^+ y)^T."""
    p = two_layer_linear_fa()
    model = MLP((7, 5, 1), "identity")
    rule = FeedbackAlignment()
    state = rule.init(model, p.params0, generator=gen(0), feedback={"B2": p.feedback})
    problem = Problem(model, rule, SquaredLoss("sum"), p.x, p.y, state)
    traj = simulate_flow(problem, p.params0, [0.0, 5.0, 60.0], measures=LOSS)
    w = traj.final
    end_to_end = w["W2"] @ w["W1"]
    assert float(traj.metric("loss")[-1]) <= 1e-12 * float(traj.metric("loss")[0])
    assert max_rel(end_to_end, p.limit) <= 1e-6
    # the mechanism: W1 = B^T m(t) with m in the row space of X, so W1 stays rank one along B^T
    assert max_rel(p.feedback.T @ (p.feedback @ w["W1"]) / float(p.feedback @ p.feedback.T), w["W1"]) <= 1e-10


# ------------------------------------------------------------------------------------------- ensembles
def _sequential_and_ensemble(rule_factory, activation, k_members=3, bias=True):
    rule = rule_factory()
    model, params, x, y = random_mlp((3, 5, 4, 2), activation, bias and not isinstance(rule, FAStar), seed=50,
                                     n=8, ensemble=k_members)
    state = rule.init(model, params, generator=gen(51))
    return rule, model, params, state, x, y


@pytest.mark.parametrize("rule_factory", [Backprop, FeedbackAlignment, DirectFeedbackAlignment, FAStar])
def test_ensemble_euler_equals_sequential_runs(rule_factory) -> None:
    rule, model, params, state, x, y = _sequential_and_ensemble(rule_factory, "relu")
    loss = SquaredLoss("mean")
    lr = {"W1": 0.1, "default": 0.05}
    ens = simulate_discrete(Problem(model, rule, loss, x, y, state), params, Euler(lr=lr), 40, record_every=20,
                            measures=LOSS)
    for m in range(3):
        seq = simulate_discrete(Problem(model, rule, loss, x, y[m], member(state, m)), member(params, m),
                                Euler(lr=lr), 40, record_every=20, measures=LOSS)
        assert seq.steps == ens.steps == [0, 20, 40]
        for pe, ps in zip(ens.params, seq.params):
            for k in ps:
                assert max_rel(pe[k][m], ps[k]) <= 1e-12, k
        assert torch.allclose(ens.metric("loss")[:, m], seq.metric("loss"), rtol=1e-12, atol=0)


def test_ensemble_sgd_equals_sequential_runs_with_the_same_batches() -> None:
    rule, model, params, state, x, y = _sequential_and_ensemble(FeedbackAlignment, "tanh", bias=True)
    y_shared = y[0]
    loss = SquaredLoss("mean")
    ens = simulate_discrete(Problem(model, rule, loss, x, y_shared, state), params, Euler(lr=0.1), 25,
                            batch_size=3, generator=gen(77), record_every=25)
    for m in range(3):
        seq = simulate_discrete(Problem(model, rule, loss, x, y_shared, member(state, m)), member(params, m),
                                Euler(lr=0.1), 25, batch_size=3, generator=gen(77), record_every=25)
        for k in seq.final:
            assert max_rel(ens.final[k][m], seq.final[k]) <= 1e-12
    # a different batch sequence gives a different end point (the batches matter)
    other = simulate_discrete(Problem(model, rule, loss, x, y_shared, state), params, Euler(lr=0.1), 25,
                              batch_size=3, generator=gen(78), record_every=25)
    assert max_rel(other.final["W1"], ens.final["W1"]) > 1e-6


@pytest.mark.parametrize("rule_factory", [Backprop, FeedbackAlignment, FAStar])
def test_ensemble_flow_equals_sequential_flows(rule_factory) -> None:
    """The adaptive step size is chosen for the whole stacked state vector, so members of an ensemble take other
    steps than when run alone: the two routes agree to the solver's accuracy (tolerance 1e-9 at rtol 1e-10,
    atol 1e-12), not to rounding as for Euler. tanh keeps the field smooth: with ReLU a pre-activation can reach 0 and
    slide along the kink (Filippov sliding), where DOP853 at rtol 1e-10 shrinks its step without end (observed
    for this very problem with ReLU at t ~ 0.22)."""
    rule, model, params, state, x, y = _sequential_and_ensemble(rule_factory, "tanh", k_members=2)
    loss = SquaredLoss("mean")
    ts = [0.0, 0.5, 2.0]
    ens = simulate_flow(Problem(model, rule, loss, x, y, state), params, ts, measures=LOSS)
    for m in range(2):
        seq = simulate_flow(Problem(model, rule, loss, x, y[m], member(state, m)), member(params, m), ts,
                            measures=LOSS)
        for pe, ps in zip(ens.params, seq.params):
            for k in ps:
                assert max_rel(pe[k][m], ps[k]) <= 1e-9, k


def test_stack_params_and_member_are_inverse() -> None:
    members = [MLP((2, 3, 1), "relu", bias=True).init_params(gen(i)) for i in range(3)]
    stacked = stack_params(members)
    assert stacked["W1"].shape == (3, 3, 2) and stacked["b2"].shape == (3, 1)
    for i in range(3):
        assert all(torch.equal(member(stacked, i)[k], members[i][k]) for k in members[i])


# ------------------------------------------------------------------------------------------- Euler -> flow
def test_euler_converges_to_the_flow_at_order_one() -> None:
    """||theta_Euler(T) - theta_flow(T)|| = C eta + O(eta^2): the log-log slope over eta = 0.04 .. 0.005 is 1 +- 0.1."""
    model, params, x, y = random_mlp((3, 6, 5, 2), "tanh", True, seed=60, n=10)
    rule = FeedbackAlignment()
    state = rule.init(model, params, generator=gen(61))
    problem = Problem(model, rule, SquaredLoss("mean"), x, y, state)
    horizon = 2.0
    ref = simulate_flow(problem, params, [0.0, horizon]).final
    etas = [0.04, 0.02, 0.01, 0.005]
    errs = []
    for eta in etas:
        steps = round(horizon / eta)
        fin = simulate_discrete(problem, params, Euler(lr=eta), steps, record_steps=[steps]).final
        errs.append(math.sqrt(sum(float(((fin[k] - ref[k]) ** 2).sum()) for k in ref)))
    slope = np.polyfit(np.log(etas), np.log(errs), 1)[0]
    assert abs(slope - 1.0) <= 0.1, (slope, errs)
    assert errs[-1] < errs[0] / 4


# ------------------------------------------------------------------------------------------- recording etc.
def test_vector_field_is_minus_the_update() -> None:
    model, params, x, y = random_mlp((3, 4, 2), "relu", True, seed=70)
    problem = Problem(model, Backprop(), SquaredLoss(), x, y)
    field = vector_field(problem)(params)
    upd = problem.update(params)
    assert all(torch.equal(field[k], -upd[k]) for k in params)


def test_record_every_includes_first_and_last_step_and_time_unit() -> None:
    model, params, x, y = random_mlp((3, 4, 2), "relu", False, seed=71)
    problem = Problem(model, Backprop(), SquaredLoss(), x, y)
    traj = simulate_discrete(problem, params, Euler(lr={"W1": 0.02, "W2": 0.05}), 10, record_every=4)
    assert traj.steps == [0, 4, 8, 10]
    assert traj.times == pytest.approx([0.0, 0.2, 0.4, 0.5], rel=1e-14)  # default unit: the largest step size
    traj = simulate_discrete(problem, params, Euler(lr=0.05), 3, time_unit=1.0, keep_params=False)
    assert traj.times == [0.0, 1.0, 2.0, 3.0] and traj.params == []
    traj = simulate_discrete(problem, params, Euler(lr=0.05), 0)
    assert traj.steps == [0] and all(torch.equal(traj.final[k], params[k]) for k in params)


def test_per_parameter_step_sizes_are_applied() -> None:
    model, params, x, y = random_mlp((3, 4, 2), "relu", False, seed=72)
    problem = Problem(model, Backprop(), SquaredLoss(), x, y)
    upd = problem.update(params)
    traj = simulate_discrete(problem, params, Euler(lr={"W1": 0.3, "default": 0.01}), 1)
    assert torch.allclose(traj.final["W1"], params["W1"] - 0.3 * upd["W1"], rtol=0, atol=1e-15)
    assert torch.allclose(traj.final["W2"], params["W2"] - 0.01 * upd["W2"], rtol=0, atol=1e-15)


def test_simulations_do_not_write_into_params0() -> None:
    model, params, x, y = random_mlp((3, 4, 2), "relu", True, seed=73)
    before = {k: v.clone() for k, v in params.items()}
    problem = Problem(model, Backprop(), SquaredLoss(), x, y)
    simulate_discrete(problem, params, Euler(lr=0.1), 5)
    simulate_flow(problem, params, [0.0, 0.1])
    assert all(torch.equal(before[k], params[k]) for k in params)


def test_divergence_is_reported_and_the_record_kept() -> None:
    model, params, x, y = random_mlp((3, 8, 2), "identity", False, seed=74)
    problem = Problem(model, Backprop(), SquaredLoss("sum"), 10.0 * x, y)
    traj = simulate_discrete(problem, params, Euler(lr=5.0), 2000, record_every=1)
    assert traj.status == "diverged" and "step" in traj.message
    assert 1 <= len(traj.steps) < 2001 and traj.steps[0] == 0


def test_flow_event_locates_the_crossing_time_of_a_scalar_exponential() -> None:
    """w(t) = w* + (w0 - w*) exp(-s t) for a 1x1 regression; the event w(t) = w_mid is found to solver accuracy."""
    x = torch.tensor([[1.0], [2.0]], dtype=DT)
    y = torch.tensor([[3.0], [6.0]], dtype=DT)  # w* = 3, s = (1 + 4) / 2
    w0, w_star, s, w_mid = 0.0, 3.0, 2.5, 2.0
    problem = Problem(MLP((1, 1), "identity"), Backprop(), SquaredLoss("mean"), x, y)

    def crossing(t: float, p) -> float:
        del t
        return float(p["W1"][0, 0]) - w_mid

    traj = simulate_flow(problem, {"W1": torch.full((1, 1), w0, dtype=DT)}, [0.0, 2.0], events=[crossing])
    t_exact = -math.log((w_mid - w_star) / (w0 - w_star)) / s
    assert len(traj.events) == 1 and len(traj.events[0]) == 1
    assert abs(float(traj.events[0][0]) - t_exact) <= 1e-9


def test_flow_with_fa_star_keeps_the_last_layer_optimal() -> None:
    model, params, x, y = random_mlp((3, 6, 4, 2), "tanh", False, seed=75, n=12)
    rule = FAStar()
    state = rule.init(model, params, generator=gen(76))
    problem = Problem(model, rule, SquaredLoss("mean"), x, y, state)
    traj = simulate_flow(problem, params, [0.0, 0.5, 1.0], measures=LOSS)
    for p in traj.params:
        a = model.trace(p, x).inputs[-1]
        ref = (torch.linalg.pinv(a) @ y).T
        assert max_rel(p["W3"], ref) <= 1e-12
    loss = traj.metric("loss")
    assert bool((loss[1:] <= loss[:-1]).all())


def test_flow_accepts_float32_data_and_feedback_and_integrates_in_float64() -> None:
    """The solver state is float64; float32 data/feedback are promoted (they used to crash in the first matmul)."""
    model, params, x, y = random_mlp((3, 5, 2), "tanh", False, seed=80)
    rule = FeedbackAlignment()
    state = rule.init(model, params, generator=gen(81))
    x32, y32, state32 = x.float(), y.float(), {k: v.float() for k, v in state.items()}
    p32 = {k: v.float() for k, v in params.items()}
    traj32 = simulate_flow(Problem(model, rule, SquaredLoss(), x32, y32, state32), p32, [0.0, 1.0])
    ref = simulate_flow(Problem(model, rule, SquaredLoss(), x32.double(), y32.double(),
                                {k: v.double() for k, v in state32.items()}), {k: v.double() for k, v in p32.items()},
                        [0.0, 1.0])
    assert traj32.status == "ok" and traj32.final["W1"].dtype == DT
    for k in ref.final:
        assert torch.equal(traj32.final[k], ref.final[k])


def test_fixed_step_rk4_flow_converges_at_order_four() -> None:
    """method='rk4' (fixed step, for ReLU fields): error vs the matrix-exponential solution ~ C dt^4 (slope 4 +- 0.3)."""
    lr_problem = linear_regression()
    problem = Problem(MLP((4, 3), "identity"), Backprop(), SquaredLoss("mean"), lr_problem.x, lr_problem.y)
    ref = lr_problem.flow(1.0)
    dts = [0.2, 0.1, 0.05]
    errs = [float(np.abs(simulate_flow(problem, {"W1": lr_problem.w0}, [0.0, 1.0], method="rk4", step_size=dt)
                         .final["W1"].numpy() - ref).max()) for dt in dts]
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert abs(slope - 4.0) <= 0.3, (slope, errs)


@pytest.mark.parametrize("route", ["flow", "chunked flow", "euler"])
def test_progress_reports_increasing_fractions_up_to_one(route) -> None:
    """``progress`` (the CLI's bar) sees non-decreasing fractions in [0, 1] ending at 1, one call per record."""
    g = torch.Generator().manual_seed(11)
    model = MLP((3, 4, 1), "tanh")
    params = model.init_params(g, ensemble=6)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.randn(5, 1, generator=g, dtype=torch.float64)
    problem = Problem(model, Backprop(), SquaredLoss("mean"), x, y)
    seen: list[float] = []
    if route == "euler":
        simulate_discrete(problem, params, Euler(lr=0.1), 20, record_every=5, progress=seen.append)
        assert len(seen) == 5
    else:
        simulate_flow(problem, params, [0.0, 0.5, 1.0], progress=seen.append,
                      chunk_members=4 if route == "chunked flow" else None)
        assert len(seen) == (6 if route == "chunked flow" else 3)
    assert seen[0] == 0.0 and seen[-1] == pytest.approx(1.0) and all(b >= a for a, b in zip(seen, seen[1:]))
