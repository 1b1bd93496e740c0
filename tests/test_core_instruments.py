"""falab.instruments: conservation laws along exact flows, the exact Euler identities, alignment measures.

Drift of a quantity Q_i is reported relative to the size of its terms at t = 0,
``scale_i = 1/2 ||W_i(0)||^2 + 1/2 ||b_i(0)||^2 + |<W_{i+1}(0), F_{i+1}>|`` (Q itself may be close to 0).
ReLU flows are chosen so that no pre-activation slides along the kink (see test_core_dynamics).
"""

from __future__ import annotations

import math

import pytest
import torch

from falab.dynamics import Euler, Problem, Snapshot, simulate_discrete, simulate_flow
from falab.functional import SquaredLoss
from falab.instruments import (
    MEASURES,
    FAStepIdentity,
    angle_degrees,
    dfa_last_pair,
    end_to_end,
    fa_quantity,
    fa_quantity_matrix,
    fa_quantity_per_neuron,
    fa_step_change,
    gd_balancedness,
    norm_ratio,
    relative_distance,
    update_angles_to_gradient,
    weight_feedback_angles,
)
from falab.rules import Backprop, DirectFeedbackAlignment, FeedbackAlignment, ScaledLikeWeight
from problems import DT, gen, randn, random_mlp


def _fa_problem(activation: str, bias: bool, seed: int, widths=(4, 6, 5, 3), n: int = 10):
    model, params, x, y = random_mlp(widths, activation, bias, seed=seed, n=n)
    rule = FeedbackAlignment(ScaledLikeWeight())
    state = rule.init(model, params, generator=gen(seed + 1))
    return Problem(model, rule, SquaredLoss("mean"), x, y, state), params


def _parts(snap: Snapshot):
    p = snap.problem
    return (p.model.layer_weights(snap.params), p.rule.feedback_used(p.model, snap.params, p.state),
            p.model.layer_biases(snap.params))


def _q(snap: Snapshot) -> torch.Tensor:
    return fa_quantity(*_parts(snap))


def _scale(ws, fb, bs) -> torch.Tensor:
    return torch.stack([0.5 * (ws[i] ** 2).sum() + (0.0 if bs[i] is None else 0.5 * (bs[i] ** 2).sum())
                        + (ws[i + 1] * fb[i + 2]).sum().abs() for i in range(len(ws) - 1)])


def _floor(ws, fb, bs, i: int) -> torch.Tensor:
    """Rounding floor of one Euler step's change of Q_i: eps (||W_i||^2 + ||b_i||^2 + ||W_{i+1}|| ||F_{i+1}||)."""
    size = (ws[i] ** 2).sum() + ws[i + 1].norm() * fb[i + 2].norm()
    if bs is not None and bs[i] is not None:
        size = size + (bs[i] ** 2).sum()
    return torch.finfo(DT).eps * size


def _rel_drift(values: torch.Tensor, scale: torch.Tensor) -> float:
    return float(((values - values[0]).abs().amax(0) / scale).max())


# ------------------------------------------------------------------------------------------- flows
@pytest.mark.parametrize(("activation", "seed", "horizon", "tol"), [
    ("identity", 1, 3.0, 1e-9),  # smooth field: solver accuracy
    ("relu", 1, 1.0, 1e-6),  # piecewise smooth: kinks cost accuracy (claims.md §2 tolerance policy)
])
def test_fa_quantity_is_conserved_along_the_flow(activation, seed, horizon, tol) -> None:
    problem, params = _fa_problem(activation, False, seed)
    traj = simulate_flow(problem, params, [0.0, horizon / 3, horizon], max_evaluations=50_000,
                         measures={"Q": _q, "loss": MEASURES["loss"]})
    assert traj.status == "ok", traj.message
    loss = traj.metric("loss")
    assert float(loss[-1]) < 0.99 * float(loss[0])  # the network did move
    snap0 = Snapshot(0.0, 0, traj.params[0], problem)
    assert _rel_drift(traj.metric("Q"), _scale(*_parts(snap0))) <= tol
    if activation == "identity":  # per-neuron and matrix forms (claims.md P000-T5.1-per-neuron, -linear-matrix)
        ws0, fb0, _ = _parts(snap0)
        c_scale = float(torch.stack([m.abs().max() for m in fa_quantity_matrix(ws0, fb0)]).max())
        for p in traj.params[1:]:
            ws, fb, _ = _parts(Snapshot(0.0, 0, p, problem))
            for a, b in zip(fa_quantity_per_neuron(ws, fb), fa_quantity_per_neuron(ws0, fb0)):
                assert float((a - b).abs().max()) <= tol * c_scale
            for a, b in zip(fa_quantity_matrix(ws, fb), fa_quantity_matrix(ws0, fb0)):
                assert float((a - b).abs().max()) <= tol * c_scale


