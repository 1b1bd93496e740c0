r"""P000 simulations: typed results, no verdicts, no I/O, no caches.

Engine mapping of the paper's row-convention two-layer model ``f = X W_1 W_2`` (``W_1`` d x h, ``W_2``, ``B`` h x 1):
engine ``W1 = W_1^T`` (h x d), ``W2 = W_2^T`` (1 x h), ``B2 = B^T``; ``w = W_1 W_2 = (W2 @ W1)^T``. Losses are the mean
squared loss (flow time = Euler ``eta * k``). Every seed of ``seeds`` draws its own data, initialisation and feedback;
the seeds are batched as one ensemble (member = seed-major, then arm/reading).

Flows: smooth (linear) systems use scipy DOP853 (rtol 1e-10, atol 1e-12, both x ``tighten``). ReLU fields are
discontinuous where a pre-activation crosses 0. The nets whose drifts the claims decide - the Fig. 1 ReLU nets with
B = W_2(0) (T5.1, C5.1) and the per-neuron check - use the event route (``simulate_flow(method='events')``: DOP853
restarted at every activation-pattern switch, sliding modes integrated on the switching surface), one member at a
time, since a switch of any member restarts the whole ensemble (the 12 Fig. 1 members together did not finish in 10
CPU minutes; one at a time they took 1.3-12 s each, 27.5 s for the 6 B = W_2(0) nets). It conserves the laws to
~1e-11 where fixed-step RK4 drifts 1e-8-4e-6 (first order at the kinks). The other piecewise-smooth flows keep
fixed-step RK4 (``method='rk4'``, step x ``sqrt(tighten)``) because the event route is far slower there and no claim's
number needs it: the Fig. 1 readings with independent B (the figure), the law table (full mode: one ReLU depth-3 cell
27.4 s against 0.6 s), the ReLU DFA check (quick: not done in 8 minutes against 1.3 s) and the ReLU zero init (it does
not move, exactly).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from ...dynamics import Euler, Problem, Snapshot, Trajectory, simulate_discrete, simulate_flow
from ...functional import SquaredLoss
from ...instruments import (
    FAStepIdentity,
    dfa_last_pair,
    fa_quantity,
    fa_quantity_matrix,
    fa_quantity_per_neuron,
    gd_balancedness,
)
from ...models import MLP, AbstractLayeredModel, Params
from ...registry import make_feedback, make_rule
from ...rules import DirectFeedbackAlignment, FeedbackAlignment, Gaussian
from .configs import PAPER_READINGS, READINGS, Fig1Config, LawsConfig, MinNormConfig, TableConfig

F64 = torch.float64
EPS = float(np.finfo(np.float64).eps)
RTOL, ATOL = 1e-10, 1e-12  # DOP853 and the event route (both x tighten)


def gen(tag: int, seed: int) -> torch.Generator:
    """The generator of one seed for one experiment part (``tag``): independent draws per part and per seed."""
    return torch.Generator().manual_seed(1000 * tag + seed)


def teacher_data(g: torch.Generator, n: int, d: int, n_out: int = 1) -> tuple[Tensor, Tensor]:
    """Rows of X ~ N(0, I_d), y = X w* with w* ~ N(0, I) (noiseless linear teacher)."""
    x = torch.randn(n, d, generator=g, dtype=F64)
    return x, x @ torch.randn(d, n_out, generator=g, dtype=F64)


def normal(g: torch.Generator, shape: tuple[int, ...], std: float) -> Tensor:
    return std * torch.randn(shape, generator=g, dtype=F64)


def dop853(prob: Problem, p0: Params, ts: Sequence[float] | np.ndarray, tighten: float,
           measures: Mapping | None = None, keep_params: bool = False) -> Trajectory:
    return simulate_flow(prob, p0, [float(t) for t in ts], rtol=RTOL * tighten, atol=ATOL * tighten, measures=measures,
                         keep_params=keep_params)


def rk4(prob: Problem, p0: Params, dt: float, time: float, records: int, measures: Mapping,
        keep_params: bool = False) -> Trajectory:
    """Fixed-step RK4 with step ``dt`` to ``time``, recorded about ``records`` times (and at the end)."""
    steps = int(round(time / dt))
    every = max(1, steps // records)
    marks = list(range(0, steps + 1, every))
    if marks[-1] != steps:
        marks.append(steps)
    return simulate_flow(prob, p0, [k * dt for k in marks], method="rk4", step_size=dt, measures=measures,
                         keep_params=keep_params)


def events_by_member(prob: Problem, p0: Params, members: Sequence[int], ts: Sequence[float], tighten: float,
                     measures: Mapping) -> Trajectory:
    """The event route (DOP853 restarted at every activation switch, rtol 1e-10 / atol 1e-12 x ``tighten``) on the
    ensemble members ``members`` of ``prob``, integrated one member at a time (``chunk_members=1``: each member
    restarts only at its own switches) and recorded as one ensemble at ``ts``; ``measures`` are of the selected
    members. A run that does not reach the horizon (stalled, diverged) raises."""
    sel = list(members)
    sub = replace(prob, x=prob.x[sel], y=prob.y[sel], state={k: v[sel] for k, v in prob.state.items()})
    tr = simulate_flow(sub, {k: v[sel] for k, v in p0.items()}, [float(t) for t in ts], method="events",
                       rtol=RTOL * tighten, atol=ATOL * tighten, measures=measures, keep_params=False,
                       chunk_members=1)
    if tr.status != "ok" or len(tr.times) != len(ts):
        raise RuntimeError(f"P000 event-route flow ended with status {tr.status}: {tr.message}")
    return tr


def inner(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(dim=(-2, -1))


# ----------------------------------------------------------------------------------------------------------------------
# Fig. 1 / Fig. 2: four readings per seed, linear and ReLU, Euler and flow
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fig1Result:
    """One architecture's Fig. 1 runs; arrays ``(T, K)`` or ``(K,)`` with K = seeds x readings (seed-major).

    ``euler_predicted``: the accumulated exact Euler drift 0.5 eta^2 sum_k ||G_1(k)||^2; ``euler_law_rel`` /
    ``euler_neuron_rel``: worst per-step violation of Delta Q = 0.5||Delta W_1||^2 (whole law / per hidden unit),
    relative to the cancelling terms; ``loss_floor``: the round-off level of the recorded loss. ReLU: the flow
    arrays hold the event route's values on the B = W_2(0) readings (``exact``, member indices) and RK4's on the
    others; ``q_flow_rk4``: RK4's Q on every reading (the comparison; empty for linear). ``info``: route -> the
    trajectory's ``info`` (solver, tolerances or step, evaluations)."""

    arch: str
    t_euler: np.ndarray
    q_euler: np.ndarray
    loss_euler: np.ndarray
    loss_floor: np.ndarray
    euler_predicted: np.ndarray
    euler_law_rel: np.ndarray
    euler_neuron_rel: np.ndarray
    q_scale0: np.ndarray
    t_flow: np.ndarray
    q_flow: np.ndarray
    inner_flow: np.ndarray
    w1sq_flow: np.ndarray
    b_sq: np.ndarray
    w1sq0: np.ndarray
    q_flow_rk4: np.ndarray
    solver: str
    exact: tuple[int, ...] = ()
    info: dict[str, dict] = field(default_factory=dict)


