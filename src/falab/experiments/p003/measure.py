"""P003 measurements: typed run results -> one mapping of measured quantities per seed (no verdicts)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import theory as th
from . import configs as C
from .runs import BackwardResult, Fig1aResult, Fig1bResult, Fig1cResult, Fig3Result, Fig4Result


def monotone(p: np.ndarray, tol: float = 1e-12) -> bool:
    """True when the sampled sequence never moves against its overall direction by more than ``tol`` (relative)."""
    s = np.sign(p[-1] - p[0])
    return bool(np.all(s * np.diff(p) >= -tol * max(1.0, float(np.abs(p).max()))))


def order_violations(values: np.ndarray, increasing: bool) -> int:
    """How many consecutive pairs break the strict order (0: strictly ordered)."""
    dv = np.diff(np.asarray(values, dtype=float))
    return int(np.sum(~(dv > 0 if increasing else dv < 0)))


def _rel_drift(c: np.ndarray) -> float:
    return float(np.abs(c - c[0]).max() / max(1.0, float(np.abs(c[0]).max())))


def fig1a(res: Fig1aResult, cfg: C.Fig1a) -> list[dict[str, Any]]:
    d, lam, th_ = cfg.d, cfg.lam, res.thetas
    k_t = th_[:, :, 1] - th_[:, :, 0] ** 2 / (2 * d)
    scalar = float(np.max(np.abs(k_t - k_t[0]) / np.maximum(1.0, np.abs(k_t[0]))))
    lim_err = prod_err = 0.0
    n_three = 0
    card = 0.0
    for i, (a, b) in enumerate(res.starts):
        lim = th.flow_limit(a, b, d, lam)
        kk = th.invariant_K(a, b, d)
        roots = th.cubic_roots(d, kk, lam)
        n_three += roots.size == 3
        lim_err = max(lim_err, abs(th_[-1, i, 0] - lim.theta1), abs(th_[-1, i, 1] - lim.theta2))
        prod_err = max(prod_err, abs(th_[-1, i, 0] * th_[-1, i, 1] - lam))
        if roots.size == 1:
            card = max(card, abs(th.cardano_root(d, kk, lam) - lim.theta1))
    common = {"scalar_flow_drift": scalar, "limit_error": lim_err, "product_error": prod_err,
              "nonfinite_values": int((~np.isfinite(th_)).sum()), "starts_with_three_roots": int(n_three),
              "ending_on_lower_left": int(np.sum(th_[-1, :, 0] < 0)), "cardano_vs_root": card}
    return [common | {"matrix_flow_drift": _rel_drift(f), "matrix_modified_drift": _rel_drift(m),
                      "matrix_euler_drift": _rel_drift(e)}
            for f, m, e in zip(res.matrix_flow, res.matrix_modified, res.matrix_euler)]


def fig1b(res: Fig1bResult, cfg: C.Fig1b, n_seeds: int) -> list[dict[str, Any]]:
    out = []
    for s in range(n_seeds):
        zero = np.nonzero((res.seed_index == s) & (res.theta0 == 0.0))[0]
        out.append({"gd_velocity_at_origin": res.gd_velocity_at_origin,
                    "gd_max_abs_theta_from_0": float(np.abs(res.gd[:, zero, :]).max()),
                    "fa_product_error_from_0": float(np.abs(res.fa[-1, zero, 0] * res.fa[-1, zero, 1] - cfg.lam).max())})
    return out


def nonmonotone_products(res: Fig1cResult, cfg: C.Fig1c) -> np.ndarray:
    """Per start: does d(product)/dt = (lambda - p)(d theta_2 + theta_1^2) (exact along (6)) change sign beyond 1e-9?"""
    p = res.thetas[..., 0] * res.thetas[..., 1]
    dp = (cfg.lam - p) * (cfg.d * res.thetas[..., 1] + res.thetas[..., 0] ** 2)
    flags = []
    for i in range(p.shape[1]):
        sgn = np.sign(dp[:, i][np.abs(dp[:, i]) > 1e-9])
        flags.append(bool(np.any(sgn[1:] != sgn[:-1])))
    return np.array(flags)


def fig1c(res: Fig1cResult, cfg: C.Fig1c, n_seeds: int) -> list[dict[str, Any]]:
    flags = nonmonotone_products(res, cfg)
    p = res.thetas[..., 0] * res.thetas[..., 1]
    dips = np.where(flags, p[0] - p.min(axis=0), 0.0)
    return [{"nonmonotone": flags[res.seed_index == s].tolist(),
             "ending_on_lower_left": int(np.sum(res.thetas[-1, res.seed_index == s, 0] < 0)),
             "max_dip": float(dips[res.seed_index == s].max())} for s in range(n_seeds)]


def _k0_flow(res: Fig3Result, cfg: C.Fig3, members: np.ndarray) -> dict[str, Any]:
    ref = th.k0_limit(cfg.d, cfg.lam)
    th_, ts = res.thetas[:, members], res.ts
    p = th_[..., 0] * th_[..., 1]
    lim = float(max(np.abs(th_[-1, :, 0] - ref.theta1).max(), np.abs(th_[-1, :, 1] - ref.theta2).max(),
                    np.abs(p[-1] - cfg.lam).max()))
    t0 = res.theta0[members]
    slopes = [th.fit_log_slope(ts, p[:, i] - cfg.lam) for i in range(len(t0)) if t0[i] != ref.theta1]
    j = int(np.searchsorted(ts, 0.1))
    implicit = max(abs(float(th.k0_time(t0[i], th_[j, i, 0], cfg.d, cfg.lam)) - ts[j]) for i in range(len(t0))
                   if abs(th_[j, i, 0] - ref.theta1) > 1e-3)
    return {"k0_limit_error": lim, "k0_rate_rel_error": float(max(abs(s / ref.rate - 1.0) for s in slopes)),
            "k0_nonmonotone_runs": int(sum(not monotone(p[:, i]) for i in range(len(t0)))),
            "k0_implicit_solution_error": float(implicit), "k0_fitted_rates": [round(s, 5) for s in slopes]}


def _euler(res: Fig3Result, cfg: C.Fig3) -> dict[str, Any]:
    d, lam = cfg.d, cfg.lam
    rows = {}
    for eta, x in res.euler.items():
        s_t = np.concatenate([[0.0], np.cumsum(np.diff(x[:, 0]) ** 2)])
        err = np.abs(x[:, 0] * x[:, 1] - lam)
        rows[eta] = {"identity": float(np.abs(x[:, 1] - (x[:, 0] ** 2 - s_t) / (2 * d)).max()),
                     "product_error": float(err[-1]), "q": math.exp(-th.fit_log_slope(np.arange(len(err)), err,
                                                                                      1e-12, 1e-4)),
                     "x_inf": float(x[-1, 0]), "S_inf": float(s_t[-1]),
                     "x_inf_from_S": th.euler_limit_point(float(s_t[-1]), d, lam)}
    return {"euler_identity": max(r["identity"] for r in rows.values()),
            "euler_product_error": max(r["product_error"] for r in rows.values()),
            "euler_q_max": max(r["q"] for r in rows.values()), "euler_per_eta": rows}


def _modified(res: Fig3Result, cfg: C.Fig3) -> dict[str, Any]:
    d, lam = cfg.d, cfg.lam
    r2 = th.k0_root(d, lam) ** 2
    inv = corrected = q_rel = 0.0
    printed = -math.inf
    decreasing = 0
    for eta, x in res.modified.items():
        tt = np.arange(len(x))
        err = np.abs(x[:, 0] * x[:, 1] - lam)
        inv = max(inv, float(np.abs(x[:, 1] - x[:, 0] ** 2 / (2 * d)).max()))
        corrected = max(corrected, float(np.max(err - th.modified_bound(tt, eta, d, lam))))
        printed = max(printed, float(np.max(err - 3 * lam * np.abs(1 - 1.5 * eta * r2) ** tt)))
        decreasing += int(np.sum(np.diff(x[:, 0]) < 0))
        q = math.exp(-th.fit_log_slope(tt, err, 1e-12, 1e-4))
        q_rel = max(q_rel, abs(q / th.modified_asymptotic_factor(eta, d, lam) - 1))
    one = res.one_step
    return {"modified_invariant": inv, "corrected_bound_violation": corrected, "printed_bound_violation": printed,
            "modified_decreasing_steps": decreasing, "asymptotic_rate_rel_error": q_rel,
            "one_step_error": float(abs(one[1, 0] * one[1, 1] - lam))}


def fig3(res: Fig3Result, cfg: C.Fig3, n_seeds: int) -> list[dict[str, Any]]:
    t_formula = np.array([th.vanishing_time(x, cfg.d, cfg.lam) for x in cfg.vanish_starts])
    common = {"vanish_error": float(np.max(np.abs(res.t_vanish - t_formula))),
              "vanish_order_violations": order_violations(res.t_vanish_by_lambda, increasing=False),
              "T0_minus_limit": float(res.t_vanish[-1] - th.vanishing_time_limit(cfg.d, cfg.lam)),
              **_euler(res, cfg), **_modified(res, cfg)}
    return [_k0_flow(res, cfg, np.nonzero(res.seed_index == s)[0]) | common for s in range(n_seeds)]


def _c_needed(x: np.ndarray, eta: float, cfg: C.Fig4) -> tuple[float, float, float]:
    """For one modified-scheme run: the constant C needed for |p_t - lambda| <= C q^t with the printed q, the fitted
    factor and the printed one (errors below 1e-12 are rounding and are left out)."""
    tt = np.arange(len(x))
    err = np.abs(x.prod(-1) - cfg.lam)
    q_paper = th.deep_modified_rate(eta, cfg.lam, cfg.ds)
    ok = err >= 1e-12
    c = float(np.exp(np.max(np.log(err[ok]) - tt[ok] * math.log(q_paper))))
    return c, math.exp(-th.fit_log_slope(tt, err, 1e-12, 1e-4)), q_paper


def fig4(res: Fig4Result, cfg: C.Fig4, n_seeds: int) -> list[dict[str, Any]]:
    dc = th.deep_constants(cfg.ds)
    r, rate = th.deep_limit(cfg.lam, cfg.ds)
    out = []
    for s in range(n_seeds):
        m = np.nonzero(res.seed_index == s)[0]
        x, t0 = res.thetas[:, m], res.theta0[m]
        p = x.prod(axis=-1)
        inv = max(float(np.abs(x[..., l] - dc.c[l] * x[..., 0] ** (2 ** l)).max() / max(1.0, np.abs(x[..., l]).max()))
                  for l in range(len(cfg.ds)))
        slopes = [th.fit_log_slope(res.ts, p[:, i] - cfg.lam) for i in range(len(t0)) if abs(t0[i] - r) > 1e-3]
        row = {"deep_invariant_error": inv,
               "deep_limit_error": float(max(np.abs(x[-1, :, 0] - r).max(), np.abs(p[-1] - cfg.lam).max())),
               "deep_nonmonotone_runs": int(sum(not monotone(p[:, i]) for i in range(len(t0)))),
               "deep_rate_rel_error": float(max(abs(v / rate - 1) for v in slopes))}
        cs, rel, inv_d, lim_d = [], [], 0.0, 0.0
        for eta, y in zip(res.etas[s], res.modified[s]):
            c, q, q_paper = _c_needed(y, float(eta), cfg)
            cs.append(c)
            rel.append(abs((1 - q) / (1 - q_paper) - 1))
            inv_d = max(inv_d, max(float(np.abs(y[:, l] - dc.c[l] * y[:, 0] ** (2 ** l)).max())
                                   for l in range(len(cfg.ds))))
            lim_d = max(lim_d, float(abs(y[-1, 0] - r)))
        out.append(row | {"modified_invariant": inv_d, "modified_limit_error": lim_d,
                          "modified_rate_rel_error": float(max(rel)), "eta": res.etas[s].tolist(), "C_needed": cs})
    return out


def backward(res: BackwardResult, cfg: C.Backward) -> dict[str, Any]:
    """Fig. 5a/5b: step times (slope of crossing times in delta), orderings and the error before/at the transit."""
    t_pred = np.array([th.backward_step_time(cfg.d, cfg.K, lam) for lam in res.lams])
    d1, d2 = cfg.deltas[0], cfg.deltas[-1]
    t_meas = (res.crossings[d2] - res.crossings[d1]) / (d2 - d1)
    c1, c2 = cfg.cubic_deltas[-2], cfg.cubic_deltas[-1]
    cubic = (res.cubic_crossings[c2] - res.cubic_crossings[c1]) / (c2 - c1)
    p = res.thetas[..., 0] * res.thetas[..., 1]
    err0 = np.abs(p[0] - res.lams) / res.lams
    peak = np.abs(p - res.lams).max(axis=0) / res.lams
    return {"step_time_rel_error": float(np.max(np.abs(t_meas / t_pred - 1))),
            "step_order_violations": order_violations(t_meas, increasing=True),
            "printed_cubic_rel_error": float(abs(cubic / th.factored_cubic_step_time(*cfg.roots_printed) - 1)),
            "error_at_t0_rel": float(err0.max()), "peak_error_rel_min": float(peak.min()),
            "peak_over_t0_error_min": float((peak / np.maximum(err0, 1e-300)).min()),
            "step_times": t_meas.tolist(), "step_times_formula": t_pred.tolist(), "peak_error_rel": peak.tolist(),
            "cubic_step_time": float(cubic), "crossings_over_delta": (res.crossings[d2] / d2).tolist(),
            "k0_order_violations": order_violations(res.k0_vanish, increasing=False),
            "k0_vanishing_times": res.k0_vanish.tolist()}


def first_step(run, level: float) -> np.ndarray:
    """Per member: the first recorded step where the trace norm reaches ``level`` (inf if never or diverged)."""
    tn = run.metrics[:, :, 0]
    out = np.full(tn.shape[1], np.inf)
    for i in range(tn.shape[1]):
        idx = np.nonzero(tn[:, i] >= level)[0]
        if idx.size and run.status == "ok":
            out[i] = float(run.steps[idx[0]])
    return out


def plateau_fraction(run, k: int) -> np.ndarray:
    """Per member: the share of the (log-spaced) records during the rise (trace norm in [0.5, k - 0.5]) that lie within
    0.1 of an integer. A staircase gives values near 1; a rise at constant speed in log-time gives 0.2."""
    tn = run.metrics[:, :, 0]
    out = []
    for i in range(tn.shape[1]):
        rise = (tn[:, i] >= 0.5) & (tn[:, i] <= k - 0.5)
        near = np.abs(tn[:, i] - np.round(tn[:, i])) <= 0.1
        out.append(float((rise & near).sum() / rise.sum()) if rise.sum() else float("nan"))
    return np.array(out)


def _stated_faster(res, s: int, n_layers: int) -> list[bool]:
    gd = first_step(res.stated[f"GD ({n_layers}L)"], 0.5)[s]
    return [bool(first_step(r, 0.5)[0] < gd) for r in res.stated[f"FA ({n_layers}L)"][s]]


def fig2(res, cfg: C.Autoencoder) -> list[dict[str, Any]]:
    reps = res.reps
    t_half = {k: first_step(v, 0.5) for k, v in res.scaled.items()}
    plateau = {k: plateau_fraction(v, cfg.k) for k, v in res.scaled.items()}
    out = []
    for s, data in enumerate(res.seeds):
        fa = slice(s * reps, (s + 1) * reps)
        faster = [bool(t < t_half[f"GD ({L}L)"][s]) for L in (2, 3) for t in t_half[f"FA ({L}L)"][fa]]
        ev = torch_eigs(data.sigma)
        stat = res.stationary[s]
        bott, wide = stat["h=2"], stat["h=4"]
        out.append({
            "p1_max_rel_difference": max(res.p1[s].values()), "p1": res.p1[s],
            "bottleneck_error_over_global_min": min(bott["fa_error"]) / bott["global_min"],
            "bottleneck_velocity": bott["velocity"], "wide_velocity": wide["velocity"],
            "wide_limit_error": max(wide["fa_error"]),
            "stated_fa_faster": _stated_faster(res, s, 2) + _stated_faster(res, s, 3),
            "stated_fa_diverged": [r.status != "ok" for L in (2, 3) for r in res.stated[f"FA ({L}L)"][s]],
            "fa_faster": faster,
            "fa_faster_at_4.5": [bool(t < first_step(res.scaled[f"GD ({L}L)"], cfg.k - 0.5)[s])
                                 for L in (2, 3) for t in first_step(res.scaled[f"FA ({L}L)"], cfg.k - 0.5)[fa]],
            "gd3_final_trace_norm": float(res.scaled["GD (3L)"].metrics[-1, s, 0]),
            "stated_gd3_final_trace_norm": float(res.stated["GD (3L)"].metrics[-1, s, 0]),
            "stated_gd3_start": float(first_step(res.stated["GD (3L)"], 0.5)[s]),
            "gd3_start": float(t_half["GD (3L)"][s]),
            "fa3_plateau_fraction": [float(v) for v in plateau["FA (3L)"][fa] if np.isfinite(v)],
            "fa2_plateau_fraction": [float(v) for v in plateau["FA (2L)"][fa] if np.isfinite(v)],
            "gd2_plateau_fraction": float(plateau["GD (2L)"][s]),
            "sigma_top_eigenvalue": float(ev[0]), "sigma_eigenvalues_top6": ev[:6].tolist(),
            "largest_coordinate_mean": float(data.x.mean(0).abs().max()),
            "top_eigvec_cos_ones": top_cos_ones(data.sigma),
            "M_spectral_norm_mean": float(np.mean([np.linalg.norm(m, 2) for m in data.m2.numpy()])),
            "data_scale": res.data_scale[s],
            "status": {k: v.status for k, v in res.scaled.items()}})
    return out


def torch_eigs(sigma) -> np.ndarray:
    return np.linalg.eigvalsh(sigma.numpy())[::-1].copy()


def top_cos_ones(sigma) -> float:
    """|cos| between the top eigenvector of Sigma and the all-ones direction (the mean direction of A's columns)."""
    _, v = np.linalg.eigh(sigma.numpy())
    u = v[:, -1]
    return float(abs(u.sum()) / (np.linalg.norm(u) * math.sqrt(len(u))))


def orderings(res: BackwardResult, cfg: C.Backward) -> dict[str, Any]:
    """Fig. 5b: the order of the anti-regularised steps (crossing times / delta at one delta), the order of the K = 0
    vanishing times, and the error at t = 0 and during the transit."""
    delta = cfg.deltas[-1]
    p = res.thetas[..., 0] * res.thetas[..., 1]
    err0 = np.abs(p[0] - res.lams) / res.lams
    peak = np.abs(p - res.lams).max(axis=0) / res.lams
    return {"anti_order_violations": order_violations(res.crossings[delta], increasing=True),
            "k0_order_violations": order_violations(res.k0_vanish, increasing=False),
            "error_at_t0_rel": float(err0.max()), "peak_over_t0_error_min": float((peak / np.maximum(err0, 1e-300)).min()),
            "crossings_over_delta": (res.crossings[delta] / delta).tolist(), "k0_vanishing_times": res.k0_vanish.tolist()}
