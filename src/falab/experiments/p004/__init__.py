"""P004 (Garg & Vempala, AISTATS 2022): random feedback for low-rank matrix factorisation — 12 claims, 6 experiments.

Thin specs: :mod:`.configs` (sizes and horizons), :mod:`.runs` (engine simulations), :mod:`.measure` (per-seed
measurements), :mod:`.claims` (the claims as data), :mod:`.report` (text, figures, the paper's numbers). Each
experiment below measures over ``ctx.seeds`` and returns :class:`~falab.experiments.Measured`; the claims engine
decides.
"""

from __future__ import annotations

from .._registry import Experiment, Measured, RunContext, register
from . import claims as C
from . import measure, report, runs
from .configs import Ex1Config, FAStarConfig, Fig2Config, Fig5Config, FigFConfig, TheoremConfig


def _fig2(ctx: RunContext) -> Measured:
    cfg, tcfg = Fig2Config.of(ctx.quick), TheoremConfig.of(ctx.quick)
    panels = runs.fig2_panels(cfg, ctx.seeds, ctx.progress)
    t2 = runs.theorem2_ensemble(cfg, ctx.seeds)
    counter = [runs.theorem2_counterexample(s) for s in ctx.seeds]
    t3 = runs.theorem3_trained(tcfg, ctx.seeds, ctx.progress)
    t4 = runs.theorem4_trained(tcfg, ctx.seeds, ctx.progress)
    mc = runs.formula_monte_carlo(tcfg, ctx.seeds)
    per_seed = [{**a, **b, **c, **d} for a, b, c, d in zip(measure.fig2(panels, t2, counter),
                                                           measure.fig2_panel_b(panels), measure.theorem3(t3, mc),
                                                           measure.theorem4(t4, mc))]
    figs = (report.fig2_figures(ctx, panels) + [report.theorems_figure(ctx, per_seed)]) if ctx.write_figures else []
    md = report.fig2_markdown(panels, per_seed, cfg.n, cfg.eta) + "\n\n" + report.theorems_markdown(t3, t4, mc,
                                                                                                     per_seed)
    sizes = {"n": cfg.n, "steps": panels.steps, "t3_draws": t3.fa_error.size, "t4_draws": t4.fa_error.size,
             "t3_k": t3.sigma.size, "t4_k": t4.sigma.size, "formula_draws_per_seed": tcfg.formula_draws}
    pn = report.fig2_paper_numbers(panels, per_seed) + report.theorems_paper_numbers(per_seed, mc)
    return Measured(per_seed, md, figs, sizes, pn)


def _fig3a(ctx: RunContext) -> Measured:
    cfg = Ex1Config.of(ctx.quick)
    res = runs.example1(cfg, ctx.seeds, ctx.tighten)
    per_seed = measure.example1(res)
    md, figs, pn = report.ex1_report(ctx, res, per_seed)
    return Measured(per_seed, md, figs, {"n": cfg.n, "t_end": cfg.t_end, "points": cfg.points}, pn)


def _fig3b(ctx: RunContext) -> Measured:
    cfg = FAStarConfig.of(ctx.quick)
    res = runs.fa_star_runs(cfg, ctx.seeds, ctx.tighten, runs.FIG3B_MEASURES, ctx.progress, every_draw=True)
    per_seed = measure.fig3b(res)
    md, figs, pn = report.fig3b_report(ctx, res, per_seed)
    sizes = {"t_end": cfg.t_end, "draws_per_seed": cfg.draws, "euler_steps": cfg.euler_steps}
    return Measured(per_seed, md, figs, sizes, pn)


def _fig4(ctx: RunContext) -> Measured:
    cfg = FAStarConfig.of(ctx.quick)
    res = runs.fa_star_runs(cfg, ctx.seeds, ctx.tighten, runs.FIG4_MEASURES, ctx.progress)
    per_seed = measure.fig4(res)
    md, figs, pn = report.fig4_report(ctx, res, per_seed)
    return Measured(per_seed, md, figs, {"t_end": cfg.t_end, "draws_per_seed": cfg.draws}, pn)


def _fig5(ctx: RunContext) -> Measured:
    cfg = Fig5Config.of(ctx.quick)
    res = runs.fig5_runs(cfg, FAStarConfig.of(ctx.quick), ctx.seeds, ctx.progress)
    per_seed = measure.fig5(res, cfg.transient_floor)
    md, figs, pn = report.fig5_report(ctx, res, per_seed, cfg.eta)
    return Measured(per_seed, md, figs, {"eta": cfg.eta, "t_end": cfg.t_end, "draws_per_seed": cfg.draws}, pn)


def _figF(ctx: RunContext) -> Measured:
    cfg = FigFConfig.of(ctx.quick)
    res = runs.figF_runs(cfg, FAStarConfig.of(ctx.quick), ctx.seeds, ctx.tighten, ctx.progress)
    per_seed = measure.figF(res)
    return Measured(per_seed, report.figF_markdown(per_seed), [],
                    {"t_end": cfg.t_end, "euler_steps": cfg.euler_steps, "cor5_steps": cfg.cor5_steps})


for _id, _title, _claims, _fn in (
    ("EXP-P004-Fig2", "GD vs FA vs FA*: r >= rank(Y) (all optimal) and r < rank(Y) (FA stuck at Lemma 1's error); "
     "engine-trained draws and Monte Carlo of Theorems 3 and 4", (C.L1, C.T2, C.T3, C.T4), _fig2),
    ("EXP-P004-Fig3a", "Toy Example 1: closed-form FA* trajectory, loss rises then falls", (C.EX1,), _fig3a),
    ("EXP-P004-Fig3b", "Non-monotone FA* loss; Fact 3, Lemma 4, Theorem 1", (C.F3, C.L4, C.T1), _fig3b),
    ("EXP-P004-Fig4", "Monotone alignment: v^T A v and lam_min(A) under FA*", (C.L5,), _fig4),
    ("EXP-P004-Fig5", "FA with optimal W(0) behaves like FA* (closer with a larger W step)", (C.FAIMPL,), _fig5),
    ("EXP-P004-FigF", "Appendix: FA with random W(0) (Baldi convergence, conserved matrix); 2-layer network "
     "equivalence (Cor. 5)", (C.BALDI, C.COR5), _figF),
):
    register(Experiment(id=_id, paper="P004", title=_title, claims=_claims, run=_fn))