def test_fa_quantity_drift_under_tanh_is_detected_as_not_conserved() -> None:
    """tanh is not homogeneous (claims.md §1.9 flag): the same flow moves Q_i by a large fraction of its scale."""
    problem, params = _fa_problem("tanh", False, 1)
    traj = simulate_flow(problem, params, [0.0, 1.0, 3.0], measures={"Q": _q})
    drift = _rel_drift(traj.metric("Q"), _scale(*_parts(Snapshot(0.0, 0, traj.params[0], problem))))
    assert drift > 1e-2


def test_gd_balancedness_is_conserved_by_the_backprop_flow() -> None:
    model, params, x, y = random_mlp((4, 6, 5, 3), "identity", True, seed=3, n=10)
    problem = Problem(model, Backprop(), SquaredLoss("mean"), x, y)
    measures = {"D": lambda s: gd_balancedness(s.problem.model.layer_weights(s.params),
                                               s.problem.model.layer_biases(s.params))}
    traj = simulate_flow(problem, params, [0.0, 1.0, 3.0], measures=measures)
    ws, bs = model.layer_weights(params), model.layer_biases(params)
    scale = torch.stack([0.5 * (ws[i] ** 2).sum() + 0.5 * (bs[i] ** 2).sum() + 0.5 * (ws[i + 1] ** 2).sum()
                         for i in range(2)])
    assert _rel_drift(traj.metric("D"), scale) <= 1e-9
    assert float((traj.final["W1"] - params["W1"]).abs().max()) > 1e-2


def _dfa_pair_law(ws, stored, i: int) -> torch.Tensor:
    """Linear-net DFA law for pair (i, i+1), i + 1 < L (claims.md §1.9): 1/2||W_i||^2 - <W_{i+1}, pinv(S_{i+1}) S_i>
    with S_l = D_l^T the stored matrices (the B that makes FA's chain equal DFA's direct signal)."""
    b = torch.linalg.pinv(stored[i + 1]) @ stored[i]
    return 0.5 * (ws[i - 1] ** 2).sum() - (ws[i] * b).sum()


@pytest.mark.parametrize("activation", ["relu", "identity"])
def test_dfa_last_pair_is_conserved_while_the_first_pair_law_needs_linearity(activation) -> None:
    """Seed 13: DFA drives ReLU pre-activations into sliding along the kink, where DOP853 stalls (seeds 4..12 of this
    problem stalled within 30000 evaluations; RK4 with dt = 1e-3 loses 1e-6 at the kinks). This one does not slide."""
    model, params, x, y = random_mlp((4, 6, 5, 2), activation, False, seed=13, n=10)
    rule = DirectFeedbackAlignment(ScaledLikeWeight())
    state = rule.init(model, params, generator=gen(14))
    problem = Problem(model, rule, SquaredLoss("mean"), x, y, state)
    stored = {1: state["D1"], 2: state["D2"]}

    def laws(s: Snapshot) -> torch.Tensor:
        ws = model.layer_weights(s.params)
        return torch.stack([_dfa_pair_law(ws, stored, 1), dfa_last_pair(ws, state["D2"])])

    traj = simulate_flow(problem, params, [0.0, 1.0, 2.0], max_evaluations=50_000,
                         measures={"laws": laws, "conserved": MEASURES["conserved"]})
    assert traj.status == "ok", traj.message
    values = traj.metric("laws")
    ws = model.layer_weights(params)
    scale = torch.stack([0.5 * (ws[0] ** 2).sum(), 0.5 * (ws[1] ** 2).sum() + (ws[2] * state["D2"]).sum().abs()])
    drift = (values - values[0]).abs().amax(0) / scale
    assert float(drift[1]) <= 1e-8  # last pair: conserved for any homogeneous phi_{L-1}
    if activation == "identity":
        assert float(drift[0]) <= 1e-8
    else:
        assert float(drift[0]) > 1e-3  # the activation masks of layer 2 break the first-pair law
    cons = traj.metric("conserved")  # the named measure: NaN for pairs without a law, the last-pair law otherwise
    assert bool(torch.isnan(cons[:, 0]).all()) and torch.allclose(cons[:, 1], values[:, 1], rtol=1e-14, atol=0)


