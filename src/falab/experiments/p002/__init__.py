"""P002 (Yun, Krishnan & Mobahi, ICLR 2021): implicit bias of linear tensor networks.

* EXP-P002-1: regression toy (Fig. 1, Fig. 2 top-left): Theorem 6 limits, balancedness.
* EXP-P002-2: classification toy (Fig. 2): finite-time spread, asymptotic directions (T1, C1-C4, T2, T3).
* EXP-P002-3: regression beyond the toy: Lemma 4, Theorem 5, Remark 4, Corollaries 2, 3, 5, Theorem 7.

Every experiment measures over all of ``ctx.seeds`` (batched as one ensemble per network); the claims engine decides.
"""

from __future__ import annotations

from .._methods import euler_method, flow_method
from .._registry import Experiment, Measured, RunContext, register
from . import claims, configs, measure, report, runs
from .configs import ARCHS


def _worst(per_seed: list[dict], key: str) -> float:
    return max(float(m[key]) for m in per_seed)


def _adaptive(method: str, rtol: float, atol: float) -> dict:
    return {"solver": method, "rtol": rtol, "atol": atol}


def run_regression(ctx: RunContext) -> Measured:
    cfg, seeds = configs.regression_toy(ctx.quick), list(ctx.seeds)
    mem = runs.Members.grid(seeds, cfg.alphas, cfg.n_dirs)
    res = {}
    for a in ARCHS:
        ctx.progress(f"P002 regression: {a}")
        res[a] = runs.run_regression_arch(a, mem, cfg, ctx.tighten)
    deep = runs.run_deep_invariants(seeds, ctx.tighten)
    per_seed = measure.regression_toy(res, mem, deep, cfg, seeds)
    figs = report.regression_figures(ctx.figures_dir, res, mem, cfg, ctx.seed) if ctx.write_figures else []
    sizes = {"architectures": len(ARCHS), "alphas": list(cfg.alphas), "zbar per seed": cfg.n_dirs,
             "GD steps": cfg.steps, "GD architectures": list(cfg.gd_archs), "flow horizon": cfg.t_flow}
    tol = _adaptive(runs.FLOW_METHOD, runs.RTOL * ctx.tighten, runs.ATOL * ctx.tighten)
    methods = [
        flow_method(f"toy GD flows to t = {cfg.t_flow:g} (3 architectures)", tol,
                    (claims.T6.id, claims.EREG.id, claims.BAL.id),
                    ("relative drift of ||v_1||^2 - ||v_2||^2 (conserved)", _worst(per_seed, "bal_flow_drift"))),
        flow_method("depth-3 FC and diagonal flows to t = 5", tol, (claims.BAL.id,),
                    ("relative drift of the depth-3 invariants (conserved)",
                     max(_worst(per_seed, "bal_fc3_drift"), _worst(per_seed, "bal_diag3_drift")))),
        euler_method(f"GD ({', '.join(cfg.gd_archs)})", cfg.lr, cfg.steps, (claims.T6.id, claims.EREG.id, claims.BAL.id),
                     ("relative residual of the exact Euler identity", _worst(per_seed, "bal_euler_identity")))]
    return Measured(per_seed, report.regression_markdown(per_seed, res, mem, cfg, ctx.quick), figs, sizes,
                    report.regression_paper_numbers(res, mem, cfg), numbers={"integration": methods})


def run_classification(ctx: RunContext) -> Measured:
    cfg, seeds = configs.classification_toy(ctx.quick), list(ctx.seeds)
    mem = runs.Members.grid(seeds, cfg.alphas, cfg.n_dirs)
    res = {}
    for a in ARCHS:
        ctx.progress(f"P002 classification: {a}")
        res[a] = runs.run_classification_arch(a, mem, cfg, ctx.tighten)
    ctx.progress("P002 Theorems 2, 3, Corollary 4")
    d3 = runs.run_depth3_diag(runs.Members.grid(seeds, [cfg.depth3_alpha], cfg.n_dirs), cfg, ctx.tighten)
    single = {a: runs.run_single_point(a, seeds, cfg, ctx.tighten) for a in ("diag", "conv")}
    small = {k1: runs.run_small_filters(k1, seeds, cfg, ctx.tighten) for k1 in (1, 2)}
    per_seed = measure.classification_toy(res, mem, d3, single, small, cfg, seeds,
                                          configs.RegressionExtra().loss_floor * ctx.tighten**2)
    figs = report.classification_figures(ctx.figures_dir, res, mem, cfg, seeds) if ctx.write_figures else []
    sizes = {"alphas": list(cfg.alphas), "zbar per seed": cfg.n_dirs, "flow horizon": cfg.t_end,
             "Theorem 3 GD steps": cfg.t3_steps}
    methods = [
        flow_method(f"exponential-loss GD flows to t = {cfg.t_end:g} (toy, depth 3, single point, small filters)",
                    _adaptive(runs.CLS_METHOD, cfg.flow_rtol * ctx.tighten, cfg.flow_rtol * 1e-2 * ctx.tighten),
                    [c.id for c in claims.CLASSIFICATION_TOY],
                    ("largest loss at t_end", _worst(per_seed, "t1_final_loss"))),
        euler_method("GD for Theorem 3's curve", cfg.t3_lr, cfg.t3_steps, (claims.T3.id,))]
    return Measured(per_seed, report.classification_markdown(per_seed, res, mem, cfg, seeds), figs, sizes,
                    report.classification_paper_numbers(res, mem, small, cfg), numbers={"integration": methods})