def fig1_init(cfg: Fig1Config, seeds: Sequence[int]) -> tuple[Tensor, Tensor, Params, Tensor]:
    """Per seed: its data and the four readings' (W_1, W_2, B); returns per-member x, y, params and B."""
    xs, ys, w1s, w2s, bs = [], [], [], [], []
    for s in seeds:
        g = gen(1, s)
        x, y = teacher_data(g, cfg.n, cfg.d)
        for scale, fb in READINGS:
            std1 = math.sqrt(cfg.w1_scale) if scale == "var" else cfg.w1_scale
            w1, w2 = normal(g, (cfg.h, cfg.d), std1), normal(g, (1, cfg.h), cfg.w2_std)
            b = w2.clone() if fb == "copy" else normal(g, (1, cfg.h), cfg.w2_std)
            xs.append(x)
            ys.append(y)
            w1s.append(w1)
            w2s.append(w2)
            bs.append(b)
    return torch.stack(xs), torch.stack(ys), {"W1": torch.stack(w1s), "W2": torch.stack(w2s)}, torch.stack(bs)


def _fig1_measures(model: MLP, b: Tensor, y: Tensor) -> dict:
    def q(s: Snapshot) -> Tensor:
        return fa_quantity(model.layer_weights(s.params), {2: b})[..., 0]

    def floor(s: Snapshot) -> Tensor:
        # round-off of f = W2 phi(W1 x): (h + d) eps x the sum of |terms|, per sample; loss floor = mean(floor^2)/2
        # (|phi(h)| <= |h| for identity and ReLU, so |x| |W1|^T |W2| bounds every partial sum)
        p, x = s.params, s.problem.x
        terms = (x.abs() @ p["W1"].abs().transpose(-1, -2) * p["W2"].abs()).sum(-1)
        fl = (model.widths[0] + model.widths[1]) * EPS * (terms + y[..., 0].abs())
        return 0.5 * (fl**2).mean(-1)

    return {"Q": q, "loss": lambda s: s.problem.loss_value(s.params), "floor": floor,
            "inner": lambda s: inner(s.params["W2"], b), "w1sq": lambda s: (s.params["W1"] ** 2).sum((-2, -1))}


def _monitored(v: Tensor | None) -> np.ndarray:
    return np.zeros(0) if v is None else v[..., 0].numpy()


