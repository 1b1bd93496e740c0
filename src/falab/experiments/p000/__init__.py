"""P000 (Robertson & Koyejo): the layer-wise conservation law of feedback alignment, its limits, and Thm 5.2.

Thin specs: ``configs`` (sizes), ``runs`` (simulations), ``measure`` (per-seed measurements), ``claims`` (the claims
as data), ``report`` (markdown, figures, the paper's numbers beside ours). The claims engine decides every verdict.
"""

from __future__ import annotations

from ...plots import _p000 as plots
from .._registry import Experiment, Measured, RunContext, register
from . import claims, measure, report
from .configs import (
    MINNORM_ARMS,
    READINGS,
    TABLE_ACTIVATIONS,
    TABLE_RULES,
    Fig1Config,
    LawsConfig,
    MinNormConfig,
    TableConfig,
)
from .runs import Fig1Result, fig1_runs, law_table, laws_checks, minnorm_runs


def _fig1(ctx: RunContext, *, flows: bool = True) -> tuple[Fig1Config, Fig1Result, Fig1Result]:
    cfg = Fig1Config.quick() if ctx.quick else Fig1Config()
    ctx.progress("P000 Fig. 1 runs")
    return (cfg, fig1_runs(cfg, "identity", ctx.seeds, ctx.tighten, flows=flows),
            fig1_runs(cfg, "relu", ctx.seeds, ctx.tighten, flows=flows))


def run_exp1(ctx: RunContext) -> Measured:
    """EXP-P000-1: the Fig. 1 ratio (flow and Euler), the generalisations (per neuron, matrix, DFA, zero init) and the
    law table, over ``ctx.seeds``."""
    cfg, lin, relu = _fig1(ctx)
    tcfg = TableConfig.quick() if ctx.quick else TableConfig()
    lcfg = LawsConfig.quick() if ctx.quick else LawsConfig()
    ctx.progress("P000 law checks")
    laws = laws_checks(lcfg, ctx.seeds, ctx.tighten)
    per_seed = [{**measure.fig1_seed(lin, relu, s), **measure.laws_seed(laws, s)} for s in range(len(ctx.seeds))]
    if ctx.tighten != 1.0:  # the numerical rerun only re-measures; the table and the report come from the first run
        return Measured(per_seed)
    table = law_table(tcfg, ctx.seeds, TABLE_ACTIVATIONS, TABLE_RULES)
    figs = report.figures(ctx, "fig1", ("fig1_ratio", plots.plot_fig1_ratio, (lin, relu, READINGS)),
                          ("law_table", plots.plot_law_table, (table, TABLE_ACTIVATIONS, TABLE_RULES, tcfg.depths)))
    return Measured(per_seed, report.exp1_markdown(cfg, lin, relu, table, tcfg, ctx.seeds, claims.RK4_TOL), figs,
                    sizes={"d": cfg.d, "n": cfg.n, "h": cfg.h, "euler_steps": cfg.steps, "eta": cfg.eta,
                           "relu_rk4_dt": cfg.relu_dt, "flow_time": cfg.relu_time, "laws_rk4_dt": lcfg.relu_dt,
                           "table_rk4_dt": tcfg.dt},
                    paper_numbers=report.paper_numbers_fig1(cfg, per_seed, ctx.quick))


def run_exp2(ctx: RunContext) -> Measured:
    """EXP-P000-2: Fig. 2, the loss of the Fig. 1 Euler runs."""
    cfg, lin, relu = _fig1(ctx, flows=False)
    per_seed = [measure.fig2_seed(lin, relu, s) for s in range(len(ctx.seeds))]
    figs = report.figures(ctx, "fig2", ("fig2_loss", plots.plot_fig2_loss, (lin, relu, READINGS, cfg.eta)))
    return Measured(per_seed, report.exp2_markdown(cfg, lin, relu), figs,
                    sizes={"d": cfg.d, "n": cfg.n, "h": cfg.h, "euler_steps": cfg.steps, "eta": cfg.eta},
                    paper_numbers=report.paper_numbers_fig2(cfg, per_seed, ctx.quick))


def run_exp3(ctx: RunContext) -> Measured:
    """EXP-P000-3: span invariance, the Thm 5.2 rate and the minimum-norm limit (linear net, flow and Euler)."""
    cfg = MinNormConfig.quick() if ctx.quick else MinNormConfig()
    ctx.progress("P000 min-norm flows")
    r = minnorm_runs(cfg, ctx.seeds, ctx.tighten)
    per_seed = [measure.minnorm_seed(r, cfg, s) for s in range(len(ctx.seeds))]
    figs = report.figures(ctx, "minnorm", ("minnorm", plots.plot_minnorm, (r, MINNORM_ARMS)))
    return Measured(per_seed, report.exp3_markdown(cfg, r, ctx.seeds), figs,
                    sizes={"d": cfg.d, "n": cfg.n, "h": cfg.h, "flow_time": cfg.flow_time, "euler_steps": cfg.steps,
                           "sweep_widths": list(cfg.sweep_widths), "sweep_scales": list(cfg.sweep_scales)},
                    paper_numbers=report.paper_numbers_minnorm(cfg, per_seed))


register(Experiment(
    id="EXP-P000-1", paper="P000",
    title="Fig. 1: the FA conservation law (flow and Euler), its generalisations and limits",
    claims=claims.EXP1_CLAIMS, run=run_exp1))
register(Experiment(id="EXP-P000-2", paper="P000", title="Fig. 2: training loss of the Fig. 1 runs",
                    claims=claims.EXP2_CLAIMS, run=run_exp2))
register(Experiment(id="EXP-P000-3", paper="P000", title="Thm 5.2: rate, span invariance and the minimum-norm limit",
                    claims=claims.EXP3_CLAIMS, run=run_exp3))