# ------------------------------------------------------------------------------------------- Euler identities
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "identity"])
@pytest.mark.parametrize("bias", [False, True])
def test_euler_step_changes_q_by_half_eta_squared_g_squared(activation, bias) -> None:
    """Delta Q_i = 1/2 eta^2 ||G_i||^2 (+ bias term) at every step (claims.md §1.9, P000-T5.1 Euler).

    The step actually taken is the float difference of the iterates, which differs from -eta G by the rounding of
    ``W - eta G`` (~eps ||W||); that moves Q by ~eps (||W_i||^2 + ||W_{i+1}|| ||B||) per step, the floor of any
    float64 check. While gradients are large (first 10 steps) the floor is far below 1e-12 of the prediction and the
    monitor must report <= 1e-12; over a long run (gradients shrink as the loss converges) every step must be within
    1e-12 relative plus 8x that floor."""
    problem, params = _fa_problem(activation, bias, seed=6)
    eta = 0.05
    monitor = FAStepIdentity(problem.model, problem.rule, problem.state)
    simulate_discrete(problem, params, Euler(lr=eta), 10, record_steps=[0], on_step=monitor)
    assert monitor.steps == 10
    assert float(monitor.max_rel_violation.max()) <= 1e-12

    model = problem.model
    excess = []

    def on_step(k, p, upd, new) -> None:
        ws, wn = model.layer_weights(p), model.layer_weights(new)
        bs, bn = model.layer_biases(p), model.layer_biases(new)
        fb = problem.rule.feedback_used(model, p, problem.state)
        for i in range(len(ws) - 1):
            db = None if bs[i] is None else bn[i] - bs[i]
            meas, pred = fa_step_change(ws[i], ws[i + 1], fb[i + 2], wn[i] - ws[i], wn[i + 1] - ws[i + 1], bs[i], db)
            excess.append(float((meas - pred).abs() / (1e-12 * pred + 8 * _floor(ws, fb, bs, i))))

    traj = simulate_discrete(problem, params, Euler(lr=eta), 200, record_steps=[0, 200], measures={"Q": _q},
                             on_step=on_step)
    assert max(excess) <= 1.0
    # summed over the run, the difference of the O(1) values of Q matches the accumulated prediction
    monitor = FAStepIdentity(problem.model, problem.rule, problem.state)
    simulate_discrete(problem, params, Euler(lr=eta), 200, record_steps=[0], on_step=monitor)
    q = traj.metric("Q")
    assert bool((monitor.predicted_drift > 0).all())
    assert torch.allclose(q[-1] - q[0], monitor.predicted_drift, rtol=1e-9, atol=0)


def test_euler_step_identity_is_violated_under_tanh() -> None:
    problem, params = _fa_problem("tanh", False, seed=6)
    monitor = FAStepIdentity(problem.model, problem.rule, problem.state)
    simulate_discrete(problem, params, Euler(lr=0.05), 20, record_steps=[0], on_step=monitor)
    assert float(monitor.max_rel_violation.min()) > 1e-3


