"""P004 report text, figures and the paper's printed numbers beside ours (reads results; never decides).

The paper prints almost no numbers (Appendix F lost every value in the extraction): what it states are the
probability 0.99 of Theorems 3 and 4 and the qualitative shape of Figs. 2-5; those are the rows of its table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ... import theory as th
from ...instruments import bootstrap_interval, wilson_interval
from ...instruments import matfac as ins
from ...plots import _p004 as plots
from .._registry import PaperNumber
from .measure import HIGHLY_NONMONOTONE, PerSeed
from .runs import FIG5_VARIANTS, Ex1Result, FAStarResult, Fig2Result, Fig5Result, FormulaMonteCarlo, TrainedDraws


def _g(x: float) -> str:
    return f"{x:.3g}"


def _pool(per_seed: PerSeed, key: str) -> np.ndarray:
    return np.concatenate([np.asarray(m[key], dtype=float).ravel() for m in per_seed])


def _span(per_seed: Sequence[dict[str, Any]], key: str) -> str:
    """A per-seed number as 'a' (one seed) or 'lo to hi over n seeds'."""
    v = [float(m[key]) for m in per_seed]
    return _g(v[0]) if len(v) == 1 else f"{_g(min(v))} to {_g(max(v))} over {len(v)} seeds"


def _share(per_seed: PerSeed, key: str) -> str:
    x = _pool(per_seed, key)
    iv = wilson_interval(int(x.sum()), x.size)
    return f"{int(x.sum())}/{x.size} (95% Wilson [{iv.low:.3f}, {iv.high:.3f}])"


def fig2_markdown(res: Fig2Result, per_seed: PerSeed, n: int, eta: float) -> str:
    rows = []
    for p, tag in enumerate("ab"):
        err = {k: [float(v.metric("err")[-1, 2 * i + p]) for i in range(len(per_seed))] for k, v in res.runs.items()}
        rows.append(f"| ({tag}) | " + " | ".join(f"{_g(min(e))} to {_g(max(e))}" for e in err.values()) + " |")
    return "\n".join([
        "Matrix factorisation = the engine's 2-layer linear network on X = I_n (W1 = Z^T, W2 = W^T, B2 = B), loss "
        f"0.5||Y - ZW||_F^2 (sum). n = m = {n}, r = 5, init std 0.01, B ~ N(0, 1), Euler eta = {eta}, steps "
        + ", ".join(f"{k} {v}" for k, v in res.steps.items()) + " (FA and FA* continued until stationary).", "",
        "| panel | GD final error | FA final error | FA* final error |", "|---|---|---|---|", *rows, "",
        f"Stationary FA/FA* runs per seed (of 4): {', '.join(str(m['l1_stationary_runs']) for m in per_seed)}; "
        f"Lemma 1 distance {_span(per_seed, 'l1_distance')}. Theorem 2 stationary runs per seed: "
        f"{', '.join(str(m['t2_stationary_runs']) for m in per_seed)}. Panel (b): FA plateau against Lemma 1's "
        f"error {_span(per_seed, 'fig2b_fa_vs_lemma1')} (relative), GD against the optimum "
        f"{_span(per_seed, 'fig2b_gd_vs_optimum')}."])


def theorems_markdown(t3: TrainedDraws, t4: TrainedDraws, mc: FormulaMonteCarlo, per_seed: PerSeed) -> str:
    r3 = _pool(per_seed, "t3_ratio_sq")
    q = bootstrap_interval(r3, 0.01)
    ratio4, cos4 = _pool(per_seed, "t4_ratio"), _pool(per_seed, "t4_cos")
    k4 = t4.sigma.size
    lines = [
        f"Theorem 3, engine-trained ({r3.size} B draws; sigma = {t3.r} x 1 and a tail of {t3.sigma.size - t3.r} "
        f"values {_g(float(t3.sigma[-1]))}, n = m = {t3.sigma.size}): FA error above the optimum on "
        f"{_share(per_seed, 't3_fa_exceeds_optimum')}; FA^2/opt^2 1%-quantile {q.estimate:.3f} (95% bootstrap "
        f"[{q.low:.3f}, {q.high:.3f}]), median {np.median(r3):.3f}.",
        "Theorem 3, formula Monte Carlo (Lemma 17): " + "; ".join(
            f"r = {r}, N = {tail}, eps = {eps}: FA^2/opt^2 1%-quantile {np.quantile(v, 0.01):.3f}, median "
            f"{np.median(v):.3f}, P(>= 1.45) = {np.mean(v >= 1.45):.4f} ({v.size} draws)"
            for (r, tail, eps), v in mc.t3.items()) + ".",
        f"Theorem 4, engine-trained ({ratio4.size} draws, k = n = m = {k4}, eps = k^(-1/4) = "
        f"{_g(float(t4.sigma[1]))}): FA/GD error ratio max {ratio4.max():.4f} (bound "
        f"{np.sqrt(1 + 1 / ((k4 - 1) * float(t4.sigma[1]) ** 2)):.4f}); cos(Z_FA, Z_GD) median {np.median(cos4):.3f}, "
        f"99%-quantile {np.quantile(cos4, 0.99):.3f}.",
        "Theorem 4, formula Monte Carlo (k - 1 = 1e4): median cosine at eps sqrt(k) = "
        + ", ".join(f"{_g(x)}: {np.mean(mc.slope_median[:, j]):.4f}" for j, x in enumerate(mc.slope_x))
        + f"; at eps = 0.1 the cosine's 99%-quantile is {np.quantile(mc.t4_cos, 0.99):.3f} and the error ratio's "
        f"{np.quantile(mc.t4_ratio, 0.99):.5f}.",
    ]
    return "\n".join(lines)


def fig2_paper_numbers(res: Fig2Result, per_seed: PerSeed) -> list[PaperNumber]:
    s = len(per_seed)
    err_a = max(float(v.metric("err")[-1, 2 * i]) / float(np.linalg.norm(res.y[2 * i]))
                for v in res.runs.values() for i in range(s))
    return [
        PaperNumber("Fig. 2a (r >= rank Y): final error", "all three reach zero loss",
                    f"largest ||Y - ZW|| / ||Y|| {_g(err_a)}", "GD, FA, FA*", f"{s} seeds"),
        PaperNumber("Fig. 2b (r < rank Y): GD final error", "the optimum sqrt(sum_{i>r} sigma_i^2)",
                    f"{_g(per_seed[0]['fig2b_gd'])} vs {_g(per_seed[0]['fig2b_optimum'])}",
                    f"first seed; relative gap {_span(per_seed, 'fig2b_gd_vs_optimum')}"),
        PaperNumber("Fig. 2b: FA plateau", "Lemma 1's error ||Y - P_{YB} Y||",
                    f"{_g(per_seed[0]['fig2b_fa'])} vs {_g(per_seed[0]['fig2b_lemma1'])}",
                    f"relative gap {_span(per_seed, 'fig2b_fa_vs_lemma1')}"),
    ]


def theorems_paper_numbers(per_seed: PerSeed, mc: FormulaMonteCarlo) -> list[PaperNumber]:
    r5 = mc.t3[(5, 500, 0.1)]
    return [
        PaperNumber("Thm 3: P(FA error > optimum)", ">= 0.99", _share(per_seed, "t3_fa_exceeds_optimum"),
                    "engine-trained draws", "constants lost; long-tail instance"),
        PaperNumber("Thm 3: P(FA^2 >= 1.45 opt^2), r = 5, N = 500", ">= 0.99 (catalog's reading)",
                    f"{np.mean(r5 >= 1.45):.4f}", "formula Monte Carlo", f"{r5.size} draws"),
        PaperNumber("Thm 4: P(FA/GD error <= sqrt(1 + 1/((k-1) eps^2)))", ">= 0.99",
                    _share(per_seed, "t4_within_bound"), "engine-trained draws"),
        PaperNumber("Thm 4: cosine O(1/(eps sqrt k))", "exponent -1", "see the slope in the claims table",
                    "formula Monte Carlo, k - 1 = 1e4"),
    ]


def fig2_figures(ctx: Any, res: Fig2Result) -> list[Path]:
    sig = res.sigma
    opt = [float(np.sqrt(np.sum(s[5:] ** 2))) for s in sig]
    out = []
    for p, (tag, title) in enumerate([("a", "(a) r = 5 >= rank(Y) = 5"), ("b", "(b) r = 5 < rank(Y) = 20")]):
        lim = th.fa_error(res.y[p].numpy(), res.b[p].numpy())
        curves = {k: (np.asarray(v.steps), v.metric("err")[:, p].numpy()) for k, v in res.runs.items()}
        out.append(plots.error_curves(ctx.figures_dir / f"p004_fig2{tag}.png", curves, optimal=opt[p],
                                      fa_limit=lim, title=f"P004 Fig. 2{title}, seed {ctx.seed}"))
    return out


def theorems_figure(ctx: Any, per_seed: PerSeed) -> Path:
    samples = {"Thm 3 FA^2/opt^2 (engine-trained)": _pool(per_seed, "t3_ratio_sq"),
               "Thm 4 cos(Z_FA, Z_GD) (engine-trained)": _pool(per_seed, "t4_cos")}
    return plots.histogram(ctx.figures_dir / "p004_thm34_trained.png", samples, {}, "P004 Theorems 3/4: "
                           "engine-trained draws of B", "value")


def ex1_report(ctx: Any, res: Ex1Result, per_seed: PerSeed) -> tuple[str, list[Path], list[PaperNumber]]:
    peaks = [float(res.t[np.argmax(res.loss[:, i])]) for i in range(res.loss.shape[1])]
    md = (f"Example 1: n = 100, b = 1, engine FA* flow (DOP853) against the closed form over t in [0, {res.t[-1]:g}]; "
          f"A(0) = {', '.join(_g(m['ex1_alignment_start']) for m in per_seed)} per seed; the loss peaks at t = "
          f"{', '.join(_g(p) for p in peaks)} (record spacing {_g(res.t[1] - res.t[0])}) and falls to "
          f"{_span(per_seed, 'ex1_loss_end_ratio')} of its start. FA counter-example d(wb)/dt = "
          f"{_span(per_seed, 'ex1_fa_da_dt')}.")
    figs = []
    if ctx.write_figures:
        t_cf = np.linspace(0.0, float(res.t[-1]), 400)
        cf = th.example1(t_cf, 1.0, float(res.rho[0]), 1.0, float(res.u0[0]))
        figs.append(plots.toy_example(ctx.figures_dir / "p004_fig3a.png", res.t, res.loss[:, 0], res.alignment[:, 0],
                                      t_cf, cf["loss"], cf["alignment"]))
    pn = [PaperNumber("Fig. 3a: loss with A(0) < 0", "rises, then falls to 0",
                      f"dL/dt(0) > 0 on {sum(m['ex1_rate_start'] > 0 for m in per_seed)}/{len(per_seed)} seeds, "
                      f"one sign change, L(5)/L(0) {_span(per_seed, 'ex1_loss_end_ratio')}", "t in [0, 5]")]
    return md, figs, pn


def fig3b_report(ctx: Any, res: FAStarResult, per_seed: PerSeed) -> tuple[str, list[Path], list[PaperNumber]]:
    counts = _pool(per_seed, "t1_sign_changes").astype(int)
    hist = ", ".join(f"{c}: {int((counts == c).sum())}" for c in range(int(counts.max()) + 1))
    md = (f"Setting of Figs. 3b/4/5: Y = U V^T (U 50x6, V 40x6 iid N(0,1)), r = 5, Z(0) orthonormal, W(0) = Z(0)^T Y, "
          f"B ~ N(0,1); FA* flow (DOP853) to t = {res.flow.times[-1]:g} on {counts.size} draws (every measure on "
          f"draw 0 of each seed), Euler identities (eta = 1e-2) on draw 0. Z^T Z drift "
          f"{_span(per_seed, 'f3_flow_drift')}. Sign changes of dL/dt per draw (count: draws): {hist}; "
          f"{HIGHLY_NONMONOTONE} or more on {_share(per_seed, 't1_highly_nonmonotone')}. ||R(T)||/||R(0)|| "
          f"{_span(per_seed, 't1_residual_ratio')}.")
    figs = []
    if ctx.write_figures:
        t = np.asarray(res.flow.times)
        figs.append(plots.loss_and_rate(ctx.figures_dir / "p004_fig3b.png", t, res.flow.metric("loss")[:, 0].numpy(),
                                        res.flow.metric("surrogate")[:, 0].numpy(),
                                        f"P004 Fig. 3b: FA* loss, seed {ctx.seed}; dL/dt changes sign "
                                        f"{per_seed[0]['t1_sign_changes'][0]}x"))
    pn = [PaperNumber("Fig. 3b: FA* loss", "highly non-monotone, switching many times",
                      f"mean {counts.mean():.2f} sign changes per draw, max {counts.max()}", f"{counts.size} draws")]
    return md, figs, pn


def fig4_report(ctx: Any, res: FAStarResult, per_seed: PerSeed) -> tuple[str, list[Path], list[PaperNumber]]:
    md = (f"Lemma 5 along the FA* flow: identity {_span(per_seed, 'l5_flow_identity')}; Euler identity "
          f"{_span(per_seed, 'l5_euler_identity')}; lam_min(A) from "
          f"{', '.join(_g(m['l5_lam_min_start']) for m in per_seed)} to "
          f"{', '.join(_g(m['l5_lam_min_end']) for m in per_seed)} (draw 0 of each seed).")
    figs = []
    if ctx.write_figures:
        quad = ins.quadratic_forms(res.flow.metric("alignment")[:, 0], res.setting["v"][0]).numpy()
        figs.append(plots.alignment_panels(ctx.figures_dir / "p004_fig4.png", np.asarray(res.flow.times), quad,
                                           res.flow.metric("lam_min")[:, 0].numpy()))
    neg = sum(m["l5_lam_min_end"] < 0 for m in per_seed)
    pn = [PaperNumber("Fig. 4b: lam_min(A)", "increases but may stay negative",
                      f"final lam_min < 0 on {neg}/{len(per_seed)} draws", f"t = {res.flow.times[-1]:g}")]
    return md, figs, pn


def fig5_report(ctx: Any, res: Fig5Result, per_seed: PerSeed, eta: float) -> tuple[str, list[Path],
                                                                                    list[PaperNumber]]:
    med = {k: float(np.median(_pool(per_seed, f"fa5_distance[{k}]"))) for k in FIG5_VARIANTS}
    n = _pool(per_seed, "fa5_big_minus_equal").size
    md = (f"FA against FA* on {n} draws of the Fig. 3b setting (Euler eta_Z = {eta}); median curve distance to FA* "
          "over the transient (mean |log10 L_FA - log10 L_FA*| while L_FA* >= 1e-3 L(0)): "
          + ", ".join(f"{k}: {_g(v)}" for k, v in med.items()) + ".")
    figs = []
    if ctx.write_figures:
        curves = {k: (res.times, v[:, 0]) for k, v in res.loss.items()}
        figs.append(plots.loss_curves(ctx.figures_dir / "p004_fig5.png", curves, "P004 Fig. 5: FA (optimal / random "
                                      f"W(0)) vs FA*, seed {ctx.seed}", styles=["k-", "-", "--", ":"]))
    pn = [PaperNumber("Fig. 5: FA with W(0) optimal vs FA*", "similar; more so with a larger W step",
                      f"median distance {_g(med[FIG5_VARIANTS[0]])} (equal steps), {_g(med[FIG5_VARIANTS[1]])} "
                      f"(10x W step), {_g(med[FIG5_VARIANTS[2]])} (random W(0))", f"{n} draws")]
    return md, figs, pn


def figF_markdown(per_seed: Sequence[dict[str, Any]]) -> str:
    return (f"FA with random W(0): flow drift of Z^T Z - WB - B^T W^T {_span(per_seed, 'baldi_flow_drift')}; Euler "
            f"identity {_span(per_seed, 'baldi_euler_identity')}; final stationarity "
            f"{_span(per_seed, 'baldi_stationarity')}; distance to Lemma 1's limit {_span(per_seed, 'baldi_limit')}. "
            f"Corollary 5: network against factorisation {_span(per_seed, 'cor5_trajectory')} (relative), engine "
            f"against eqs (2)-(4) {_span(per_seed, 'cor5_equations')}.")