def run_regression_extra(ctx: RunContext) -> Measured:
    cfg, seeds = configs.regression_extra(ctx.quick), list(ctx.seeds)
    ctx.progress("P002 Lemma 4, Theorem 5")
    l4 = measure.lemma4(ctx.tighten)
    t5 = runs.run_theorem5(seeds, cfg.t5_alphas, ctx.tighten)
    gd = runs.run_theorem5_gd(t5, max(cfg.t5_alphas), cfg.t5_lr, cfg.t5_gd_max_steps, cfg.t5_gd_loss_tol)
    per_seed = [dict(l4) | m for m in measure.theorem5(t5, gd, cfg, seeds, ctx.tighten)]
    r4 = measure.remark4(seeds, cfg.r4_alphas)
    ctx.progress("P002 Corollaries 2, 3, 5")
    c5_runs = {L: runs.run_corollary2(seeds, L, cfg.c5_alphas, ctx.tighten) for L in cfg.c5_depths}
    c6_runs = {L: runs.run_corollary3(seeds, L, cfg.c5_alphas, ctx.tighten) for L in cfg.c6_depths}
    c5, c6 = measure.flow_errors(c5_runs, seeds), measure.flow_errors(c6_runs, seeds)
    c7_runs = {L: runs.run_matrix_sensing(seeds, L, cfg.c7_alphas, ctx.tighten) for L in cfg.c7_depths}
    c7 = measure.flow_errors(c7_runs, seeds)
    antisym = max(float(e.extra["antisym"].max()) for e in c7_runs.values())
    ctx.progress("P002 Theorem 7")
    t7_runs = runs.run_theorem7(seeds, cfg.t7_alphas, ctx.tighten)
    t7 = measure.theorem7(t7_runs, cfg, seeds, ctx.tighten)
    lim = measure.matrix_sensing_limits(seeds)
    for i, m in enumerate(per_seed):
        m.update({k: v for k, v in r4[i].items() if not k.startswith("_")}, c5_flow_err=c5[i], c6_flow_err=c6[i],
                 c7_flow_err=c7[i], **lim[i], **{k: v for k, v in t7[i].items() if not k.startswith("_")})
    t7_err = [m["_t7_err"] for m in t7]
    curves = [m["_r4_curves"] for m in r4]
    figs = report.extra_figures(ctx.figures_dir, cfg, t7_err, curves[0]) if ctx.write_figures else []
    sizes = {"Theorem 5 alphas": list(cfg.t5_alphas), "GD steps (Theorem 5)": gd.steps,
             "GD final loss (Theorem 5)": float(gd.final_loss.max()),
             "Corollary 2/3/5 depths": list(cfg.c5_depths), "Theorem 7 alphas": list(cfg.t7_alphas)}
    md = report.extra_markdown(per_seed, t7_err, cfg, curves) + (
        f"\nCorollary 5: largest antisymmetric part of the flow's product W_1..W_L, {antisym:.2g} (zero in exact "
        "arithmetic; a null direction of the loss that rounding seeds and the escape from the small init amplifies; "
        "the sensors and the corollary see only the symmetric part).\n")
    methods = [
        flow_method("Lemma 4's ODE (theory)", _adaptive("DOP853", 1e-12 * ctx.tighten, 1e-14 * ctx.tighten),
                    (claims.L4.id,)),
        *(flow_method(f"{what} flows to every loss < 1e-14 (segments of doubling length)", [e.flow.info for e in es],
                      (cid,), ("largest final loss", max(float(e.flow.losses[-1].max()) for e in es)))
          for what, es, cid in (("Theorem 5", [t5], claims.T5.id), ("Corollary 2", c5_runs.values(), claims.C5.id),
                                ("Corollary 3", c6_runs.values(), claims.C6.id),
                                ("Corollary 5", c7_runs.values(), claims.C7.id),
                                ("Theorem 7", [t7_runs], claims.T7.id))),
        euler_method("GD from the Theorem 5 init", cfg.t5_lr, gd.steps, (claims.T5.id,))]
    return Measured(per_seed, md, figs, sizes,
                    report.extra_paper_numbers(), numbers={"integration": methods})


register(Experiment(
    id="EXP-P002-1", paper="P002",
    title="Regression toy (Fig. 1): Theorem 6 limit points for FC, diagonal and convolutional nets",
    claims=claims.REGRESSION_TOY, run=run_regression,
))
register(Experiment(
    id="EXP-P002-2", paper="P002",
    title="Classification toy (Fig. 2): finite-time spread and asymptotic max-margin directions",
    claims=claims.CLASSIFICATION_TOY, run=run_classification,
))
register(Experiment(
    id="EXP-P002-3", paper="P002",
    title="Regression beyond the toy: Lemma 4, Theorem 5, Remark 4, Corollaries 2, 3, 5, Theorem 7",
    claims=claims.REGRESSION_EXTRA, run=run_regression_extra,
))
