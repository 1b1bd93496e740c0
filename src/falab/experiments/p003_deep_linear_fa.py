r"""P003 (Girotti, Mitliagkas & Gidel): FA in deep linear networks — 8 experiments answering the 15 P003 claims.

Every simulation goes through the engine. The decoupled scalar systems are the engine's networks with 1x1 weights:

* (6): a 2-layer linear net ``W1 = theta_1``, ``W2 = theta_2``, FA feedback ``B2 = d``, input ``x = 1``, target
  ``lambda``, ``SquaredLoss('mean')`` with N = 1, so the flow ``-update`` is exactly
  ``theta_1' = d(lambda - theta_2 theta_1)``, ``theta_2' = (lambda - theta_2 theta_1) theta_1``.
* (10): DFA on an L-layer 1-wide linear net with ``D_l^T = d_l`` (``d_L = 1``: the last layer is the plain gradient).
* GD on the scalar system: :class:`~falab.rules.Backprop` on the same net.

Many scalar systems form one ensemble (leading dimension K: one value of d, lambda and init per member). Matrix
networks use :func:`~falab.models.deep_linear` with data whose empirical covariances are the paper's
``Sigma_xx, Sigma_xy`` (P003-P1). Time is the flow time of the mean loss (N = 1 for the scalar systems).
Closed forms come from :mod:`falab.theory._p003` (independent of the engine).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from ..dynamics import Euler, Problem, simulate_discrete, simulate_flow
from ..dynamics._modified_trapezoid import ModifiedTrapezoid
from ..functional import SquaredLoss
from ..instruments import fa_quantity_matrix
from ..models import Params, deep_linear
from ..plots import _p003 as plots
from ..rules import Backprop, DirectFeedbackAlignment, FeedbackAlignment
from ..theory import _p003 as th
from ._registry import ClaimResult, Experiment, ExperimentOutput, RunContext, register

DT = torch.float64
RTOL, ATOL = 1e-12, 1e-14
PAPER = "P003"


# --------------------------------------------------------------------------------------------- scalar systems
def _t(a: Sequence[float] | np.ndarray | float) -> Tensor:
    return torch.as_tensor(np.asarray(a, dtype=float), dtype=DT)


def scalar_params(thetas: np.ndarray) -> Params:
    """``(K, L)`` scalar states -> engine parameters ``{'W1': (K, 1, 1), ..., 'WL': (K, 1, 1)}``."""
    thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
    return {f"W{l + 1}": _t(thetas[:, l]).view(-1, 1, 1).clone() for l in range(thetas.shape[1])}


def scalar_thetas(params: Params) -> np.ndarray:
    """Engine parameters of a 1-wide net -> ``(K, L)`` array of ``theta_l``."""
    n = len(params)
    return np.stack([params[f"W{l}"].reshape(-1).numpy() for l in range(1, n + 1)], axis=-1)


def scalar_system(d: Sequence[float] | float, lam: Sequence[float] | float, *, rule: str = "fa") -> Problem:
    r"""The decoupled 2-layer system as an engine problem: FA gives eq. (6), ``rule='gd'`` the GD system
    :math:`\theta_1' = \theta_2(\lambda - \theta_1\theta_2)`, :math:`\theta_2' = \theta_1(\lambda - \theta_1\theta_2)`.

    ``d`` and ``lam`` are one value or one per ensemble member (K members).
    """
    lam_t = _t(np.atleast_1d(lam))
    d_t = _t(np.broadcast_to(np.atleast_1d(d), lam_t.shape).copy()) if lam_t.numel() > 1 else _t(np.atleast_1d(d))
    k = max(lam_t.numel(), d_t.numel())
    lam_t, d_t = lam_t.expand(k), d_t.expand(k)
    model = deep_linear((1, 1, 1))
    p = scalar_params(np.zeros((k, 2)))
    if rule == "fa":
        r = FeedbackAlignment()
        state = r.init(model, p, generator=torch.Generator(), feedback={"B2": d_t.reshape(k, 1, 1).clone()})
    elif rule == "gd":
        r, state = Backprop(), {}
    else:
        raise ValueError(f"Invalid rule: {rule!r} (expected one of 'fa', 'gd')")
    return Problem(model, r, SquaredLoss("mean"), torch.ones(1, 1, dtype=DT), lam_t.reshape(k, 1, 1).clone(), state)


def deep_scalar_system(ds: Sequence[float], lam: Sequence[float] | float) -> Problem:
    r"""System (10): DFA on an L-layer 1-wide linear net with ``D_l^T = d_l`` (l < L; ``d_L = 1`` is implicit):
    :math:`\theta_l' = d_l(\lambda - \theta_L\cdots\theta_1)\theta_{l-1}\cdots\theta_1`. ``ds = (d_1, ..., d_{L-1}[, 1])``."""
    lam_t = _t(np.atleast_1d(lam))
    k = lam_t.numel()
    ds = list(ds)
    n_layers = len(ds) if len(ds) > 1 and ds[-1] == 1 else len(ds) + 1
    model = deep_linear((1,) * (n_layers + 1))
    p = scalar_params(np.zeros((k, n_layers)))
    r = DirectFeedbackAlignment()
    fb = {f"D{l}": torch.full((k, 1, 1), float(ds[l - 1]), dtype=DT) for l in range(1, n_layers)}
    state = r.init(model, p, generator=torch.Generator(), feedback=fb)
    return Problem(model, r, SquaredLoss("mean"), torch.ones(1, 1, dtype=DT), lam_t.reshape(k, 1, 1).clone(), state)


def init7(theta0: Sequence[float] | np.ndarray, d: float | np.ndarray) -> np.ndarray:
    """Init (7): ``theta_1(0) = theta_0``, ``theta_2(0) = theta_0^2/(2d)`` (K = 0). Returns ``(K, 2)``."""
    t0 = np.asarray(theta0, dtype=float)
    return np.stack([t0, t0 * t0 / (2.0 * np.asarray(d, dtype=float))], axis=-1)


def init11(theta0: Sequence[float] | np.ndarray, ds: Sequence[float]) -> np.ndarray:
    """Init (11): ``theta_l(0) = c_l theta_0^(2^(l-1))``, ``c_1 = 1``, ``c_{l+1} = d_{l+1} c_l^2/(2 d_l)``. ``(K, L)``."""
    t0 = np.asarray(theta0, dtype=float)
    c = [1.0]
    for l in range(1, len(ds)):
        c.append(ds[l] * c[-1] ** 2 / (2.0 * ds[l - 1]))
    return np.stack([cl * t0 ** (2 ** l) for l, cl in enumerate(c)], axis=-1)


def run_flow(problem: Problem, thetas0: np.ndarray, ts: np.ndarray, **kw) -> tuple[np.ndarray, object]:
    """Integrate a scalar-system ensemble; returns ``(thetas (T, K, L), trajectory)``."""
    traj = simulate_flow(problem, scalar_params(thetas0), ts, rtol=kw.pop("rtol", RTOL), atol=kw.pop("atol", ATOL), **kw)
    return np.stack([scalar_thetas(p) for p in traj.params]), traj


def run_discrete(problem: Problem, thetas0: np.ndarray, scheme, steps: int) -> np.ndarray:
    """Run a discrete scheme on a scalar-system ensemble; returns ``thetas (steps + 1, K, L)``."""
    traj = simulate_discrete(problem, scalar_params(thetas0), scheme, steps)
    return np.stack([scalar_thetas(p) for p in traj.params])


def _monotone(p: np.ndarray, tol: float = 1e-12) -> bool:
    """True when the sampled sequence never moves against its overall direction by more than ``tol``."""
    dp = np.diff(p)
    s = np.sign(p[-1] - p[0])
    return bool(np.all(s * dp >= -tol * max(1.0, np.abs(p).max())))


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _verdict(ok: bool) -> str:
    return "confirmed" if ok else "refuted"


def _fig(ctx: RunContext, name: str) -> object:
    return ctx.figures_dir / f"p003_{name}.png"


# ------------------------------------------------------------------------------------------------ EXP Fig. 1a
def _matrix_fa_problem(gen: torch.Generator, d_in: int = 5, h: int = 4, o: int = 3, n: int = 50) -> tuple[Problem, Params]:
    """A 2-layer linear FA problem on data with a non-identity empirical covariance (for the matrix invariant)."""
    x = torch.randn(n, d_in, generator=gen, dtype=DT) @ torch.randn(d_in, d_in, generator=gen, dtype=DT) * 0.5
    y = x @ torch.randn(d_in, o, generator=gen, dtype=DT) * 0.5
    model = deep_linear((d_in, h, o))
    p0 = model.init_params(gen, scheme="gaussian", std=0.5)
    rule = FeedbackAlignment()
    state = rule.init(model, p0, generator=gen)
    return Problem(model, rule, SquaredLoss("mean"), x, y, state), p0


def _matrix_invariant(problem: Problem, params: Params) -> Tensor:
    ws = problem.model.layer_weights(params)
    return fa_quantity_matrix(ws, problem.rule.feedback_used(problem.model, params, problem.state))[0]


def exp_fig1a(ctx: RunContext) -> ExperimentOutput:
    t_start = time.perf_counter()
    d, lam = 0.2, 3.0
    grid = np.array([-5.0, -2.5, 0.0, 2.5, 5.0])
    starts = np.array([[a, b] for a in grid for b in grid])
    ts = np.linspace(0.0, 30.0, 301 if ctx.quick else 601)
    pb = scalar_system(d, lam)
    ctx.progress("P003 Fig1a: 25 FA flows")
    thetas, _ = run_flow(pb, starts, ts)
    k_t = thetas[:, :, 1] - thetas[:, :, 0] ** 2 / (2 * d)
    inv_scalar = float(np.max(np.abs(k_t - k_t[0]) / np.maximum(1.0, np.abs(k_t[0]))))
    # matrix invariant (any Sigma_xx): flow and the modified scheme (exact)
    gen = torch.Generator().manual_seed(ctx.seed + 3)
    mpb, mp0 = _matrix_fa_problem(gen)
    mtraj = simulate_flow(mpb, mp0, np.linspace(0, 5, 51), rtol=RTOL, atol=ATOL)
    c = torch.stack([_matrix_invariant(mpb, p) for p in mtraj.params])
    inv_matrix_flow = float((c - c[0]).abs().max() / c[0].abs().max().clamp_min(1.0))
    mtraj_d = simulate_discrete(mpb, mp0, ModifiedTrapezoid(lr=0.05), 200 if ctx.quick else 1000)
    cd = torch.stack([_matrix_invariant(mpb, p) for p in mtraj_d.params])
    inv_matrix_mod = float((cd - cd[0]).abs().max() / cd[0].abs().max().clamp_min(1.0))
    mtraj_e = simulate_discrete(mpb, mp0, Euler(lr=0.05), 200 if ctx.quick else 1000)
    ce = torch.stack([_matrix_invariant(mpb, p) for p in mtraj_e.params])
    inv_matrix_euler = float((ce - ce[0]).abs().max() / ce[0].abs().max().clamp_min(1.0))
    ok_inv = inv_scalar <= 1e-10 and inv_matrix_flow <= 1e-10 and inv_matrix_mod <= 1e-13
    # Thm 3: limits and root selection for every start
    lim_err, prod_err, n_three = 0.0, 0.0, 0
    rows = []
    for i, (a, b) in enumerate(starts):
        lim = th.flow_limit(a, b, d, lam)
        kk = th.invariant_K(a, b, d)
        n_roots = th.cubic_roots(d, kk, lam).size
        n_three += n_roots == 3
        e1 = abs(thetas[-1, i, 0] - lim.theta1)
        lim_err = max(lim_err, e1, abs(thetas[-1, i, 1] - lim.theta2))
        prod_err = max(prod_err, abs(thetas[-1, i, 0] * thetas[-1, i, 1] - lam))
        rows.append((a, b, kk, n_roots, lim.theta1, thetas[-1, i, 0]))
    bounded = bool(np.all(np.isfinite(thetas)) and np.abs(thetas).max() < 1e3)
    n_lower = int(np.sum(thetas[-1, :, 0] < 0))
    ok_t3 = lim_err <= 1e-8 and prod_err <= 1e-8 and bounded
    # Cardano formula vs the numerical root for the one-root starts
    card = max(abs(th.cardano_root(d, th.invariant_K(a, b, d), lam) - th.flow_limit(a, b, d, lam).theta1)
               for a, b in starts if th.cubic_roots(d, th.invariant_K(a, b, d), lam).size == 1)
    fig = plots.phase_portrait(_fig(ctx, "fig1a"), [thetas[:, i, :] for i in range(len(starts))], d, lam,
                               title="Fig. 1a: FA flow (6), d = 0.2, lambda = 3\nparabolas K = const (dashed), hyperbola (dotted)")
    claims = [
        ClaimResult("P003-INV", _verdict(ok_inv),
                    "theta_2 - theta_1^2/(2d) is constant along (6); matrix W1W1^T - MW2 - W2^TM^T constant along (3) "
                    "and exactly conserved by the modified scheme (24)-(25)",
                    {"scalar_flow_rel_drift": inv_scalar, "matrix_flow_rel_drift": inv_matrix_flow,
                     "matrix_modified_scheme_rel_drift": inv_matrix_mod, "matrix_euler_rel_drift": inv_matrix_euler},
                    {"drift": 0.0}, {"flow": 1e-10, "modified_scheme": 1e-13}, "flow", "EXP-P003-Fig1a",
                    note="Euler does not conserve it (adds eta^2 M E E^T M^T per step): drift "
                         f"{inv_matrix_euler:.2g} in the same run."),
        ClaimResult("P003-T3", _verdict(ok_t3),
                    "any init: bounded global solution, theta_1 -> root of theta^3 + 2dK theta - 2d lambda selected by "
                    "Delta and the side of r_2, theta_1 theta_2 -> lambda",
                    {"max_limit_error": lim_err, "max_product_error": prod_err, "starts": len(starts),
                     "starts_with_three_roots": int(n_three), "ending_on_lower_left_branch": n_lower,
                     "cardano_vs_root": card},
                    {"product": lam}, 1e-8, "flow", "EXP-P003-Fig1a",
                    note=f"{n_lower} starts (Delta > 0, theta_1(0) < r_2) converge to r_1 on the lower-left branch: both "
                         "branches of the hyperbola are global minima."),
    ]
    md = (f"**Fig. 1a** (d = {d}, lambda = {lam}, 25 starts on {{-5,-2.5,0,2.5,5}}^2, t in [0, 30], DOP853 rtol 1e-12): "
          f"parabola invariant drift {inv_scalar:.2g}; matrix invariant drift {inv_matrix_flow:.2g} (flow), "
          f"{inv_matrix_mod:.2g} (modified scheme, exact), {inv_matrix_euler:.2g} (Euler, not conserved). "
          f"Limits match Thm 3's root selection to {lim_err:.2g} ({n_three} starts with Delta > 0).\n")
    return ExperimentOutput(claims, [fig], md, {"seconds": time.perf_counter() - t_start})


# ------------------------------------------------------------------------------------------------ EXP Fig. 1b
def exp_fig1b(ctx: RunContext) -> ExperimentOutput:
    t_start = time.perf_counter()
    d, lam = 2.0, 3.0
    rng = np.random.default_rng(ctx.seed + 11)
    theta0 = np.concatenate([[0.0], rng.uniform(-5, 5, 10)])
    ts = np.linspace(0.0, 5.0, 201 if ctx.quick else 501)
    ctx.progress("P003 Fig1b: FA vs GD")
    fa, _ = run_flow(scalar_system(d, lam, rule="fa"), init7(theta0, d), ts)
    gd, _ = run_flow(scalar_system(d, lam, rule="gd"), init7(theta0, d), ts)
    gd_pb = scalar_system(d, lam, rule="gd")
    v0 = gd_pb.update(scalar_params(np.zeros((1, 2))))
    gd_velocity_at_origin = float(max(v.abs().max() for v in v0.values()))
    gd_zero_max = float(np.abs(gd[:, 0, :]).max())
    fa_zero_err = float(abs(fa[-1, 0, 0] * fa[-1, 0, 1] - lam))
    ok = gd_velocity_at_origin == 0.0 and gd_zero_max == 0.0 and fa_zero_err <= 1e-8
    pf, pg = fa[..., 0] * fa[..., 1], gd[..., 0] * gd[..., 1]
    curves = [plots.Curve(ts, pf[:, i], "FA" if i == 0 else None, {"color": "C0"}) for i in range(len(theta0))]
    curves += [plots.Curve(ts, pg[:, i], "GD" if i == 0 else None, {"color": "C3", "ls": ":"}) for i in range(len(theta0))]
    fig = plots.panels(_fig(ctx, "fig1b"), [plots.Panel(curves, "Fig. 1b: init (7), d = 2, lambda = 3\n(theta_0 = 0 included)",
                                                        ylabel="theta_1 theta_2", hlines=[lam], ylim=(-5, 8))])
    claims = [ClaimResult("P003-O.zero", _verdict(ok),
                          "from zero init FA converges (init (7) with theta_0 = 0) while GD stays at the saddle",
                          {"gd_velocity_at_origin": gd_velocity_at_origin, "gd_max_abs_theta_from_0": gd_zero_max,
                           "fa_product_error_at_t5": fa_zero_err},
                          {"gd": 0.0, "fa_product": lam}, {"gd": 0.0, "fa": 1e-8}, "flow", "EXP-P003-Fig1b",
                          note="The GD vector field evaluated at theta = 0 is exactly zero (the origin is a saddle, so "
                               "GD from 0 never moves: max |theta| along its flow is the printed value); FA from the "
                               "same zero init is driven by its feedback term and its product reaches lambda within "
                               "the printed error by t = 5 (DOP853, rtol 1e-12).")]
    md = (f"**Fig. 1b** (d = 2, lambda = 3, init (7), theta_0 = 0 and 10 draws from U(-5, 5)): the GD velocity at the "
          f"origin is exactly {gd_velocity_at_origin}; GD from 0 stays at 0; FA from 0 reaches lambda to {fa_zero_err:.2g}.\n")
    return ExperimentOutput(claims, [fig], md, {"seconds": time.perf_counter() - t_start})


# ------------------------------------------------------------------------------------------------ EXP Fig. 1c
def exp_fig1c(ctx: RunContext) -> ExperimentOutput:
    t_start = time.perf_counter()
    d, lam, runs = 2.0, 10.0, 10
    rng = np.random.default_rng(ctx.seed + 13)
    starts = rng.uniform(-5, 5, (runs, 2))
    ts = np.linspace(0.0, 3.0, 601 if ctx.quick else 3001)
    ctx.progress("P003 Fig1c: iid inits")
    thetas, _ = run_flow(scalar_system(d, lam), starts, ts)
    p = thetas[..., 0] * thetas[..., 1]
    # d(product)/dt = (lambda - p)(d theta_2 + theta_1^2) along (6), evaluated exactly at the samples
    dp = (lam - p) * (d * thetas[..., 1] + thetas[..., 0] ** 2)
    nonmono = []
    for i in range(runs):
        s = np.sign(dp[:, i][np.abs(dp[:, i]) > 1e-9])
        nonmono.append(bool(np.any(s[1:] != s[:-1])))
    lower_left = int(np.sum(thetas[-1, :, 0] < 0))
    dip = [float(p[0, i] - p[:, i].min()) if nonmono[i] else 0.0 for i in range(runs)]
    n_non = int(sum(nonmono))
    curves = [plots.Curve(ts, p[:, i], None, {"ls": "-" if nonmono[i] else "--"}) for i in range(runs)]
    fig = plots.panels(_fig(ctx, "fig1c"), [plots.Panel(curves, "Fig. 1c: iid init U(-5,5)^2, d = 2, lambda = 10\n"
                                                        "(solid: non-monotone)", ylabel="theta_1 theta_2", hlines=[lam])])
    claims = [ClaimResult("P003-O.nonmono", _verdict(n_non >= 1),
                          "with iid init the product theta_1 theta_2 can be non-monotone in t",
                          {"non_monotone_runs": n_non, "runs": runs, "max_dip": max(dip),
                           "runs_ending_on_lower_left_branch": lower_left},
                          {"non_monotone_runs": ">= 1"}, "sign change of d(product)/dt beyond 1e-9", "flow",
                          "EXP-P003-Fig1c",
                          note=(f"{lower_left} of {runs} runs end on the lower-left branch (theta_1 < 0), an equally "
                                "global minimum: iid starts with Delta > 0 and theta_1(0) < r_2 converge to r_1 (Thm 3)."
                                if lower_left else "All runs end on the upper-right branch; the non-monotone ones dip "
                                "towards the lower-left branch first, as in the paper's Fig. 1c."))]
    md = (f"**Fig. 1c** (d = 2, lambda = 10, 10 iid starts U(-5,5)^2): {n_non}/{runs} products are non-monotone "
          f"(largest dip {max(dip):.3g}); {lower_left} runs end on the lower-left branch.\n")
    return ExperimentOutput(claims, [fig], md, {"seconds": time.perf_counter() - t_start})


# ------------------------------------------------------------------------------------------------ EXP Fig. 3
def _theta_event(k: int):
    def g(t: float, params: Params) -> float:
        del t
        return float(params["W1"].reshape(-1)[k])
    g.terminal = False  # type: ignore[attr-defined]
    return g


def exp_fig3(ctx: RunContext) -> ExperimentOutput:
    t_start = time.perf_counter()
    d, lam = 2.0, 3.0
    ref = th.k0_limit(d, lam)
    rng = np.random.default_rng(ctx.seed + 17)
    theta0 = np.concatenate([[-5.0, 0.0, 1.0, 5.0], rng.uniform(-5, 5, 4 if ctx.quick else 10)])
    ts = np.linspace(0.0, 5.0, 501 if ctx.quick else 5001)
    pb = scalar_system(d, lam)
    ctx.progress("P003 Fig3: K = 0 flows")
    thetas, _ = run_flow(pb, init7(theta0, d), ts)
    p = thetas[..., 0] * thetas[..., 1]
    lim_err = float(max(np.abs(thetas[-1, :, 0] - ref.theta1).max(), np.abs(thetas[-1, :, 1] - ref.theta2).max(),
                        np.abs(p[-1] - lam).max()))
    slopes = [th.fit_log_slope(ts, p[:, i] - lam) for i in range(len(theta0)) if theta0[i] != ref.theta1]
    slope_err = float(max(abs(s / ref.rate - 1.0) for s in slopes))
    mono = all(_monotone(p[:, i]) for i in range(len(theta0)))
    # implicit solution t = 2(F(theta_1) - F(theta_0)) at t = 0.1
    j = int(np.searchsorted(ts, 0.1))
    implicit = float(max(abs(th.k0_time(theta0[i], thetas[j, i, 0], d, lam) - ts[j]) for i in range(len(theta0))
                         if abs(thetas[j, i, 0] - ref.theta1) > 1e-3))
    ok_t2 = lim_err <= 1e-10 and slope_err <= 0.02 and mono
    # vanishing time by event detection (theta_2 >= 0 under K = 0, so the product vanishes with theta_1)
    vt0 = np.array([-1.0, -5.0, -50.0])
    events = [_theta_event(k) for k in range(len(vt0))]
    _, vtraj = run_flow(scalar_system(d, lam), init7(vt0, d), np.array([0.0, 1.0]), events=events)
    t_vanish = [float(e[0]) for e in vtraj.events]
    t_formula = [th.vanishing_time(x, d, lam) for x in vt0]
    vt_err = float(max(abs(a - b) for a, b in zip(t_vanish, t_formula)))
    t_inf = th.vanishing_time_limit(d, lam)
    # larger lambda -> earlier crossing (theta_0 = -5)
    lams = np.array([0.5, 1.0, 2.0, 3.0])
    _, ltraj = run_flow(scalar_system(d, lams), init7(np.full(4, -5.0), d), np.array([0.0, 3.0]),
                        events=[_theta_event(k) for k in range(4)])
    t_lams = [float(e[0]) for e in ltraj.events]
    order_ok = all(a > b for a, b in zip(t_lams, t_lams[1:]))
    ok_vt = vt_err <= 1e-8 and order_ok and t_vanish[-1] < t_inf
    # --- discretisations (Sec. 5): Euler (22)-(23) and the modified scheme (26)-(27) from zero init
    ctx.progress("P003 Fig3: discretisations")
    s_star, eta_euler_max = th.euler_step_bound(d, lam)
    eu, runs = {}, {}
    for eta in (0.04, 0.05):
        x = run_discrete(scalar_system(d, lam), np.zeros((1, 2)), Euler(lr=eta), 250)[:, 0, :]
        runs["euler", eta] = x
        s_t = np.concatenate([[0.0], np.cumsum(np.diff(x[:, 0]) ** 2)])
        ident = float(np.abs(x[:, 1] - (x[:, 0] ** 2 - s_t) / (2 * d)).max())
        err = np.abs(x[:, 0] * x[:, 1] - lam)
        q = math.exp(-th.fit_log_slope(np.arange(len(err)), err, 1e-12, 1e-4))
        x_pred = th.euler_limit_point(s_t[-1], d, lam)
        eu[eta] = {"identity": ident, "product_error": float(err[-1]), "q": q, "x_inf": float(x[-1, 0]),
                   "x_inf_from_S": x_pred, "S_inf": float(s_t[-1]), "x_flow": ref.theta1,
                   "q_linearised": th.euler_asymptotic_factor(eta, x[-1, 0], x[-1, 1], d)}
    ok_t8 = all(v["identity"] <= 1e-12 and v["product_error"] <= 1e-10 and v["q"] < 1 for v in eu.values())
    eta_max = th.modified_eta_max(d, lam)
    mod = {}
    n_mod = 200
    for eta in (0.05, 0.1, 0.99 * eta_max):
        x = run_discrete(scalar_system(d, lam), np.zeros((1, 2)), ModifiedTrapezoid(lr=eta), n_mod)[:, 0, :]
        runs["modified", eta] = x
        tt = np.arange(n_mod + 1)
        inv = float(np.abs(x[:, 1] - x[:, 0] ** 2 / (2 * d)).max())
        err = np.abs(x[:, 0] * x[:, 1] - lam)
        bound = th.modified_bound(tt, eta, d, lam)
        r2 = ref.theta1 ** 2
        variant = 3 * lam * np.abs(1 - 1.5 * eta * r2) ** tt
        q_fit = math.exp(-th.fit_log_slope(tt, err, 1e-12, 1e-4))
        mod[round(eta, 6)] = {"invariant": inv, "bound_violation": float(np.max(err - bound)),
                              "variant_3/2_violation": float(np.max(err - variant)), "increasing": bool(np.all(np.diff(x[:, 0]) >= 0)),
                              "q_fit": q_fit, "q_asymptotic": th.modified_asymptotic_factor(eta, d, lam),
                              "final_error": float(err[-1])}
    one = run_discrete(scalar_system(d, lam), np.zeros((1, 2)), ModifiedTrapezoid(lr=th.modified_one_step_eta(d, lam)), 1)
    one_step_err = float(abs(one[1, 0, 0] * one[1, 0, 1] - lam))
    ok_t9 = all(v["invariant"] <= 1e-13 and v["bound_violation"] <= 1e-12 and v["increasing"] for v in mod.values())
    any_variant_violated = any(v["variant_3/2_violation"] > 1e-12 for v in mod.values())
    # figures
    curves1 = [plots.Curve(ts, thetas[:, i, 0]) for i in range(len(theta0))]
    curves2 = [plots.Curve(ts, thetas[:, i, 1]) for i in range(len(theta0))]
    curves3 = [plots.Curve(ts, p[:, i]) for i in range(len(theta0))]
    fig = plots.panels(_fig(ctx, "fig3"), [
        plots.Panel(curves1, "theta_1(t)", ylabel="theta_1", hlines=[ref.theta1]),
        plots.Panel(curves2, "theta_2(t)", ylabel="theta_2", hlines=[ref.theta2]),
        plots.Panel(curves3, "theta_1 theta_2", ylabel="product", hlines=[lam], ylim=(-5, 8))],
        suptitle="Fig. 3: init (7), d = 2, lambda = 3")
    x_e, x_m = runs["euler", 0.05][:n_mod + 1], runs["modified", 0.05]
    tt = np.arange(n_mod + 1)
    fig2 = plots.panels(_fig(ctx, "discrete"), [
        plots.Panel([plots.Curve(x_e[:, 0], x_e[:, 1], "Euler (22)-(23)", {"marker": ".", "ms": 3}),
                     plots.Curve(x_m[:, 0], x_m[:, 1], "modified (26)-(27)", {"marker": ".", "ms": 3}),
                     plots.Curve(np.linspace(1.5, 3, 50), lam / np.linspace(1.5, 3, 50), "hyperbola", {"color": "k", "ls": ":"})],
                    "zero init, eta = 0.05: different limit points", xlabel="x = theta_1", ylabel="y = theta_2"),
        plots.Panel([plots.Curve(tt, np.abs(x_e[:, 0] * x_e[:, 1] - lam) + 1e-17, "Euler"),
                     plots.Curve(tt, np.abs(x_m[:, 0] * x_m[:, 1] - lam) + 1e-17, "modified"),
                     plots.Curve(tt, th.modified_bound(tt, 0.05, d, lam), "3 lambda (1 - eta r^2/2)^t", {"ls": "--"})],
                    "|x_t y_t - lambda|", xlabel="t (steps)", logy=True)],
        suptitle="Sec. 5 discretisations, d = 2, lambda = 3")
    e05 = eu[0.05]
    claims = [
        ClaimResult("P003-T2", _verdict(ok_t2),
                    "init (7): theta_1 theta_2 -> lambda monotonically; theta_1 -> (2 d lambda)^(1/3); rate (3/2)(2 d lambda)^(2/3)",
                    {"max_limit_error": lim_err, "max_rel_rate_error": slope_err, "monotone": mono,
                     "fitted_rates": [round(s, 5) for s in slopes], "implicit_solution_error": implicit},
                    {"theta_1": ref.theta1, "theta_2": ref.theta2, "rate": ref.rate},
                    {"limit": 1e-10, "rate": "2% (fit where |error| in [1e-10, 1e-3])"}, "flow", "EXP-P003-Fig3",
                    note="The printed exponent is garbled; the rate (3/2)(2 d lambda)^(2/3) is the reconstruction "
                         "(linearisation of (13)) and is what the flow shows."),
        ClaimResult("P003-VT", _verdict(ok_vt),
                    "K = 0, theta_0 < 0: the product vanishes at T_0 (eqs 16-17); T_0 -> 4 pi/(3 sqrt3 r^2); larger lambda "
                    "vanishes earlier",
                    {"T0_event": t_vanish, "max_abs_error": vt_err, "T0_by_lambda(0.5,1,2,3)": t_lams},
                    {"T0_formula": t_formula, "T0_limit": t_inf}, 1e-8, "flow", "EXP-P003-Fig3",
                    note="T_0 is located by root finding on the flow's dense output (event theta_1 theta_2 = 0) and "
                         "compared with the closed form (16)-(17) for each theta_0; the crossing times for lambda = "
                         "0.5, 1, 2, 3 (theta_0 = -5) must decrease, and T_0 must stay below its theta_0 -> -inf limit "
                         "4 pi/(3 sqrt3 r^2)."),
        ClaimResult("P003-T8", _verdict(ok_t8),
                    "forward Euler (22)-(23) from zero init converges to the hyperbola for small eta",
                    {"identity_max": max(v["identity"] for v in eu.values()),
                     "product_error_max": max(v["product_error"] for v in eu.values()),
                     "q_max": max(v["q"] for v in eu.values()), "x_inf(eta=0.05)": e05["x_inf"],
                     "x_inf_from_S_inf(eta=0.05)": e05["x_inf_from_S"], "x_flow": ref.theta1,
                     "per_eta": {str(k): v for k, v in eu.items()}},
                    {"product": lam, "eta_bound": eta_euler_max, "S_star": s_star},
                    {"identity": 1e-12, "product": 1e-10, "q": "< 1"}, "euler", "EXP-P003-Fig3",
                    note=f"Exact identity y_t = (x_t^2 - S_t)/(2d) holds; Euler converges to a DIFFERENT point of the "
                         f"hyperbola than the flow (eta = 0.05: x_inf = {e05['x_inf']:.6f} vs flow {ref.theta1:.6f}; "
                         f"x_inf^3 - S_inf x_inf = 2 d lambda predicts {e05['x_inf_from_S']:.6f}). eta = 0.05 exceeds "
                         f"the theorem's sufficient bound {eta_euler_max:.4f} and still converges. Eq. (19) prints "
                         "W_2^{t+1} = W_2^{t+1} + ..., a typo for W_2^t + ... (used here)."),
        ClaimResult("P003-T9", "qualified" if ok_t9 else "refuted",
                    "modified scheme (26)-(27), zero init, eta < 2/(3 r^2): y_t = x_t^2/(2d) exactly, "
                    "|x_t y_t - lambda| <= 3 lambda (1 - (eta/2) r^2)^t",
                    {"invariant_max": max(v["invariant"] for v in mod.values()),
                     "bound_violation_max": max(v["bound_violation"] for v in mod.values()),
                     "factor_3/2_reading_violation_min": min(v["variant_3/2_violation"] for v in mod.values()),
                     "q_fit_vs_1-1.5eta_r^2_max_rel": max(abs(v["q_fit"] / v["q_asymptotic"] - 1) for v in mod.values()),
                     "one_step_eta_error": one_step_err, "per_eta": {str(k): v for k, v in mod.items()}},
                    {"eta_max": eta_max, "one_step_eta": th.modified_one_step_eta(d, lam)},
                    {"invariant": 1e-13, "bound_slack": 1e-12}, "euler", "EXP-P003-Fig3",
                    note="The bound holds with factor (1 - eta r^2/2); the main text's garbled factor read as "
                         f"(1 - (3/2) eta r^2) is {'violated' if any_variant_violated else 'not violated'} by the same "
                         "runs, it is only the asymptotic rate (fitted q matches 1 - (3/2) eta r^2). Remark 23's one-step "
                         f"convergence at eta = 2/r^2 holds (error {one_step_err:.2g})."),
    ]
    md = (f"**Fig. 3** (d = 2, lambda = 3, init (7), {len(theta0)} starts): limits to {lim_err:.2g}; fitted rates within "
          f"{100 * slope_err:.3g}% of (3/2) r^2 = {ref.rate:.5f}; monotone: {mono}. Vanishing times by event detection "
          f"{[round(x, 8) for x in t_vanish]} vs eqs (16)-(17) (max error {vt_err:.2g}); asymptote {t_inf:.7f}.\n\n"
          f"**Discretisations.** Euler eta = 0.05: identity error {e05['identity']:.2g}, x_inf = {e05['x_inf']:.6f} "
          f"(flow: {ref.theta1:.6f}), S_inf = {e05['S_inf']:.6f}. Modified scheme: invariant error "
          f"{max(v['invariant'] for v in mod.values()):.2g}, Thm 9 bound never violated, the (3/2)-factor reading "
          f"{'is violated' if any_variant_violated else 'holds'}.\n")
    return ExperimentOutput(claims, [fig, fig2], md, {"seconds": time.perf_counter() - t_start})


# ------------------------------------------------------------------------------------------------ EXP Fig. 4
def exp_fig4(ctx: RunContext) -> ExperimentOutput:
    t_start = time.perf_counter()
    ds, lam = (2.0, 2.5, 1.0), 1.0
    dc = th.deep_constants(ds)
    r, rate = th.deep_limit(lam, ds)
    rng = np.random.default_rng(ctx.seed + 19)
    theta0 = np.concatenate([[-1.0, 0.0, 2.0], rng.uniform(-1, 2, 10)])
    ts = np.linspace(0.0, 4.0, 801 if ctx.quick else 4001)
    ctx.progress("P003 Fig4: 3-layer flows")
    thetas, _ = run_flow(deep_scalar_system(ds, np.full(len(theta0), lam)), init11(theta0, ds), ts)
    p = thetas.prod(axis=-1)
    inv = max(float(np.abs(thetas[:, :, l] - dc.c[l] * thetas[:, :, 0] ** (2 ** l)).max()
                    / max(1.0, np.abs(thetas[:, :, l]).max())) for l in range(3))
    lim_err = float(max(np.abs(thetas[-1, :, 0] - r).max(), np.abs(p[-1] - lam).max()))
    mono = all(_monotone(p[:, i]) for i in range(len(theta0)))
    slopes = [th.fit_log_slope(ts, p[:, i] - lam) for i in range(len(theta0)) if abs(theta0[i] - r) > 1e-3]
    slope_err = float(max(abs(s / rate - 1) for s in slopes))
    ok_t5 = inv <= 1e-10 and lim_err <= 1e-8 and mono and slope_err <= 0.02
    # Thm 10: modified scheme (28) on the same DFA net, zero init (init (11) with theta_0 = 0)
    eta_max = th.deep_modified_eta_max(lam, ds)
    res = {}
    steps = 400
    for eta in (0.05, 0.1):
        x = run_discrete(deep_scalar_system(ds, [lam]), np.zeros((1, 3)), ModifiedTrapezoid(lr=eta), steps)[:, 0, :]
        tt = np.arange(steps + 1)
        inv_d = max(float(np.abs(x[:, l] - dc.c[l] * x[:, 0] ** (2 ** l)).max()) for l in range(3))
        err = np.abs(x.prod(-1) - lam)
        q = math.exp(-th.fit_log_slope(tt, err, 1e-12, 1e-4))
        q_paper = th.deep_modified_rate(eta, lam, ds)
        ok_range = err >= 1e-12  # below that the error is rounding, not the scheme
        c_needed = float(np.exp(np.max(np.log(err[ok_range]) - tt[ok_range] * math.log(q_paper))))
        res[eta] = {"invariant": inv_d, "limit_error": float(abs(x[-1, 0] - r)), "product_error": float(err[-1]),
                    "q_fit": q, "q_paper": q_paper, "rel_rate_error": abs((1 - q) / (1 - q_paper) - 1),
                    "C_needed": c_needed}
    ok_t10 = all(v["invariant"] <= 1e-13 and v["limit_error"] <= 1e-12 and v["rel_rate_error"] <= 0.02 for v in res.values())
    fig = plots.panels(_fig(ctx, "fig4"), [
        plots.Panel([plots.Curve(ts, p[:, i]) for i in range(len(theta0))],
                    "Fig. 4: theta_3 theta_2 theta_1, init (11), theta_0 ~ U(-1, 2)\nd = (2, 2.5, 1), lambda = 1",
                    ylabel="product", hlines=[lam], ylim=(-0.5, 2.5))])
    claims = [
        ClaimResult("P003-T5", _verdict(ok_t5),
                    "deep system (10) with init (11): theta_l = c_l theta_1^(2^(l-1)); product -> lambda monotonically "
                    "and exponentially; theta_1 -> (lambda/K)^(1/gamma)",
                    {"invariant_rel_error": inv, "limit_error": lim_err, "monotone": mono, "max_rel_rate_error": slope_err},
                    {"c": dc.c, "K": dc.K, "r": r, "rate": rate}, {"invariants": 1e-10, "limit": 1e-8, "rate": "2%"},
                    "flow", "EXP-P003-Fig4",
                    note="Local rate d_1 gamma lambda / r is derived (not printed in the paper)."),
        ClaimResult("P003-T10", "qualified" if ok_t10 else "refuted",
                    "modified scheme (28), L layers, zero init, eta < eta_max: invariants exact, linear convergence at "
                    "rate 1 - eta d_1 gamma (K lambda^(gamma-1))^(1/gamma)",
                    {"invariant_max": max(v["invariant"] for v in res.values()),
                     "limit_error_max": max(v["limit_error"] for v in res.values()),
                     "rel_rate_error_max": max(v["rel_rate_error"] for v in res.values()),
                     **{f"C_needed(eta={k})": v["C_needed"] for k, v in res.items()},
                     "per_eta": {str(k): v for k, v in res.items()}}, {"eta_max": eta_max, "r": r},
                    {"invariants": 1e-13, "limit": 1e-12, "rate": "2% (asymptotic)"}, "euler", "EXP-P003-Fig4",
                    note="The stated rate is only the asymptotic one: the constant C needed for |p_t - lambda| <= "
                         "C q^t grows with eta (C_needed above), so C cannot depend on lambda only."),
    ]
    md = (f"**Fig. 4** (3 layers, d = (2, 2.5, 1), lambda = 1, init (11)): invariants to {inv:.2g}, limit r = {r:.10f} "
          f"to {lim_err:.2g}, monotone {mono}, rates within {100 * slope_err:.3g}% of {rate:.4f}. Modified scheme (28): "
          + ", ".join(f"eta = {k}: invariants {v['invariant']:.2g}, q_fit = {v['q_fit']:.6f} vs {v['q_paper']:.6f}, "
                      f"C needed {v['C_needed']:.3g}" for k, v in res.items()) + ".\n")
    return ExperimentOutput(claims, [fig], md, {"seconds": time.perf_counter() - t_start})


# ------------------------------------------------------------------------------------------------ EXP Fig. 5a
def _level_event(k: int, level: float):
    """Event: theta_1 of member k crosses ``level`` (the midpoint between r_2 and r_3)."""
    def g(t: float, params: Params) -> float:
        del t
        return float(params["W1"].reshape(-1)[k]) - level
    return g


def _backward_runs(d: float, kk: float, lams: np.ndarray, delta: float, t_end: float, n: int = 1001):
    """FA flow (6) from ``theta_1(0) = r_2 + e^-delta`` on the parabola of K = kk; step times by event detection."""
    roots = np.array([th.cubic_roots(d, kk, lam) for lam in lams])
    theta0 = roots[:, 1] + math.exp(-delta)
    start = np.stack([theta0, theta0 ** 2 / (2 * d) + kk], axis=-1)
    ts = np.linspace(0.0, t_end, n)
    events = [_level_event(i, 0.5 * (roots[i, 1] + roots[i, 2])) for i in range(len(lams))]
    thetas, traj = run_flow(scalar_system(d, lams), start, ts, events=events)
    crossings = np.array([float(e[0]) if len(e) else float("nan") for e in traj.events])
    return ts, thetas, roots, crossings


def exp_fig5a(ctx: RunContext) -> ExperimentOutput:
    t_start = time.perf_counter()
    # (a) the figure as printed: roots (-2, 1, 2) are impossible for (13); integrate the factored cubic instead
    r1, r2, r3 = -2.0, 1.0, 2.0
    t_step = th.factored_cubic_step_time(r1, r2, r3)
    # e^-delta must stay far above the float spacing at r_2 and the solver's error: delta <= 20 (e^-30 ~ 1e-13
    # would already be resolved only to ~0.2%); step times come from the slope of crossing times in delta, which
    # cancels the delta-independent offset of the transit.
    deltas = (10.0, 15.0, 20.0)
    cross, curves = [], []

    def level(t: float, y: np.ndarray) -> float:
        return float(y[0]) - 0.5 * (r2 + r3)

    for delta in deltas:
        sol = solve_ivp(lambda t, y: -0.5 * (y - r1) * (y - r2) * (y - r3), (0, 2 * delta), [r2 + math.exp(-delta)],
                        method="DOP853", rtol=1e-12, atol=1e-14, dense_output=True, events=level)
        tt = np.linspace(0, 2 * delta, 1001)
        cross.append(float(sol.t_events[0][0]))
        curves.append(plots.Curve(tt / delta, sol.sol(tt)[0], f"delta = {delta:g}"))
    slope_cubic = (cross[2] - cross[1]) / (deltas[2] - deltas[1])
    # (b) the real FA flow (6) in the Delta > 0 regime: d = 0.5, K = -4
    d, kk = 0.5, -4.0
    lams = np.array([0.5, 1.0, 2.0, 3.0])
    t_pred = np.array([th.backward_step_time(d, kk, lam) for lam in lams])
    ctx.progress("P003 Fig5a: backward learning")
    xs = {}
    for delta in (15.0, 20.0):  # the delta = 20 run also feeds the figure and the error measurements
        ts, thetas, roots, xs[delta] = _backward_runs(d, kk, lams, delta, 2.6 * delta, 11 if delta < 20 else 1001)
    t_meas = (xs[20.0] - xs[15.0]) / 5.0
    rel = float(np.max(np.abs(t_meas / t_pred - 1)))
    increasing = bool(np.all(np.diff(t_meas) > 0))
    # error before / during / after the transit (delta = 20)
    p = thetas[..., 0] * thetas[..., 1]
    err0 = float(np.abs(p[0] - lams).max())
    peak = [float(np.abs(p[:, i] - lams[i]).max()) for i in range(len(lams))]
    ok = rel <= 1e-4 and increasing and abs(slope_cubic / t_step - 1) <= 1e-4
    fig = plots.panels(_fig(ctx, "fig5a"), [
        plots.Panel(curves, "factored cubic, roots (-2, 1, 2), theta_0 = r_2 + e^-delta", xlabel="t / delta",
                    ylabel="theta_1", hlines=[r1, r2, r3]),
        plots.Panel([plots.Curve(ts / 20.0, thetas[:, i, 0], f"lambda = {lams[i]:g}") for i in range(len(lams))],
                    "FA flow (6), d = 0.5, K = -4, delta = 20", xlabel="t / delta", ylabel="theta_1"),
        plots.Panel([plots.Curve(ts / 20.0, np.abs(p[:, i] - lams[i]) + 1e-18, f"lambda = {lams[i]:g}") for i in range(len(lams))],
                    "|theta_1 theta_2 - lambda| (~0 before and after)", xlabel="t / delta", logy=True)],
        suptitle="Fig. 5a: backward incremental learning (Delta > 0)")
    claims = [ClaimResult(
        "P003-T6/T7", "qualified" if ok else "refuted",
        "theta_0 = r_2 + e^-delta: theta_1(delta t) steps from r_2 to r_3 at T = 2/((r_3 - r_2)(r_2 - r_1)); T increases "
        "with lambda (anti-regularisation)",
        {"T_measured(lambda=0.5,1,2,3)": t_meas.tolist(), "max_rel_error": rel, "increasing_in_lambda": increasing,
         "factored_cubic_T": slope_cubic, "error_at_t0": err0, "peak_error_during_transit": peak},
        {"T_formula": t_pred.tolist(), "factored_cubic_T": t_step}, "1e-4 relative ((t_cross(20) - t_cross(15))/5, crossings by event detection)",
        "flow", "EXP-P003-Fig5a",
        note="The step times and their ordering are right, but the 'learning' reading is misleading: every root has "
             f"theta_1 theta_2 = lambda, so the error is already {err0:.1g} at t = 0 and returns to 0 after the step; "
             "the step is a transit between two zero-error points (peak error shown). Fig. 5a's printed roots (-2, 1, 2) "
             "sum to 1 and cannot be roots of the depressed cubic (13); we integrate the factored cubic instead. "
             "Needs K below -(3/2)(lambda^2/d)^(1/3) for every component; Appendix C.1 (2d = 1) prints the "
             f"threshold as about -(3/2) lambda^(2/3), the exact one is {th.delta_threshold_K(0.5, 1.0):.4f} "
             "lambda^(2/3)."),
    ]
    md = (f"**Fig. 5a** Step times (slope of event-detected crossing times in delta, delta = 15 -> 20): "
          f"{np.round(t_meas, 6).tolist()} vs 2/((r3-r2)(r2-r1)) = {np.round(t_pred, 6).tolist()} for lambda = "
          f"{lams.tolist()}; factored cubic (-2, 1, 2): {slope_cubic:.6f} vs {t_step:.6f}. The error |theta_1 theta_2 - "
          f"lambda| is {err0:.1g} at t = 0 and peaks at {np.round(peak, 3).tolist()} during the transit.\n")
    return ExperimentOutput(claims, [fig], md, {"seconds": time.perf_counter() - t_start})


# ------------------------------------------------------------------------------------------------ EXP Fig. 5b
def exp_fig5b(ctx: RunContext) -> ExperimentOutput:
    t_start = time.perf_counter()
    d, kk = 0.5, -4.0
    lams = np.array([0.5, 1.0, 2.0, 3.0])
    delta = 20.0
    ctx.progress("P003 Fig5b: regularisation vs anti-regularisation")
    ts, thetas, roots, crossings = _backward_runs(d, kk, lams, delta, 2.6 * delta, 301 if ctx.quick else 1001)
    t_cross = (crossings / delta).tolist()
    anti = bool(np.all(np.diff(t_cross) > 0))
    # K = 0 (init (7), theta_0 = -5, d = 2): vanishing times increase as lambda decreases (regularisation order)
    d0 = 2.0
    _, vtraj = run_flow(scalar_system(d0, lams), init7(np.full(4, -5.0), d0), np.array([0.0, 3.0]),
                        events=[_theta_event(k) for k in range(4)])
    t_vanish = [float(e[0]) for e in vtraj.events]
    reg = bool(np.all(np.diff(t_vanish) < 0))
    fig = plots.panels(_fig(ctx, "fig5b"), [
        plots.Panel([plots.Curve(ts / delta, thetas[:, i, 0], f"lambda = {lams[i]:g}") for i in range(len(lams))],
                    "Fig. 5b: theta_1(delta t), d = 0.5, K = -4, delta = 20\n(smaller lambda steps first)",
                    xlabel="t / delta", ylabel="theta_1")])
    ok = anti and reg
    claims = [ClaimResult(
        "P003-T6i", "qualified" if ok else "refuted",
        "informal Thm 6: some inits learn components with T_1 > ... > T_k (anti-regularisation), others (K = 0) with "
        "T_1 < ... < T_k (regularisation)",
        {"anti_step_times_over_delta(lambda=0.5,1,2,3)": t_cross, "anti_order": anti,
         "K0_vanishing_times(lambda=0.5,1,2,3)": t_vanish, "regularisation_order": reg},
        {"anti": "increasing in lambda", "K0": "decreasing in lambda"}, "strict ordering", "flow", "EXP-P003-Fig5b",
        note="Both orderings occur as stated. In the anti-regularised case each component already fits its target at "
             "t = 0 (theta_1 theta_2 = lambda at r_2), so 'negligible components are learned first' does not describe "
             "a loss decrease (see P003-T6/T7)."),
    ]
    md = (f"**Fig. 5b** (d = 0.5, K = -4, delta = 20): step times / delta {np.round(t_cross, 4).tolist()} for lambda = "
          f"{lams.tolist()} (anti order: {anti}); K = 0 vanishing times {np.round(t_vanish, 5).tolist()} "
          f"(regularisation order: {reg}).\n")
    return ExperimentOutput(claims, [fig], md, {"seconds": time.perf_counter() - t_start})


# ------------------------------------------------------------------------------------------------ EXP Fig. 2
def autoencoder_data(gen: torch.Generator, *, n: int = 1000, d: int = 20, k: int = 5,
                     latent_var: Sequence[float] = (4.0, 2.0, 1.0, 0.5, 0.25), noise: float = 1e-3) -> tuple[Tensor, Tensor]:
    """P003 Sec. 6 data: ``x_i = A z_i + eps_i``, ``A_kl ~ U(0,1)`` (d x k), ``z ~ N(0, diag(latent_var))``,
    ``eps ~ noise * N(0, I_d)``. Returns ``(X (n, d), A)``."""
    a = torch.rand(d, k, generator=gen, dtype=DT)
    z = torch.randn(n, k, generator=gen, dtype=DT) * torch.as_tensor(latent_var, dtype=DT).sqrt()
    x = z @ a.T + noise * torch.randn(n, d, generator=gen, dtype=DT)
    return x, a


def covariance_data(sigma: Tensor) -> Tensor:
    r"""Rows ``Xc (m, m)`` with ``Xc^T Xc / m = Sigma`` (``Xc = sqrt(m) Sigma^{1/2}``): a mean-loss linear net trained
    on ``(Xc, Xc)`` follows exactly the autoencoder flow (3)/(8) with ``Sigma_xx = Sigma_xy = Sigma`` (P003-P1)."""
    ev, v = torch.linalg.eigh(sigma)
    m = sigma.shape[-1]
    return math.sqrt(m) * (v * ev.clamp_min(0).sqrt()) @ v.T


def _product(ws: Sequence[Tensor]) -> Tensor:
    out = ws[0]
    for w in ws[1:]:
        out = w @ out
    return out


def _eq8_update(ws: Sequence[Tensor], ms: Sequence[Tensor], sxx: Tensor, sxy: Tensor) -> list[Tensor]:
    """P003 eq. (8) written out (gradient sign): ``-M_l (Sigma_xy - W_[1:L] Sigma_xx) W_[1:l-1]^T``, ``M_L = I``."""
    e = sxy - _product(ws) @ sxx
    out = []
    for l in range(len(ws)):
        left = ms[l] @ e if l < len(ws) - 1 else e
        out.append(-(left @ _product(ws[:l]).transpose(-1, -2)) if l > 0 else -left)
    return out


def _ae_problem(rule_name: str, n_layers: int, x: Tensor, w0: Tensor, reps: int, gen: torch.Generator) -> Problem:
    d = x.shape[-1]
    model = deep_linear((d,) * (n_layers + 1))
    p0 = {f"W{l}": w0.expand(reps, d, d).clone() for l in range(1, n_layers + 1)}
    if rule_name == "gd":
        return Problem(model, Backprop(), SquaredLoss("mean"), x, x, {})
    if n_layers == 2:
        rule = FeedbackAlignment()
        fb = {"B2": torch.rand(reps, d, d, generator=gen, dtype=DT)}  # B2 = M^T, M_ij ~ U(0,1)
    else:  # literal eq. (8): one fixed M_l per hidden layer = DFA with D_l^T = M_l^T
        rule = DirectFeedbackAlignment()
        fb = {f"D{l}": torch.rand(reps, d, d, generator=gen, dtype=DT) for l in range(1, n_layers)}
    return Problem(model, rule, SquaredLoss("mean"), x, x, rule.init(model, p0, generator=gen, feedback=fb))


def _stationary_check(gen: torch.Generator, members: int = 4) -> dict:
    """FA flow (3) with Sigma_xx = I on a bottleneck (h < o) and a wide (h >= o) net: stationary limit vs global min."""
    out = {}
    o = d_in = 4
    sxy = torch.randn(o, d_in, generator=gen, dtype=DT)
    sv = torch.linalg.svdvals(sxy)
    xc = covariance_data(torch.eye(d_in, dtype=DT))
    y = xc @ sxy.T  # Y^T X / m = Sigma_xy with X^T X / m = I
    for h in (2, 4):
        model = deep_linear((d_in, h, o))
        p0 = model.init_params(gen, scheme="gaussian", std=0.1, ensemble=members)
        rule = FeedbackAlignment()
        state = rule.init(model, p0, generator=gen)
        pb = Problem(model, rule, SquaredLoss("mean"), xc, y, state)
        traj = simulate_flow(pb, p0, [0.0, 300.0], rtol=1e-10, atol=1e-12)
        pf = traj.final
        vel = max(float(v.abs().max()) for v in pb.update(pf).values())
        resid = sxy - _product(model.layer_weights(pf))
        fa_err = 0.5 * (resid ** 2).sum(dim=(-2, -1))
        best = 0.5 * float((sv[h:] ** 2).sum())
        out[f"h={h}"] = {"max_velocity": vel, "fa_limit_error": fa_err.tolist(), "global_min_error": best}
    return out


def exp_fig2(ctx: RunContext) -> ExperimentOutput:
    t_start = time.perf_counter()
    gen = torch.Generator().manual_seed(ctx.seed + 23)
    x, a = autoencoder_data(gen)
    n, d = x.shape
    sigma = x.T @ x / n
    xc = covariance_data(sigma)
    # --- P1: finite-batch FA/DFA on the raw data == eqs (3)/(8) with empirical covariances == compressed data
    p1 = {}
    for n_layers in (2, 3):
        model = deep_linear((d,) * (n_layers + 1))
        pw = model.init_params(gen, scheme="gaussian", std=0.3)
        rule = FeedbackAlignment() if n_layers == 2 else DirectFeedbackAlignment()
        st = rule.init(model, pw, generator=gen)
        raw = rule.update(model, pw, st, x, x, SquaredLoss("mean"))
        comp = rule.update(model, pw, st, xc, xc, SquaredLoss("mean"))
        ms = [st["B2"].T] if n_layers == 2 else [st[f"D{l}"].T for l in range(1, n_layers)]
        eq = _eq8_update(model.layer_weights(pw), ms, sigma, sigma)
        scale = max(float(v.abs().max()) for v in eq)
        p1[f"L={n_layers}"] = {
            "raw_vs_eq": max(float((raw[f"W{l + 1}"] - eq[l]).abs().max()) for l in range(n_layers)) / scale,
            "compressed_vs_eq": max(float((comp[f"W{l + 1}"] - eq[l]).abs().max()) for l in range(n_layers)) / scale}
    p1_err = max(max(v.values()) for v in p1.values())
    # --- O.stat
    stat = _stationary_check(gen, 1 if ctx.quick else 4)
    bott = stat["h=2"]
    gap = min(bott["fa_limit_error"]) / bott["global_min_error"]
    wide_ok = max(stat["h=4"]["fa_limit_error"]) <= 1e-6  # h >= o: FA reaches the global minimum (error 0)
    stationary = bott["max_velocity"] <= 1e-6  # the bottleneck limits are stationary points of FA
    # --- O.AE: Euler, 15 FA repetitions (5 in quick mode; GD is deterministic: one run), 2 and 3 layers
    reps = 5 if ctx.quick else 15
    iters = 1000 if ctx.quick else 100_000
    eta = 5e-4  # the stated 0.01 diverges for FA on these data (measured below); 1e-3 still diverged for some seeds
    w0 = 1e-5 * torch.rand(d, d, generator=gen, dtype=DT)
    p_a = a @ torch.linalg.pinv(a)
    eye = torch.eye(d, dtype=DT)

    # P_k: projector on the top-k principal directions of Sigma (the order-of-importance prediction, Gidel et al. 2019)
    _, vecs = torch.linalg.eigh(sigma)
    vecs = vecs.flip(-1)
    proj = torch.stack([vecs[:, :k] @ vecs[:, :k].T for k in range(d + 1)])

    def measures(snap):
        theta = _product(snap.problem.model.layer_weights(snap.params))
        res = eye - theta
        tn = torch.linalg.matrix_norm(theta, ord="nuc")
        pk = proj[tn.round().long().clamp(0, d)]
        return torch.stack([tn, (res @ sigma * res).sum(dim=(-2, -1)), ((theta - p_a) ** 2).sum(dim=(-2, -1)),
                            torch.linalg.matrix_norm(theta - pk)], dim=-1)

    rec = sorted({0, *np.unique(np.round(np.logspace(0, math.log10(iters), 40 if ctx.quick else 120)).astype(int)).tolist()})
    curves: dict[str, np.ndarray] = {}
    timing = {}
    diverged_stated = {}
    status: dict[str, str] = {}
    for n_layers in (2, 3):
        for rname in ("fa", "gd"):
            key = f"{rname.upper()} ({n_layers}L)"
            pb = _ae_problem(rname, n_layers, xc, w0, reps if rname == "fa" else 1, gen)
            p0 = {f"W{l}": w0.expand(reps if rname == "fa" else 1, d, d).clone() for l in range(1, n_layers + 1)}
            ctx.progress(f"P003 Fig2: {key}, {iters} iterations")
            t0 = time.perf_counter()
            traj = simulate_discrete(pb, p0, Euler(lr=eta), iters, record_steps=rec, measures={"m": measures},
                                     keep_params=False)
            timing[key] = time.perf_counter() - t0
            vals = traj.metric("m").numpy()  # (T, members, 3); a diverged run keeps its records, NaN after
            curves[key] = np.concatenate([vals, np.full((len(rec) - len(vals), *vals.shape[1:]), np.nan)])
            status[key] = traj.status + (f" ({traj.message})" if traj.message else "")
            if rname == "fa":  # the stated step eta = 0.01
                tr = simulate_discrete(pb, p0, Euler(lr=0.01), 50, record_steps=[0], keep_params=False)
                diverged_stated[key] = tr.message or "ok"
    steps = np.array(rec)

    def first_cross(key: str, level: float) -> float:
        m = curves[key][:, :, 0].mean(axis=1)
        idx = np.nonzero(m >= level)[0]
        return float(steps[idx[0]]) if idx.size else float("inf")

    t_half = {k: first_cross(k, 0.5) for k in curves}
    faster = t_half["FA (2L)"] < t_half["GD (2L)"] and t_half["FA (3L)"] < t_half["GD (3L)"]
    gd3_final = float(curves["GD (3L)"][-1, :, 0].mean())
    levels = [first_cross("FA (3L)", k - 0.5) for k in range(1, 6)]
    reached = [v for v in levels if np.isfinite(v)]
    # full run: all five components, one after the other; quick run (1000 iterations): the first ones only
    sequential = len(reached) >= (2 if ctx.quick else 5) and all(b > a for a, b in zip(reached, reached[1:]))
    def plateau_stats(key: str) -> dict:
        """Per run: fraction of the (log-spaced) records during the rise (trace norm in [0.5, k - 0.5]) that sit within
        0.1 of an integer (1 = a staircase), and the median distance ||Theta - P_j|| on the plateaus (|tn - j| <= 0.1)."""
        tn, dist = curves[key][:, :, 0], curves[key][:, :, 3]
        fr, dd = [], []
        for m in range(tn.shape[1]):
            rise = (tn[:, m] >= 0.5) & (tn[:, m] <= 4.5)
            near = np.abs(tn[:, m] - np.round(tn[:, m])) <= 0.1
            if rise.sum():
                fr.append(float((rise & near).sum() / rise.sum()))
            on = near & (tn[:, m] >= 0.5)
            if on.sum():
                dd.append(float(np.median(dist[on, m])))
        return {"plateau_fraction": float(np.mean(fr)) if fr else float("nan"),
                "median_dist_to_P_k_on_plateaus": float(np.median(dd)) if dd else float("nan")}

    plateaus = {k: plateau_stats(k) for k in curves if not k.startswith("GD (3L)")}
    ordered = all(v["median_dist_to_P_k_on_plateaus"] <= 0.1 for v in plateaus.values())
    final = {k: {"trace_norm": float(v[-1, :, 0].mean()), "train_error": float(v[-1, :, 1].mean()),
                 "dist_to_P_A": float(v[-1, :, 2].mean())} for k, v in curves.items()}
    all_ok = all(v == "ok" for v in status.values())
    ok_ae = all_ok and faster and (gd3_final < 0.1 or ctx.quick) and sequential and ordered
    # figure: mean +- 2 std
    pan = []
    for j, (name, logy) in enumerate([("trace norm ||Theta||_*", False), ("(1/n)||X - Theta X||_F^2", True),
                                      ("||Theta - A A^+||_F^2", True)]):
        cs = []
        for key, style in (("FA (3L)", {"color": "C0"}), ("FA (2L)", {"color": "C1"}),
                           ("GD (3L)", {"color": "C2", "ls": "--"}), ("GD (2L)", {"color": "C3", "ls": "--"})):
            v = curves[key][:, :, j]
            m, s = v.mean(axis=1), v.std(axis=1)
            cs.append(plots.Curve(np.maximum(steps, 1), m, key, style, band=(m - 2 * s, m + 2 * s)))
        pan.append(plots.Panel(cs, name, xlabel="iterations", logx=True, logy=logy))
    fig = plots.panels(_fig(ctx, "fig2"), pan, suptitle=f"Fig. 2: linear autoencoder, d = 20, k = 5, eta = {eta}, "
                       f"{reps} FA repetitions (mean +- 2 std), {iters} iterations")
    claims = [
        ClaimResult("P003-P1", _verdict(p1_err <= 1e-12),
                    "finite-batch FA (2 layers) and eq.-(8) DFA (3 layers) on data equal eqs (3)/(8) with the empirical "
                    "Sigma_xx, Sigma_xy", p1, {"relative difference": 0.0}, 1e-12, "closed-form", "EXP-P003-Fig2",
                    note="The autoencoder runs use the 20-row data Xc = sqrt(20) Sigma^(1/2), which has the same "
                         "covariances, hence the same updates (compressed_vs_eq)."),
        ClaimResult("P003-O.stat", "qualified" if (stationary and wide_ok and gap > 1 + 1e-6) else "refuted",
                    "in the linear case all stationary points of FA are global minima",
                    stat | {"bottleneck_limit_over_global_min": gap},
                    {"stationary_points": "global minima"},
                    "bottleneck: velocity <= 1e-6 at t = 300 and error ratio > 1 refutes; h >= o: limit error <= 1e-6", "flow", "EXP-P003-Fig2",
                    note="True for the scalar systems (6)/(10) and for h >= o (FA limit error 0), but for a bottleneck "
                         f"net (d = o = 4, h = 2) the FA flow stops at stationary points whose error is {gap:.3g}x the "
                         "global minimum (Eckart-Young): M E = 0 only forces E into the null space of M."),
        ClaimResult("P003-O.AE", "qualified" if ok_ae else "refuted",
                    "linear autoencoder: FA learns faster than GD from near-zero init; 3-layer GD has not started by "
                    "the end; 3-layer FA's trace norm grows in steps (implicit regularisation)",
                    {"iterations_to_trace_norm_0.5": t_half, "GD3_final_trace_norm": gd3_final,
                     "FA3_iterations_to_k-0.5(k=1..5)": levels, "plateaus": plateaus, "final": final, "eta_used": eta,
                     "stated_eta_0.01": diverged_stated, "iterations": iters, "status": status},
                    {"FA faster": True, "GD3 final trace norm": "~0", "FA3": "sequential steps"},
                    "qualitative", "euler", "EXP-P003-Fig2",
                    note="With the stated eta = 0.01, FA and 3-layer FA (eq. 8) diverge on the stated data within a few "
                         "steps (top eigenvalue of Sigma_xx is about 40-60 because the data are not centred); we use "
                         "eta = 5e-4 for every run (1e-3 still diverged for some draws of the 3-layer M_l). On its plateaus "
                         "FA sits near P_k, the projector on the top-k principal directions (learned in order of "
                         "importance); the share of the rise spent on integer plateaus is "
                         f"{plateaus['FA (3L)']['plateau_fraction']:.2f} for 3-layer FA, "
                         f"{plateaus['FA (2L)']['plateau_fraction']:.2f} for 2-layer FA and "
                         f"{plateaus['GD (2L)']['plateau_fraction']:.2f} for 2-layer GD: the staircase hint is there "
                         "but weaker than GD's. Latent covariance diag(4, 2, 1, 1/2, 1/4) (main text; the appendix "
                         "says I_5). Reconstruction error reported both as training error and as ||Theta - A A^+||^2."),
    ]
    md = (f"**Fig. 2** (autoencoder, n = 1000, d = 20, k = 5, eta = {eta}, {iters} iterations, {reps} FA repetitions). "
          f"Iterations until the mean trace norm reaches 0.5: {t_half}. 3-layer GD final trace norm {gd3_final:.3g}. "
          f"3-layer FA passes k - 1/2 (k = 1..5) at iterations {levels}. Plateaus (fraction of the rise spent within 0.1 "
          f"of an integer; median ||Theta - P_k|| there): {plateaus}. Final values: {final}. With eta = 0.01: "
          f"{diverged_stated}. Wall times: " + ", ".join(f"{k} {v:.1f} s" for k, v in timing.items()) + ".\n\n"
          f"**P1**: max relative difference between engine updates and eqs (3)/(8): {p1_err:.2g}. **Stationary points**: "
          f"bottleneck FA limit error / global min = {gap:.3g}.\n")
    return ExperimentOutput(claims, [fig], md, {"seconds": time.perf_counter() - t_start,
                                                "autoencoder_seconds": timing})


for _id, _title, _claims, _fn in [
    ("EXP-P003-Fig1a", "FA phase portrait, invariant parabolas and root selection (Fig. 1a, Thm 3)",
     ("P003-INV", "P003-T3"), exp_fig1a),
    ("EXP-P003-Fig1b", "FA vs GD on the scalar system from init (7) (Fig. 1b)", ("P003-O.zero",), exp_fig1b),
    ("EXP-P003-Fig1c", "Non-monotone products from iid init (Fig. 1c)", ("P003-O.nonmono",), exp_fig1c),
    ("EXP-P003-Fig3", "K = 0 flow: limits, rate, vanishing time; Euler and modified discretisations (Fig. 3, Sec. 5)",
     ("P003-T2", "P003-VT", "P003-T8", "P003-T9"), exp_fig3),
    ("EXP-P003-Fig4", "3-layer scalar system, init (11), flow and modified scheme (Fig. 4, Thm 5, Thm 10)",
     ("P003-T5", "P003-T10"), exp_fig4),
    ("EXP-P003-Fig5a", "Backward incremental learning: step times (Fig. 5a, Thm 6/7)", ("P003-T6/T7",), exp_fig5a),
    ("EXP-P003-Fig5b", "Regularisation vs anti-regularisation orderings (Fig. 5b, informal Thm 6)", ("P003-T6i",),
     exp_fig5b),
    ("EXP-P003-Fig2", "Linear autoencoder, FA vs GD, 2 and 3 layers (Fig. 2); eqs (3)/(8); stationary points",
     ("P003-O.AE", "P003-P1", "P003-O.stat"), exp_fig2),
]:
    register(Experiment(id=_id, paper=PAPER, title=_title, claims=_claims, run=_fn))
