r"""P004 (Garg & Vempala, AISTATS 2022): random feedback for low-rank matrix factorisation — all 12 claims, 6 experiments.

Matrix factorisation ``Y ~ Z W`` is the engine's two-layer linear network on the input ``X = I_n`` (see
:mod:`falab.models._matfac`): ``W1 = Z^T``, ``W2 = W^T``, P004's ``B`` (m x r) is the FA slot ``'B2'``, loss
``SquaredLoss('sum') = 0.5 ||Y - Z W||_F^2`` (sum, so the engine's time is the paper's time). GD = ``Backprop``,
FA = ``FeedbackAlignment``, FA* = ``FAStar``; Euler steps use per-factor step sizes ``{'W1': eta_Z, 'W2': eta_W}``.
Closed forms come from :mod:`falab.theory._p004`; every formula of the paper was lost in the extraction, so all
statements are the reconstructed ([RECON]) ones of claims.md §2.4, and the experiments use the proposed parameters
of claims.md §3.4.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
import torch
from scipy.integrate import simpson
from torch import Tensor

from ..dynamics import Euler, Problem, Trajectory, simulate_discrete, simulate_flow
from ..functional import SquaredLoss
from ..instruments import _p004 as ins
from ..models._matfac import factors, feedback_slot, from_factors, identity_inputs, matrix_factorization
from ..plots import _p004 as plots
from ..rules import Backprop, FAStar, FeedbackAlignment
from ..theory import _p004 as th
from ._registry import ClaimResult, Experiment, ExperimentOutput, RunContext, register

LOSS = SquaredLoss("sum")
RULE_NAMES = ("GD", "FA", "FA*")


# ---------------------------------------------------------------------------------------------------------------------
# Building blocks: every simulation goes through the engine's rules, Problem and dynamics
# ---------------------------------------------------------------------------------------------------------------------

def _rule(name: str):
    return {"GD": Backprop(), "FA": FeedbackAlignment(), "FA*": FAStar()}[name]


def mf_problem(rule: str, y: Tensor, z0: Tensor, w0: Tensor, b: Tensor | None) -> tuple[Problem, dict[str, Tensor]]:
    """The engine problem of P004's ``rule`` ('GD' | 'FA' | 'FA*') for targets ``Y (..., n, m)``, initial factors
    ``Z0 (..., n, r)``, ``W0 (..., r, m)`` and feedback ``B (..., m, r)``; returns ``(problem, params0)``."""
    n, m = y.shape[-2], y.shape[-1]
    r = z0.shape[-1]
    model = matrix_factorization(n, r, m)
    params0 = from_factors(z0, w0)
    rule_obj = _rule(rule)
    fb = None if rule == "GD" else feedback_slot(b)
    state = rule_obj.init(model, params0, generator=torch.Generator().manual_seed(0), feedback=fb)
    return Problem(model, rule_obj, LOSS, identity_inputs(n), y, state), params0


def _error_norm(snap) -> Tensor:
    z, w = factors(snap.params)
    return torch.linalg.matrix_norm(snap.problem.y - z @ w)


def _loss(snap) -> Tensor:
    return snap.problem.loss_value(snap.params)


def _np(t: Tensor) -> np.ndarray:
    return t.detach().numpy()


def _fmt(x: float) -> str:
    return f"{x:.3g}"


class _FAStarStepMonitor:
    """``on_step`` monitor of FA*'s exact Euler identities (Fact 3 and Lemma 5 in discrete time)."""

    def __init__(self, y: Tensor, b: Tensor, eta: float) -> None:
        self.y, self.b, self.eta = y, b, eta
        self.gram_rel = 0.0      # max_k ||violation_k|| / ||Z_k^T Z_k||
        self._g_err = self._g_pred = self._a_err = self._a_pred = 0.0

    @property
    def gram_rel_inc(self) -> float:
        """max_k ||violation_k|| / max_k ||eta^2 R_k^T R_k|| (the increment's scale over the run)."""
        return self._g_err / self._g_pred

    @property
    def align_rel(self) -> float:
        """max_k ||violation_k|| / max_k ||eta R_k^T R_k||."""
        return self._a_err / self._a_pred

    def __call__(self, k: int, params, update, new) -> None:
        del k, update
        z, w = factors(params)
        zn, _ = factors(new)
        d = ins.fa_star_step_identities(z, w, zn, self.y, self.b, self.eta)
        nrm = torch.linalg.matrix_norm
        g_err = nrm(d["gram_measured"] - d["gram_predicted"])
        self.gram_rel = max(self.gram_rel, float((g_err / nrm(z.transpose(-1, -2) @ z)).max()))
        self._g_err = max(self._g_err, float(g_err.max()))
        self._g_pred = max(self._g_pred, float(nrm(d["gram_predicted"]).max()))
        self._a_err = max(self._a_err, float(nrm(d["align_measured"] - d["align_predicted"]).max()))
        self._a_pred = max(self._a_pred, float(nrm(d["align_predicted"]).max()))


class _FAStepMonitor:
    """``on_step`` monitor of FA's exact matrix identity ``C_{k+1} - C_k = eta^2 R_k^T R_k`` (equal step sizes)."""

    def __init__(self, y: Tensor, b: Tensor, eta: float) -> None:
        self.y, self.b, self.eta = y, b, eta
        self._err = self._pred = 0.0

    @property
    def rel(self) -> float:
        """max_k ||violation_k|| / max_k ||eta^2 R_k^T R_k||."""
        return self._err / self._pred

    def __call__(self, k: int, params, update, new) -> None:
        del k, update
        z, w = factors(params)
        zn, wn = factors(new)
        dz, dw = zn - z, wn - w
        tr = lambda a: a.transpose(-1, -2)  # noqa: E731
        measured = tr(z) @ dz + tr(dz) @ z + tr(dz) @ dz - dw @ self.b - tr(dw @ self.b)
        predicted = self.eta**2 * ins.gram_rr(z, w, self.y, self.b)
        nrm = torch.linalg.matrix_norm
        self._err = max(self._err, float(nrm(measured - predicted).max()))
        self._pred = max(self._pred, float(nrm(predicted).max()))


def _sign_changes(x: np.ndarray, floor: float) -> int:
    s = np.sign(np.where(np.abs(x) > floor, x, 0.0))
    s = s[s != 0]
    return int(np.sum(s[1:] != s[:-1]))


# ---------------------------------------------------------------------------------------------------------------------
# EXP-P004-Fig2: GD vs FA vs FA*, (a) r >= rank(Y), (b) r < rank(Y); Lemma 1, Theorems 2-4
# ---------------------------------------------------------------------------------------------------------------------

