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
        flow = simulate_flow(problem, params0, np.linspace(0.0, 60.0, 7), measures={"beta": _beta_measure(model)})
        beta_flow = flow.metric("beta")[-1].numpy()
        flow_err[arch] = float(np.abs(beta_flow - pred).max())
        v1, v2 = flow.param("v1").numpy(), flow.param("v2").numpy()
        inv = (v1**2).sum(-1) - (v2**2).sum(-1)
        bal_flow = max(bal_flow, float(np.abs(inv - inv[0]).max() / np.abs(inv[0]).max()))

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
            traj_plot[(arch, al)] = betas[:, sl]
            pred_plot[(arch, al)] = pred[sl]
            dep_on_init[(arch, al)] = float(np.linalg.norm(pred[sl] - pred[sl].mean(0), axis=1).max())

    ideal = {"fc": theory.min_l2_interpolator(X_REG[None], [Y_REG]),
             "diag": theory.min_l1_interpolator(X_REG[None], [Y_REG]),
             "conv": theory.min_dft_l1_interpolator(X_REG[None], [Y_REG])}
    fig = plots.plot_regression_trajectories(ctx.figures_dir / "p002_regression.png", traj_plot, pred_plot, X_REG,
                                             Y_REG, ideal)
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
            f"lambda = {min(gaps.values()):.3f} > 0. Per arch flow err {_fmt(flow_err)}, GD err/eta {_fmt(euler_over_eta)}.",
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
            "Flow: 3 architectures x 12 members, t in [0, 60]; Euler identity: diagonal net, every step with eta||g|| >= 1e-3 ||v|| (smaller steps are below float64 resolution of ||v||^2). Extra: depth-3 "
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
        + "".join(f"| {a} | {flow_err[a]:.1e} | {euler_over_eta[a]:.3f} | "
                  + ", ".join(f"{s:.3g}" for s in spread[a]) + " |\n" for a in ARCHS)
    )
    numbers = {"wall_s": time.perf_counter() - t_start, "flow_err": flow_err, "euler_err": euler_err,
               "condition_gap": gaps}
    return ExperimentOutput(claims=claims, figures=[fig], markdown=md, numbers=numbers)


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
    t_long = 1e12
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
    figs = []
    if not ctx.quick:
        figs.append(plots.plot_classification_trajectories(ctx.figures_dir / "p002_classification.png", traj_plot,
                                                           theory_dirs))
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
                    {"min_cos_depth3_diag_t_1e12": t2_cos, "loss_bound_holds": t2_bound_ok},
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
    curve_err, dir_cos, bound_ok = 0.0, 1.0, True
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
    t3_ok = curve_err <= 10 * lr and dir_cos >= 0.999 and bound_ok
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
        ClaimResult("P002-T3", "confirmed" if t3_ok else "refuted",
                    "Two-layer single-point classification: iterates follow the exact cosh/sinh curve; v_1, v_2 align "
                    "with the top singular vectors; loss <= L(0)/(1 + alpha^2 lambda ||s||^2 L(0) t).",
                    {"gd_max_dist_to_curve": curve_err, "min_cos_beta_vs_top_singular_t_1e12": dir_cos,
                     "loss_bound_holds": bound_ok},
                    "on the curve (O(eta)); cos -> 1", {"curve": "10*eta", "cos": ">= 0.999"}, "euler", eid,
                    f"x = (1,2), y = 1, diagonal and conv, alpha = 0.5, 4 zbar; GD eta = {lr}, {steps} steps; "
                    "loss bound along the alpha = 0.5 flow; direction at t = 1e12 from alpha = 0.01 (convergence is "
                    "polynomial in log t)."),
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
