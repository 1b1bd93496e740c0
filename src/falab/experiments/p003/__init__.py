r"""P003 (Girotti, Mitliagkas & Gidel): FA in deep linear networks: 8 experiments answering the 15 P003 claims.

Thin specs: :mod:`.configs` (sizes, quick/full), :mod:`.systems` (the paper's systems as engine problems),
:mod:`.runs` (simulations), :mod:`.measure` (per-seed measurements), :mod:`.claims` (the claims as data) and
:mod:`.report` (text, figures, the paper's numbers beside ours). Verdicts come from the claims engine only.
"""

from __future__ import annotations

from dataclasses import asdict

from .._registry import Experiment, Measured, RunContext, register
from . import claims as K
from . import configs as C
from . import measure, report, runs
from .systems import (  # noqa: F401  (re-exported for tests and notebooks)
    autoencoder_data,
    covariance_data,
    deep_scalar_system,
    init7,
    init11,
    scalar_params,
    scalar_system,
    scalar_thetas,
    theta_event,
)

PAPER = "P003"


def _sizes(cfg, ctx: RunContext, **extra) -> dict:
    return {k: v for k, v in asdict(cfg).items() if isinstance(v, (int, float))} | {"seeds": len(ctx.seeds)} | extra


def exp_fig1a(ctx: RunContext) -> Measured:
    cfg = C.fig1a(ctx.quick)
    ctx.progress("P003 Fig1a: 25 FA flows and the matrix invariant")
    res = runs.run_fig1a(cfg, ctx.seeds, ctx.tighten)
    ps = measure.fig1a(res, cfg)
    md, figs = report.fig1a(ctx, cfg, res, ps)
    return Measured(ps, md, figs, _sizes(cfg, ctx, starts=len(res.starts)))


def exp_fig1b(ctx: RunContext) -> Measured:
    cfg = C.fig1b(ctx.quick)
    ctx.progress("P003 Fig1b: FA vs GD")
    res = runs.run_fig1b(cfg, ctx.seeds, ctx.tighten)
    ps = measure.fig1b(res, cfg, len(ctx.seeds))
    md, figs = report.fig1b(ctx, cfg, res, ps)
    return Measured(ps, md, figs, _sizes(cfg, ctx))


def exp_fig1c(ctx: RunContext) -> Measured:
    cfg = C.fig1c(ctx.quick)
    ctx.progress("P003 Fig1c: iid inits")
    res = runs.run_fig1c(cfg, ctx.seeds, ctx.tighten)
    ps = measure.fig1c(res, cfg, len(ctx.seeds))
    md, figs = report.fig1c(ctx, cfg, res, ps)
    return Measured(ps, md, figs, _sizes(cfg, ctx, draws_total=cfg.draws * len(ctx.seeds)))


def exp_fig3(ctx: RunContext) -> Measured:
    cfg = C.fig3(ctx.quick)
    ctx.progress("P003 Fig3: K = 0 flows and the Sec. 5 discretisations")
    res = runs.run_fig3(cfg, ctx.seeds, ctx.tighten)
    ps = measure.fig3(res, cfg, len(ctx.seeds))
    md, figs = report.fig3(ctx, cfg, res, ps)
    return Measured(ps, md, figs, _sizes(cfg, ctx), report.paper_numbers_k0(cfg, res, ps))


def exp_fig4(ctx: RunContext) -> Measured:
    cfg = C.fig4(ctx.quick)
    ctx.progress("P003 Fig4: 3-layer flows and the modified scheme (28)")
    res = runs.run_fig4(cfg, ctx.seeds, ctx.tighten)
    ps = measure.fig4(res, cfg, len(ctx.seeds))
    md, figs = report.fig4(ctx, cfg, res, ps)
    return Measured(ps, md, figs, _sizes(cfg, ctx), report.paper_numbers_deep(cfg, ps))


def exp_fig5a(ctx: RunContext) -> Measured:
    cfg = C.backward(ctx.quick)
    ctx.progress("P003 Fig5a: backward incremental learning")
    res = runs.run_backward(cfg, ctx.tighten)  # deterministic: the same measurement on every seed
    m = measure.backward(res, cfg)
    md, figs = report.backward(ctx, cfg, res, m)
    return Measured([dict(m) for _ in ctx.seeds], md, figs, _sizes(cfg, ctx, deterministic=True),
                    report.paper_numbers_backward(cfg, m))


def exp_fig5b(ctx: RunContext) -> Measured:
    cfg = C.orderings(ctx.quick)
    ctx.progress("P003 Fig5b: regularisation vs anti-regularisation")
    res = runs.run_backward(cfg, ctx.tighten)  # deterministic
    m = measure.orderings(res, cfg)
    md, figs = report.orderings(ctx, cfg, res, m)
    return Measured([dict(m) for _ in ctx.seeds], md, figs, _sizes(cfg, ctx, deterministic=True))


def exp_fig2(ctx: RunContext) -> Measured:
    cfg = C.autoencoder(ctx.quick)
    ctx.progress(f"P003 Fig2: autoencoder, {cfg.iterations} iterations")
    res = runs.run_fig2(cfg, ctx.seeds, ctx.tighten)
    ps = measure.fig2(res, cfg)
    md, figs = report.fig2(ctx, cfg, res, ps)
    sizes = _sizes(cfg, ctx, fa_draws_per_seed=res.reps, fa_draws_total=res.reps * len(ctx.seeds))
    return Measured(ps, md, figs, sizes, report.paper_numbers_ae(cfg, res, ps))


for _id, _title, _claims, _fn in [
    ("EXP-P003-Fig1a", "FA phase portrait, invariant parabolas and root selection (Fig. 1a, Thm 3)", K.FIG1A,
     exp_fig1a),
    ("EXP-P003-Fig1b", "FA vs GD on the scalar system from init (7) (Fig. 1b)", K.FIG1B, exp_fig1b),
    ("EXP-P003-Fig1c", "Non-monotone products from iid init (Fig. 1c)", K.FIG1C, exp_fig1c),
    ("EXP-P003-Fig3", "K = 0 flow: limits, rate, vanishing time; Euler and modified discretisations (Fig. 3, Sec. 5)",
     K.FIG3, exp_fig3),
    ("EXP-P003-Fig4", "3-layer scalar system, init (11), flow and modified scheme (Fig. 4, Thm 5, Thm 10)", K.FIG4,
     exp_fig4),
    ("EXP-P003-Fig5a", "Backward incremental learning: step times (Fig. 5a, Thm 6/7)", K.FIG5A, exp_fig5a),
    ("EXP-P003-Fig5b", "Regularisation vs anti-regularisation orderings (Fig. 5b, informal Thm 6)", K.FIG5B,
     exp_fig5b),
    ("EXP-P003-Fig2", "Linear autoencoder, FA vs GD, 2 and 3 layers (Fig. 2); eqs (3)/(8); stationary points", K.FIG2,
     exp_fig2),
]:
    register(Experiment(id=_id, paper=PAPER, title=_title, claims=_claims, run=_fn))