@pytest.mark.parametrize("activation", ["relu", "identity"])
def test_per_neuron_and_matrix_euler_identities(activation) -> None:
    """q_{i,j}(k+1) - q_{i,j}(k) = 1/2 eta^2 (||G_i[j,:]||^2 + g_{b,j}^2) (homogeneous phi_i) and, for linear nets,
    C_i(k+1) - C_i(k) = eta^2 G_i G_i^T (claims.md §1.9). Changes are evaluated in expanded form (no cancellation of
    the O(1) values), to 1e-12 relative plus 8x the rounding floor of the step (see the test above); the differences of
    the instruments' values agree to 1e-8 relative plus 64x that floor."""
    bias = activation == "relu"
    problem, params = _fa_problem(activation, bias, seed=8)
    model, state = problem.model, problem.state
    eta = 0.05
    checked = []

    def on_step(k, p, upd, new) -> None:
        ws, wn = model.layer_weights(p), model.layer_weights(new)
        bs, bn = model.layer_biases(p), model.layer_biases(new)
        fb = problem.rule.feedback_used(model, p, state)
        q_old, q_new = fa_quantity_per_neuron(ws, fb, bs), fa_quantity_per_neuron(wn, fb, bn)
        c_old, c_new = fa_quantity_matrix(ws, fb), fa_quantity_matrix(wn, fb)
        for i in range(len(ws) - 1):
            dw, dn, b = wn[i] - ws[i], wn[i + 1] - ws[i + 1], fb[i + 2]
            g = upd[f"W{i + 1}"]
            pred = 0.5 * eta**2 * (g**2).sum(-1)
            meas = (ws[i] * dw).sum(-1) + 0.5 * (dw**2).sum(-1) - (dn * b).sum(-2)
            if bs[i] is not None:
                db, gb = bn[i] - bs[i], upd[f"b{i + 1}"]
                pred = pred + 0.5 * eta**2 * gb**2
                meas = meas + bs[i] * db + 0.5 * db**2
            fl = float(_floor(ws, fb, bs, i))
            assert float((meas - pred).abs().max()) <= 1e-12 * float(pred.abs().max()) + 8 * fl
            assert float((q_new[i] - q_old[i] - pred).abs().max()) <= 1e-8 * float(pred.abs().max()) + 64 * fl
            if activation == "identity":
                pred_c = eta**2 * g @ g.T
                meas_c = (ws[i] @ dw.T + dw @ ws[i].T + dw @ dw.T - b.T @ dn - dn.T @ b)
                assert float((meas_c - pred_c).abs().max()) <= 1e-12 * float(pred_c.abs().max()) + 8 * fl
                assert float((c_new[i] - c_old[i] - pred_c).abs().max()) <= 1e-8 * float(pred_c.abs().max()) + 64 * fl
        checked.append(k)

    simulate_discrete(problem, params, Euler(lr=eta), 30, record_steps=[0], on_step=on_step)
    assert checked == list(range(30))


def test_fa_step_change_expanded_form_equals_the_difference_of_q() -> None:
    g = gen(9)
    w, wn, b, dw, dn = randn(4, 3, g=g), randn(2, 4, g=g), randn(2, 4, g=g), randn(4, 3, g=g), randn(2, 4, g=g)
    bias, db = randn(4, g=g), randn(4, g=g)
    meas, pred = fa_step_change(w, wn, b, dw, dn, bias, db)
    q0 = fa_quantity([w, wn], {2: b}, [bias, None])
    q1 = fa_quantity([w + dw, wn + dn], {2: b}, [bias + db, None])
    assert abs(float(meas - (q1 - q0)[0])) <= 1e-13 * float(q0.abs().max() + 1)
    assert abs(float(pred) - 0.5 * float((dw**2).sum() + (db**2).sum())) <= 1e-14 * float(pred)


def test_gd_euler_balancedness_identity() -> None:
    """GD: D_i(k+1) - D_i(k) = 1/2 eta^2 (||G_i||^2 - ||G_{i+1}||^2) exactly (claims.md §1.9), homogeneous phi_i;
    checked to 1e-12 relative plus 8x the rounding floor eps (||W_i||^2 + ||W_{i+1}||^2) of the step."""
    model, params, x, y = random_mlp((4, 6, 5, 3), "relu", False, seed=10, n=10)
    problem = Problem(model, Backprop(), SquaredLoss("mean"), x, y)
    eta = 0.05
    worst = []

    def on_step(k, p, upd, new) -> None:
        ws, wn = model.layer_weights(p), model.layer_weights(new)
        for i in range(2):
            d0, d1 = ws[i + 1], wn[i + 1] - ws[i + 1]
            dw = wn[i] - ws[i]
            meas = (ws[i] * dw).sum() + 0.5 * (dw**2).sum() - (d0 * d1).sum() - 0.5 * (d1**2).sum()
            g_i, g_n = upd[f"W{i + 1}"], upd[f"W{i + 2}"]
            pred = 0.5 * eta**2 * ((g_i**2).sum() - (g_n**2).sum())
            floor = torch.finfo(DT).eps * ((ws[i] ** 2).sum() + (ws[i + 1] ** 2).sum())
            worst.append(float((meas - pred).abs() / (0.5e-12 * eta**2 * ((g_i**2).sum() + (g_n**2).sum()) + 8 * floor)))

    simulate_discrete(problem, params, Euler(lr=eta), 30, record_steps=[0], on_step=on_step)
    assert max(worst) <= 1.0
    traj = simulate_discrete(problem, params, Euler(lr=eta), 1,
                             measures={"D": lambda s: gd_balancedness(model.layer_weights(s.params))})
    assert traj.metric("D").shape == (2, 2)