def _fig2(ctx: RunContext) -> ExperimentOutput:
    t0 = time.perf_counter()
    rng = np.random.default_rng(ctx.seed + 4002)
    # quick: smaller problem, larger step, and each rule only as long as it needs to become stationary
    n = m = 40 if ctx.quick else 100
    eta, r, sigma0 = (2e-2 if ctx.quick else 1e-2), 5, 0.01
    rule_steps = {"GD": 1500, "FA": 3500, "FA*": 1000} if ctx.quick else dict.fromkeys(RULE_NAMES, 20000)
    sig_a = np.linspace(2.0, 1.0, 5)
    sig_b = np.concatenate([np.ones(5), np.full(15, np.sqrt(1.0 / 3.0))])
    ya = th.spectral_target(rng, n, m, sig_a)[0]
    yb = th.spectral_target(rng, n, m, sig_b)[0]
    y = torch.tensor(np.stack([ya, yb]))
    b = torch.tensor(rng.standard_normal((2, m, r)))
    z0 = torch.tensor(sigma0 * rng.standard_normal((2, n, r)))
    w0 = torch.tensor(sigma0 * rng.standard_normal((2, r, m)))
    runs: dict[str, Trajectory] = {}
    for name in RULE_NAMES:
        ctx.progress(f"P004 Fig2: {name} ({rule_steps[name]} Euler steps)")
        prob, p0 = mf_problem(name, y, z0, w0, b)
        if name == "GD":
            runs[name] = simulate_discrete(prob, p0, Euler(lr=eta), rule_steps[name],
                                           record_every=max(rule_steps[name] // 200, 1), measures={"err": _error_norm})
        else:  # FA's slowest mode depends on the draw of B: continue (same Euler map) until stationary
            runs[name] = _euler_until_stationary(prob, p0, eta, rule_steps[name], (4 if ctx.quick else 3) * rule_steps[name])
        rule_steps[name] = runs[name].steps[-1]
    t_sim = time.perf_counter() - t0
    opt = [th.optimal_error(sig_a, r), th.optimal_error(sig_b, r)]
    fa_lim = [th.fa_error(ya, _np(b[0])), th.fa_error(yb, _np(b[1]))]
    figs = []
    for i, (tag, title) in enumerate([("a", "(a) r = 5 >= rank(Y) = 5"), ("b", "(b) r = 5 < rank(Y) = 20")]):
        figs.append(plots.error_curves(ctx.figures_dir / f"p004_fig2{tag}.png",
                                       {k: (np.asarray(v.steps), _np(v.metric("err")[:, i])) for k, v in runs.items()},
                                       optimal=opt[i], fa_limit=fa_lim[i], title=f"P004 Fig. 2{title}"))

    # Lemma 1: at convergence (stationarity residuals < 1e-10), Z W = P_{col(YB)} Y for FA and FA*. A run that has
    # not become stationary within the step budget (slow modes for an ill-conditioned V^T B) decides nothing; it is
    # listed with its residual.
    l1_rel, stat_max, t2_rel, pending = 0.0, 0.0, 0.0, []
    n_conv = 0
    for name in ("FA", "FA*"):
        z, w = factors(runs[name].final)
        stat = _np(runs[name].metric("stat")[-1]).max(-1)
        for i, yi in enumerate([ya, yb]):
            p = th.lemma1_projection(yi, _np(b[i]))
            dist = float(np.linalg.norm(_np(z[i] @ w[i]) - p) / np.linalg.norm(p))
            if stat[i] >= 1e-10:
                pending.append(f"{name} panel ({'ab'[i]}): stationarity {stat[i]:.1e}, distance {dist:.1e}")
                continue
            n_conv += 1
            stat_max, l1_rel = max(stat_max, float(stat[i])), max(l1_rel, dist)
            if i == 0:  # Theorem 2: panel (a) reaches Y exactly
                t2_rel = max(t2_rel, float(runs[name].metric("err")[-1, 0]) / float(np.linalg.norm(ya)))
    conv_a = sum(1 for nm in ("FA", "FA*") if float(runs[nm].metric("stat")[-1, 0].max()) < 1e-10)
    pending_note = ("; not stationary within the step budget (not used): " + "; ".join(pending)) if pending else ""
    l1_ok = n_conv >= 2 and l1_rel <= 1e-8
    cx = _theorem2_counterexample(rng)
    ens = _theorem2_ensemble(ctx.seed, 6)
    t2_rel = max(t2_rel, ens["max_rel_error"])
    t2_ok = conv_a + ens["converged"] >= 3 and t2_rel <= 1e-8 and cx["update_norm"] <= 1e-12 and cx["rel_error"] > 1e-3
    # Theorem 3: simulation (b) + Monte Carlo
    fa_b = float(runs["FA"].metric("err")[-1, 1])
    gd_b = float(runs["GD"].metric("err")[-1, 1])
    draws = 2000
    thr = th.mc_pass_threshold(0.99, draws)
    mc_rng = np.random.default_rng(ctx.seed + 4003)
    t3: dict[str, Any] = {}
    samples = {}
    instances = [(5, 500, 0.1), (10, 1000, 0.1)] + ([] if ctx.quick else [(1, 1000, 0.0316)])
    for (rr, tail, eps) in instances:
        ratios = th.theorem3_ratios(th.long_tail_spectrum(rr, tail, eps), rr, draws, mc_rng)
        key = f"r={rr},N={tail},eps={eps}"
        samples[f"Thm 3 FA^2/opt^2, {key}"] = ratios
        t3[key] = {"P(FA^2>=1.45 opt^2)": float(np.mean(ratios >= 1.45)), "q01": float(np.quantile(ratios, 0.01)),
                   "median": float(np.median(ratios))}
    t3_probs = [t3["r=5,N=500,eps=0.1"]["P(FA^2>=1.45 opt^2)"], t3["r=10,N=1000,eps=0.1"]["P(FA^2>=1.45 opt^2)"]]
    sim_b_ok = abs(fa_b - fa_lim[1]) <= 1e-8 * fa_lim[1] and abs(gd_b - opt[1]) <= 1e-8 * opt[1]
    t3_ok = min(t3_probs) >= thr and sim_b_ok and fa_lim[1] > opt[1]
    # Theorem 4: Monte Carlo (k - 1 = 1e4, eps = 0.1) + simulated FA/GD pairs
    k4, eps4 = 10001, 0.1
    ratio4, cos4 = th.theorem4_draws(k4, eps4, draws, mc_rng)
    bound4 = th.theorem4_ratio_bound(k4, eps4)
    p_cos = float(np.mean(cos4 <= 0.26))
    samples["Thm 4 cosine, k-1=1e4, eps=0.1"] = cos4
    ctx.progress("P004 Fig2: Theorem 4 simulation")
    sim4 = _theorem4_simulation(ctx, rng)
    t4_ok = float(np.max(ratio4)) <= bound4 and p_cos >= thr and sim4["cos_formula_max_abs_diff"] <= 1e-3 \
        and sim4["ratio_max"] <= sim4["ratio_bound"]
    figs.append(plots.histogram(ctx.figures_dir / "p004_thm34_montecarlo.png",
                                {k: v for k, v in samples.items() if "r=1," not in k},
                                {"Thm 3 FA^2/opt^2, r=5,N=500,eps=0.1": 1.45, "Thm 3 FA^2/opt^2, r=10,N=1000,eps=0.1": 1.45,
                                 "Thm 4 cosine, k-1=1e4, eps=0.1": 0.26},
                                f"P004 Theorems 3/4: Monte Carlo over B ({draws} draws)", "value"))
    exp_id = "EXP-P004-Fig2"
    claims = [
        ClaimResult("P004-L1", "confirmed" if l1_ok else "refuted",
                    "[RECON] At FA/FA* stationary points (7) with Gaussian B, Z W = P_{col(YB)} Y = "
                    "YB (B^T Y^T Y B)^+ B^T Y^T Y (Lemma 1).",
                    {"max_rel_dist_ZW_to_PY": l1_rel, "max_stationarity_residual": stat_max,
                     "converged_runs": f"{n_conv}/4"},
                    "0", {"rel": 1e-8, "stationarity": 1e-10}, "euler", exp_id,
                    f"FA and FA* Euler (eta = {eta}, {rule_steps['FA']}/{rule_steps['FA*']} steps, run until stationary), "
                    "panels (a) and "
                    "(b); Euler fixed points are the "
                    f"flow's stationary points, so Lemma 1 applies exactly{pending_note}."),
        ClaimResult("P004-T2", "confirmed" if t2_ok else "refuted",
                    "[RECON] With Gaussian B and r >= rank(Y), FA/FA* stationary points satisfy Z W = Y (Theorem 2).",
                    {"max_rel_error_converged": t2_rel, "converged_runs_panel_a": f"{conv_a}/2",
                     "converged_runs_extra_draws": f"{ens['converged']}/{ens['members']}",
                     "counterexample_update_norm": cx["update_norm"],
                     "counterexample_rel_error": cx["rel_error"]},
                    "0 (random B); > 0 for B orthogonal to row(Y)", 1e-8, "euler", exp_id,
                    f"FA/FA* of panel (a) plus FA* on {ens['members']} further draws (30x30, rank 3 = r); only runs "
                    "with stationarity residuals < 1e-10 count. "
                    "Counter-example (rank(Y) = r = 1, B orthogonal to the row space of Y): the engine's FA update "
                    "vanishes exactly at Z random, W = Z^+ Y, with ||Y - ZW|| / ||Y|| = "
                    f"{_fmt(cx['rel_error'])} - randomness of B is needed."),
        ClaimResult("P004-T3", "confirmed" if t3_ok else "refuted",
                    "[RECON: constants lost] For r < rank(Y) with a long-tail spectrum, FA's error exceeds the optimum "
                    "w.p. >= 0.99 over B, while GD reaches sqrt(sum_{i>r} sigma_i^2) (Theorem 3).",
                    {"P(FA^2>=1.45opt^2) r=5,N=500": t3_probs[0], "P(FA^2>=1.45opt^2) r=10,N=1000": t3_probs[1],
                     "fig2b_FA_error": fa_b, "fig2b_lemma1_error": fa_lim[1], "fig2b_GD_error": gd_b,
                     "fig2b_optimal": opt[1]},
                    f">= 0.99 (pass >= {thr:.4f}); FA plateau = Lemma 1 value > GD = optimum",
                    {"mc_pass": thr, "sim_rel": 1e-8}, "monte-carlo", exp_id,
                    f"Monte Carlo with {draws} draws of G = V^T B via the exact FA-error formula"
                    + ("" if ctx.quick else "; instance r=1, N=1000, eps=0.0316 (no pass rule): P = "
                       f"{_fmt(t3['r=1,N=1000,eps=0.0316']['P(FA^2>=1.45 opt^2)'])}") + "."),
        ClaimResult("P004-T4", "confirmed" if t4_ok else "refuted",
                    "[RECON] r = 1, sigma_1 = 1, sigma_2..k = eps: w.p. >= 0.99 FA error <= sqrt(1 + 1/((k-1)eps^2)) "
                    "x GD error while |cos(Z_FA, Z_GD)| = O(1/(eps sqrt k)) (Theorem 4).",
                    {"P(cos<=0.26)": p_cos, "ratio_max_minus_1": float(np.max(ratio4)) - 1.0,
                     "bound_minus_1": bound4 - 1.0, "cos_median": float(np.median(cos4)),
                     "ratio_max": float(np.max(ratio4)), "ratio_q99": float(np.quantile(ratio4, 0.99)),
                     "sim_cos_mean": sim4["cos_mean"], "sim_cos_vs_formula_max_abs_diff": sim4["cos_formula_max_abs_diff"]},
                    {"ratio_bound": bound4, "P(cos<=0.26)": f">= {thr:.4f}"}, {"mc_pass": thr}, "monte-carlo", exp_id,
                    f"Monte Carlo k - 1 = 1e4, eps = 0.1, {draws} draws; simulation: {sim4['members']} engine FA/GD "
                    f"pairs with k = n = m = {sim4['k']}, eps = k^(-1/4), cosine between the two runs' Z."),
    ]
    t_total = time.perf_counter() - t0
    md = "\n".join([
        "Matrix factorisation = the engine's 2-layer linear network on X = I_n (W1 = Z^T, W2 = W^T, B2 = B), "
        f"loss 0.5||Y - ZW||_F^2 (sum). n = m = {n}, r = 5, init std {sigma0}, B ~ N(0, 1), Euler eta = {eta}, "
        f"{rule_steps} steps (W re-solved each FA* step).",
        "",
        "| panel | GD error | FA error | FA* error | optimum | Lemma 1 FA error |",
        "|---|---|---|---|---|---|",
        *[f"| ({tag}) | {_fmt(float(runs['GD'].metric('err')[-1, i]))} | {_fmt(float(runs['FA'].metric('err')[-1, i]))} "
          f"| {_fmt(float(runs['FA*'].metric('err')[-1, i]))} | {_fmt(opt[i])} | {_fmt(fa_lim[i])} |"
          for i, tag in enumerate("ab")],
        "",
        "Theorem 3 Monte Carlo (FA^2/opt^2, 2000 draws of B): "
        + "; ".join(f"{k}: P(>=1.45) = {v['P(FA^2>=1.45 opt^2)']:.4f}, 1%-quantile {v['q01']:.3f}, median "
                    f"{v['median']:.3f}" for k, v in t3.items()) + ".",
        f"Theorem 4 Monte Carlo (k-1 = 1e4, eps = 0.1): error ratio max {np.max(ratio4):.5f} (bound {bound4:.5f}), "
        f"cosine median {np.median(cos4):.3f}, 99%-quantile {np.quantile(cos4, 0.99):.3f}, P(cos <= 0.26) = {p_cos:.4f}.",
        f"Theorem 4 simulation ({sim4['members']} B draws, k = n = m = {sim4['k']}, eps = {sim4['eps']:.3f}): "
        f"cos(Z_FA, Z_GD) mean {sim4['cos_mean']:.3f} (formula |g1|/sqrt(sum sigma^2 g^2) to "
        f"{sim4['cos_formula_max_abs_diff']:.1e}), FA/GD error ratio max {sim4['ratio_max']:.4f} "
        f"(bound {sim4['ratio_bound']:.4f}).",
    ])
    return ExperimentOutput(claims=claims, figures=figs, markdown=md,
                            numbers={"seconds_total": t_total, "seconds_simulation": t_sim, "steps": rule_steps, "n": n,
                                     "theorem3": t3, "theorem4_sim": sim4})


def _euler_until_stationary(prob: Problem, p0: dict[str, Tensor], eta: float, steps: int, max_steps: int,
                            tol: float = 1e-11) -> Trajectory:
    """Euler for ``steps`` steps, then in further blocks of ``steps`` until the FA stationarity residuals
    ``||E B||, ||Z^T E||`` of every member are below ``tol`` or ``max_steps`` is reached (one joined trajectory)."""
    meas = {"err": _error_norm, "stat": ins.m_stationarity}
    every = max(steps // 200, 1)
    traj = simulate_discrete(prob, p0, Euler(lr=eta), steps, record_every=every, measures=meas)
    while traj.status == "ok" and float(traj.metric("stat")[-1].max()) > tol and traj.steps[-1] < max_steps:
        more = simulate_discrete(prob, traj.final, Euler(lr=eta), steps, record_every=every, measures=meas)
        offset = traj.steps[-1]
        for i in range(1, len(more.steps)):
            traj.steps.append(offset + more.steps[i])
            traj.times.append(eta * traj.steps[-1])
            traj.params.append(more.params[i])
            for k in meas:
                traj.metrics[k].append(more.metrics[k][i])
        traj.status = more.status
    return traj


def _theorem2_ensemble(seed: int, members: int) -> dict[str, Any]:
    """FA* (Euler) on ``members`` independent draws with r = rank(Y) = 3: relative error of the stationary runs."""
    rng = np.random.default_rng([seed, 4004])
    n, r = 30, 3
    y = torch.tensor(np.stack([th.spectral_target(rng, n, n, np.array([2.0, 1.5, 1.0]))[0] for _ in range(members)]))
    b = torch.tensor(rng.standard_normal((members, n, r)))
    z0 = torch.tensor(0.1 * rng.standard_normal((members, n, r)))
    prob, p0 = mf_problem("FA*", y, z0, torch.zeros(members, r, n, dtype=torch.float64), b)
    final = simulate_discrete(prob, p0, Euler(lr=2e-2), 1500, record_steps=[1500], measures={"stat": ins.m_stationarity})
    stat = _np(final.metric("stat")[-1]).max(-1)
    z, w = factors(final.final)
    rel = _np(torch.linalg.matrix_norm(y - z @ w) / torch.linalg.matrix_norm(y))
    ok = stat < 1e-10
    return {"members": members, "converged": int(ok.sum()),
            "max_rel_error": float(rel[ok].max()) if ok.any() else 0.0}


def _theorem2_counterexample(rng: np.random.Generator) -> dict[str, float]:
    """rank(Y) = r = 1, B orthogonal to the row space of Y: every (Z, Z^+ Y) is FA-stationary, Z W = P_Z Y != Y."""
    n, m = 20, 15
    u, v = th.orthonormal_columns(rng, n, 1), th.orthonormal_columns(rng, m, 1)
    y = u @ v.T
    bb = rng.standard_normal((m, 1))
    bb -= v @ (v.T @ bb)                                   # B orthogonal to row(Y) = span(v)
    z = rng.standard_normal((n, 1))
    prob, p0 = mf_problem("FA", torch.tensor(y), torch.tensor(z), torch.tensor(th.slaved_w(z, y)), torch.tensor(bb))
    upd = prob.update(p0)
    zz, ww = factors(p0)
    return {"update_norm": float(max(torch.linalg.matrix_norm(u_) for u_ in upd.values())),
            "rel_error": float(torch.linalg.matrix_norm(prob.y - zz @ ww) / np.linalg.norm(y))}


def _theorem4_simulation(ctx: RunContext, rng: np.random.Generator) -> dict[str, Any]:
    """FA and GD runs (engine, Euler, one ensemble of B draws) on sigma = (1, eps, ..., eps); compares the cosine
    between the two runs' representations with the closed form of Theorem 4."""
    k = 40 if ctx.quick else 100
    members = 4 if ctx.quick else 12
    eps = k ** -0.25
    sigma = np.concatenate([[1.0], np.full(k - 1, eps)])
    y_np, _, v = th.spectral_target(rng, k, k, sigma)
    y = torch.tensor(y_np)
    b = torch.tensor(rng.standard_normal((members, k, 1)))
    z0 = torch.tensor(0.01 * rng.standard_normal((members, k, 1)))
    w0 = torch.tensor(0.01 * rng.standard_normal((members, 1, k)))
    steps = 1000 if ctx.quick else 3000
    finals = {}
    for name in ("GD", "FA"):
        prob, p0 = mf_problem(name, y, z0, w0, b)
        finals[name] = simulate_discrete(prob, p0, Euler(lr=0.05), steps, record_steps=[0, steps]).final
    z_fa, w_fa = factors(finals["FA"])
    z_gd, w_gd = factors(finals["GD"])
    cos = _np(ins.representation_cosine(z_fa, z_gd))
    g = np.einsum("mk,jmr->jkr", v, _np(b))[..., 0]       # G = V^T B per member
    cos_formula = np.abs(sigma[0] * g[:, 0]) / np.sqrt((sigma**2 * g**2).sum(-1))
    err_fa = _np(torch.linalg.matrix_norm(y - z_fa @ w_fa))
    err_gd = _np(torch.linalg.matrix_norm(y - z_gd @ w_gd))
    return {"k": k, "eps": eps, "members": members, "cos_mean": float(cos.mean()),
            "cos_formula_max_abs_diff": float(np.max(np.abs(cos - cos_formula))),
            "ratio_max": float(np.max(err_fa / err_gd)), "ratio_bound": th.theorem4_ratio_bound(k, eps),
            "gd_error_vs_optimal": float(np.max(np.abs(err_gd - th.optimal_error(sigma, 1))))}


# ---------------------------------------------------------------------------------------------------------------------
# EXP-P004-Fig3a: Example 1 (closed form) and the FA counter-example
# ---------------------------------------------------------------------------------------------------------------------

def _fig3a(ctx: RunContext) -> ExperimentOutput:
    t0 = time.perf_counter()
    rng = np.random.default_rng(ctx.seed + 4031)
    n, b_val, t_end = 100, 1.0, 3.0
    y_np = th.orthonormal_columns(rng, n, 1)                   # random unit vector
    z0 = 0.1 * rng.standard_normal((n, 1))
    if float(z0[:, 0] @ y_np[:, 0]) > 0:                       # choose the sign so that A(0) = w(0) b < 0
        z0 = -z0
    y, b = torch.tensor(y_np), torch.tensor([[b_val]])
    prob, p0 = mf_problem("FA*", y, torch.tensor(z0), torch.tensor(th.slaved_w(z0, y_np)), b)
    ts = np.linspace(0.0, t_end, 61)
    traj = simulate_flow(prob, p0, ts, measures={"loss": _loss, "alignment": ins.m_alignment})
    z_t = traj.param("W1")[:, 0, :]                            # (T, n): z(t)^T
    rho = float(np.linalg.norm(z0))
    u_sim = _np(z_t @ y[:, 0]) / rho
    cf = th.example1(ts, 1.0, rho, b_val, float(z0[:, 0] @ y_np[:, 0]) / rho)
    u_err = float(np.max(np.abs(u_sim - cf["u"])))
    loss_sim = _np(traj.metric("loss"))
    align_sim = _np(traj.metric("alignment"))[:, 0, 0]
    loss_err = float(np.max(np.abs(loss_sim - cf["loss"])))
    align_err = float(np.max(np.abs(align_sim - cf["alignment"])))
    rises_then_falls = bool(loss_sim.max() > loss_sim[0] and loss_sim[-1] < 0.05 * loss_sim[0])
    imax = int(np.argmax(loss_sim))
    unimodal = bool(np.all(np.diff(loss_sim[: imax + 1]) >= -1e-12) and np.all(np.diff(loss_sim[imax:]) <= 1e-12))
    align_monotone = bool(np.all(np.diff(align_sim) >= -1e-12))
    # FA counter-example: z(0)^T y = 0 and w(0) b > 0 => d(w b)/dt = -||z(0)||^2 w(0) b < 0 (engine FA update)
    zc = rng.standard_normal((n, 1))
    zc -= y_np * float(y_np[:, 0] @ zc[:, 0])
    wc = np.array([[0.7]])
    prob_fa, pc = mf_problem("FA", y, torch.tensor(zc), torch.tensor(wc), b)
    dw = -float(prob_fa.update(pc)["W2"][0, 0])               # dW/dt = -update (W2 = W^T, 1x1)
    dA = dw * b_val
    dA_pred = -float(zc[:, 0] @ zc[:, 0]) * wc[0, 0] * b_val
    cx_ok = dA < 0 and abs(dA - dA_pred) <= 1e-12 * abs(dA_pred)
    t_cf = np.linspace(0.0, t_end, 400)
    cf_dense = th.example1(t_cf, 1.0, rho, b_val, float(z0[:, 0] @ y_np[:, 0]) / rho)
    fig = plots.toy_example(ctx.figures_dir / "p004_fig3a.png", ts, loss_sim, align_sim, t_cf, cf_dense["loss"],
                            cf_dense["alignment"])
    ok = max(u_err, loss_err, align_err) <= 1e-8 and rises_then_falls and unimodal and align_monotone and cx_ok
    claim = ClaimResult(
        "P004-Ex1", "confirmed" if ok else "refuted",
        "[RECON] Example 1 (m = r = 1, FA*): u = z^T y/rho follows u(t) = ||y|| tanh(b||y||t/rho + atanh(u0/||y||)); "
        "with A(0) < 0 the loss first rises, then falls to 0 while A = w b increases; under FA the alignment can "
        "decrease (d(wb)/dt = -||z||^2 w b when z^T y = 0).",
        {"max_abs_err_u": u_err, "max_abs_err_loss": loss_err, "max_abs_err_alignment": align_err,
         "loss_rises_then_falls": rises_then_falls and unimodal, "alignment_nondecreasing": align_monotone,
         "FA_dA_dt": dA, "FA_dA_dt_predicted": dA_pred},
        "closed form; FA d(wb)/dt < 0", {"abs": 1e-8, "FA_rel": 1e-12}, "flow", "EXP-P004-Fig3a",
        f"n = 100, y random unit vector, z(0) ~ N(0, 0.1^2) (rho = {rho:.3f}), b = 1, A(0) = {align_sim[0]:.3f}; "
        "engine FA* flow (DOP853, rtol 1e-10).")
    md = (f"Example 1: engine FA* flow vs closed form over t in [0, {t_end}]: max |u - u_cf| = {u_err:.1e}, "
          f"max |loss - loss_cf| = {loss_err:.1e}; loss rises from {loss_sim[0]:.3f} to {loss_sim.max():.3f} "
          f"(t = {ts[imax]:.2f}) and falls to {loss_sim[-1]:.2e}. FA counter-example: d(wb)/dt = {dA:.4f} "
          f"(predicted -||z||^2 w b = {dA_pred:.4f}).")
    return ExperimentOutput(claims=[claim], figures=[fig], markdown=md,
                            numbers={"seconds_total": time.perf_counter() - t0, "nfev": traj.info.get("nfev")})


# ---------------------------------------------------------------------------------------------------------------------
# The Fig. 3b / 4 / 5 setting: Y = U V^T (iid Gaussian), Z(0) orthonormal columns, W(0) = Z(0)^T Y, B ~ N(0, 1)
# ---------------------------------------------------------------------------------------------------------------------

def _draw(seed: int, j: int) -> dict[str, np.ndarray]:
    """Draw j of the Fig. 3b setting: Y = U V^T (50x6, 40x6 iid N(0,1)), Z(0) orthonormal (50x5), B ~ N(0,1) (40x5),
    a random W(0) ~ N(0, 0.1^2) for the appendix run, and 40 unit vectors v for Fig. 4a."""
    rng = np.random.default_rng([seed, 4050, j])
    n, m, k, r = 50, 40, 6, 5
    y = rng.standard_normal((n, k)) @ rng.standard_normal((k, m))
    z0 = th.orthonormal_columns(rng, n, r)
    b = rng.standard_normal((m, r))
    w_rand = 0.1 * rng.standard_normal((r, m))
    v = rng.standard_normal((40, r))
    return {"y": y, "z0": z0, "w0": z0.T @ y, "b": b, "w_rand": w_rand, "v": v / np.linalg.norm(v, axis=1, keepdims=True)}


@functools.lru_cache(maxsize=4)
def _setting(seed: int) -> dict[str, Tensor]:
    return {k: torch.tensor(v) for k, v in _draw(seed, 0).items()}


def _setting_batch(seed: int, members: int) -> dict[str, Tensor]:
    """``members`` independent draws stacked along a leading ensemble dimension (draw 0 = :func:`_setting`)."""
    draws = [_draw(seed, j) for j in range(members)]
    return {k: torch.tensor(np.stack([d[k] for d in draws])) for k in draws[0]}


def _horizon(quick: bool) -> tuple[float, int]:
    # the time scale of Figs. 3b-5 was lost; with B ~ N(0, 1) the FA* flow has converged (||R|| ~ 1e-12) by t ~ 3
    return (2.0, 201) if quick else (5.0, 1001)


@functools.lru_cache(maxsize=4)
def _fa_star_flow(seed: int, quick: bool) -> tuple[Trajectory, float]:
    s = _setting(seed)
    t_end, npts = _horizon(quick)
    prob, p0 = mf_problem("FA*", s["y"], s["z0"], s["w0"], s["b"])
    v = s["v"]
    measures = {"loss": _loss, "surrogate": ins.m_surrogate, "lam_min": ins.m_lam_min, "zyb": ins.m_zyb,
                "gram": ins.m_gram, "residual_norm": ins.m_residual_norm, "stationarity": ins.m_stationarity,
                "lemma5": ins.m_lemma5, "lemma4": ins.m_lemma4, "loss_rate": ins.m_loss_rate,
                "quad": lambda snap: ins.quadratic_forms(ins.m_alignment(snap), v)}
    t0 = time.perf_counter()
    # ||R||^2 decays at rates ~ ||B||^2 at the start: a graded grid keeps the quadrature of Theorem 1 accurate
    ts = np.unique(np.concatenate([np.linspace(0.0, 0.05, npts // 2), np.linspace(0.05, 0.5, npts // 2),
                                   np.linspace(0.5, t_end, npts)]))
    traj = simulate_flow(prob, p0, ts, measures=measures)
    return traj, time.perf_counter() - t0


@functools.lru_cache(maxsize=4)
def _fa_star_euler(seed: int, quick: bool) -> tuple[_FAStarStepMonitor, Trajectory]:
    s = _setting(seed)
    eta = 1e-2
    steps = 300 if quick else 2000
    prob, p0 = mf_problem("FA*", s["y"], s["z0"], s["w0"], s["b"])
    mon = _FAStarStepMonitor(s["y"], s["b"], eta)
    traj = simulate_discrete(prob, p0, Euler(lr=eta), steps, record_every=max(steps // 100, 1),
                             measures={"loss": _loss}, on_step=mon)
    return mon, traj


@functools.lru_cache(maxsize=4)
def _other_draws(seed: int, members: int, t_end: float) -> tuple[list[int], list[float]]:
    """FA* flow on ``members`` further draws of the Fig. 3b setting (one ensemble flow): sign changes of dL/dt (how
    typical the non-monotone loss is) and the final lam_min(A) (Fig. 4b: 'may stay negative')."""
    rng = np.random.default_rng(seed + 4060)
    n, m, k, r = 50, 40, 6, 5
    y = np.stack([rng.standard_normal((n, k)) @ rng.standard_normal((k, m)) for _ in range(members)])
    z0 = np.stack([th.orthonormal_columns(rng, n, r) for _ in range(members)])
    b = rng.standard_normal((members, m, r))
    prob, p0 = mf_problem("FA*", torch.tensor(y), torch.tensor(z0), torch.tensor(np.swapaxes(z0, 1, 2) @ y),
                          torch.tensor(b))
    traj = simulate_flow(prob, p0, np.linspace(0.0, t_end, 1001),
                         measures={"rate": ins.m_loss_rate, "lam_min": ins.m_lam_min}, keep_params=False)
    dl = _np(traj.metric("rate"))
    counts = [_sign_changes(dl[:, j], 1e-9 * np.max(np.abs(dl[:, j]))) for j in range(members)]
    return counts, [float(x) for x in _np(traj.metric("lam_min"))[-1]]


def _fig3b(ctx: RunContext) -> ExperimentOutput:
    t0 = time.perf_counter()
    ctx.progress("P004 Fig3b: FA* flow")
    traj, t_flow = _fa_star_flow(ctx.seed, ctx.quick)
    s = _setting(ctx.seed)
    ctx.progress("P004 Fig3b: FA* Euler identities")
    mon, _ = _fa_star_euler(ctx.seed, ctx.quick)
    t = np.asarray(traj.times)
    loss = _np(traj.metric("loss"))
    gram = traj.metric("gram")
    gram_drift = float((torch.linalg.matrix_norm(gram - gram[0]) / torch.linalg.matrix_norm(gram[0])).max())
    # Lemma 4: chain-rule derivative vs -tr(R A R^T); also central differences of the recorded surrogate
    l4 = _np(traj.metric("lemma4"))
    l4_scale = np.max(np.abs(l4[:, 1]))
    l4_err = float(np.max(np.abs(l4[:, 0] - l4[:, 1])) / l4_scale)
    l4_fd_err = float(np.max(np.abs(l4[:, 2] - l4[:, 1])) / l4_scale)
    sur = _np(traj.metric("surrogate"))
    # Theorem 1 (derived form): min_{s<=T} ||R||^2 <= 2||Z0|| ||YB|| / T and int ||R||^2 = tr(Z^T Y B)|_0^T
    rn2 = _np(traj.metric("residual_norm")) ** 2
    running_min = np.minimum.accumulate(rn2)
    bound = th.theorem1_bound(_np(s["z0"]), _np(s["y"]), _np(s["b"]), t[1:])
    t1_margin = float(np.min(bound - running_min[1:]))
    integral = float(simpson(rn2, x=t))
    quad_err = abs(integral - float(np.sum(0.5 * (rn2[1:] + rn2[:-1]) * np.diff(t))))  # Simpson vs trapezoid
    zyb = _np(traj.metric("zyb"))
    tr_gain = float(np.trace(zyb[-1]) - np.trace(zyb[0]))
    int_rel = abs(integral - tr_gain) / tr_gain
    int_bound = th.alignment_integral_bound(_np(s["z0"]), _np(s["y"]), _np(s["b"]))
    r_ratio = float(np.sqrt(rn2[-1] / rn2[0]))
    stat_final = _np(traj.metric("stationarity"))[-1]
    # non-monotone loss (Fig. 3b): sign changes of dL/dt along the flow
    dl = _np(traj.metric("loss_rate"))
    n_switch = _sign_changes(dl, 1e-9 * np.max(np.abs(dl)))
    counts = [] if ctx.quick else _other_draws(ctx.seed, 8, float(t[-1]))[0]
    nm_text = (f"dL/dt changed sign {n_switch} times on this draw" + (
        f"; over {len(counts)} further draws: {counts} (non-monotone in {sum(c > 0 for c in counts)}/{len(counts)}; "
        "the paper's 'switching many times' is not reproduced at the proposed parameters)" if counts else ""))
    figs = [plots.loss_and_rate(ctx.figures_dir / "p004_fig3b.png", t, loss, sur,
                                f"P004 Fig. 3b: FA* loss (n=50, m=40, k=6, r=5); dL/dt changes sign {n_switch}x")]
    f3_ok = gram_drift <= 1e-9 and mon.gram_rel <= 1e-12
    l4_ok = l4_err <= 1e-8 and l4_fd_err <= 1e-6
    t1_ok = t1_margin >= -1e-6 and int_rel <= 1e-4 and tr_gain <= int_bound and r_ratio < 1e-3
    int_rel_trap = quad_err / tr_gain
    claims = [
        ClaimResult("P004-F3", "confirmed" if f3_ok else "refuted",
                    "[RECON] FA* keeps Z^T Z constant (Fact 3); Euler: Z_{k+1}^T Z_{k+1} = Z_k^T Z_k + eta^2 R_k^T R_k.",
                    {"flow_max_rel_drift": gram_drift, "euler_max_rel_violation": mon.gram_rel,
                     "euler_violation_rel_to_increment": mon.gram_rel_inc},
                    "0", {"flow": 1e-9, "euler": 1e-12}, "flow", "EXP-P004-Fig3b",
                    "Euler violation relative to ||Z_k^T Z_k||_F (cancellation-free form, eta = 1e-2); relative to the "
                    "largest increment ||eta^2 R^T R||: see euler_violation_rel_to_increment."),
        ClaimResult("P004-L4", "confirmed" if l4_ok else "refuted",
                    "[RECON] FA*: d/dt 0.5||R||_F^2 = -tr(R (W B) R^T) for any full-column-rank Z (Lemma 4 / eq. 5).",
                    {"chain_rule_max_rel_err": l4_err, "finite_difference_max_rel_err": l4_fd_err},
                    "0", {"chain_rule": 1e-8, "finite_difference": 1e-6}, "flow", "EXP-P004-Fig3b",
                    "Errors relative to max_t |tr(R A R^T)|. Measured by the chain rule (engine dZ/dt, slaved dW/dt) "
                    "and by central differences along the engine's vector field (W re-solved by FAStar.constrain)."),
        ClaimResult("P004-T1", "confirmed" if t1_ok else "refuted",
                    "[RECON; derived bound, the paper's constants were lost] FA* converges to a stationary point: "
                    "||R|| -> 0 and min_{s<=T} ||R(s)||_F^2 <= 2 ||Z(0)||_F ||YB||_F / T (Theorem 1).",
                    {"min_bound_margin": t1_margin, "int_R2_vs_trace_gain_rel": int_rel,
                     "quadrature_error_estimate_rel": int_rel_trap, "trace_gain": tr_gain,
                     "trace_gain_bound": int_bound, "R(T)/R(0)": r_ratio, "final_stationarity": stat_final.tolist(),
                     "loss_rate_sign_changes": n_switch, "sign_changes_other_draws": counts},
                    {"margin": ">= 0", "R(T)/R(0)": "< 1e-3"}, {"margin": 1e-6, "integral_rel": 1e-4}, "flow",
                    "EXP-P004-Fig3b",
                    f"FA* flow DOP853 over t in [0, {t[-1]:.0f}]; integral by Simpson's rule on {len(t)} graded points; "
                    f"{nm_text}."),
    ]
    md = (f"Setting of Figs. 3b/4/5: Y = U V^T (U 50x6, V 40x6 iid N(0,1)), r = 5, Z(0) orthonormal columns, "
          f"W(0) = Z(0)^T Y, B ~ N(0,1); engine FA* flow (DOP853, rtol 1e-10) to t = {t[-1]:.0f} "
          f"({t_flow:.1f} s). Z^T Z drift {gram_drift:.1e}; Euler (eta = 1e-2) Fact 3 violation {mon.gram_rel:.1e}. "
          f"Lemma 4 chain-rule error {l4_err:.1e} (finite differences {l4_fd_err:.1e}). Loss {loss[0]:.3g} -> "
          f"{loss[-1]:.3g}; {nm_text}; ||R(T)||/||R(0)|| = {r_ratio:.1e}; "
          f"int ||R||^2 dt = {integral:.4g} vs tr(Z^T Y B) gain {tr_gain:.4g} (bound {int_bound:.4g}).")
    return ExperimentOutput(claims=claims, figures=figs, markdown=md,
                            numbers={"seconds_total": time.perf_counter() - t0, "seconds_flow": t_flow,
                                     "nfev": traj.info.get("nfev")})


def _fig4(ctx: RunContext) -> ExperimentOutput:
    t0 = time.perf_counter()
    traj, _ = _fa_star_flow(ctx.seed, ctx.quick)
    mon, _ = _fa_star_euler(ctx.seed, ctx.quick)
    t = np.asarray(traj.times)
    quad = _np(traj.metric("quad"))
    lmin = _np(traj.metric("lam_min"))
    scale = float(np.max(np.abs(quad)))
    quad_min_inc = float(np.min(np.diff(quad, axis=0)))
    lmin_min_inc = float(np.min(np.diff(lmin)))
    l5 = _np(traj.metric("lemma5"))
    l5_flow = float(np.max(l5[:, 0]) / np.max(l5[:, 1]))
    lmin_other = [] if ctx.quick else _other_draws(ctx.seed, 8, float(t[-1]))[1]
    fig = plots.alignment_panels(ctx.figures_dir / "p004_fig4.png", t, quad, lmin)
    ok = l5_flow <= 1e-9 and mon.align_rel <= 1e-12 and quad_min_inc >= -1e-9 * scale and lmin_min_inc >= -1e-9 * scale
    claim = ClaimResult(
        "P004-L5", "confirmed" if ok else "refuted",
        "[RECON] FA*: d/dt (Z^T Y B) = R^T R (PSD), so with Z^T Z = I every v^T A v and lam_min(A) are "
        "non-decreasing (Lemma 5 / eq. 6); Euler: Z_{k+1}^T Y B - Z_k^T Y B = eta R_k^T R_k exactly.",
        {"flow_max_rel_violation": l5_flow, "euler_max_rel_violation": mon.align_rel,
         "min_increment_vTAv": quad_min_inc, "min_increment_lam_min": lmin_min_inc,
         "lam_min_start": float(lmin[0]), "lam_min_end": float(lmin[-1]), "lam_min_end_other_draws": lmin_other},
        "0; increments >= 0", {"flow": 1e-9, "euler": 1e-12, "increments": f">= -1e-9 x {scale:.3g}"}, "flow",
        "EXP-P004-Fig4",
        f"{quad.shape[1]} random unit v; lam_min of the symmetric part of A = W B "
        f"({'stays negative' if lmin[-1] < 0 else 'ends positive'}: {lmin[0]:.3g} -> {lmin[-1]:.3g})"
        + (f"; final lam_min on {len(lmin_other)} further draws: {', '.join(f'{x:.3g}' for x in lmin_other)} "
           f"({sum(x < 0 for x in lmin_other)} negative)" if lmin_other else "") + ".")
    md = (f"Lemma 5 along the FA* flow: max_t ||d(Z^T Y B)/dt - R^T R|| / max_t ||R^T R|| = {l5_flow:.1e}; Euler identity "
          f"{mon.align_rel:.1e}. Smallest increment of v^T A v over {quad.shape[1]} random v: {quad_min_inc:.2e}; "
          f"lam_min(A): {lmin[0]:.3g} -> {lmin[-1]:.3g}.")
    return ExperimentOutput(claims=[claim], figures=[fig], markdown=md,
                            numbers={"seconds_total": time.perf_counter() - t0})


# ---------------------------------------------------------------------------------------------------------------------
# EXP-P004-Fig5 (FA with optimal W(0) vs FA*) and EXP-P004-FigF (FA with random W(0); Baldi; Cor. 5)
# ---------------------------------------------------------------------------------------------------------------------

def _fig5_eta(quick: bool) -> float:
    return 5e-3 if quick else 2e-3


def _fig5_members(quick: bool) -> int:
    return 4 if quick else 8


@functools.lru_cache(maxsize=4)
def _fig5_runs(seed: int, quick: bool) -> dict[str, Trajectory]:
    """Euler runs of FA* and three FA variants on an ensemble of independent draws (member 0 = the Fig. 3b draw)."""
    s = _setting_batch(seed, _fig5_members(quick))
    eta = _fig5_eta(quick)
    t_end = 2.0 if quick else _horizon(quick)[0]
    steps = int(round(t_end / eta))
    every = max(steps // 200, 1)
    out: dict[str, Trajectory] = {}
    meas = {"loss": _loss, "extra": ins.m_lemma5}
    for key, rule, lr, w0 in (("FA*", "FA*", eta, s["w0"]),
                              ("FA, W(0) optimal, eta_W = eta_Z", "FA", eta, s["w0"]),
                              ("FA, W(0) optimal, eta_W = 10 eta_Z", "FA", {"W1": eta, "W2": 10 * eta}, s["w0"]),
                              ("FA, W(0) random", "FA", eta, s["w_rand"])):
        prob, p0 = mf_problem(rule, s["y"], s["z0"], w0, s["b"])
        out[key] = simulate_discrete(prob, p0, Euler(lr=lr), steps, record_every=every,
                                     measures=meas if rule == "FA" else {"loss": _loss}, time_unit=eta)
    return out


def _curve_distance(a: Trajectory, b: Trajectory) -> np.ndarray:
    """Per member: mean |log10 L_a - log10 L_b| over the common record times (loss curves on a log scale)."""
    la, lb = _np(a.metric("loss")), _np(b.metric("loss"))
    floor = 1e-30
    return np.mean(np.abs(np.log10(la + floor) - np.log10(lb + floor)), axis=0)


def _fig5(ctx: RunContext) -> ExperimentOutput:
    t0 = time.perf_counter()
    ctx.progress("P004 Fig5: FA vs FA* (Euler)")
    runs = _fig5_runs(ctx.seed, ctx.quick)
    ref = runs["FA*"]
    names = [k for k in runs if k != "FA*"]
    dist = {k: _curve_distance(runs[k], ref) for k in names}                         # (members,) each
    extra = {k: _np(runs[k].metric("extra"))[:, :, 0].sum(0) / _np(runs[k].metric("extra"))[:, :, 1].sum(0)
             for k in names}
    d_eq, d_big, d_rand = (dist[names[0]], dist[names[1]], dist[names[2]])
    members = d_eq.size
    frac_big = float(np.mean((d_big < d_eq) & (extra[names[1]] < extra[names[0]])))  # larger W step tracks FA* better
    frac_eq = float(np.mean(d_eq < d_rand))                                           # optimal W(0) beats random W(0)
    fig = plots.loss_curves(ctx.figures_dir / "p004_fig5.png",
                            {k: (np.asarray(v.times), _np(v.metric("loss"))[:, 0]) for k, v in runs.items()},
                            "P004 Fig. 5: FA (optimal / random W(0)) vs FA*, draw 0", styles=["k-", "-", "--", ":"])
    if frac_big == 1.0 and frac_eq == 1.0:
        verdict, why = "confirmed", "On every draw FA with optimal W(0) is closer to FA* than FA from random W(0), " \
            "and closer still with the 10x W step."
    elif frac_big == 1.0:
        verdict, why = "qualified", (
            f"The larger W step brings FA closer to FA* on every draw, but with equal steps FA from the optimal W(0) "
            f"is closer to FA* than FA from a random W(0) on only {frac_eq:.0%} of the draws: W leaves its optimum at "
            "once (the loss first rises) because with B ~ N(0, 1) Z moves at rate ~||B|| >> the rate "
            "~sigma(Z)^2 = 1 at which W relaxes.")
    else:
        verdict, why = "refuted", f"The larger W step tracks FA* better on only {frac_big:.0%} of the draws."
    claim = ClaimResult(
        "P004-FAimpl", verdict,
        "[RECON+PAPER obs.] Under FA d/dt(Z^T Y B) = R^T R + B^T E^T Z W B; with W(0) optimal the extra term stays "
        "small and FA's loss curve is close to FA*'s, closer with a larger step for W (Fig. 5).",
        {"frac_draws_10x_closer_than_equal": frac_big, "frac_draws_equal_closer_than_randomW0": frac_eq,
         "median_curve_dist_equal_steps": float(np.median(d_eq)), "median_curve_dist_10x_W_step": float(np.median(d_big)),
         "median_curve_dist_random_W0": float(np.median(d_rand)),
         "median_rel_extra_term_equal": float(np.median(extra[names[0]])),
         "median_rel_extra_term_10x": float(np.median(extra[names[1]]))},
        "both fractions = 1", "all draws", "euler", "EXP-P004-Fig5",
        f"{members} independent draws (ensemble). Curve distance = mean |log10 L_FA - log10 L_FA*| over the run "
        f"(Euler eta_Z = {_fig5_eta(ctx.quick)}); extra term = int ||B^T E^T Z W B|| dt / int ||R^T R|| dt. " + why)
    md = (f"FA vs FA* ({members} draws of the Fig. 3b setting, same Z(0), B per draw; Euler eta_Z = "
          f"{_fig5_eta(ctx.quick)}): median mean-|log10 L_FA - log10 L_FA*| = "
          + ", ".join(f"{k}: {np.median(v):.3g}" for k, v in dist.items())
          + "; median relative size of FA's extra alignment term B^T E^T Z W B: "
          + ", ".join(f"{k}: {np.median(v):.3g}" for k, v in extra.items())
          + f". 10x W step closer on {frac_big:.0%} of draws; equal-step FA closer than random-W(0) FA on {frac_eq:.0%}.")
    return ExperimentOutput(claims=[claim], figures=[fig], markdown=md,
                            numbers={"seconds_total": time.perf_counter() - t0,
                                     "curve_distance": {k: v.tolist() for k, v in dist.items()}})



def _figF(ctx: RunContext) -> ExperimentOutput:
    t0 = time.perf_counter()
    s = _setting(ctx.seed)
    runs = _fig5_runs(ctx.seed, ctx.quick)
    # Baldi: FA flow from random W(0) converges; C = Z^T Z - W B - B^T W^T is conserved (flow) and moves by exactly
    # eta^2 R^T R per Euler step with equal step sizes
    ctx.progress("P004 FigF: FA flow with random W(0)")
    t_end = 8.0 if ctx.quick else 20.0
    prob, p0 = mf_problem("FA", s["y"], s["z0"], s["w_rand"], s["b"])
    traj = simulate_flow(prob, p0, np.linspace(0.0, t_end, 201),
                         measures={"loss": _loss, "C": ins.m_fa_conserved, "stat": ins.m_stationarity})
    c = traj.metric("C")
    c_drift = float((torch.linalg.matrix_norm(c - c[0]) / torch.linalg.matrix_norm(c[0])).max())
    stat = _np(traj.metric("stat"))[-1]
    z, w = factors(traj.final)
    p = th.lemma1_projection(_np(s["y"]), _np(s["b"]))
    lim_rel = float(np.linalg.norm(_np(z @ w) - p) / np.linalg.norm(p))
    eta = 1e-2
    mon = _FAStepMonitor(s["y"], s["b"], eta)
    prob_e, p0e = mf_problem("FA", s["y"], s["z0"], s["w_rand"], s["b"])
    simulate_discrete(prob_e, p0e, Euler(lr=eta), 200 if ctx.quick else 1000, record_steps=[0], on_step=mon)
    baldi_ok = c_drift <= 1e-8 and mon.rel <= 1e-9 and float(stat.max()) < 1e-6 and lim_rel < 1e-6
    # Corollary 5: a 2-layer linear network on isotropic inputs X (X^T X = I) with Y_out = X A follows the same
    # trajectory as the factorisation of Y = A; and the factorisation route reproduces P004's eqs (2)-(4)
    cor = _corollary5(s, 100 if ctx.quick else 400)
    cor_ok = cor["max_rel_traj_diff"] <= 1e-12 and cor["max_loss_rel_diff"] <= 1e-12 and cor["eqs_2_4_rel_err"] <= 1e-12
    fig = plots.loss_curves(ctx.figures_dir / "p004_figF.png",
                            {"FA*": (np.asarray(runs["FA*"].times), _np(runs["FA*"].metric("loss"))[:, 0]),
                             "FA, W(0) random": (np.asarray(runs["FA, W(0) random"].times),
                                                 _np(runs["FA, W(0) random"].metric("loss"))[:, 0])},
                            "P004 appendix: FA with random W(0) (Euler)", styles=["k-", "-"])
    claims = [
        ClaimResult("P004-Baldi", "confirmed" if baldi_ok else "refuted",
                    "[PAPER, proof not reconstructed] FA for matrix factorisation converges to a stationary point "
                    "(Baldi et al. 2018); [DERIVED] C = Z^T Z - W B - B^T W^T is conserved by the FA flow.",
                    {"flow_max_rel_drift_C": c_drift, "euler_identity_max_rel_violation": mon.rel,
                     "final_stationarity": stat.tolist(), "final_rel_dist_to_lemma1": lim_rel},
                    "C constant; Euler C += eta^2 R^T R; stationary limit = P_{YB} Y",
                    {"flow": 1e-8, "euler": 1e-9, "convergence": 1e-6}, "flow", "EXP-P004-FigF",
                    f"FA flow (DOP853) from random W(0) ~ N(0, 0.1^2) to t = {t_end:.0f}; convergence is shown on "
                    "this instance only (Baldi's proof is not reproduced)."),
        ClaimResult("P004-Cor5", "confirmed" if cor_ok else "refuted",
                    "[RECON] With isotropic inputs (X^T X = I) and linear targets Y_out = X A, the 2-layer linear "
                    "network's FA/FA*/GD dynamics equal matrix factorisation of Y = A (Corollary 5).",
                    cor, "identical trajectories", 1e-12, "euler", "EXP-P004-FigF",
                    f"X: {cor['N']} x {cor['n']} with orthonormal columns; {cor['steps']} Euler steps per rule "
                    "(GD, FA, FA*); the same engine also matches P004 eqs (2)-(4) evaluated by the numpy oracle."),
    ]
    md = (f"FA with random W(0): flow drift of Z^T Z - WB - B^T W^T {c_drift:.1e}; Euler identity {mon.rel:.1e}; "
          f"final stationarity {stat.max():.1e}, distance to Lemma 1 limit {lim_rel:.1e}. Corollary 5: network vs "
          f"factorisation trajectories differ by {cor['max_rel_traj_diff']:.1e} (relative), engine vs eqs (2)-(4) "
          f"{cor['eqs_2_4_rel_err']:.1e}.")
    return ExperimentOutput(claims=claims, figures=[fig], markdown=md,
                            numbers={"seconds_total": time.perf_counter() - t0})


def _corollary5(s: dict[str, Tensor], steps: int) -> dict[str, Any]:
    rng = np.random.default_rng(4077)
    y, z0, b = s["y"], s["z0"], s["b"]
    n, m = y.shape
    n_samples = 2 * n
    x = torch.tensor(th.orthonormal_columns(rng, n_samples, n))      # X^T X = I_n
    y_out = x @ y
    w0 = s["w_rand"]
    diff, loss_diff = 0.0, 0.0
    for name in RULE_NAMES:
        prob_mf, p0 = mf_problem(name, y, z0, w0, b)
        prob_net = Problem(prob_mf.model, prob_mf.rule, LOSS, x, y_out, prob_mf.state)
        tr_mf = simulate_discrete(prob_mf, p0, Euler(lr={"W1": 1e-2, "W2": 2e-2}), steps, record_every=10,
                                  measures={"loss": _loss})
        tr_net = simulate_discrete(prob_net, p0, Euler(lr={"W1": 1e-2, "W2": 2e-2}), steps, record_every=10,
                                   measures={"loss": _loss})
        for pa, pb in zip(tr_mf.params, tr_net.params):
            for k in pa:
                diff = max(diff, float(torch.linalg.matrix_norm(pa[k] - pb[k]) / torch.linalg.matrix_norm(pa[k])))
        la, lb = _np(tr_mf.metric("loss")), _np(tr_net.metric("loss"))
        loss_diff = max(loss_diff, float(np.max(np.abs(la - lb) / la)))
    # engine vector field (X = I) vs P004 eqs (2)-(4) as printed
    eq_err = 0.0
    zt, wt = z0 + 0.3 * torch.tensor(rng.standard_normal(tuple(z0.shape))), w0
    for name, key in (("GD", "gd"), ("FA", "fa"), ("FA*", "fa_star")):
        prob, p = mf_problem(name, y, zt, wt, b)
        p = prob.constrain(p)
        upd = prob.update(p)
        zz, ww = factors(p)
        dz, dw = th.mf_vector_field(key, _np(zz), _np(ww), _np(y), _np(b))
        eq_err = max(eq_err, float(np.linalg.norm(-_np(upd["W1"]).T - dz) / np.linalg.norm(dz)))
        if key != "fa_star":
            eq_err = max(eq_err, float(np.linalg.norm(-_np(upd["W2"]).T - dw) / np.linalg.norm(dw)))
    return {"max_rel_traj_diff": diff, "max_loss_rel_diff": loss_diff, "eqs_2_4_rel_err": eq_err,
            "N": n_samples, "n": n, "steps": steps}


for _id, _title, _claims, _fn in (
    ("EXP-P004-Fig2", "GD vs FA vs FA*: r >= rank(Y) (all optimal) and r < rank(Y) (FA stuck at Lemma 1's error); "
     "Monte Carlo of Theorems 3 and 4", ("P004-L1", "P004-T2", "P004-T3", "P004-T4"), _fig2),
    ("EXP-P004-Fig3a", "Toy Example 1: closed-form FA* trajectory, loss rises then falls", ("P004-Ex1",), _fig3a),
    ("EXP-P004-Fig3b", "Non-monotone FA* loss; Fact 3, Lemma 4, Theorem 1", ("P004-F3", "P004-L4", "P004-T1"), _fig3b),
    ("EXP-P004-Fig4", "Monotone alignment: v^T A v and lam_min(A) under FA*", ("P004-L5",), _fig4),
    ("EXP-P004-Fig5", "FA with optimal W(0) behaves like FA* (closer with a larger W step)", ("P004-FAimpl",), _fig5),
    ("EXP-P004-FigF", "Appendix: FA with random W(0) (Baldi convergence, conserved matrix); 2-layer network "
     "equivalence (Cor. 5)", ("P004-Baldi", "P004-Cor5"), _figF),
):
    register(Experiment(id=_id, paper="P004", title=_title, claims=_claims, run=_fn))
