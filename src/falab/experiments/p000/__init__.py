"""P000 (Robertson & Koyejo): the layer-wise conservation law of feedback alignment, its limits, and Thm 5.2.

Thin specs: ``configs`` (sizes), ``runs`` (simulations), ``measure`` (per-seed measurements), ``claims`` (the claims
as data), ``report`` (markdown, figures, the paper's numbers beside ours). The claims engine decides every verdict.
"""

from __future__ import annotations

import numpy as np

from ...plots import _p000 as plots
from .._methods import euler_method, flow_method
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
from .runs import ATOL, RTOL, Fig1Result, fig1_runs, law_table, laws_checks, minnorm_runs

_DRIFT = "max_t |Q(t)/Q(0) − 1|"


def _worst(per_seed: list[dict], *keys: str) -> float:
    return max(float(m[k]) for m in per_seed for k in keys)


def _fig1_methods(cfg: Fig1Config, lin: Fig1Result, relu: Fig1Result, per_seed: list[dict]) -> list[dict]:
    """How the Fig. 1 runs were integrated, with the accuracy each reached (the drift of Q, exactly 0 along the flow;
    the Euler identity's residual, exactly 0 in exact arithmetic)."""
    t51, c51 = claims.T51.id, claims.C51.id
    rk4_q = relu.q_flow_rk4[:, list(relu.exact)]
    return [
        flow_method("Fig. 1 ReLU flow, B = W_2(0) nets", relu.info["events"], (t51, c51),
                    (_DRIFT, _worst(per_seed, "relu_flow_rel_drift"))),
        flow_method("Fig. 1 ReLU flow, independent-B readings (figure) and the comparison", relu.info["rk4"], (),
                    (_DRIFT + " on the B = W_2(0) nets", float(np.abs(rk4_q / rk4_q[0] - 1).max()))),
        flow_method("Fig. 1 linear flow", lin.info["dop853"], (t51, c51),
                    (_DRIFT, _worst(per_seed, "linear_flow_rel_drift"))),
        euler_method("Fig. 1 Euler runs, linear and ReLU", cfg.eta, cfg.steps,
                     (t51, claims.T51_NEURON.id, claims.FIG1.id),
                     ("worst per-step |ΔQ − ½‖ΔW_1‖²| over the cancelling terms",
                      _worst(per_seed, "relu_euler_identity_rel", "linear_euler_identity_rel"))),
    ]


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
    hom, _ = measure.homogeneous_split(table)
    methods = [*_fig1_methods(cfg, lin, relu, per_seed), *(
        flow_method(part, laws.info[key], (cid,), (what, _worst(per_seed, q))) for part, key, cid, what, q in (
            ("per-neuron law, ReLU with biases", "neuron", claims.T51_NEURON.id,
             "max_j,t |q_j(t) − q_j(0)| over the largest unit's terms", "neuron_flow_drift"),
            ("matrix law, linear depth 3", "matrix", claims.T51_MATRIX.id, "max entry drift of C_i over its largest",
             "matrix_flow_drift"),
            ("DFA, ReLU depth 3", "dfa_relu", claims.DFA.id, "last pair's drift", "dfa_relu_last"),
            ("DFA, linear depth 3", "dfa_identity", claims.DFA.id, "last pair's drift", "dfa_linear_last"),
            ("zero init, linear", "zero_identity", claims.RA1.id, "|<W_2,B> − ½‖W_1‖²| over max|<W_2,B>|",
             "zero_linear_identity_gap"))),
        flow_method("zero init, ReLU (does not move)", laws.info["zero_relu"], (claims.RA1.id,)),
        flow_method("law table (every activation, rule and depth)", {"solver": "rk4", "step_size": tcfg.dt}, (),
                    ("worst FA drift of Q_i over identity/ReLU/leaky ReLU", hom))]
    figs = report.figures(ctx, "fig1", ("fig1_ratio", plots.plot_fig1_ratio, (lin, relu, READINGS)),
                          ("law_table", plots.plot_law_table, (table, TABLE_ACTIVATIONS, TABLE_RULES, tcfg.depths)))
    return Measured(per_seed, report.exp1_markdown(cfg, lin, relu, table, tcfg, ctx.seeds, claims.RK4_TOL), figs,
                    sizes={"d": cfg.d, "n": cfg.n, "h": cfg.h, "euler_steps": cfg.steps, "eta": cfg.eta,
                           "relu_rk4_dt": cfg.relu_dt, "flow_time": cfg.relu_time, "laws_rk4_dt": lcfg.relu_dt,
                           "table_rk4_dt": tcfg.dt},
                    paper_numbers=report.paper_numbers_fig1(cfg, per_seed, ctx.quick),
                    numbers={"integration": methods})


def run_exp2(ctx: RunContext) -> Measured:
    """EXP-P000-2: Fig. 2, the loss of the Fig. 1 Euler runs."""
    cfg, lin, relu = _fig1(ctx, flows=False)
    per_seed = [measure.fig2_seed(lin, relu, s) for s in range(len(ctx.seeds))]
    figs = report.figures(ctx, "fig2", ("fig2_loss", plots.plot_fig2_loss, (lin, relu, READINGS, cfg.eta)))
    return Measured(per_seed, report.exp2_markdown(cfg, lin, relu), figs,
                    sizes={"d": cfg.d, "n": cfg.n, "h": cfg.h, "euler_steps": cfg.steps, "eta": cfg.eta},
                    paper_numbers=report.paper_numbers_fig2(cfg, per_seed, ctx.quick),
                    numbers={"integration": [euler_method("Fig. 1 Euler runs, linear and ReLU", cfg.eta, cfg.steps,
                                                          (claims.FIG2.id,))]})


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
                    paper_numbers=report.paper_numbers_minnorm(cfg, per_seed),
                    numbers={"integration": [
                        flow_method("linear flows (four inits, rate runs, n ≥ d arm, sweep)",
                                    {"solver": "DOP853", "rtol": RTOL * ctx.tighten, "atol": ATOL * ctx.tighten}, (claims.LA1.id, claims.T52.id, claims.MINNORM.id),
                                    ("span identity max_t ‖P_⊥w − P_⊥W_1(0)W_2‖/‖w‖ (flow and Euler; exactly 0)",
                                     _worst(per_seed, "la1_span_identity"))),
                        euler_method("Euler runs of the four inits", cfg.eta, cfg.steps, (claims.LA1.id,))]})


register(Experiment(
    id="EXP-P000-1", paper="P000",
    title="Fig. 1: the FA conservation law (flow and Euler), its generalisations and limits",
    claims=claims.EXP1_CLAIMS, run=run_exp1))
register(Experiment(id="EXP-P000-2", paper="P000", title="Fig. 2: training loss of the Fig. 1 runs",
                    claims=claims.EXP2_CLAIMS, run=run_exp2))
register(Experiment(id="EXP-P000-3", paper="P000", title="Thm 5.2: rate, span invariance and the minimum-norm limit",
                    claims=claims.EXP3_CLAIMS, run=run_exp3))
