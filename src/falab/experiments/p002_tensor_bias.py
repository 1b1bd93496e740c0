"""P002 (Yun, Krishnan & Mobahi, ICLR 2021): implicit bias of linear tensor networks (claims.md §2.2, §3.2, §4.2).

Every simulation is ``Backprop()`` on a tensor-network model of :mod:`falab.models._tensor_nets` through
:func:`simulate_flow` (GD flow, eq. 7) or :func:`simulate_discrete` with :class:`Euler` (GD); the predictions come
from :mod:`falab.theory._p002`. Losses are sums over samples (P002's convention), residual ``r = f - y``.

* EXP-P002-1 — regression toy (Fig. 1, Fig. 2 top-left): Theorem 6 limits, balancedness.
* EXP-P002-2 — classification toy (Fig. 2): finite-time spread, asymptotic directions (T1, C1-C4, T2, T3).
* EXP-P002-3 — additional regression checks: Lemma 4, Theorem 5 (depth 3, larger d), Remark 4, Corollaries 2, 3, 5,
  Theorem 7.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.integrate import solve_ivp

from ..dynamics import Euler, Problem, simulate_discrete, simulate_flow
from ..functional import ExponentialLoss, SquaredLoss
from ..models._tensor_nets import (
    AbstractTensorNet,
    CircularConvNet,
    DeepMatrixSensing,
    DiagonalNet,
    FullyConnectedTensorNet,
)
from ..plots import _p002 as plots
from ..rules import Backprop
from ..theory import _p002 as theory
from ._registry import ClaimResult, Experiment, ExperimentOutput, RunContext, register

F64 = torch.float64
ARCHS = ("fc", "diag", "conv")
ALPHAS = (0.01, 0.5, 1.0)
X_REG = np.array([1.0, 2.0])
Y_REG = 1.0
X_CLS = np.array([[1.0, 2.0], [0.0, -3.0]])
Y_CLS = np.array([1.0, -1.0])


def _t(a: np.ndarray | Sequence[float]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=float), dtype=F64)


def toy_model(arch: str, depth: int = 2) -> AbstractTensorNet:
    """The d = 2 networks of EXP-P002-1/2 (FC hidden width 2, full-length conv)."""
    if arch == "fc":
        return FullyConnectedTensorNet((2,) * depth)
    if arch == "diag":
        return DiagonalNet(2, depth)
    return CircularConvNet(2, (2,) * (depth - 1))


def toy_tensor(arch: str, x: np.ndarray, depth: int = 2) -> np.ndarray:
    """``M(x)`` of :func:`toy_model` (the definition, from the theory module)."""
    if arch == "fc":
        return theory.data_tensor_fc(x, (2,) * depth)
    if arch == "diag":
        return theory.data_tensor_diag(x, depth)
    return theory.data_tensor_conv(x, (2,) * depth)


def first_direction(arch: str) -> np.ndarray:
    """claims.md §3.2 PROPOSE (c = 2): FC ``Wbar_1 = 2 I``, diagonal ``(2, 2)``, conv identity filter ``(2, 0)``;
    with ``vbar_2 = zbar / 2`` every architecture starts at ``beta(0) = alpha^2 zbar``."""
    return {"fc": 2 * np.eye(2).reshape(-1, order="F"), "diag": np.array([2.0, 2.0]),
            "conv": np.array([2.0, 0.0])}[arch]


def zbars(seed: int, n: int = 4) -> np.ndarray:
    """Four random unit directions ``zbar_j = (cos a_j, sin a_j)`` (claims.md §3.2 PROPOSE)."""
    a = np.random.default_rng(seed).uniform(0, 2 * np.pi, n)
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def _ensemble(arch: str, alphas: Sequence[float], zs: np.ndarray) -> tuple[dict[str, torch.Tensor], list[tuple]]:
    """One ensemble member per (alpha, zbar): ``v_1(0) = alpha vbar_1``, ``v_2(0) = alpha zbar / 2``."""
    v1, v2, keys = [], [], []
    for al in alphas:
        for j, z in enumerate(zs):
            v1.append(al * first_direction(arch))
            v2.append(al * z / 2)
            keys.append((al, j))
    return {"v1": _t(np.array(v1)), "v2": _t(np.array(v2))}, keys


def _beta_measure(model: AbstractTensorNet) -> Callable:
    return lambda snap: model.beta(snap.params)


def _mode_gap(m: np.ndarray, vbar1: np.ndarray, vbar2: np.ndarray) -> float:
    """Theorem 6 / Theorem 3 condition ``min_j [U_1^T vbar_1]_j^2 - [U_2^T vbar_2]_j^2`` (compact SVD of M(x))."""
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    keep = s > 1e-12
    return float(np.min((u[:, keep].T @ vbar1) ** 2 - (vt[keep] @ vbar2) ** 2))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ----------------------------------------------------------------------------------------------------------------------
# EXP-P002-1: regression toy, Theorem 6, balancedness


def run_regression(ctx: RunContext) -> ExperimentOutput:
    t_start = time.perf_counter()
    eid = "EXP-P002-1"
    lr, steps = 1e-3, 5000
    zs = zbars(ctx.seed + 2021)
    x_t, y_t = _t(X_REG[None, :]), _t([[Y_REG]])
    basis = {a: [toy_tensor(a, e) for e in np.eye(2)] for a in ARCHS}
    traj_plot, pred_plot = {}, {}
    flow_err, euler_err, euler_over_eta, gaps = {}, {}, {}, {}
    bal_flow, bal_euler = 0.0, 0.0
    dep_on_init = {}
    for arch in ARCHS:
        ctx.progress(f"P002 regression: {arch}")
        model = toy_model(arch)
        m = toy_tensor(arch, X_REG)
        params0, keys = _ensemble(arch, ALPHAS, zs)
        pred = np.array([theory.theorem6_limit(m, first_direction(arch), zs[j] / 2, al, Y_REG, basis[arch])["beta"]
                         for al, j in keys])
        gaps[arch] = min(_mode_gap(m, first_direction(arch), z / 2) for z in zs)
        problem = Problem(model, Backprop(), SquaredLoss("sum"), x_t, y_t)
        # GD flow, to convergence (loss ~ 1e-25)
        # dense output times cost only interpolation (solver steps do not depend on them); they draw the quick figure
        t_flow = 30.0 if ctx.quick else 60.0
        flow = simulate_flow(problem, params0, np.concatenate([[0.0], np.geomspace(1e-2, t_flow, 120)]),
                             measures={"beta": _beta_measure(model)})
        beta_flow = flow.metric("beta")[-1].numpy()
        flow_err[arch] = float(np.abs(beta_flow - pred).max())
        v1, v2 = flow.param("v1").numpy(), flow.param("v2").numpy()
        inv = (v1**2).sum(-1) - (v2**2).sum(-1)
        bal_flow = max(bal_flow, float(np.abs(inv - inv[0]).max() / np.abs(inv[0]).max()))

        if ctx.quick and arch != "diag":  # quick mode: GD for the diagonal net only (flows for all three)
            for ia, al in enumerate(ALPHAS):
                sl = slice(ia * len(zs), (ia + 1) * len(zs))
                traj_plot[(arch, al)] = flow.metric("beta").numpy()[:, sl]
                pred_plot[(arch, al)] = pred[sl]
                dep_on_init[(arch, al)] = float(np.linalg.norm(pred[sl] - pred[sl].mean(0), axis=1).max())
            continue
        # GD (Euler), with the exact discrete balancedness identity checked at every step
        worst = [0.0]

        def on_step(k, p, upd, new, worst=worst):
            # cancellation-free ||v_new||^2 - ||v||^2 = <dv, 2v + dv>; checked while the step is not at rounding
            # level: eta ||g|| >= 1e-3 ||v||, else float64 rounding of v_new (eps ||v||^2) swamps eta^2 ||g||^2
            ch = {n: ((new[n] - p[n]) * (new[n] + p[n])).sum(-1) for n in ("v1", "v2")}
            g2 = {n: (upd[n] ** 2).sum(-1) for n in ("v1", "v2")}
            err = (ch["v1"] - ch["v2"] - lr**2 * (g2["v1"] - g2["v2"])).abs() / (lr**2 * (g2["v1"] + g2["v2"]))
            live = lr * (g2["v1"] + g2["v2"]).sqrt() >= 1e-3 * ((p["v1"] ** 2).sum(-1) + (p["v2"] ** 2).sum(-1)).sqrt()
            if bool(live.any()):
                worst[0] = max(worst[0], float(err[live].max()))

        gd = simulate_discrete(problem, params0, Euler(lr=lr), steps, record_every=10,
                               measures={"beta": _beta_measure(model)}, keep_params=False,
                               on_step=on_step if arch == "diag" else None)
        bal_euler = max(bal_euler, worst[0])
        betas = gd.metric("beta").numpy()  # (T, K, 2)
        euler_err[arch] = float(np.abs(betas[-1] - pred).max())
        euler_over_eta[arch] = euler_err[arch] / lr
        for ia, al in enumerate(ALPHAS):
            sl = slice(ia * len(zs), (ia + 1) * len(zs))
            traj_plot[(arch, al)] = flow.metric("beta").numpy()[:, sl] if ctx.quick else betas[:, sl]
            pred_plot[(arch, al)] = pred[sl]
            dep_on_init[(arch, al)] = float(np.linalg.norm(pred[sl] - pred[sl].mean(0), axis=1).max())

    ideal = {"fc": theory.min_l2_interpolator(X_REG[None], [Y_REG]),
             "diag": theory.min_l1_interpolator(X_REG[None], [Y_REG]),
             "conv": theory.min_dft_l1_interpolator(X_REG[None], [Y_REG])}
    figs = [plots.plot_regression_trajectories(ctx.figures_dir / "p002_regression.png", traj_plot, pred_plot, X_REG,
                                               Y_REG, ideal, dynamics="gradient flow" if ctx.quick else "GD")]
    # alpha -> 0: deviation from the ideal limits at alpha = 0.01 (claims.md: <= 2e-2)
    ideal_dev = {a: float(np.abs(pred_plot[(a, 0.01)] - ideal[a]).max()) for a in ARCHS}
    spread = {a: [dep_on_init[(a, al)] for al in ALPHAS] for a in ARCHS}
    arch_diff = float(max(np.abs(pred_plot[("fc", 0.01)] - pred_plot[("diag", 0.01)]).max(),
                          np.abs(pred_plot[("conv", 0.01)] - pred_plot[("diag", 0.01)]).max()))

    tol_flow = 1e-8
    t6_ok = max(flow_err.values()) <= tol_flow and max(euler_over_eta.values()) <= 0.5 and min(gaps.values()) > 0
    claims = [
        ClaimResult(
            "P002-T6", "confirmed" if t6_ok else "refuted",
            "Two-layer single-point regression converges to the Theorem 6 limit (nu* = g^{-1}(y/alpha^2)).",
            {"flow_max_abs_err": max(flow_err.values()), "gd_max_abs_err_over_eta": max(euler_over_eta.values())},
            "beta_flow = beta_pred; |beta_GD - beta_pred| <= 0.5 eta", {"flow": tol_flow, "euler": "0.5*eta"},
            "flow", eid,
            f"3 architectures x alpha {list(ALPHAS)} x 4 zbar; GD eta = {lr}, {steps} steps; min condition gap "
            f"lambda = {min(gaps.values()):.3f} > 0{' (quick mode: GD for the diagonal net only)' if ctx.quick else ''}. Per arch flow err {_fmt(flow_err)}, GD err/eta {_fmt(euler_over_eta)}.",
        ),
        ClaimResult(
            "P002-E.reg",
            "confirmed" if (t6_ok and all(spread[a][0] < spread[a][-1] for a in ARCHS) and arch_diff > 0.1
                            and max(ideal_dev.values()) <= 2e-2) else "refuted",
            "Trajectories from identical beta(0) differ by architecture; Thm 6 predicts the limits; the dependence on "
            "zbar shrinks as alpha -> 0.",
            {"spread_over_zbar_by_alpha": spread, "max_dev_from_alpha0_limit_at_alpha_0.01": ideal_dev,
             "fc_vs_diag_vs_conv_limit_gap_alpha_0.01": arch_diff},
            "spread decreasing with alpha -> 0; limits -> (0.2,0.4) fc, (0,0.5) diag, (1/3,1/3) conv",
            "alpha=0.01 deviation <= 2e-2", "euler", eid,
            "Spread = max distance of the 4 predicted limits from their mean (alpha = 0.01, 0.5, 1).",
        ),
        ClaimResult(
            "P002-BAL", "confirmed" if (bal_flow <= 1e-8 and bal_euler <= 1e-9) else "refuted",
            "GD flow conserves ||v_1||^2 - ||v_2||^2; GD changes it by exactly eta^2(||g_1||^2 - ||g_2||^2).",
            {"flow_rel_drift": bal_flow, "euler_identity_rel_err": bal_euler,
             **_balancedness_extra(ctx)},
            "0 (flow), exact identity (Euler)", {"flow": 1e-8, "euler": 1e-9}, "flow", eid,
            f"Flow: 3 architectures x 12 members, t in [0, {30 if ctx.quick else 60}]; Euler identity: diagonal net, "
            "every step with eta||g|| >= 1e-3 ||v|| (smaller steps are below float64 resolution of ||v||^2). "
            "Extra: depth-3 "
            "FC matrix invariants W_1^T W_1 - W_2 W_2^T, W_2^T W_2 - w_3 w_3^T and depth-3 diagonal per-mode "
            "invariants along a flow.",
        ),
    ]
    for c in claims[-1:]:
        extra = c.measured
        if extra["fc3_matrix_rel_drift"] > 1e-8 or extra["diag3_mode_rel_drift"] > 1e-8:
            c.verdict = "refuted"
    md = (
        "GD (eta = 1e-3, 5000 steps) and the exact GD flow on x = (1, 2), y = 1 for the three 2-layer architectures "
        "(initial coefficients beta(0) = alpha^2 zbar identical across architectures).\n\n"
        "| arch | flow max abs err | GD max abs err / eta | spread over zbar (alpha = 0.01, 0.5, 1) |\n|---|---|---|---|\n"
        + "".join(f"| {a} | {flow_err[a]:.1e} | {_gd_cell(euler_over_eta, a)} | "
                  + ", ".join(f"{s:.3g}" for s in spread[a]) + " |\n" for a in ARCHS)
    )
    numbers = {"wall_s": time.perf_counter() - t_start, "flow_err": flow_err, "euler_err": euler_err,
               "condition_gap": gaps}
    return ExperimentOutput(claims=claims, figures=figs, markdown=md, numbers=numbers)


def _gd_cell(d: dict, key: str) -> str:
    return f"{d[key]:.3f}" if key in d else "- (quick mode)"


def _fmt(d: dict) -> str:
    return "{" + ", ".join(f"{k}: {v:.2e}" for k, v in d.items()) + "}"


def _balancedness_extra(ctx: RunContext) -> dict[str, float]:
    """Depth-3 invariants along a GD flow: FC matrices (row convention of claims.md §1.9) and diagonal per-mode."""
    g = torch.Generator().manual_seed(ctx.seed + 7)
    x = torch.randn(3, 4, generator=g, dtype=F64)
    y = torch.randn(3, 1, generator=g, dtype=F64)
    fc = FullyConnectedTensorNet((4, 3, 2))
    p0 = {f"v{l + 1}": 0.5 * torch.randn(k, generator=g, dtype=F64) for l, k in enumerate(fc.param_sizes)}
    tr = simulate_flow(Problem(fc, Backprop(), SquaredLoss("sum"), x, y), p0, np.linspace(0, 5, 6))

    def fc_inv(p):
        w1, w2, w3 = fc.matrices(p)
        return torch.cat([(w1.T @ w1 - w2 @ w2.T).reshape(-1), (w2.T @ w2 - w3 @ w3.T).reshape(-1)])

    invs = torch.stack([fc_inv(p) for p in tr.params])
    fc_drift = float((invs - invs[0]).abs().max() / invs[0].abs().max())
    dg = DiagonalNet(4, 3)
    p0 = {f"v{l}": 0.7 * torch.randn(4, generator=g, dtype=F64) for l in (1, 2, 3)}
    tr = simulate_flow(Problem(dg, Backprop(), SquaredLoss("sum"), x, y), p0, np.linspace(0, 5, 6))
    invs = torch.stack([torch.cat([p["v1"] ** 2 - p["v2"] ** 2, p["v2"] ** 2 - p["v3"] ** 2]) for p in tr.params])
    dg_drift = float((invs - invs[0]).abs().max() / invs[0].abs().max())
    return {"fc3_matrix_rel_drift": fc_drift, "diag3_mode_rel_drift": dg_drift}


register(Experiment(
    id="EXP-P002-1", paper="P002",
    title="Regression toy (Fig. 1): Theorem 6 limit points for FC, diagonal and convolutional nets",
    claims=("P002-T6", "P002-E.reg", "P002-BAL"), run=run_regression,
))


# ----------------------------------------------------------------------------------------------------------------------
# EXP-P002-2: classification toy (exponential loss), directions


def _flow_directions(model: AbstractTensorNet, params0: dict, x: np.ndarray, y: np.ndarray, ts: np.ndarray):
    """GD flow with the summed exponential loss, recorded at log-spaced times (the flow replaces the paper's 2e6
    Python-loop GD steps; physical time t = eta * steps)."""
    problem = Problem(model, Backprop(), ExponentialLoss("sum"), _t(x), _t(y[:, None]))
    # rtol 1e-8: direction claims need ~1e-3, and the looser tolerance saves a third of the evaluations
    tr = simulate_flow(problem, params0, ts, rtol=1e-8, atol=1e-10, measures={"beta": _beta_measure(model),
                                                       "loss": lambda s: s.problem.loss_value(s.params)})
    return tr, problem


def _singular_alignment(arch: str, depth: int, params: dict[str, torch.Tensor], x: np.ndarray, y: np.ndarray,
                        model: AbstractTensorNet) -> tuple[float, float]:
    """Theorem 1 measures at one state: min over layers/members of ``cos(v_l, M(-X^T r) o (.., I_{k_l}, ..))`` and
    max over members of ``| ||v_l|| / ||Theta|| - 1/sqrt(L) |``."""
    f = model(params, _t(x))[..., 0].numpy()  # (K, n)
    r = -y * np.exp(-y * f)
    u = r @ x  # X^T r per member
    worst_cos, worst_ratio = 1.0, 0.0
    for k in range(f.shape[0]):
        m = toy_tensor(arch, -u[k], depth)
        vs = [params[f"v{l + 1}"][k].numpy() for l in range(depth)]
        theta = math.sqrt(sum(float(v @ v) for v in vs))
        for l in range(depth):
            worst_cos = min(worst_cos, _cos(vs[l], theory.contract(m, vs, skip=l)))
            worst_ratio = max(worst_ratio, abs(np.linalg.norm(vs[l]) / theta - 1 / math.sqrt(depth)))
    return worst_cos, worst_ratio


def run_classification(ctx: RunContext) -> ExperimentOutput:
    t_start = time.perf_counter()
    eid = "EXP-P002-2"
    zs = zbars(ctx.seed + 2021)
    t_paper = 1000.0  # 2e6 GD steps x eta = 5e-4
    ts = np.concatenate([[0.0], np.logspace(-2, 3, 41), np.logspace(3, 12, 10)[1:]])
    i_paper = int(np.argmin(np.abs(ts - t_paper)))
    theory_dirs = {"fc": theory.unit(theory.max_margin_l2(X_CLS, Y_CLS)),
                   "diag": theory.unit(theory.max_margin_l1(X_CLS, Y_CLS)),
                   "conv": theory.unit(theory.max_margin_dft_l1(X_CLS, Y_CLS))}
    traj_plot, cos_long, cos_paper, spread_paper, loss_paper, loss_long = {}, {}, {}, {}, {}, {}
    t1_cos, t1_ratio = 1.0, 0.0
    for arch in ARCHS:
        ctx.progress(f"P002 classification: {arch}")
        model = toy_model(arch)
        params0, keys = _ensemble(arch, ALPHAS, zs)
        tr, _ = _flow_directions(model, params0, X_CLS, Y_CLS, ts)
        betas = tr.metric("beta").numpy()
        losses = tr.metric("loss").numpy()
        for ia, al in enumerate(ALPHAS):
            sl = slice(ia * len(zs), (ia + 1) * len(zs))
            traj_plot[(arch, al)] = betas[: i_paper + 1, sl]
            bp = betas[i_paper, sl]
            ang = np.arctan2(bp[:, 1], bp[:, 0])
            spread_paper[(arch, al)] = float(ang.max() - ang.min())
            cos_paper[(arch, al)] = float(min(_cos(b, theory_dirs[arch]) for b in bp))
            cos_long[(arch, al)] = float(min(_cos(b, theory_dirs[arch]) for b in betas[-1, sl]))
            loss_paper[(arch, al)] = float(losses[i_paper, sl].max())
            loss_long[(arch, al)] = float(losses[-1, sl].max())
        c, rt = _singular_alignment(arch, 2, {k: v[: len(zs)] for k, v in tr.final.items()}, X_CLS, Y_CLS, model)
        t1_cos, t1_ratio = min(t1_cos, c), max(t1_ratio, rt)
    figs = [plots.plot_classification_trajectories(ctx.figures_dir / "p002_classification.png", traj_plot,
                                                   theory_dirs)]
    # Theorem 2 with depth 3: diagonal net, l_{2/3} stationary point (0, 1) (the l1 max-margin support), loss bound
    dg3 = DiagonalNet(2, 3)
    al3 = 0.1
    p3 = {"v1": _t(np.tile([[2.0, 2.0]], (4, 1)) * al3), "v2": _t(np.tile([[2.0, 2.0]], (4, 1)) * al3),
          "v3": _t(zs / 4 * al3)}
    tr3, pr3 = _flow_directions(dg3, p3, X_CLS, Y_CLS, ts)
    b3 = tr3.metric("beta").numpy()[-1]
    t2_cos = float(min(_cos(b, theory_dirs["diag"]) for b in b3))
    lam3 = float(np.min(4.0 - (zs / 4) ** 2))
    gamma = _margin_gamma(X_CLS, Y_CLS)
    l3 = tr3.metric("loss").numpy()
    bound3 = theory.bound_theorem2(np.asarray(tr3.times)[:, None], l3[0][None, :], al3, lam3, 1.0, gamma, 3)
    t2_bound_ok = bool(np.all(l3 <= bound3 * (1 + 1e-9)))
    c3 = al3 ** 4 * lam3**2 * gamma**2  # the printed bound L(0) / (1 + c t) (without L(0) in the denominator)
    t2_printed_ok = bool(np.all(l3 <= l3[0][None, :] / (1 + c3 * np.asarray(tr3.times)[:, None]) * (1 + 1e-9)))
    t1_ok = t1_cos >= 0.99 and t1_ratio <= 0.05
    claims = [
        ClaimResult("P002-T1", "confirmed" if t1_ok else "refuted",
                    "Classification: limit directions of v_l are singular vectors of M(-u_inf); ||v_l||/||Theta|| -> "
                    "1/sqrt(L).",
                    {"min_cos_v_l_vs_M(-X^T r)o(..I..)": t1_cos, "max_|norm_ratio-1/sqrt2|": t1_ratio},
                    "cos -> 1, ratio -> 1/sqrt(2)", {"cos": ">= 0.99", "ratio": 0.05}, "flow", eid,
                    "alpha = 0.01 members of the three 2-layer architectures at t = 1e12 (loss ~ 1e-12).",
                    ),
        ClaimResult("P002-C1", "confirmed" if cos_long[("fc", 0.01)] >= 0.98 else "refuted",
                    "FC nets converge in direction to the l2 max-margin solution (1,2)/sqrt5.",
                    {"min_cos_alpha_0.01_t_1e12": cos_long[("fc", 0.01)],
                     "min_cos_all_alpha_t_1e12": min(cos_long[("fc", a)] for a in ALPHAS)},
                    "1", ">= 0.98 (alpha <= 0.01, loss < 1e-5)", "flow", eid,
                    f"loss at t = 1e12: {loss_long[('fc', 0.01)]:.1e}; at the paper's t = 1000 min cos "
                    f"{cos_paper[('fc', 0.01)]:.4f}."),
        ClaimResult("P002-C2", "confirmed" if cos_long[("diag", 0.01)] >= 0.98 else "refuted",
                    "Diagonal nets converge in direction to the l1 max-margin (l_{2/L} stationary) point (0, 1).",
                    {"min_cos_alpha_0.01_t_1e12": cos_long[("diag", 0.01)],
                     "min_cos_all_alpha_t_1e12": min(cos_long[("diag", a)] for a in ALPHAS)},
                    "1", ">= 0.98 (alpha <= 0.01)", "flow", eid,
                    "Convergence is logarithmic in t; larger alpha is slower (cos per alpha "
                    + ", ".join(f"{cos_long[('diag', a)]:.4f}" for a in ALPHAS) + ")."),
        ClaimResult("P002-C3", "confirmed" if cos_long[("conv", 0.01)] >= 0.98 else "refuted",
                    "Full-length conv nets converge in direction to the DFT-l1 max-margin point (1,1)/sqrt2.",
                    {"min_cos_alpha_0.01_t_1e12": cos_long[("conv", 0.01)],
                     "min_cos_all_alpha_t_1e12": min(cos_long[("conv", a)] for a in ALPHAS)},
                    "1", ">= 0.98 (alpha <= 0.01)", "flow", eid,
                    "cos per alpha " + ", ".join(f"{cos_long[('conv', a)]:.4f}" for a in ALPHAS) + "."),
        ClaimResult("P002-T2", "confirmed" if (t2_cos >= 0.98 and t2_bound_ok) else "refuted",
                    "Orthogonally decomposable nets (depth 3 diagonal): direction -> l_{2/3} stationary point; "
                    "loss bound L(0)/(1 + c L(0) t).",
                    {"min_cos_depth3_diag_t_1e12": t2_cos, "loss_bound_holds": t2_bound_ok,
                     "printed_bound_holds_here": t2_printed_ok, "L0": float(l3[0].max())},
                    "(0, 1) (stationary point of min ||z||_{2/3} s.t. margins >= 1)", ">= 0.98", "flow", eid,
                    f"alpha = {al3}, wbar_1 = wbar_2 = (2,2), wbar_3 = zbar/4 (lambda = {lam3:.3f}); corrected bound "
                    "(claims.md FLAG: the printed bound omits L(0) in the denominator)."),
        ClaimResult("P002-E.cls",
                    "confirmed" if (spread_paper[("fc", 1.0)] > 1e-2 and spread_paper[("diag", 1.0)] > 1e-2
                                    and spread_paper[("conv", 1.0)] > 1e-2) else "refuted",
                    "After the paper's training time (t = 1000) directions still depend on the initialisation.",
                    {f"angle_spread_rad_{a}_alpha_1": spread_paper[(a, 1.0)] for a in ARCHS}
                    | {f"loss_t1000_{a}_alpha_1": loss_paper[(a, 1.0)] for a in ARCHS},
                    "spread > 0 at finite time", "> 1e-2 rad across the 4 inits (alpha = 1)", "flow", eid,
                    "Flow to t = 1000 replaces 2e6 GD steps of eta = 5e-4; spread = max - min polar angle of beta."),
    ]
    claims += _single_point_claims(ctx, eid)
    md = ("Exponential loss on ((1,2),+1), ((0,-3),-1); GD flow in log-spaced time up to t = 1e12 (ensembles of "
          "3 alpha x 4 zbar per architecture).\n\n| arch | alpha | min cos at t=1000 | angle spread at t=1000 (rad) | "
          "min cos at t=1e12 |\n|---|---|---|---|---|\n"
          + "".join(f"| {a} | {al:g} | {cos_paper[(a, al)]:.4f} | {spread_paper[(a, al)]:.3g} | {cos_long[(a, al)]:.5f} |\n"
                    for a in ARCHS for al in ALPHAS))
    return ExperimentOutput(claims=claims, figures=figs, markdown=md,
                            numbers={"wall_s": time.perf_counter() - t_start})


def _margin_gamma(x: np.ndarray, y: np.ndarray) -> float:
    """``gamma = max_{||z|| = 1} min_i y_i x_i^T z`` = 1 / ||l2 max-margin solution||."""
    return 1.0 / float(np.linalg.norm(theory.max_margin_l2(x, y)))


def _single_point_claims(ctx: RunContext, eid: str) -> list[ClaimResult]:
    """Theorem 3 (GD iterates on the exact curve; top singular direction) and Corollary 4 (small filters)."""
    x, yv = X_REG, 1.0
    # Theorem 3: diagonal and conv (distinct singular values); GD iterates vs the exact curve
    curve_err, dir_cos, bound_ok, printed_ok, printed_viol = 0.0, 1.0, True, True, 0.0
    lr, steps = 1e-3, 2000 if ctx.quick else 5000
    zs = zbars(ctx.seed + 3)
    for arch in ("diag", "conv"):
        model = toy_model(arch)
        m = toy_tensor(arch, x)
        basis = [toy_tensor(arch, e) for e in np.eye(2)]
        params0, keys = _ensemble(arch, [0.5], zs)
        problem = Problem(model, Backprop(), ExponentialLoss("sum"), _t(x[None]), _t([[yv]]))
        gd = simulate_discrete(problem, params0, Euler(lr=lr), steps, record_every=100)
        for rec in gd.params:
            for k, (al, j) in enumerate(keys):
                v1, v2 = rec["v1"][k].numpy(), rec["v2"][k].numpy()
                f = float(theory.contract(m, [v1, v2]))
                nu = theory.theorem6_fit_nu(m, first_direction(arch), zs[j] / 2, al, f)
                c1, c2 = theory.theorem6_curve(m, first_direction(arch), zs[j] / 2, al, np.array([nu]))
                curve_err = max(curve_err, float(np.abs(np.concatenate([c1[0] - v1, c2[0] - v2])).max()))
        tr, _ = _flow_directions(model, params0, x[None], np.array([yv]), np.array([0, 1e2, 1e6, 1e12]))
        # direction: log-slow (second mode / first ~ (log t / alpha^2)^(s_2/s_1 - 1)), so use alpha = 0.01
        p_small = {k: v * 0.02 for k, v in params0.items()}
        tr_small, _ = _flow_directions(model, p_small, x[None], np.array([yv]), np.array([0, 1e2, 1e6, 1e12]))
        target = theory.theorem3_direction(m, yv, basis)
        dir_cos = min(dir_cos, min(_cos(b, target) for b in tr_small.metric("beta").numpy()[-1]))
        s = np.linalg.svd(m, compute_uv=False)
        lam = min(_mode_gap(m, first_direction(arch), z / 2) for z in zs)
        lt = tr.metric("loss").numpy()
        bnd = theory.bound_theorem3(np.asarray(tr.times)[:, None], lt[0][None, :], 0.5, lam, float(np.linalg.norm(s)))
        bound_ok = bound_ok and bool(np.all(lt <= bnd * (1 + 1e-9)))
        # the printed bound L(0) / (1 + alpha^2 lambda ||s||^2 t) omits L(0) in the denominator (claims.md FLAG)
        printed = lt[0][None, :] / (1 + 0.25 * lam * float(s @ s) * np.asarray(tr.times)[:, None])
        printed_ok = printed_ok and bool(np.all(lt <= printed * (1 + 1e-9)))
        printed_viol = max(printed_viol, float(np.max(lt / printed)))
    t3_ok = curve_err <= 10 * lr and dir_cos >= 0.999 and bound_ok
    t3_verdict = ("confirmed" if printed_ok else "qualified") if t3_ok else "refuted"
    # Corollary 4: x = (1, 2, 3), y = 1, filters k_1 = 1 and 2, alpha = 0.01
    x3 = np.array([1.0, 2.0, 3.0])
    c4 = {}
    rng = np.random.default_rng(ctx.seed + 4)
    for k1 in (1, 2):
        model = CircularConvNet(3, (k1,))
        m = theory.data_tensor_conv(x3, (k1, 3))
        vb1 = np.ones(k1) if k1 == 1 else np.array([1.0, 0.2])
        vb2 = 0.1 * rng.standard_normal((4, 3))
        gap = min(_mode_gap(m, vb1, v) for v in vb2)
        p0 = {"v1": _t(np.tile(vb1, (4, 1)) * 0.01), "v2": _t(vb2 * 0.01)}
        tr, _ = _flow_directions(model, p0, x3[None], np.array([1.0]), np.array([0, 1e3, 1e8, 1e12]))
        closed = theory.corollary4_direction(x3, 1.0, k1)
        svd_dir = theory.theorem3_direction(m, 1.0, [theory.data_tensor_conv(e, (k1, 3)) for e in np.eye(3)])
        c4[k1] = {"min_cos": float(min(_cos(b, closed) for b in tr.metric("beta").numpy()[-1])),
                  "closed_vs_svd_cos": _cos(closed, svd_dir), "gap": gap}
    c4_ok = all(v["min_cos"] >= 0.999 and v["closed_vs_svd_cos"] >= 1 - 1e-12 and v["gap"] > 0 for v in c4.values())
    return [
        ClaimResult("P002-T3", t3_verdict,
                    "Two-layer single-point classification: iterates follow the exact cosh/sinh curve; v_1, v_2 align "
                    "with the top singular vectors; loss <= L(0)/(1 + alpha^2 lambda ||s||^2 L(0) t).",
                    {"gd_max_dist_to_curve": curve_err, "min_cos_beta_vs_top_singular_t_1e12": dir_cos,
                     "loss_bound_holds": bound_ok, "printed_bound_holds": printed_ok,
                     "max_loss_over_printed_bound": printed_viol},
                    "on the curve (O(eta)); cos -> 1", {"curve": "10*eta", "cos": ">= 0.999"}, "euler", eid,
                    f"x = (1,2), y = 1, diagonal and conv, alpha = 0.5, 4 zbar; GD eta = {lr}, {steps} steps; "
                    "loss bound along the alpha = 0.5 flow; direction at t = 1e12 from alpha = 0.01 (convergence is "
                    "polynomial in log t). Bound checked in the corrected form L(0)/(1 + c L(0) t); the printed form "
                    "L(0)/(1 + c t) is also evaluated (it can fail when L(0) < 1)."),
        ClaimResult("P002-C4", "confirmed" if c4_ok else "refuted",
                    "Small filters, one point x = (1,2,3): k_1 = 1 -> y x; k_1 = 2 -> y(2x + x_left + x_right) = "
                    "(7,8,9)/sqrt(194).",
                    {f"k1={k}": v for k, v in c4.items()}, "cos = 1", ">= 0.999 at t = 1e12 (alpha = 0.01)",
                    "flow", eid, "closed_vs_svd_cos compares the Corollary 4 closed form with the top singular pair."),
    ]


register(Experiment(
    id="EXP-P002-2", paper="P002",
    title="Classification toy (Fig. 2): finite-time spread and asymptotic max-margin directions",
    claims=("P002-T1", "P002-C1", "P002-C2", "P002-C3", "P002-T2", "P002-E.cls", "P002-T3", "P002-C4"),
    run=run_classification,
))


# ----------------------------------------------------------------------------------------------------------------------
# EXP-P002-3: additional regression checks (Lemma 4, Theorem 5, Remark 4, Corollaries 2, 3, 5, Theorem 7)


def _flow_to_convergence(problem: Problem, params0: dict, t_max: float, *, loss_tol: float = 1e-14,
                         first: float = 2.0) -> tuple[dict, np.ndarray, np.ndarray]:
    """GD flow in segments of doubling length until every member's loss is below ``loss_tol`` or ``t_max``.

    Stopping matters: once converged the flow is stiff (step ~ 1 / lambda_max) and an explicit solver would spend
    millions of evaluations idling to a fixed horizon. ``loss_tol = 1e-14`` leaves ``|beta - beta_inf| ~ 1e-7``.
    Returns the final parameters, the recorded times and the losses ``(T, K)``.
    """
    params, t0, seg = params0, 0.0, first
    times, losses = [0.0], [problem.loss_value(params0).reshape(-1).numpy()]
    while t0 < t_max:
        tr = simulate_flow(problem, params, np.linspace(0.0, seg, 9),
                           measures={"loss": lambda s: s.problem.loss_value(s.params)})
        if tr.status != "ok":
            raise RuntimeError(f"P002 flow failed: {tr.message}")
        ls = tr.metric("loss").reshape(len(tr.times), -1).numpy()
        times += [t0 + t for t in tr.times[1:]]
        losses += list(ls[1:])
        params, t0, seg = tr.final, t0 + seg, 2 * seg
        if float(ls[-1].max()) < loss_tol:
            break
    return params, np.asarray(times), np.stack(losses)


def _lemma4(ctx: RunContext) -> ClaimResult:
    """Lemma 4: ODE solution vs closed forms vs the general-L evaluation; oddness, monotonicity, blow-up at c_L."""
    refs = {2: (0.0049835298, 0.4128007432, 13.6912732463), 3: (0.0049673460, 0.3659810893, 9.0714871779),
            4: (0.0049514382, 0.3347498141, 7.2020132802)}
    h_refs = {2: 0.5876005968, 3: 0.7093445069, 4: 0.8888888889}
    ref_err = 0.0
    for depth, vals in refs.items():
        for t, v in zip((0.1, 1.0, 10.0), vals):
            ref_err = max(ref_err, abs(float(theory.big_h(t, depth)) - v), abs(float(theory.big_h_closed(t, depth)) - v))
        ref_err = max(ref_err, abs(float(theory.h_fn(0.5, depth)) - h_refs[depth]),
                      abs(float(theory.h_closed(0.5, depth)) - h_refs[depth]))
    ode_err, mono, odd, blow, c_err = 0.0, True, 0.0, True, 0.0
    for depth in (2, 3, 4, 5, 6):
        c = theory.half_width(depth)
        t_end = 3.0 if depth == 2 else 0.98 * c

        def rhs(t, z, depth=depth):
            p, q = z
            return [p ** (depth - 2) * q, p ** (depth - 1)]

        q_hit = (1e4 / (depth - 2)) ** (1 / (depth - 2)) if depth >= 3 else 1e4

        def blowup(t, z, q_hit=q_hit):
            return z[1] - q_hit

        blowup.terminal = True  # type: ignore[attr-defined]
        grid = np.linspace(0, t_end, 50)
        sol = solve_ivp(rhs, (0, t_end), [1.0, 0.0], t_eval=grid, rtol=1e-12, atol=1e-14, method="DOP853")
        h_ode = sol.y[0] ** (depth - 1) * sol.y[1]
        h_gen = theory.h_fn(grid, depth)
        ode_err = max(ode_err, float(np.max(np.abs(h_ode - h_gen) / np.maximum(1.0, np.abs(h_ode)))))
        dense = np.linspace(-t_end, t_end, 2001)
        hv = theory.h_fn(dense, depth)
        mono = mono and bool(np.all(np.diff(hv) > 0))
        odd = max(odd, float(np.max(np.abs(hv + hv[::-1]) / np.maximum(1.0, np.abs(hv)))))
        if depth >= 3:
            blow = blow and float(theory.h_fn(c * (1 - 1e-6), depth)) > 1e6
            ev = solve_ivp(rhs, (0, 2 * c), [1.0, 0.0], events=blowup, rtol=1e-12, atol=1e-14, method="DOP853")
            hit = ev.t_events[0]
            # q_hit is reached at c_L - int_q^inf (1+u^2)^(-(L-1)/2) du, within 1e-4 of c_L
            c_err = max(c_err, abs(float(hit[0]) - c) if len(hit) else math.inf)
    ok = ref_err <= 1e-9 and ode_err <= 1e-8 and mono and odd <= 1e-12 and blow and c_err <= 1.01e-4
    return ClaimResult(
        "P002-L4", "confirmed" if ok else "refuted",
        "Lemma 4: h_L odd, strictly increasing, blowing up at +-c_L (c_2 = inf, c_3 = pi/2, c_4 = 1).",
        {"max_err_vs_reference_values": ref_err, "max_rel_err_vs_ODE_L2..6": ode_err, "strictly_increasing": mono,
         "max_oddness_violation": odd, "blows_up_at_c_L": blow, "ODE_blowup_time_minus_c_L": c_err,
         "c_3": theory.half_width(3), "c_4": theory.half_width(4)},
        "claims.md §4.2.5 values; h_L(-t) = -h_L(t); q blows up at c_L",
        {"reference": 1e-9, "ode": 1e-8, "blowup_time": 1e-5}, "closed-form", "EXP-P002-3",
        "General-L route via the incomplete beta function; closed forms for L = 2, 3, 4; ODE by DOP853 rtol 1e-12.")


def _random_regression(seed: int, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal(n)


def _t5_run(model: AbstractTensorNet, x: np.ndarray, y: np.ndarray, dirs: list[np.ndarray], alphas: Sequence[float],
            t_max: float):
    """Flow of an ensemble over alphas from ``v_l(0) = alpha vbar_l``; returns the final betas and the trajectory."""
    p0 = {f"v{l + 1}": _t(np.stack([al * d for al in alphas])) for l, d in enumerate(dirs)}
    problem = Problem(model, Backprop(), SquaredLoss("sum"), _t(x), _t(y[:, None]))
    final, times, losses = _flow_to_convergence(problem, p0, t_max)
    return model.beta(final).numpy(), (times, losses), problem, p0


def run_regression_extra(ctx: RunContext) -> ExperimentOutput:
    t_start = time.perf_counter()
    eid = "EXP-P002-3"
    claims = [_lemma4(ctx)]
    numbers: dict = {}

    # Theorem 5: diagonal, L = 3, n = 2, d = 4 (claims.md VERIFIED setting); flow and GD
    ctx.progress("P002 Theorem 5")
    x, y = _random_regression(ctx.seed + 5, 2, 4)
    rng = np.random.default_rng(ctx.seed + 6)
    eta = rng.uniform(0.5, 1.5, 4) * rng.choice([-1.0, 1.0], 4)
    alphas = (0.1, 0.5, 1.0)
    model = DiagonalNet(4, 3)
    beta_flow, (times, losses), problem, p0 = _t5_run(model, x, y, [eta, eta, np.zeros(4)], alphas, 1e5)
    preds = np.stack([theory.theorem5_limit(x, y, np.eye(4), eta, al, 3)["beta"] for al in alphas])
    t5_flow = float(np.abs(beta_flow - preds).max())
    lam = float(np.min(eta**2))
    smin_x = float(np.linalg.svd(x, compute_uv=False).min())
    tt = times[:, None]
    bound = np.stack([theory.bound_theorem5(tt[:, 0], losses[0, k], al, lam, 1.0, smin_x, 3)
                      for k, al in enumerate(alphas)], axis=1)
    t5_bound = bool(np.all(losses <= bound * (1 + 1e-9) + 1e-300))
    lr = 1e-3
    gd_steps = 4000 if ctx.quick else 12000
    gd = simulate_discrete(problem, {k: v[2:] for k, v in p0.items()}, Euler(lr=lr), gd_steps, record_every=gd_steps,
                           keep_params=True)
    beta_gd = model.beta(gd.final).numpy()[0]
    t5_gd = float(np.abs(beta_gd - preds[2]).max())
    t5_gd_tol = 10 * lr * float(np.linalg.norm(preds[2]))
    kkt = max(_kkt_residual(x, np.eye(4), eta, al, 3, theory.theorem5_limit(x, y, np.eye(4), eta, al, 3))
              for al in alphas)
    t5_ok = t5_flow <= 1e-6 and t5_gd <= t5_gd_tol and t5_bound and kkt <= 1e-8
    claims.append(ClaimResult(
        "P002-T5", "confirmed" if t5_ok else "refuted",
        "Regression under Assumption 1: beta(t) -> S^T argmin Q_{L,alpha,eta}(rho) s.t. X S^T rho = y.",
        {"flow_max_abs_err": t5_flow, "gd_alpha_1_abs_err": t5_gd, "loss_bound_holds": t5_bound,
         "kkt_residual": kkt},
        "Theorem 5 predictor (damped Newton on the dual)", {"flow": 1e-6, "euler": f"10*eta*||beta|| = {t5_gd_tol:.2e}"},
        "flow", eid,
        f"Diagonal L = 3, n = 2, d = 4, alpha {list(alphas)}, vbar_1 = vbar_2 = eta, vbar_3 = 0, |eta_j| in [0.5, 1.5]; "
        f"GD eta = {lr}, {gd_steps} steps (alpha = 1). Loss bound with lambda = min eta_j^2 (the squared-scale gap, as "
        "in Theorem 2; the proof's balancedness gives |U_l^T v_l|_j^2 >= alpha^2 eta_j^2)."))

    # Remark 4: predictor sweep over alpha
    ctx.progress("P002 Remark 4")
    sweep = np.logspace(-3, 2, 11)
    w1 = theory.weighted_l1_limit(x, y, np.eye(4), eta, 3)
    w2 = theory.weighted_l2_limit(x, y, np.eye(4), eta, 3)
    d1 = [float(np.linalg.norm(theory.theorem5_limit(x, y, np.eye(4), eta, a, 3)["beta"] - w1)) for a in sweep]
    d2 = [float(np.linalg.norm(theory.theorem5_limit(x, y, np.eye(4), eta, a, 3)["beta"] - w2)) for a in sweep]
    w1_l2 = theory.weighted_l1_limit(x, y, np.eye(4), eta, 2)
    d1_l2 = [float(np.linalg.norm(theory.theorem5_limit(x, y, np.eye(4), eta, a, 2)["beta"] - w1_l2))
             for a in (1e-2, 1e-4, 1e-8)]
    plain_l1 = theory.min_l1_interpolator(x, y)
    r4_ok = d1[0] <= 1e-2 and d2[-1] <= 1e-2 and d1[0] < d1[5] and d2[-1] < d2[5] and float(
        np.linalg.norm(w1_l2 - plain_l1)) <= 1e-9 and d1_l2[-1] < d1_l2[0]
    figs = []
    figs.append(plots.plot_alpha_sweep(ctx.figures_dir / "p002_interpolation.png", list(sweep),
                                       {"to weighted l1 (alpha->0)": d1, "to weighted l2 (alpha->inf)": d2},
                                       ylabel="||beta_inf(alpha) - limit||",
                                       title="P002 Remark 4: diagonal L = 3 limit vs alpha"))
    claims.append(ClaimResult(
        "P002-R4", "confirmed" if r4_ok else "refuted",
        "Q interpolates weighted l1 (alpha -> 0) and weighted l2 (alpha -> inf).",
        {"dist_to_weighted_l1_at_alpha_1e-3": d1[0], "dist_to_weighted_l2_at_alpha_1e2": d2[-1],
         "dist_l1_by_alpha": dict(zip([f"{a:.0e}" for a in sweep], d1)),
         "L2_dist_to_plain_l1_alpha_1e-2_1e-4_1e-8": d1_l2},
        "-> 0 at both ends", 1e-2, "closed-form", eid,
        "Theorem 5 predictor of the T5 problem (diagonal L = 3); for L = 2 the alpha -> 0 limit is plain l1 (weights "
        "|eta|^0), approached only logarithmically (log(1/alpha) prefactor)."))

    # Corollary 2 (diagonal) at larger d, depth 2 and 3
    ctx.progress("P002 Corollary 2")
    c5 = {}
    xd, yd = _random_regression(ctx.seed + 8, 5, 12)
    wbar = np.random.default_rng(ctx.seed + 9).uniform(0.5, 1.5, 12)
    for depth in (3,) if ctx.quick else (2, 3):
        al = (0.3, 1.0)
        dirs = [wbar] * (depth - 1) + [np.zeros(12)]
        b, *_ = _t5_run(DiagonalNet(12, depth), xd, yd, dirs, al, 1e5)
        pr = np.stack([theory.theorem5_limit(xd, yd, np.eye(12), wbar, a, depth)["beta"] for a in al])
        c5[f"L={depth}"] = float(np.abs(b - pr).max())
    claims.append(ClaimResult(
        "P002-C5", "confirmed" if max(c5.values()) <= 1e-6 else "refuted",
        "Diagonal regression limit = argmin alpha^2 sum wbar_j^2 H_L(z_j/(alpha^L |wbar_j|^L)) s.t. X z = y.",
        {"flow_max_abs_err": c5}, "Theorem 5 predictor with S = U = I", 1e-6, "flow", eid,
        "d = 12, n = 5, alpha in {0.3, 1}, wbar_j ~ U[0.5, 1.5], wbar_L = 0."))

    # Corollary 3 (full-length conv, even data) d = 6, depth 2 and 3
    ctx.progress("P002 Corollary 3")
    d = 6
    rng = np.random.default_rng(ctx.seed + 10)
    xe = rng.standard_normal((2, d))
    xe = 0.5 * (xe + xe[:, (-np.arange(d)) % d])  # even: x[j] = x[(d - j) mod d]
    ye = rng.standard_normal(2)
    eta_c = rng.uniform(0.5, 1.5, d)
    eta_c = 0.5 * (eta_c + eta_c[(-np.arange(d)) % d])
    f_mat = theory.dft_matrix(d)
    wbar_c = np.real(np.conj(f_mat) @ eta_c)  # vbar_l = U_l eta with U_l = conj(F); real and even
    c6 = {}
    for depth in (3,) if ctx.quick else (2, 3):
        al = (0.3, 1.0)
        dirs = [wbar_c] * (depth - 1) + [np.zeros(d)]
        b, *_ = _t5_run(CircularConvNet(d, (d,) * (depth - 1)), xe, ye, dirs, al, 1e5)
        s_real = d ** ((depth - 1) / 2) * np.real(f_mat)
        pr = np.stack([theory.theorem5_limit(xe, ye, s_real, eta_c, a, depth)["beta"] for a in al])
        c6[f"L={depth}"] = float(np.abs(b - pr).max())
    claims.append(ClaimResult(
        "P002-C6", "confirmed" if max(c6.values()) <= 1e-6 else "refuted",
        "Full-length conv regression with even data: DFT-domain Q minimiser.",
        {"flow_max_abs_err": c6}, "Theorem 5 predictor with S = d^((L-1)/2) Re(F), eta = F wbar", 1e-6, "flow", eid,
        "d = 6, n = 2 even data, even wbar with F wbar = eta in [0.5, 1.5] (real), alpha in {0.3, 1}. The printed "
        "objective Q(F z) has a garbled scale; the normalisation S = d^((L-1)/2) Re(F) is the one that matches."))

    # Corollary 5: deep matrix sensing
    ctx.progress("P002 Corollary 5")
    claims.append(_matrix_sensing(ctx, eid, numbers))

    # Theorem 7: deep FC, alpha -> 0
    ctx.progress("P002 Theorem 7")
    claims.append(_theorem7(ctx, eid, numbers, figs))
    numbers.update(_predictor_timings(ctx))
    numbers["wall_s"] = time.perf_counter() - t_start
    md = ("Regression beyond the toy: Lemma 4 functions, Theorem 5 (diagonal L = 3), Corollaries 2/3/5 with larger d "
          "and depth 3, Remark 4 interpolation, Theorem 7 (deep FC).\n\n"
          "| claim | verdict | deciding number |\n|---|---|---|\n"
          + "".join(f"| {c.id} | {c.verdict} | {_short(c.measured)} |\n" for c in claims))
    return ExperimentOutput(claims=claims, figures=figs, markdown=md, numbers=numbers)


def _predictor_timings(ctx: RunContext) -> dict[str, float]:
    """Acceptance: one Theorem 6 evaluation in milliseconds, one Theorem 5 solve (d = 100) well under a second."""
    m = theory.data_tensor_conv(X_REG, (2, 2))
    t0 = time.perf_counter()
    reps = 20
    for _ in range(reps):
        theory.theorem6_limit(m, np.array([2.0, 0.0]), np.array([0.3, -0.4]), 0.5, 1.0)
    t6 = (time.perf_counter() - t0) / reps
    x, y = _random_regression(ctx.seed + 14, 50, 100)
    out = {"theorem6_eval_ms": 1e3 * t6}
    for depth in (2, 3, 4):
        t0 = time.perf_counter()
        theory.theorem5_limit(x, y, np.eye(100), np.ones(100), 0.1, depth)
        out[f"theorem5_d100_n50_L{depth}_alpha0.1_ms"] = 1e3 * (time.perf_counter() - t0)
    return out


def _short(v) -> str:
    if isinstance(v, dict):
        k = next(iter(v))
        return f"{k} = {_short(v[k])}"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _kkt_residual(x, s_mat, eta, alpha, depth, sol) -> float:
    """KKT check of Theorem 5's minimiser: ``grad Q(rho) = alpha^2 eta^2 h_L^{-1}(rho/(alpha^L|eta|^L)) /
    (alpha^L |eta|^L)`` must equal ``S X^T nu`` (claims.md §4.2.6)."""
    ae = np.abs(eta)
    grad_q = alpha**2 * ae**2 * theory.h_inv(sol["rho"] / (alpha**depth * ae**depth), depth) / (alpha**depth * ae**depth)
    target = s_mat @ x.T @ sol["nu"]
    return float(np.abs(grad_q - target).max() / max(1.0, np.abs(target).max()))


def _matrix_sensing(ctx: RunContext, eid: str, numbers: dict) -> ClaimResult:
    """Corollary 5: commuting symmetric sensors, ``W_l(0) = alpha I``, ``W_L(0) = 0``; the product's eigenvalues solve
    the diagonal Theorem 5 problem with eta = 1 in the sensors' common eigenbasis."""
    d, n = 4, 2
    rng = np.random.default_rng(ctx.seed + 11)
    u, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lams = rng.standard_normal((n, d))
    sensors = np.stack([u @ np.diag(lv) @ u.T for lv in lams])
    y = rng.standard_normal(n)
    x = _t(sensors.reshape(n, d * d))
    errs, rng_alphas = {}, (0.1, 1.0)
    for depth in (2, 3):
        model = DeepMatrixSensing(d, depth)
        for al in rng_alphas:
            problem = Problem(model, Backprop(), SquaredLoss("sum"), x, _t(y[:, None]))
            final, *_ = _flow_to_convergence(problem, model.init_params(al), 1e5)
            prod = model.product(final).numpy()
            rho = theory.theorem5_limit(lams, y, np.eye(d), np.ones(d), al, depth)["rho"]
            errs[f"L={depth},alpha={al}"] = float(np.abs(prod - u @ np.diag(rho) @ u.T).max())
    # interpolation between nuclear norm (alpha -> 0) and Frobenius norm (alpha -> inf), predictor level
    nuc = theory.min_l1_interpolator(lams, y)
    fro = theory.min_l2_interpolator(lams, y)
    small = theory.theorem5_limit(lams, y, np.eye(d), np.ones(d), 1e-3, 3)["rho"]
    large = theory.theorem5_limit(lams, y, np.eye(d), np.ones(d), 1e2, 3)["rho"]
    d_nuc, d_fro = float(np.abs(small - nuc).max()), float(np.abs(large - fro).max())
    numbers["matrix_sensing_errors"] = errs
    ok = max(errs.values()) <= 1e-6 and d_nuc <= 1e-2 and d_fro <= 1e-2
    return ClaimResult(
        "P002-C7", "confirmed" if ok else "refuted",
        "Deep matrix sensing: product -> argmin alpha^2 sum_j H_L(eig_j(M)/alpha^L) s.t. <A_i, M> = y_i; nuclear "
        "norm as alpha -> 0, Frobenius as alpha -> inf.",
        {"flow_max_abs_err": max(errs.values()), "per_run": errs, "L3_alpha_1e-3_to_min_nuclear": d_nuc,
         "L3_alpha_1e2_to_min_frobenius": d_fro},
        "Theorem 5 predictor in the sensors' eigenbasis (eta = 1)", {"flow": 1e-6, "limits": 1e-2}, "flow", eid,
        f"d = {d}, n = {n} commuting symmetric sensors A_i = U diag(lambda_i) U^T; loss 0.5 sum (y - <A, W_1..W_L>)^2 "
        "(P002's loss without 1/2 is the same flow at twice the speed).")