# ------------------------------------------------------------------------------------------- alignment
def test_angle_norm_ratio_distance_end_to_end() -> None:
    g = gen(11)
    a = randn(2, 3, 4, g=g)
    assert torch.allclose(angle_degrees(a, 2.5 * a), torch.zeros(2, dtype=DT), atol=1e-5)
    assert torch.allclose(angle_degrees(a, -a), torch.full((2,), 180.0, dtype=DT), atol=1e-5)
    e1 = torch.zeros(3, 4, dtype=DT)
    e1[0, 0] = 1.0
    e2 = torch.zeros(3, 4, dtype=DT)
    e2[1, 2] = 2.0
    assert abs(float(angle_degrees(e1, e2)) - 90.0) <= 1e-12
    assert abs(float(angle_degrees(e1, e1 + e2 / 2)) - 45.0) <= 1e-12
    assert torch.allclose(norm_ratio(3 * a, a), torch.full((2,), 3.0, dtype=DT), rtol=1e-14)
    assert torch.allclose(relative_distance(1.1 * a, a), torch.full((2,), 0.1, dtype=DT), rtol=1e-12)
    ws = [randn(5, 3, g=g), randn(4, 5, g=g), randn(2, 4, g=g)]
    assert torch.allclose(end_to_end(ws), ws[2] @ ws[1] @ ws[0], rtol=1e-14)


def test_alignment_measures_on_snapshots() -> None:
    model, params, x, y = random_mlp((4, 6, 5, 3), "relu", False, seed=12)
    bp = Problem(model, Backprop(), SquaredLoss(), x, y)
    snap = Snapshot(0.0, 0, params, bp)
    assert torch.allclose(weight_feedback_angles(snap), torch.zeros(2, dtype=DT), atol=1e-5)
    assert torch.allclose(update_angles_to_gradient(snap), torch.zeros(3, dtype=DT), atol=1e-5)
    rule = FeedbackAlignment()
    state = rule.init(model, params, generator=gen(13))
    fa_snap = Snapshot(0.0, 0, params, Problem(model, rule, SquaredLoss(), x, y, state))
    angles = weight_feedback_angles(fa_snap)
    ref = [math.degrees(math.acos(float((params[f"W{l}"] * state[f"B{l}"]).sum()
                                        / (params[f"W{l}"].norm() * state[f"B{l}"].norm())))) for l in (2, 3)]
    assert torch.allclose(angles, torch.tensor(ref, dtype=DT), atol=1e-10)
    upd_angles = update_angles_to_gradient(fa_snap)
    assert abs(float(upd_angles[-1])) <= 1e-5  # FA's last layer update is the gradient
    assert float(upd_angles[0]) > 1.0
    dfa_rule = DirectFeedbackAlignment()
    dfa_state = dfa_rule.init(model, params, generator=gen(14))
    dfa_angles = weight_feedback_angles(Snapshot(0.0, 0, params, Problem(model, dfa_rule, SquaredLoss(), x, y,
                                                                            dfa_state)))
    assert math.isnan(float(dfa_angles[0])) and math.isfinite(float(dfa_angles[1]))


def test_step_identity_monitor_checks_dfa_last_pair_and_marks_other_pairs_nan() -> None:
    """DFA's last pair obeys the FA identity with B = D_{L-1}^T (claims.md §1.9); lower pairs have no law (NaN;
    the monitor used to raise KeyError on them)."""
    model, params, x, y = random_mlp((4, 6, 5, 2), "relu", True, seed=15, n=10)
    rule = DirectFeedbackAlignment(ScaledLikeWeight())
    state = rule.init(model, params, generator=gen(16))
    problem = Problem(model, rule, SquaredLoss("mean"), x, y, state)
    monitor = FAStepIdentity(model, rule, state)
    simulate_discrete(problem, params, Euler(lr=0.05), 10, record_steps=[0], on_step=monitor)
    assert math.isnan(float(monitor.max_rel_violation[0])) and math.isnan(float(monitor.predicted_drift[0]))
    assert float(monitor.max_rel_violation[1]) <= 1e-12 and float(monitor.predicted_drift[1]) > 0