def fig1_runs(cfg: Fig1Config, arch: str, seeds: Sequence[int], tighten: float = 1.0, *,
              flows: bool = True) -> Fig1Result:
    """Euler (``cfg.steps`` at ``cfg.eta``, exact-identity monitor) and the flow to ``relu_time`` (linear: DOP853;
    ReLU: RK4 at ``relu_dt`` and at twice it) of the Fig. 1 ensemble; ``flows=False``: Euler only (flow arrays
    hold the initial point)."""
    x, y, p0, b = fig1_init(cfg, seeds)
    model = MLP((cfg.d, cfg.h, 1), arch)
    rule = FeedbackAlignment(Gaussian())
    state = rule.init(model, p0, generator=gen(0, 0), feedback={"B2": b})
    prob = Problem(model, rule, SquaredLoss("mean"), x, y, state)
    ms = _fig1_measures(model, b, y)
    mon = FAStepIdentity(model, rule, state, eta=cfg.eta, relative_to="terms", per_neuron=True, per_member=True)
    tr_e = simulate_discrete(prob, p0, Euler(cfg.eta), cfg.steps, record_every=max(1, cfg.steps // cfg.records),
                             measures=ms, keep_params=False, on_step=mon if flows else None)
    q_rk4, info = np.zeros((0, x.shape[0])), {}
    exact: tuple[int, ...] = ()
    if not flows:
        tr_f, solver = tr_e, "none (Euler only)"
        flow = {k: tr_f.metric(k).numpy() for k in ("Q", "inner", "w1sq")}
    elif arch == "identity":
        tr_f = dop853(prob, p0, np.linspace(0.0, cfg.relu_time, cfg.records + 1), tighten, ms)
        solver, info = f"DOP853 rtol {RTOL * tighten:g}", {"dop853": tr_f.info}
        flow = {k: tr_f.metric(k).numpy() for k in ("Q", "inner", "w1sq")}
    else:
        dt = cfg.relu_dt * math.sqrt(tighten)
        tr_f = rk4(prob, p0, dt, cfg.relu_time, cfg.records, ms)
        flow = {k: tr_f.metric(k).numpy() for k in ("Q", "inner", "w1sq")}
        q_rk4 = flow["Q"].copy()
        exact = tuple(i for i in range(x.shape[0]) if i % len(READINGS) in PAPER_READINGS)
        tr_x = events_by_member(prob, p0, exact, tr_f.times, tighten, _fig1_measures(model, b[list(exact)],
                                                                                     y[list(exact)]))
        for k in flow:
            flow[k][:, list(exact)] = tr_x.metric(k).numpy()
        solver = f"events rtol {RTOL * tighten:g} (B = W_2(0)), RK4 dt {dt:g} (B independent)"
        info = {"events": tr_x.info, "rk4": tr_f.info}
    q0_scale = 0.5 * (p0["W1"] ** 2).sum((-2, -1)) + inner(p0["W2"], b).abs()
    return Fig1Result(
        arch=arch, t_euler=np.asarray(tr_e.times), q_euler=tr_e.metric("Q").numpy(),
        loss_euler=tr_e.metric("loss").numpy(), loss_floor=tr_e.metric("floor").numpy(),
        euler_predicted=_monitored(mon.predicted_drift), euler_law_rel=_monitored(mon.max_rel_violation),
        euler_neuron_rel=_monitored(mon.max_rel_neuron), q_scale0=q0_scale.numpy(),
        t_flow=np.asarray(tr_f.times), q_flow=flow["Q"], inner_flow=flow["inner"], w1sq_flow=flow["w1sq"],
        b_sq=(b**2).sum((-2, -1)).numpy(), w1sq0=(p0["W1"] ** 2).sum((-2, -1)).numpy(), q_flow_rk4=q_rk4,
        solver=solver, exact=exact, info=info)


# ----------------------------------------------------------------------------------------------------------------------
# Generalisations: the activation x rule x depth table, per neuron, matrix form, DFA, zero init
# ----------------------------------------------------------------------------------------------------------------------


def per_seed_drift(values: Tensor, scale: Tensor, n_seeds: int) -> np.ndarray:
    """``max_t |v(t) - v(0)| / max_t |scale(t)|`` for each seed (members seed-major along dim 1 of ``(T, K, ...)``)."""
    dev = (values - values[0]).abs().amax(dim=0)
    sc = scale.abs().amax(dim=0).clamp_min(torch.finfo(F64).tiny)
    r = (dev / sc).reshape(n_seeds, -1)
    return r.amax(dim=1).numpy()


def dfa_variant_feedback(state: Mapping[str, Tensor], n_layers: int) -> dict[int, Tensor]:
    r"""Linear-DFA law: pair (i, i+1), i+1 < L, uses :math:`B_{i+1} = (D_{i+1}^+)^T D_i^T`; the stored ``D_l^T`` are
    ``S_l`` so this is ``pinv(S_{i+1}) S_i``; the last pair uses ``B_L = D_{L-1}^T``."""
    fb = {n_layers: state[f"D{n_layers - 1}"]}
    for i in range(1, n_layers - 1):
        fb[i + 1] = torch.linalg.pinv(state[f"D{i + 1}"]) @ state[f"D{i}"]
    return fb


def _law_terms(model: AbstractLayeredModel, params: Params, fb: Mapping[int, Tensor]) -> Tensor:
    """``(Q_i, 0.5||W_i||^2 + |<W_{i+1},B_{i+1}>|)`` per pair: the law and the scale its drift is measured on."""
    ws = model.layer_weights(params)
    q = fa_quantity(ws, fb)
    sc = torch.stack([0.5 * (ws[i] ** 2).sum((-2, -1)) + inner(ws[i + 1], fb[i + 2]).abs()
                      for i in range(len(ws) - 1)], dim=-1)
    return torch.stack([q, sc])


def _small_problem(widths: tuple[int, ...], act: str, rule, seeds: Sequence[int], members: int, tag: int, n: int, *,
                   bias: bool = False, zero: bool = False) -> tuple[Problem, Params]:
    """``members`` nets per seed (seed-major), each seed with its own data (random targets) and feedback."""
    model = MLP(widths, act, bias=bias)
    xs, ys, ps = [], [], []
    for s in seeds:
        g = gen(tag, s)
        x, _ = teacher_data(g, n, widths[0], widths[-1])
        y = torch.randn(n, widths[-1], generator=g, dtype=F64)
        p = model.init_params(g, ensemble=members, scheme="zeros" if zero else "kaiming")
        if bias:
            p = {k: (0.3 * torch.randn(v.shape, generator=g, dtype=F64) if k.startswith("b") else v)
                 for k, v in p.items()}
        xs += [x] * members
        ys += [y] * members
        ps.append(p)
    p0 = {k: torch.cat([p[k] for p in ps]) for k in ps[0]}
    state = rule.init(model, p0, generator=gen(tag + 100, seeds[0]))
    return Problem(model, rule, SquaredLoss("mean"), torch.stack(xs), torch.stack(ys), state), p0


def _table_cell(cfg: TableConfig, act: str, rule_name: str, depth: int, seeds: Sequence[int],
                tighten: float) -> dict[str, float]:
    # the registry's rule names with the table's named N(0, 0.25) feedback (bp takes none)
    rule = make_rule(rule_name, None if rule_name == "bp" else make_feedback("gaussian", std=0.5))
    widths = (cfg.n_in, *([cfg.hidden] * (depth - 1)), cfg.n_out)
    prob, p0 = _small_problem(widths, act, rule, seeds, cfg.members, 10 + depth, cfg.n)
    model = prob.model
    fb = (rule.feedback_used(model, p0, prob.state) if rule_name == "fa"
          else dfa_variant_feedback(prob.state, depth) if rule_name == "dfa" else None)

    def law(s: Snapshot) -> Tensor:
        if fb is not None:
            return _law_terms(model, s.params, fb)
        ws = model.layer_weights(s.params)
        sc = torch.stack([0.5 * (ws[i] ** 2).sum((-2, -1)) + 0.5 * (ws[i + 1] ** 2).sum((-2, -1))
                          for i in range(depth - 1)], -1)
        return torch.stack([gd_balancedness(ws), sc])

    v = rk4(prob, p0, cfg.dt * math.sqrt(tighten), cfg.time, 40, {"law": law}).metric("law")  # (T, 2, K, L-1)
    drifts = [float(per_seed_drift(v[:, 0, :, i], v[:, 1, :, i], len(seeds)).max()) for i in range(depth - 1)]
    return {"last": drifts[-1], "others": max(drifts[:-1]) if depth > 2 else float("nan"), "all": max(drifts)}


def law_table(cfg: TableConfig, seeds: Sequence[int], activations: Sequence[str], rules: Sequence[str],
              tighten: float = 1.0) -> dict[tuple[str, str, int], dict[str, float]]:
    """Relative drift (max over seeds) of each rule's law (FA: Q_i; DFA: last pair with D^T, other pairs with the
    linear-DFA variant; BP: GD balancedness) for every activation x rule x depth, along RK4 flows."""
    return {(a, r, d): _table_cell(cfg, a, r, d, seeds, tighten) for a in activations for r in rules
            for d in cfg.depths}


@dataclass(frozen=True)
class LawsResult:
    """Per-seed arrays ``(S,)`` of the dedicated law checks (drifts relative to the scale of the law's terms)."""

    neuron_flow_drift: np.ndarray
    neuron_euler_rel: np.ndarray
    law_euler_rel_bias: np.ndarray
    matrix_flow_drift: np.ndarray
    matrix_euler_rel: np.ndarray
    dfa: dict[str, np.ndarray]
    zero: dict[str, np.ndarray]
    info: dict[str, dict] = field(default_factory=dict)  # check -> its flow's ``info`` (solver, step, evaluations)


def _per_seed(t: Tensor, n_seeds: int) -> np.ndarray:
    return t.reshape(n_seeds, -1).amax(dim=1).numpy()


def _neuron_checks(cfg: LawsConfig, seeds: Sequence[int], tighten: float, info: dict) -> tuple[np.ndarray, ...]:
    prob, p0 = _small_problem((cfg.n_in, cfg.hidden, cfg.n_out), "relu", FeedbackAlignment(Gaussian()), seeds,
                              cfg.members, 20, cfg.n, bias=True)
    m, fb = prob.model, prob.rule.feedback_used(prob.model, p0, prob.state)

    def pn(s: Snapshot) -> Tensor:
        ws, bs = m.layer_weights(s.params), m.layer_biases(s.params)
        b0 = bs[0]
        assert b0 is not None  # the model is built with bias=True
        sc = 0.5 * (ws[0] ** 2).sum(-1) + 0.5 * b0**2 + (ws[1] * fb[2]).sum(-2).abs()
        return torch.stack([fa_quantity_per_neuron(ws, fb, bs)[0], sc])

    tr = events_by_member(prob, p0, range(p0["W1"].shape[0]), np.linspace(0.0, cfg.time, 51).tolist(), tighten,
                          {"pn": pn})
    info["neuron"] = tr.info
    v = tr.metric("pn")  # (T, 2, K, h)
    # max_{j,t} |q_j(t) - q_j(0)| over the largest unit's terms (a solver's error is absolute; a unit with tiny terms
    # would otherwise amplify it)
    drift = per_seed_drift((v[:, 0] - v[0, 0]).abs().amax(-1), v[:, 1].amax(-1), len(seeds))
    mon = FAStepIdentity(m, prob.rule, prob.state, eta=cfg.euler_eta, relative_to="terms", per_neuron=True,
                         per_member=True)
    simulate_discrete(prob, p0, Euler(cfg.euler_eta), cfg.euler_steps, record_every=cfg.euler_steps, on_step=mon,
                      keep_params=False)
    # set by the monitor at every step (per_neuron=True), so not None after euler_steps >= 1 steps
    assert mon.max_rel_neuron is not None and mon.max_rel_violation is not None
    return drift, _per_seed(mon.max_rel_neuron[..., 0], len(seeds)), _per_seed(mon.max_rel_violation[..., 0],
                                                                              len(seeds))


def _matrix_checks(cfg: LawsConfig, seeds: Sequence[int], tighten: float, info: dict) -> tuple[np.ndarray, np.ndarray]:
    prob, p0 = _small_problem((cfg.n_in, cfg.hidden, cfg.hidden, cfg.n_out), "identity",
                              FeedbackAlignment(Gaussian()), seeds, cfg.members, 21, cfg.n)
    m, fb = prob.model, prob.rule.feedback_used(prob.model, p0, prob.state)

    def cm(s: Snapshot) -> Tensor:
        cs = fa_quantity_matrix(m.layer_weights(s.params), fb)
        return torch.cat([c.flatten(-2) for c in cs], -1)

    tr = dop853(prob, p0, np.linspace(0, cfg.time, 31), tighten, {"C": cm})
    info["matrix"] = tr.info
    c = tr.metric("C")  # (T, K, entries)
    dev = (c - c[0]).abs().amax(dim=(0, 2))
    scale = c.abs().amax(dim=(0, 2))
    mon = FAStepIdentity(m, prob.rule, prob.state, eta=cfg.euler_eta, relative_to="terms", matrix=True,
                         per_member=True)
    simulate_discrete(prob, p0, Euler(cfg.euler_eta), cfg.euler_steps, record_every=cfg.euler_steps, on_step=mon,
                      keep_params=False)
    assert mon.max_rel_matrix is not None  # set by the monitor at every step (matrix=True)
    return _per_seed(dev / scale, len(seeds)), _per_seed(mon.max_rel_matrix.amax(-1), len(seeds))


def _dfa_checks(cfg: LawsConfig, seeds: Sequence[int], tighten: float, info: dict) -> dict[str, np.ndarray]:
    out = {}
    for act in ("relu", "identity"):
        prob, p0 = _small_problem((cfg.n_in, cfg.hidden, cfg.hidden, cfg.n_out), act,
                                  DirectFeedbackAlignment(Gaussian()), seeds, cfg.members, 22, cfg.n)
        m, fbv = prob.model, dfa_variant_feedback(prob.state, 3)

        def dl(s: Snapshot, m=m, fbv=fbv) -> Tensor:
            return _law_terms(m, s.params, fbv)

        def last(s: Snapshot, m=m, st=prob.state) -> Tensor:
            return dfa_last_pair(m.layer_weights(s.params), st["D2"])

        ms = {"law": dl, "last": last}
        tr = (rk4(prob, p0, cfg.relu_dt * math.sqrt(tighten), cfg.time, 50, ms) if act == "relu"
              else dop853(prob, p0, np.linspace(0, cfg.time, 31), tighten, ms))
        info[f"dfa_{act}"] = tr.info
        v = tr.metric("law")
        out[f"{act}_last"] = per_seed_drift(v[:, 0, :, 1], v[:, 1, :, 1], len(seeds))
        out[f"{act}_first"] = per_seed_drift(v[:, 0, :, 0], v[:, 1, :, 0], len(seeds))
        out[f"{act}_instrument_gap"] = _per_seed((tr.metric("last") - v[:, 0, :, 1]).abs().amax(0), len(seeds))
    return out


def _zero_checks(cfg: LawsConfig, seeds: Sequence[int], tighten: float, info: dict) -> dict[str, np.ndarray]:
    out = {}
    for act in ("identity", "relu"):
        prob, p0 = _small_problem((cfg.n_in, cfg.hidden, cfg.n_out), act, FeedbackAlignment(Gaussian()), seeds,
                                  cfg.members, 23, cfg.n, zero=True)
        fb = prob.rule.feedback_used(prob.model, p0, prob.state)

        def za(s: Snapshot, fb=fb) -> Tensor:
            w1sq = 0.5 * (s.params["W1"] ** 2).sum((-2, -1))
            return torch.stack([inner(s.params["W2"], fb[2]) - w1sq, w1sq, inner(s.params["W2"], fb[2])])

        tr = (dop853(prob, p0, np.linspace(0, cfg.time, 31), tighten, {"z": za}) if act == "identity"
              else rk4(prob, p0, cfg.relu_dt * math.sqrt(tighten), cfg.time, 50, {"z": za}))
        info[f"zero_{act}"] = tr.info
        z = tr.metric("z")  # (T, 3, K)
        scale = z[:, 2].abs().amax(0)
        gap = torch.where(scale > 0, z[:, 0].abs().amax(0) / scale.clamp_min(torch.finfo(F64).tiny),
                          z[:, 0].abs().amax(0))
        out[f"{act}_gap"] = _per_seed(gap, len(seeds))
        out[f"{act}_final_w1sq"] = _per_seed(z[-1, 1], len(seeds))
        out[f"{act}_motion"] = _per_seed((z[:, 1].abs() + z[:, 2].abs()).amax(0), len(seeds))
    return out


def laws_checks(cfg: LawsConfig, seeds: Sequence[int], tighten: float = 1.0) -> LawsResult:
    """The dedicated law checks (per neuron, matrix form, DFA, zero init), per seed."""
    info: dict[str, dict] = {}
    nd, ne, nl = _neuron_checks(cfg, seeds, tighten, info)
    md, me = _matrix_checks(cfg, seeds, tighten, info)
    dfa, zero = _dfa_checks(cfg, seeds, tighten, info), _zero_checks(cfg, seeds, tighten, info)
    return LawsResult(nd, ne, nl, md, me, dfa, zero, info)


# ----------------------------------------------------------------------------------------------------------------------
# Theorem 5.2: rate, span invariance and the minimum-norm limit (linear net, flow and Euler)
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MinNormResult:
    """Arrays per member ``(T, K)`` / ``(K,)``, K = seeds x arms (seed-major); ``lam_min`` per seed; the Thm 5.2
    rate runs (``rate_*``: per seed and W_2(0) scale, W_1(0) = 0) and the n >= d / sweep distances per seed."""

    flow_t: np.ndarray
    flow_rel: np.ndarray
    flow_err: np.ndarray
    flow_span_identity: np.ndarray
    flow_perp_fraction: np.ndarray
    euler_t: np.ndarray
    euler_rel: np.ndarray
    euler_span_identity: np.ndarray
    euler_perp_fraction: np.ndarray
    q0: np.ndarray
    lam_min: np.ndarray
    rate_t: list[np.ndarray]
    rate_err: list[np.ndarray]
    rate_q0: np.ndarray
    n_ge_d_rel: np.ndarray
    sweep: dict[tuple[float, int], np.ndarray]


def _arm_init(cfg: MinNormConfig, g: torch.Generator, x: Tensor) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """The four arms' (W_1, W_2, B): paper var/copy, paper std/copy, W_1(0) = 0 with W_2(0) = B, and an init that meets
    the printed hypothesis (w(0) in span(X^T), Q(0) < 0) with W_1(0) = A + u v^T, u orthogonal to W_2(0), v in null(X)."""
    h, d = cfg.h, cfg.d
    sv = math.sqrt(cfg.w1_scale)
    px = torch.linalg.pinv(x) @ x
    w2 = [normal(g, (1, h), 1.0) for _ in range(4)]
    u = normal(g, (h, 1), 1.0)
    u = u - w2[3].T @ (w2[3] @ u) / (w2[3] @ w2[3].T)
    v = (torch.eye(d, dtype=F64) - px) @ normal(g, (d, 1), sv)
    w1 = [normal(g, (h, d), sv), normal(g, (h, d), cfg.w1_scale), torch.zeros(h, d, dtype=F64),
          normal(g, (h, d), sv) @ px + u @ v.T]
    return w1, w2, [w.clone() for w in w2]


def _linear_problem(x: Tensor, y: Tensor, p0: Params, b: Tensor) -> Problem:
    model = MLP((x.shape[-1], p0["W1"].shape[-2], 1), "identity")
    rule = FeedbackAlignment(Gaussian())
    return Problem(model, rule, SquaredLoss("mean"), x, y, rule.init(model, p0, generator=gen(0, 0),
                                                                       feedback={"B2": b}))


def _w(p: Params) -> Tensor:
    return (p["W2"] @ p["W1"])[..., 0, :]


def _span_measures(x: Tensor, y: Tensor, w1_0: Tensor) -> dict:
    pperp = torch.eye(x.shape[-1], dtype=F64) - torch.linalg.pinv(x) @ x  # per member (K, d, d)

    def span(s: Snapshot) -> Tensor:
        # P_perp w(t) - P_perp W_1(0) W_2(t) (engine layout), ||P_perp w||, ||w||
        lhs = (_w(s.params).unsqueeze(-2) @ pperp)[..., 0, :]
        rhs = ((s.params["W2"] @ w1_0) @ pperp)[..., 0, :]
        norm = torch.linalg.vector_norm
        return torch.stack([norm(lhs - rhs, dim=-1), norm(lhs, dim=-1), norm(_w(s.params), dim=-1)])

    def err(s: Snapshot) -> Tensor:
        return torch.linalg.vector_norm((s.problem.model(s.params, x) - y)[..., 0], dim=-1)

    return {"w": lambda s: _w(s.params), "span": span, "err": err}


def _limit_distance(x: Tensor, y: Tensor, p0: Params, b: Tensor, time: float, tighten: float) -> np.ndarray:
    """Relative distance of w(time) to X^+ y per member (the flow's limit when ``time`` is past convergence)."""
    tr = dop853(_linear_problem(x, y, p0, b), p0, [0.0, time], tighten, keep_params=True)
    w_mn = (torch.linalg.pinv(x) @ y)[..., 0]
    w = _w(tr.final)
    return (torch.linalg.vector_norm(w - w_mn, dim=-1) / torch.linalg.vector_norm(w_mn, dim=-1)).numpy()


def _rates(cfg: MinNormConfig, xs: Tensor, ys: Tensor, gs: Tensor, tighten: float):
    """W_1(0) = 0, W_2(0) = B = c g for every scale c (one flow per c, horizon 2/c^2): ||e(t)|| and Q(0)."""
    ts, errs, q0s = [], [], []
    for c in cfg.rate_scales:
        w2 = c * gs
        p0 = {"W1": torch.zeros(gs.shape[0], cfg.h, cfg.d, dtype=F64), "W2": w2}
        grid = np.linspace(0.0, 2.0 / c**2, 81)
        tr = dop853(_linear_problem(xs, ys, p0, w2.clone()), p0, grid, tighten,
                    {"err": _span_measures(xs, ys, p0["W1"])["err"]})
        ts.append(np.asarray(tr.times))
        errs.append(tr.metric("err").numpy())
        q0s.append(fa_quantity([p0["W1"], w2], {2: w2})[..., 0].numpy())
    return ts, errs, np.stack(q0s, -1)


def _sweep(cfg: MinNormConfig, seeds: Sequence[int], tighten: float) -> dict[tuple[float, int], np.ndarray]:
    """Distance of the FA limit to X^+ y for W_1(0) ~ N(0, s^2), W_2(0) = B ~ N(0, 1), per (s, h) and seed."""
    out = {}
    for h in cfg.sweep_widths:
        xs, ys, w1s, w2s = [], [], [], []
        for s in seeds:
            g = gen(31, s)
            x, y = teacher_data(g, cfg.n, cfg.d)
            for sc in cfg.sweep_scales:
                xs.append(x)
                ys.append(y)
                w1s.append(normal(g, (h, cfg.d), sc))
                w2s.append(normal(g, (1, h), 1.0))
        p0 = {"W1": torch.stack(w1s), "W2": torch.stack(w2s)}
        rel = _limit_distance(torch.stack(xs), torch.stack(ys), p0, p0["W2"].clone(), cfg.sweep_time * 100 / h,
                              tighten).reshape(len(seeds), len(cfg.sweep_scales))
        for j, sc in enumerate(cfg.sweep_scales):
            out[(sc, h)] = rel[:, j]
    return out


def _flow_by_arm(x: Tensor, y: Tensor, p0: Params, b: Tensor, ts: np.ndarray, tighten: float,
                 arms: int = 4) -> dict[str, np.ndarray]:
    """The flow of the seed-major ensemble integrated one arm at a time (the arms' stiffness differs; one adaptive
    solve of all of them took 20x longer than the four separate ones), recorded as ``(T, K, ...)`` seed-major."""
    parts = []
    for a in range(arms):
        sel = list(range(a, x.shape[0], arms))
        p = {k: v[sel] for k, v in p0.items()}
        tr = dop853(_linear_problem(x[sel], y[sel], p, b[sel]), p, ts, tighten, _span_measures(x[sel], y[sel], p["W1"]))
        parts.append({k: tr.metric(k).numpy() for k in ("w", "span", "err")})
    out = {"t": np.asarray(ts, dtype=float)}
    for k, axis in (("w", 1), ("span", 2), ("err", 1)):
        stacked = np.stack([q[k] for q in parts], axis=axis + 1)  # (..., S, A, ...)
        shape = stacked.shape
        out[k] = stacked.reshape(*shape[:axis], shape[axis] * shape[axis + 1], *shape[axis + 2:])
    return out


def minnorm_runs(cfg: MinNormConfig, seeds: Sequence[int], tighten: float = 1.0) -> MinNormResult:
    """The four arms per seed (flow and Euler), the rate runs, the n >= d arm and the sweep."""
    xs, ys, w1s, w2s, bs, gs, lam = [], [], [], [], [], [], []
    for s in seeds:
        g = gen(3, s)
        x, y = teacher_data(g, cfg.n, cfg.d)
        w1, w2, b_arms = _arm_init(cfg, g, x)
        xs += [x] * 4
        ys += [y] * 4
        w1s += w1
        w2s += w2
        bs += b_arms
        gs.append(normal(g, (1, cfg.h), 1.0))
        lam.append(float(torch.linalg.eigvalsh(x @ x.T).min()))
    x, y = torch.stack(xs), torch.stack(ys)
    p0, b = {"W1": torch.stack(w1s), "W2": torch.stack(w2s)}, torch.stack(bs)
    prob = _linear_problem(x, y, p0, b)
    ms = _span_measures(x, y, p0["W1"])
    ts = np.unique(np.concatenate([np.linspace(0, min(1.0, cfg.flow_time), 51),
                                   np.linspace(0, cfg.flow_time, cfg.records + 1)]))
    flow = _flow_by_arm(x, y, p0, b, ts, tighten)
    tr_e = simulate_discrete(prob, p0, Euler(cfg.eta), cfg.steps, record_every=max(1, cfg.steps // cfg.records),
                             measures=ms, keep_params=False)
    w_mn = (torch.linalg.pinv(x) @ y)[..., 0].numpy()
    res = {}
    euler = {k: tr_e.metric(k).numpy() for k in ("w", "span", "err")} | {"t": np.asarray(tr_e.times)}
    for tag, tr in (("flow", flow), ("euler", euler)):
        sp = tr["span"]
        res[f"{tag}_t"] = tr["t"]
        res[f"{tag}_rel"] = np.linalg.norm(tr["w"] - w_mn, axis=-1) / np.linalg.norm(w_mn, axis=-1)
        res[f"{tag}_span_identity"] = sp[:, 0] / np.maximum(sp[:, 2], np.finfo(np.float64).tiny)
        res[f"{tag}_perp_fraction"] = sp[:, 1] / np.maximum(sp[:, 2], np.finfo(np.float64).tiny)
    xs1, ys1 = x[::4], y[::4]
    rate_t, rate_err, rate_q0 = _rates(cfg, xs1, ys1, torch.stack(gs), tighten)
    # n >= d (unique interpolant) with the paper's init (var, B = W_2(0))
    xb, yb, w1b, w2b = [], [], [], []
    for s in seeds:
        g = gen(4, s)
        xx, yy = teacher_data(g, cfg.d + 5, cfg.d)
        xb.append(xx)
        yb.append(yy)
        w1b.append(normal(g, (cfg.h, cfg.d), math.sqrt(cfg.w1_scale)))
        w2b.append(normal(g, (1, cfg.h), 1.0))
    pb = {"W1": torch.stack(w1b), "W2": torch.stack(w2b)}
    n_ge_d = _limit_distance(torch.stack(xb), torch.stack(yb), pb, pb["W2"].clone(), cfg.n_ge_d_time, tighten)
    q0 = fa_quantity([p0["W1"], p0["W2"]], {2: b})[..., 0].numpy()
    return MinNormResult(flow_err=flow["err"], q0=q0, lam_min=np.array(lam), rate_t=rate_t,
                         rate_err=rate_err, rate_q0=rate_q0, n_ge_d_rel=n_ge_d, sweep=_sweep(cfg, seeds, tighten),
                         **res)