def _theorem7(ctx: RunContext, eid: str, numbers: dict, figs: list) -> ClaimResult:
    """Theorem 7: deep FC (L = 3, d_l = d): ``||beta_inf(alpha) - X^+ y|| = O(alpha)``.

    Generic directions satisfying conditions (1)-(2): ``Wbar_1 = 2 Q_1``, ``Wbar_2 = Q_2`` (random orthogonal),
    ``||wbar_3|| = 0.5`` (so ``Wbar_1^T Wbar_1 = 4I >= Wbar_2 Wbar_2^T = I`` and ``Wbar_2^T Wbar_2 - wbar wbar^T >=
    0.75 I``). The zero-asymmetric init (``Wbar_l = I``, ``wbar_L = 0``) keeps beta in row(X) exactly (limit = X^+ y
    for every alpha), which is reported as well.
    """
    d, n, depth = 4, 2, 3
    x, y = _random_regression(ctx.seed + 12, n, d)
    rng = np.random.default_rng(ctx.seed + 13)
    q1, _ = np.linalg.qr(rng.standard_normal((d, d)))
    q2, _ = np.linalg.qr(rng.standard_normal((d, d)))
    w3 = rng.standard_normal(d)
    w3 *= 0.5 / np.linalg.norm(w3)
    lam = 1.0 - 0.25
    model = FullyConnectedTensorNet((d,) * depth)
    alphas = (1e-1, 3e-2, 1e-2)
    dirs = [(2 * q1).reshape(-1, order="F"), q2.reshape(-1, order="F"), w3]
    beta, (times, losses), *_ = _t5_run(model, x, y, dirs, alphas, 1e6)
    target = theory.min_l2_interpolator(x, y)
    errs = np.linalg.norm(beta - target, axis=1)
    slope = float(np.polyfit(np.log(alphas), np.log(errs), 1)[0])
    smin = float(np.linalg.svd(x, compute_uv=False).min())
    bound = np.stack([theory.bound_theorem7(times, losses[0, k], al, lam, smin, depth)
                      for k, al in enumerate(alphas)], axis=1)
    bound_ok = bool(np.all(losses <= bound * (1 + 1e-9) + 1e-300))
    dirs_id = [np.eye(d).reshape(-1, order="F")] * (depth - 1) + [np.zeros(d)]
    beta_id, *_ = _t5_run(model, x, y, dirs_id, (0.1,), 1e6)
    err_id = float(np.linalg.norm(beta_id[0] - target))
    numbers["theorem7_errors"] = errs.tolist()
    figs.append(plots.plot_alpha_sweep(ctx.figures_dir / "p002_theorem7.png", list(alphas),
                                       {"||beta_inf - X^+ y||": errs.tolist()},
                                       title="P002 Theorem 7: deep FC (L = 3) limit vs alpha"))
    return ClaimResult(
        "P002-T7", "confirmed" if (slope >= 0.9 and bound_ok and err_id <= 1e-6) else "refuted",
        "Deep FC regression: lim_{alpha->0} lim_{t->inf} beta = X^T (X X^T)^{-1} y.",
        {"loglog_slope": slope, "errors": dict(zip([str(a) for a in alphas], errs.tolist())),
         "loss_bound_holds": bound_ok, "identity_init_error_alpha_0.1": err_id},
        "error O(alpha)", "slope >= 0.9 over alpha in {1e-1, 3e-2, 1e-2}", "flow", eid,
        f"L = 3, d = {d}, n = {n}, Wbar_1 = 2 Q_1, Wbar_2 = Q_2, ||wbar_3|| = 0.5 (conditions (1), (2) with lambda = "
        f"{lam}); flow until loss < 1e-14. Printed loss bound (weaker than the proof's) checked along the flow.")


register(Experiment(
    id="EXP-P002-3", paper="P002",
    title="Regression beyond the toy: Lemma 4, Theorem 5, Remark 4, Corollaries 2, 3, 5, Theorem 7",
    claims=("P002-L4", "P002-T5", "P002-R4", "P002-C5", "P002-C6", "P002-C7", "P002-T7"), run=run_regression_extra,
))
