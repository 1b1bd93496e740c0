"""P003 report: markdown, figures and the paper's printed numbers beside ours. Reads measurements; decides nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ... import theory as th
from ...plots import _p003 as plots
from .._registry import PaperNumber, RunContext
from . import configs as C
from .runs import BackwardResult, Fig1aResult, Fig1bResult, Fig1cResult, Fig2Result, Fig3Result, Fig4Result


def span(per_seed: Sequence[dict[str, Any]], key: str, fmt: str = ".3g") -> str:
    """A measured number over the seeds: the value when all agree, else 'min to max over n seeds'."""
    vals = [float(m[key]) for m in per_seed]
    lo, hi = min(vals), max(vals)
    if lo == hi or len(vals) == 1:
        return format(lo, fmt)
    return f"{lo:{fmt}} to {hi:{fmt}} over {len(vals)} seeds"


def _fig(ctx: RunContext, name: str) -> Path:
    return ctx.figures_dir / f"p003_{name}.png"


def fig1a(ctx: RunContext, cfg: C.Fig1a, res: Fig1aResult, ps: list[dict]) -> tuple[str, list[Path]]:
    figs = []
    if ctx.write_figures:
        figs.append(plots.phase_portrait(_fig(ctx, "fig1a"), [res.thetas[:, i, :] for i in range(len(res.starts))],
                                         cfg.d, cfg.lam, title=f"Fig. 1a: FA flow (6), d = {cfg.d}, lambda = "
                                         f"{cfg.lam}\nparabolas K = const (dashed), hyperbola (dotted)"))
    m = ps[0]
    md = (f"**Fig. 1a** (d = {cfg.d}, lambda = {cfg.lam}, 25 starts on {{-5, -2.5, 0, 2.5, 5}}^2, t in [0, "
          f"{cfg.t_end:g}], DOP853 rtol 1e-12): parabola invariant drift {m['scalar_flow_drift']:.2g}; matrix "
          f"invariant drift {span(ps, 'matrix_flow_drift', '.2g')} along the flow, "
          f"{span(ps, 'matrix_modified_drift', '.2g')} under the modified scheme (exact) and "
          f"{span(ps, 'matrix_euler_drift', '.2g')} under Euler (not conserved), one random 5-4-3 net per seed. "
          f"Limits match Thm 3's root selection to {m['limit_error']:.2g}; {m['starts_with_three_roots']} starts "
          f"have Delta > 0 and {m['ending_on_lower_left']} end on the lower-left branch (both branches of the "
          f"hyperbola are global minima); Cardano's root (stable form) agrees with the selected root to "
          f"{m['cardano_vs_root']:.2g}.\n")
    return md, figs


def fig1b(ctx: RunContext, cfg: C.Fig1b, res: Fig1bResult, ps: list[dict]) -> tuple[str, list[Path]]:
    figs = []
    if ctx.write_figures:
        first = res.seed_index == 0
        ts, pf, pg = res.ts, res.fa[..., 0] * res.fa[..., 1], res.gd[..., 0] * res.gd[..., 1]
        idx = np.nonzero(first)[0]
        curves = [plots.Curve(ts, pf[:, i], "FA" if j == 0 else None, {"color": "C0"}) for j, i in enumerate(idx)]
        curves += [plots.Curve(ts, pg[:, i], "GD" if j == 0 else None, {"color": "C3", "ls": ":"})
                   for j, i in enumerate(idx)]
        figs.append(plots.panels(_fig(ctx, "fig1b"), [plots.Panel(
            curves, f"Fig. 1b: init (7), d = {cfg.d:g}, lambda = {cfg.lam:g}\n(theta_0 = 0 included)",
            ylabel="theta_1 theta_2", hlines=[cfg.lam], ylim=(-5, 8))]))
    md = (f"**Fig. 1b** (d = {cfg.d:g}, lambda = {cfg.lam:g}, theta_0 = 0 and {cfg.draws} draws U(-5, 5) per seed): "
          f"the GD field at the origin is {ps[0]['gd_velocity_at_origin']:g}, so GD from 0 never moves; FA from 0 "
          f"reaches lambda to {span(ps, 'fa_product_error_from_0', '.2g')} by t = {cfg.t_end:g}.\n")
    return md, figs


def fig1c(ctx: RunContext, cfg: C.Fig1c, res: Fig1cResult, ps: list[dict]) -> tuple[str, list[Path]]:
    figs = []
    if ctx.write_figures:
        from .measure import nonmonotone_products

        flags = nonmonotone_products(res, cfg)
        p = res.thetas[..., 0] * res.thetas[..., 1]
        idx = np.nonzero(res.seed_index == 0)[0][:10]
        curves = [plots.Curve(res.ts, p[:, i], None, {"ls": "-" if flags[i] else "--"}) for i in idx]
        figs.append(plots.panels(_fig(ctx, "fig1c"), [plots.Panel(
            curves, f"Fig. 1c: iid init U(-5,5)^2, d = {cfg.d:g}, lambda = {cfg.lam:g}\n(solid: non-monotone)",
            ylabel="theta_1 theta_2", hlines=[cfg.lam])]))
    n_non = [sum(m["nonmonotone"]) for m in ps]
    md = (f"**Fig. 1c** (d = {cfg.d:g}, lambda = {cfg.lam:g}, {cfg.draws} iid starts U(-5,5)^2 per seed): "
          f"non-monotone products on {', '.join(map(str, n_non))} of {cfg.draws} starts (per seed); largest dip "
          f"{span(ps, 'max_dip')}; starts ending on the lower-left branch: "
          f"{', '.join(str(m['ending_on_lower_left']) for m in ps)}.\n")
    return md, figs


def fig3(ctx: RunContext, cfg: C.Fig3, res: Fig3Result, ps: list[dict]) -> tuple[str, list[Path]]:
    d, lam = cfg.d, cfg.lam
    ref = th.k0_limit(d, lam)
    figs = []
    if ctx.write_figures:
        idx = np.nonzero(res.seed_index == 0)[0]
        x, ts = res.thetas[:, idx], res.ts
        figs.append(plots.panels(_fig(ctx, "fig3"), [
            plots.Panel([plots.Curve(ts, x[:, i, 0]) for i in range(len(idx))], "theta_1(t)", ylabel="theta_1",
                        hlines=[ref.theta1]),
            plots.Panel([plots.Curve(ts, x[:, i, 1]) for i in range(len(idx))], "theta_2(t)", ylabel="theta_2",
                        hlines=[ref.theta2]),
            plots.Panel([plots.Curve(ts, x[:, i, 0] * x[:, i, 1]) for i in range(len(idx))], "theta_1 theta_2",
                        ylabel="product", hlines=[lam], ylim=(-5, 8))], suptitle=f"Fig. 3: init (7), d = {d:g}, "
                        f"lambda = {lam:g}"))
        x_e, x_m = res.euler[0.05][:cfg.modified_steps + 1], res.modified[0.05]
        tt = np.arange(len(x_m))
        u = np.linspace(1.5, 3, 50)
        figs.append(plots.panels(_fig(ctx, "discrete"), [
            plots.Panel([plots.Curve(x_e[:, 0], x_e[:, 1], "Euler (22)-(23)", {"marker": ".", "ms": 3}),
                         plots.Curve(x_m[:, 0], x_m[:, 1], "modified (26)-(27)", {"marker": ".", "ms": 3}),
                         plots.Curve(u, lam / u, "hyperbola", {"color": "k", "ls": ":"})],
                        "zero init, eta = 0.05: different limit points", xlabel="x = theta_1", ylabel="y = theta_2"),
            plots.Panel([plots.Curve(tt, np.abs(x_e[:, 0] * x_e[:, 1] - lam) + 1e-17, "Euler"),
                         plots.Curve(tt, np.abs(x_m[:, 0] * x_m[:, 1] - lam) + 1e-17, "modified"),
                         plots.Curve(tt, th.modified_bound(tt, 0.05, d, lam), "3 lambda (1 - eta r^2/2)^t",
                                     {"ls": "--"}),
                         plots.Curve(tt, 3 * lam * np.abs(1 - 0.075 * ref.theta1 ** 2) ** tt,
                                     "3 lambda (1 - 3 eta r^2/2)^t", {"ls": ":"})],
                        "|x_t y_t - lambda|", xlabel="t (steps)", logy=True)],
            suptitle=f"Sec. 5 discretisations, d = {d:g}, lambda = {lam:g}"))
    e05 = ps[0]["euler_per_eta"][0.05]
    md = (f"**Fig. 3** (d = {d:g}, lambda = {lam:g}, init (7), starts {list(cfg.fixed)} and {cfg.draws} draws per "
          f"seed): limits to {span(ps, 'k0_limit_error', '.2g')}; fitted rates within "
          f"{span(ps, 'k0_rate_rel_error', '.2g')} (relative) of (3/2) r^2 = {ref.rate:.5f}; implicit solution to "
          f"{span(ps, 'k0_implicit_solution_error', '.2g')}. Vanishing times by event detection "
          f"{', '.join(f'{t:.8f}' for t in res.t_vanish)} for theta_0 = {', '.join(map(str, cfg.vanish_starts))} "
          f"(max error to (16)-(17) {ps[0]['vanish_error']:.2g}); asymptote "
          f"{th.vanishing_time_limit(d, lam):.7f}.\n\n"
          f"**Discretisations.** Euler at eta = 0.05: identity error {e05['identity']:.2g}, x_inf = "
          f"{e05['x_inf']:.6f} against the flow's {ref.theta1:.6f} (x_inf^3 - S_inf x_inf = 2 d lambda predicts "
          f"{e05['x_inf_from_S']:.6f}; S_inf = {e05['S_inf']:.6f}); eta = 0.05 exceeds Thm 8's sufficient bound "
          f"{th.euler_step_bound(d, lam)[1]:.4f} and still converges. Eq. (19) prints W_2^(t+1) = W_2^(t+1) + ..., a "
          f"typo for W_2^t + ... (used here). Modified scheme: invariant error {ps[0]['modified_invariant']:.2g}; "
          f"the bound with (1 - eta r^2/2) is exceeded by at most {ps[0]['corrected_bound_violation']:.2g}, the "
          f"(3/2) reading by {ps[0]['printed_bound_violation']:.3g}; the fitted factor matches 1 - (3/2) eta r^2 to "
          f"{ps[0]['asymptotic_rate_rel_error']:.2g} (the asymptotic rate); Remark 23's one-step eta leaves an error "
          f"of {ps[0]['one_step_error']:.2g}.\n")
    return md, figs


def fig4(ctx: RunContext, cfg: C.Fig4, res: Fig4Result, ps: list[dict]) -> tuple[str, list[Path]]:
    r, rate = th.deep_limit(cfg.lam, cfg.ds)
    figs = []
    if ctx.write_figures:
        idx = np.nonzero(res.seed_index == 0)[0]
        p = res.thetas[:, idx].prod(axis=-1)
        etas = np.concatenate([e for e in res.etas])
        cs = np.concatenate([m["C_needed"] for m in ps])
        figs.append(plots.panels(_fig(ctx, "fig4"), [
            plots.Panel([plots.Curve(res.ts, p[:, i]) for i in range(len(idx))],
                        "Fig. 4: theta_3 theta_2 theta_1, init (11), theta_0 ~ U(-1, 2)\nd = (2, 2.5, 1), lambda = 1",
                        ylabel="product", hlines=[cfg.lam], ylim=(-0.5, 2.5)),
            plots.Panel([plots.Curve(etas, cs, "C needed", {"ls": "none", "marker": "o"})],
                        "Thm 10: constant C needed vs eta", xlabel="eta", ylabel="C", logx=True, logy=True)]))
    pairs = sorted((e, c) for m in ps for e, c in zip(m["eta"], m["C_needed"]))
    md = (f"**Fig. 4** (3 layers, d = {cfg.ds}, lambda = {cfg.lam:g}, init (11)): invariants to "
          f"{span(ps, 'deep_invariant_error', '.2g')}, limit r = {r:.10f} to {span(ps, 'deep_limit_error', '.2g')}, "
          f"rates within {span(ps, 'deep_rate_rel_error', '.2g')} of {rate:.4f}. Modified scheme (28) at "
          f"{len(pairs)} step sizes: invariants to {span(ps, 'modified_invariant', '.2g')}, asymptotic factor within "
          f"{span(ps, 'modified_rate_rel_error', '.2g')}; the constant needed grows with eta: "
          + ", ".join(f"C({e:.3f}) = {c:.3g}" for e, c in pairs[:: max(1, len(pairs) // 6)]) + ".\n")
    return md, figs


def backward(ctx: RunContext, cfg: C.Backward, res: BackwardResult, m: dict) -> tuple[str, list[Path]]:
    figs = []
    lams, delta = res.lams, cfg.deltas[-1]
    p = res.thetas[..., 0] * res.thetas[..., 1]
    if ctx.write_figures:
        figs.append(plots.panels(_fig(ctx, "fig5a"), [
            plots.Panel([plots.Curve(t / dl, x, f"delta = {dl:g}") for dl, (t, x) in res.cubic_curves.items()],
                        "printed cubic, roots (-2, 1, 2), theta_0 = r_2 + e^-delta", xlabel="t / delta",
                        ylabel="theta_1", hlines=list(cfg.roots_printed)),
            plots.Panel([plots.Curve(res.ts / delta, np.abs(p[:, i] - lams[i]) + 1e-18, f"lambda = {lams[i]:g}")
                         for i in range(len(lams))], "|theta_1 theta_2 - lambda|: ~0 before and after the step",
                        xlabel="t / delta", logy=True),
            plots.Panel([plots.Curve(lams, np.asarray(m["peak_error_rel"]) * lams, "peak", {"marker": "o"}),
                         plots.Curve(lams, np.abs(p[0] - lams) + 1e-18, "at t = 0", {"marker": "s"})],
                        "the loss spike: peak |theta_1 theta_2 - lambda| vs lambda", xlabel="lambda", logy=True)],
            suptitle="Fig. 5a: backward incremental learning (Delta > 0)"))
    peaks = [pk * lam for pk, lam in zip(m["peak_error_rel"], lams)]
    rows = ", ".join(f"lambda = {lam:g}: T = {t:.6f} (formula {f:.6f}), peak error {pk:.3g} lambda"
                     for lam, t, f, pk in zip(lams, m["step_times"], m["step_times_formula"], m["peak_error_rel"]))
    md = (f"**Fig. 5a** (d = {cfg.d:g}, K = {cfg.K:g}, theta_0 = r_2 + e^-delta; step times from the slope of "
          f"event-detected crossing times between delta = {cfg.deltas[0]:g} and {cfg.deltas[-1]:g}): {rows}. The "
          f"error is at most {m['error_at_t0_rel']:.2g} lambda at t = 0 and peaks during the transit: the finding "
          f"is a loss spike (peak |theta_1 theta_2 - lambda| from {min(peaks):.3g} to {max(peaks):.3g} over lambda, "
          f"{m['peak_error_rel'][0]:.3g} to {m['peak_error_rel'][-1]:.3g} times lambda). The printed cubic (-2, 1, 2) "
          f"is the FA flow (6) with "
          f"lambda = -35/27 shifted by 1/3 (its roots sum to 1, so they cannot be roots of (13) for lambda > 0): "
          f"step time {m['cubic_step_time']:.6f} vs 2/3. The Delta > 0 premise needs "
          f"K < -(3/2)(lambda^2/d)^(1/3) for every component; Appendix C.1 (2d = 1) prints about -(3/2) "
          f"lambda^(2/3), the exact one is {th.delta_threshold_K(0.5, 1.0):.4f} lambda^(2/3).\n")
    return md, figs


def orderings(ctx: RunContext, cfg: C.Backward, res: BackwardResult, m: dict) -> tuple[str, list[Path]]:
    lams, delta = res.lams, cfg.deltas[-1]
    figs = []
    if ctx.write_figures:
        figs.append(plots.panels(_fig(ctx, "fig5b"), [plots.Panel(
            [plots.Curve(res.ts / delta, res.thetas[:, i, 0], f"lambda = {lams[i]:g}") for i in range(len(lams))],
            f"Fig. 5b: theta_1(delta t), d = {cfg.d:g}, K = {cfg.K:g}, delta = {delta:g}\n(smaller lambda steps "
            "first)", xlabel="t / delta", ylabel="theta_1")]))
    md = (f"**Fig. 5b** (d = {cfg.d:g}, K = {cfg.K:g}, delta = {delta:g}): crossing times / delta "
          f"{', '.join(f'{t:.4f}' for t in m['crossings_over_delta'])} for lambda = "
          f"{', '.join(f'{x:g}' for x in lams)} (smaller lambda steps first); K = 0 vanishing times (theta_0 = "
          f"{cfg.k0_theta0:g}, d = {cfg.k0_d:g}) {', '.join(f'{t:.5f}' for t in m['k0_vanishing_times'])} (larger "
          f"lambda first). In the anti-regularised case each component fits its target at t = 0 (error at most "
          f"{m['error_at_t0_rel']:.2g} lambda).\n")
    return md, figs


def paper_numbers_backward(cfg: C.Backward, m: dict) -> list[PaperNumber]:
    return [PaperNumber("Fig. 5a step time / delta (roots -2, 1, 2)", "2/3 (about 0.667)", f"{m['cubic_step_time']:.6f}",
                        "Fig. 5a (printed delta = 10, 20, 30)", "ours: slope of the crossing time between delta = "
                        f"{cfg.cubic_deltas[-2]:g} and {cfg.cubic_deltas[-1]:g}"),
            *[PaperNumber(f"step time T, lambda = {lam:g}", f"2/((r3-r2)(r2-r1)) = {f:.6f}", f"{t:.6f}",
                          f"Thm 6/7, d = {cfg.d:g}, K = {cfg.K:g}", "the paper prints no lambda values for Fig. 5b")
              for lam, t, f in zip(cfg.lams, m["step_times"], m["step_times_formula"])]]


def paper_numbers_k0(cfg: C.Fig3, res: Fig3Result, ps: list[dict]) -> list[PaperNumber]:
    ref = th.k0_limit(cfg.d, cfg.lam)
    return [PaperNumber("theta_1 limit (2 d lambda)^(1/3)", f"{ref.theta1:.10f}", "within "
                        + span(ps, "k0_limit_error", ".2g"), "Thm 2 / Fig. 3, d = 2, lambda = 3"),
            PaperNumber("product limit theta_1 theta_2", 3.0, f"3 (error {span(ps, 'k0_limit_error', '.2g')})",
                        "Fig. 3, t = 5"),
            *[PaperNumber(f"vanishing time T_0(theta_0 = {x:g})", "eqs (16)-(17)", f"{t:.8f}", "Fig. 3 setting")
              for x, t in zip(cfg.vanish_starts, res.t_vanish)]]


def _ae_figure(ctx: RunContext, cfg: C.Autoencoder, res: Fig2Result) -> Path:
    pan = []
    for j, (name, logy) in enumerate([("trace norm ||Theta||_*", False), ("(1/n)||X - Theta X||_F^2", True),
                                      ("||Theta - A A^+||_F^2", True)]):
        cs = []
        for key, style in (("FA (3L)", {"color": "C0"}), ("FA (2L)", {"color": "C1"}),
                           ("GD (3L)", {"color": "C2", "ls": "--"}), ("GD (2L)", {"color": "C3", "ls": "--"})):
            run = res.scaled[key]
            v = run.metrics[:, :, j]
            mu, sd = v.mean(axis=1), v.std(axis=1)
            cs.append(plots.Curve(np.maximum(run.steps, 1), mu, key, style,
                                  band=(mu - 2 * sd, mu + 2 * sd) if key.startswith("FA") else None))
        pan.append(plots.Panel(cs, name, xlabel="iterations", logx=True, logy=logy))
    n_fa = res.scaled["FA (2L)"].metrics.shape[1]
    return plots.panels(_fig(ctx, "fig2"), pan, suptitle=(
        f"Fig. 2: linear autoencoder, d = {cfg.d}, k = {cfg.k}, eta = {cfg.eta}, {cfg.iterations} iterations; "
        f"||M||_2 = 1, tr Sigma = d; {n_fa} FA repetitions (mean +- 2 std) over {len(res.seeds)} data draws"))


def fig2(ctx: RunContext, cfg: C.Autoencoder, res: Fig2Result, ps: list[dict]) -> tuple[str, list[Path]]:
    from .measure import first_step

    figs = [_ae_figure(ctx, cfg, res)] if ctx.write_figures else []
    half = {k: np.median(first_step(v, 0.5)) for k, v in res.scaled.items()}
    full = {k: np.median(first_step(v, cfg.k - 0.5)) for k, v in res.scaled.items()}
    n_div = sum(sum(m["stated_fa_diverged"]) for m in ps)
    n_st = sum(len(m["stated_fa_diverged"]) for m in ps)
    div_steps = sorted({r.status for rs in res.stated["FA (2L)"] + res.stated["FA (3L)"] for r in rs})
    faster45 = sum(sum(m["fa_faster_at_4.5"]) for m in ps), sum(len(m["fa_faster_at_4.5"]) for m in ps)
    md = (f"**Fig. 2** (autoencoder, n = {cfg.n}, d = {cfg.d}, k = {cfg.k}, latent covariance "
          f"diag{cfg.latent_var} (main text; the appendix says I_5), eta = {cfg.eta}, {cfg.iterations} iterations). "
          f"**Stated setting** (M ~ U(0,1), data as sampled): {n_div} of {n_st} FA draws diverge "
          f"({'; '.join(div_steps)[:200]}), GD does not. Measured reasons: the top eigenvalue of Sigma_xx is "
          f"{span(ps, 'sigma_top_eigenvalue')} (seed {ctx.seeds[0]}: then {ps[0]['sigma_eigenvalues_top6'][1]:.3g}, "
          f"{ps[0]['sigma_eigenvalues_top6'][2]:.3g}, {ps[0]['sigma_eigenvalues_top6'][3]:.3g}, "
          f"{ps[0]['sigma_eigenvalues_top6'][4]:.3g}, then the noise level "
          f"{ps[0]['sigma_eigenvalues_top6'][5]:.2g}); its eigenvector is the all-ones direction (|cos| "
          f"{span(ps, 'top_eigvec_cos_ones')}), i.e. it comes from the non-negative entries of A, not from a mean (the "
          f"data are centred: largest coordinate mean {span(ps, 'largest_coordinate_mean', '.2g')}); and "
          f"||M||_2 = {span(ps, 'M_spectral_norm_mean')} for 20 x 20 U(0,1) feedback, which makes FA's first-layer "
          f"step about 10x GD's and confounds 'FA is faster'.\n\n"
          f"**Scaled setting** (the same eta = {cfg.eta} and horizon): each M scaled to ||M||_2 = 1 (FA's first-layer "
          f"step matched to GD's, whose W_2^T has norm 1 at a balanced optimum) and the data to tr Sigma = d (factor "
          f"{span(ps, 'data_scale')} on Sigma; for GD this equals a step eta times that factor). Median iterations to "
          f"trace norm 0.5: " + ", ".join(f"{k} {v:g}" for k, v in half.items()) + f"; to {cfg.k - 0.5}: "
          + ", ".join(f"{k} {v:g}" for k, v in full.items()) + f" (FA ahead of GD there on {faster45[0]} of "
          f"{faster45[1]} draws). 3-layer GD leaves the saddle (trace "
          f"norm 0.5) at iteration {span(ps, 'stated_gd3_start', '.6g')} in the stated setting (horizon "
          f"{cfg.gd3_steps}) and {span(ps, 'gd3_start', '.6g')} in the scaled one (inf: not within the horizon); "
          f"the paper's Fig. 2 shows it still at 0 after 1e5. Share of the rise spent on integer plateaus: 3-layer FA "
          f"{np.mean([v for m in ps for v in m['fa3_plateau_fraction']]):.2f}, 2-layer FA "
          f"{np.mean([v for m in ps for v in m['fa2_plateau_fraction']]):.2f}, 2-layer GD "
          f"{np.mean([m['gd2_plateau_fraction'] for m in ps]):.2f} (0.2 for a featureless rise).\n\n"
          f"**P1**: max relative difference between engine updates and eqs (3)/(8): "
          f"{span(ps, 'p1_max_rel_difference', '.2g')}. **Stationary points**: bottleneck FA limit error over the "
          f"global minimum {span(ps, 'bottleneck_error_over_global_min')}; h >= o limit error "
          f"{span(ps, 'wide_limit_error', '.2g')}.\n")
    return md, figs


def paper_numbers_ae(cfg: C.Autoencoder, res: Fig2Result, ps: list[dict]) -> list[PaperNumber]:
    final = {k: float(np.mean(v.metrics[-1, :, 0])) for k, v in res.scaled.items()}
    return [PaperNumber("final trace norm, 2- and 3-layer FA", f"about {cfg.k} (Fig. 2)",
                        f"{final['FA (2L)']:.4f}, {final['FA (3L)']:.4f}", f"Fig. 2, {cfg.iterations} iterations",
                        "scaled setting"),
            PaperNumber("final trace norm, 3-layer GD", "about 0 (Fig. 2)",
                        f"{float(np.mean(res.stated['GD (3L)'].metrics[-1, :, 0])):.3g} (stated), "
                        f"{final['GD (3L)']:.3g} (scaled)", f"Fig. 2, {cfg.gd3_steps} / {cfg.iterations} iterations"),
            PaperNumber("final trace norm, 2-layer GD", f"about {cfg.k} (Fig. 2)", f"{final['GD (2L)']:.4f}",
                        f"Fig. 2, {cfg.iterations} iterations"),
            PaperNumber("step size eta", cfg.eta, cfg.eta, "Sec. 6", "M and data rescaled (see Fig. 2 text)")]


def paper_numbers_deep(cfg: C.Fig4, ps: list[dict]) -> list[PaperNumber]:
    r, _ = th.deep_limit(cfg.lam, cfg.ds)
    return [PaperNumber("product limit theta_3 theta_2 theta_1", cfg.lam, f"1 (error {span(ps, 'deep_limit_error', '.2g')})",
                        "Fig. 4, t = 4"),
            PaperNumber("theta_1 limit (lambda/K)^(1/gamma)", f"{r:.10f}", "within " + span(ps, "deep_limit_error", ".2g"),
                        "Thm 5, d = (2, 2.5, 1)")]
