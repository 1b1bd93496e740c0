"""Simulations of falab's own experiments: network flows of FA/DFA/uSF/GD on diagonal nets (one ensemble per rule,
all seeds and members stacked, per-member data and feedback) and the predictor of :mod:`falab.theory._fa_tensor`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ... import theory as ft
from ...dynamics import Problem, simulate_flow
from ...functional import AbstractLoss, ExponentialLoss, SquaredLoss
from ...models import DiagonalNet
from ...rules import (
    AbstractLearningRule,
    Backprop,
    DirectFeedbackAlignment,
    FeedbackAlignment,
    UniformSignFeedback,
)
from .configs import AtlasConfig, ClassificationConfig, PhaseConfig

RULES = ("gd", "fa", "fa3", "dfa3", "usf")
RULE_LABELS = {"gd": "GD (2 layers)", "fa": "FA (2 layers)", "fa3": "FA (3 layers)", "dfa3": "DFA (3 layers)",
               "usf": "uSF (2 layers)"}
LAWS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "gaussian": lambda g, d: g.standard_normal(d),
    "uniform": lambda g, d: g.uniform(-1.0, 1.0, d),
    "rademacher": lambda g, d: g.choice([-1.0, 1.0], d),
    "gaussian x3": lambda g, d: 3.0 * g.standard_normal(d),
}


@dataclass
class Member:
    """One network: its rule, data, initial layers ``w0 (L, d)``, feedback vectors and the predicted limit's map."""

    rule: str
    seed: int
    x: np.ndarray
    y: np.ndarray
    w0: np.ndarray
    feedback: list[np.ndarray]
    pmap: ft.CoordinateMap
    tags: dict[str, object] = field(default_factory=dict)


def rule_and_depth(rule: str) -> tuple[AbstractLearningRule, int]:
    return {"gd": (Backprop(), 2), "fa": (FeedbackAlignment(), 2), "fa3": (FeedbackAlignment(), 3),
            "dfa3": (DirectFeedbackAlignment(), 3), "usf": (FeedbackAlignment(UniformSignFeedback(scale=1.0)), 2)}[rule]


def coordinate_map(rule: str, w0: np.ndarray, feedback: Sequence[np.ndarray]) -> ft.CoordinateMap:
    """The map ``beta = P(z)`` of each rule (theory), from its initial layers and feedback vectors."""
    if rule == "gd":
        return ft.GradientMap(w0[0], w0[1])
    if rule in ("fa", "fa3"):
        return ft.diagonal_map(ft.fa_products(feedback), w0)
    if rule == "dfa3":
        return ft.diagonal_map(ft.dfa_products(feedback), w0)
    if rule == "usf":
        return ft.SignSymmetryMap(np.abs(w0[0]), np.ones(w0.shape[1]))
    raise ValueError(f"Invalid rule: {rule!r} (expected one of {', '.join(RULES)})")


def make_member(rule: str, seed: int, x: np.ndarray, y: np.ndarray, w0: np.ndarray, feedback: list[np.ndarray],
                **tags: object) -> Member:
    return Member(rule, seed, x, y, w0, feedback, coordinate_map(rule, w0, feedback), dict(tags))


def flow_members(members: Sequence[Member], t_end: float, rtol: float, tighten: float = 1.0,
                 n_records: int = 5, loss: AbstractLoss | None = None,
                 times: Sequence[float] | None = None) -> dict[str, np.ndarray]:
    """Integrate the members of one rule as one ensemble flow (loss 0.5 ||X beta - y||^2 per member unless ``loss``
    is given, e.g. the exponential loss with labels ``y``).

    Returns the final ``beta (K, d)``, the layers ``(T, K, L, d)`` at ``n_records`` times (or at ``times``), and
    ``betas (T, K, d)``."""
    rule_name = members[0].rule
    rule, depth = rule_and_depth(rule_name)
    d = members[0].w0.shape[1]
    net = DiagonalNet(d, depth)
    x = torch.tensor(np.stack([m.x for m in members]))
    y = torch.tensor(np.stack([m.y for m in members]))[..., None]
    params = {f"v{l + 1}": torch.tensor(np.stack([m.w0[l] for m in members])) for l in range(depth)}
    if rule_name in ("fa", "fa3"):
        state = net.structured_feedback("fa", [torch.tensor(np.stack([m.feedback[j] for m in members]))
                                               for j in range(depth - 1)])
    elif rule_name == "dfa3":
        state = net.structured_feedback("dfa", [torch.tensor(np.stack([m.feedback[j] for m in members]))
                                                for j in range(depth - 1)])
    elif rule_name == "usf":
        state = {"B2": torch.ones(len(members), 1, 1, dtype=torch.float64)}
    else:
        state = {}
    problem = Problem(net, rule, SquaredLoss("sum") if loss is None else loss, x, y, state)
    ts = list(np.linspace(0.0, t_end, n_records)) if times is None else [float(t) for t in times]
    traj = simulate_flow(problem, params, ts, rtol=rtol * tighten, atol=rtol * tighten * 1e-2)
    if traj.status != "ok" or len(traj.times) < len(ts):
        raise RuntimeError(f"{rule_name} flow stopped: {traj.status} {traj.message}")
    layers = np.stack([np.stack([p[f"v{l + 1}"].numpy() for l in range(depth)], axis=1) for p in traj.params])
    return {"beta": net.beta(traj.final).numpy(), "layers": layers,
            "betas": np.stack([net.beta(p).numpy() for p in traj.params])}


# ----------------------------------------------------------------------------------------------------------------------
# The atlas: flows against the predictor on small instances, and the predictor over a grid


def _instance(rng: np.random.Generator, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((n, d))
    x *= 1.5 / np.linalg.norm(x, axis=1, keepdims=True)
    return x, rng.standard_normal(n)


def atlas_members(seeds: Sequence[int], cfg: AtlasConfig) -> dict[str, list[Member]]:
    """Per rule, the flow members of every seed: two-layer FA over feedback laws x initial scales (and, at zero init,
    the same feedback with random sign flips); depth-3 DFA from zero; uSF and GD from the largest scale (they cannot
    start at 0)."""
    out: dict[str, list[Member]] = {r: [] for r in ("fa", "dfa3", "usf", "gd")}
    d = cfg.d
    a_max = max(cfg.alphas)
    for seed in seeds:
        rng = np.random.default_rng([16, seed])
        x, y = _instance(rng, cfg.n, d)
        for law in cfg.laws:
            b = LAWS[law](rng, d)
            ubar, vbar = rng.standard_normal(d), rng.standard_normal(d)
            for a in cfg.alphas:
                out["fa"].append(make_member("fa", seed, x, y, np.vstack([a * ubar, a * vbar]), [b], law=law, alpha=a))
                if a == 0.0:
                    flip = b * rng.choice([-1.0, 1.0], d)
                    out["fa"].append(make_member("fa", seed, x, y, np.zeros((2, d)), [flip], law=law, alpha=a,
                                                 flipped=True))
        out["dfa3"].append(make_member("dfa3", seed, x, y, np.zeros((3, d)),
                                       [rng.standard_normal(d), rng.standard_normal(d)], alpha=0.0))
        ubar, vbar = rng.standard_normal(d), rng.standard_normal(d)
        out["usf"].append(make_member("usf", seed, x, y, np.vstack([a_max * ubar, np.zeros(d)]), [], alpha=a_max))
        out["gd"].append(make_member("gd", seed, x, y, np.vstack([a_max * ubar, a_max * vbar]), [], alpha=a_max))
    return out


def predicted(members: Sequence[Member]) -> list[ft.TensorLimit]:
    return [ft.predict_limit(m.x, m.y, m.pmap) for m in members]


def weighted_l43_primal(x: np.ndarray, y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``argmin sum_i |b_i|^{-2/3} |beta_i|^{4/3}`` s.t. ``X beta = y`` by scipy's SLSQP on the primal, started at
    min-l2: a route independent of the dual Newton solver (its accuracy is SLSQP's, ~1e-7)."""
    from scipy import optimize

    w = ft.fa_lp_weights(b)
    beta0 = np.linalg.pinv(x) @ y
    scale = max(float(np.abs(beta0).max()), 1e-12)

    def fun(u):
        return float(np.sum(w * np.abs(u * scale) ** (4 / 3)))

    def jac(u):
        bb = u * scale
        return scale * (4 / 3) * w * np.sign(bb) * np.abs(bb) ** (1 / 3)

    res = optimize.minimize(fun, beta0 / scale, jac=jac, method="SLSQP",
                            constraints=[{"type": "eq", "fun": lambda u: x @ (u * scale) - y,
                                          "jac": lambda u: x * scale}],
                            options={"ftol": 1e-16, "maxiter": 2000})
    return np.asarray(res.x) * scale


def atlas_grid(seeds: Sequence[int], cfg: AtlasConfig) -> dict[int, dict[str, dict[float, list[dict[str, float]]]]]:
    """Predictor-only atlas (cheap): per seed, per rule and initial scale, the distances of the predicted limit to
    min-l1, min-l2 and the rule's small-init l_q interpolator over ``grid_instances`` random instances."""
    out: dict[int, dict[str, dict[float, list[dict[str, float]]]]] = {}
    d, n = 2 * cfg.d, cfg.n + cfg.d // 2
    for seed in seeds:
        rng = np.random.default_rng([16, 1, seed])
        res: dict[str, dict[float, list[dict[str, float]]]] = {r: {a: [] for a in cfg.grid_alphas}
                                                                 for r in ("gd", "fa", "dfa3")}
        for _ in range(cfg.grid_instances):
            x, y = _instance(rng, n, d)
            ref = ft.reference_interpolators(x, y)
            b = rng.standard_normal(d)
            fb3 = [rng.standard_normal(d), rng.standard_normal(d)]
            ubar, vbar = rng.standard_normal(d), rng.standard_normal(d)
            wbar = rng.standard_normal((3, d))
            lq2 = ft.predict_limit(x, y, ft.small_init_map(ft.fa_products([b]))).beta
            lq3 = ft.predict_limit(x, y, ft.small_init_map(ft.dfa_products(fb3))).beta
            for a in cfg.grid_alphas:
                maps = {"gd": (ft.GradientMap(a * np.ones(d), np.zeros(d)), None),
                        "fa": (ft.diagonal_map(ft.fa_products([b]), np.vstack([a * ubar, a * vbar])), lq2),
                        "dfa3": (ft.diagonal_map(ft.dfa_products(fb3), a * wbar), lq3)}
                for r, (pm, lq) in maps.items():
                    try:
                        beta = ft.predict_limit(x, y, pm).beta
                    except Exception:  # a non-convex dual whose reduced flow does not settle: no point
                        continue
                    row = {"l1": ft.relative_error(beta, ref["l1"]), "l2": ft.relative_error(beta, ref["l2"])}
                    if lq is not None:
                        row["lq"] = ft.relative_error(beta, lq)
                    res[r][a].append(row)
        out[seed] = res
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Sparse recovery


PHASE_RULES = ("gd", "fa", "usf", "dfa3")


def phase_members(seed: int, n: int, cfg: PhaseConfig) -> list[tuple[np.ndarray, np.ndarray, dict[str, Member]]]:
    """``per_seed`` instances (teacher, support, one member per rule) at sample size ``n``: GD from
    ``u = alpha 1, v = 0`` (the unbiased small init, hyperbolic entropy -> l1), uSF from the same, FA (Gaussian
    feedback) and depth-3 DFA from exactly zero (they learn from there)."""
    rng = np.random.default_rng([16, 2, seed, n])
    d, a = cfg.d, cfg.alpha
    out = []
    for _ in range(cfg.per_seed):
        support = np.sort(rng.choice(d, cfg.k, replace=False))
        teacher = np.zeros(d)
        teacher[support] = rng.standard_normal(cfg.k)
        x = rng.standard_normal((n, d)) / np.sqrt(n)
        y = x @ teacher
        init2 = np.vstack([a * np.ones(d), np.zeros(d)])
        mem = {"gd": make_member("gd", seed, x, y, init2, []),
               "usf": make_member("usf", seed, x, y, init2, []),
               "fa": make_member("fa", seed, x, y, np.zeros((2, d)), [rng.standard_normal(d)]),
               "dfa3": make_member("dfa3", seed, x, y, np.zeros((3, d)),
                                   [rng.standard_normal(d), rng.standard_normal(d)])}
        out.append((teacher, support, mem))
    return out


def run_phase(seeds: Sequence[int], cfg: PhaseConfig) -> dict[int, dict[int, dict[str, dict[str, list[bool]]]]]:
    """Per seed, n and rule: exact recovery (relative error <= tol) and support recovery of every instance, from the
    predicted limits (verified against the network flows in the atlas experiment), all instances of one (seed, n,
    rule) solved as one batch."""
    out: dict[int, dict[int, dict[str, dict[str, list[bool]]]]] = {}
    for seed in seeds:
        out[seed] = {}
        for n in cfg.ns:
            inst = phase_members(seed, n, cfg)
            res: dict[str, dict[str, list[bool]]] = {}
            for r in PHASE_RULES:
                ms = [mem[r] for _, _, mem in inst]
                betas = ft.predict_limits(np.stack([mm.x for mm in ms]), np.stack([mm.y for mm in ms]),
                                          ft.concat_maps([mm.pmap for mm in ms]))
                res[r] = {"exact": [ft.relative_error(bt, t) <= cfg.recovery_tol for bt, (t, _, _) in zip(betas, inst)],
                          "support": [ft.support_recovered(bt, sp) for bt, (_, sp, _) in zip(betas, inst)]}
            out[seed][n] = res
    return out


# ----------------------------------------------------------------------------------------------------------------------
# The convolutional case (even data: a diagonal net in the real Fourier basis)


def _even(v: np.ndarray) -> np.ndarray:
    return v + np.roll(v[..., ::-1], 1, axis=-1)


def conv_flows(seeds: Sequence[int], d: int, n: int, t_end: float, rtol: float, tighten: float = 1.0
               ) -> list[dict[str, np.ndarray]]:
    """Two-layer FA from zero on ``CircularConvNet(d)`` with even data and even read-out feedback, one member per
    seed in one ensemble flow; returns per seed the flow's beta, the predicted beta and beta_hat, and min DFT-l1."""
    from ...models import CircularConvNet

    xs, ys, bs = [], [], []
    for seed in seeds:
        rng = np.random.default_rng([16, 3, seed])
        x = _even(rng.standard_normal((n, d)))
        xs.append(1.5 * x / np.linalg.norm(x, axis=1, keepdims=True))
        ys.append(rng.standard_normal(n))
        bs.append(_even(rng.standard_normal(d)))
    net = CircularConvNet(d)
    k = len(seeds)
    state = net.structured_feedback("fa", [torch.tensor(np.stack(bs))])
    problem = Problem(net, FeedbackAlignment(), SquaredLoss("sum"), torch.tensor(np.stack(xs)),
                      torch.tensor(np.stack(ys))[..., None], state)
    params = {"v1": torch.zeros(k, d, dtype=torch.float64), "v2": torch.zeros(k, d, dtype=torch.float64)}
    traj = simulate_flow(problem, params, [0.0, t_end], rtol=rtol * tighten, atol=rtol * tighten * 1e-2)
    if traj.status != "ok" or len(traj.times) < 2:
        raise RuntimeError(f"conv flow stopped: {traj.status} {traj.message}")
    beta = net.beta(traj.final).numpy()
    out = []
    for i in range(k):
        pred, pred_hat = ft.conv_fa_limit(xs[i], ys[i], bs[i])
        out.append({"flow": beta[i], "pred": pred, "pred_hat": pred_hat, "b": bs[i], "x": xs[i], "y": ys[i],
                    "dft_l1": ft.min_dft_l1_interpolator(xs[i], ys[i])})
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Classification: the direction of beta(t) under the exponential loss (separable data)


def cls_instances(seed: int, cfg: ClassificationConfig) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``per_seed`` separable instances ``(x, labels, b)``: Gaussian rows of norm 1.5, random labels (n < d: separable
    almost surely), Gaussian FA feedback ``b``."""
    rng = np.random.default_rng([16, 4, seed])
    out = []
    for _ in range(cfg.per_seed):
        x, _ = _instance(rng, cfg.n, cfg.d)
        out.append((x, rng.choice([-1.0, 1.0], cfg.n), rng.standard_normal(cfg.d)))
    return out


def cls_flows(seeds: Sequence[int], cfg: ClassificationConfig, tighten: float = 1.0) -> dict[int, list[dict]]:
    """Per seed and instance: the angles of two-layer FA's beta(t) (from zero) and GD's (from ``u = alpha, v = 0``)
    to the weighted-l_{4/3} (:func:`falab.theory.fa_max_margin`), min-l1 and min-l2 max-margin directions at every
    recorded decade, and the mirror-flow residual of FA: the distance of grad Phi(beta(t)) = (2 beta / b^2)^{1/3}
    from range(X^T) (0 for the exact reduction). One ensemble flow per rule over every seed and instance."""
    inst = [(s, *it) for s in seeds for it in cls_instances(s, cfg)]
    d = cfg.d
    fa = [make_member("fa", s, x, y, np.zeros((2, d)), [b]) for s, x, y, b in inst]
    gd = [make_member("gd", s, x, y, np.vstack([cfg.gd_alpha * np.ones(d), np.zeros(d)]), []) for s, x, y, _ in inst]
    times = [0.0, *np.geomspace(1.0, cfg.horizon, int(round(np.log10(cfg.horizon))) + 1)]
    loss = ExponentialLoss("sum")
    flows = {r: flow_members(ms, cfg.horizon, cfg.rtol, tighten, loss=loss, times=times)["betas"]
             for r, ms in (("fa", fa), ("gd", gd)) if r == "fa" or cfg.with_gd}
    out: dict[int, list[dict]] = {s: [] for s in seeds}
    ts = np.asarray(times)
    rec = ts >= 1.0
    for j, (s, x, y, b) in enumerate(inst):
        pred = ft.fa_max_margin(x, y, b)
        refs = {"l43": pred.beta, "l1": ft.max_margin_l1(x, y), "l2": ft.max_margin_l2(x, y)}
        row: dict = {"times": ts[rec], "active": int(pred.active.sum()), "pred_kkt": pred.kkt,
                     "pred_margin": float(np.min(y * (x @ pred.beta)))}
        for r in flows:
            row[r] = {k: np.array([ft.angle(bt, ref) for bt in flows[r][rec, j]]) for k, ref in refs.items()}
        grads = np.cbrt(2.0 * flows["fa"][rec, j] / b**2)  # (T, d): z(t) = u(t)/b along the exact reduction
        coef = np.linalg.lstsq(x.T, grads.T, rcond=None)[0]
        resid = np.linalg.norm(grads.T - x.T @ coef, axis=0) / np.maximum(np.linalg.norm(grads, axis=1), 1e-300)
        row["mirror_resid"] = float(resid.max())
        out[s].append(row)
    if cfg.extra_per_seed:
        _cls_extras(cfg, inst, times, tighten, out)
    return out


def _cls_extras(cfg: ClassificationConfig, inst: list, times: list[float], tighten: float,
                out: dict[int, list[dict]]) -> None:
    """Measured, not claimed: two-layer FA from a finite scale (``u0, v0 = extra_alpha`` times Gaussians; P neither
    homogeneous nor always monotone, leading term b^2 z^3 / 2) against the zero-init weighted-l_{4/3} direction, and
    depth-3 DFA from zero against its own homogeneous (degree 8/7) max-margin direction, on the first
    ``extra_per_seed`` instances of every seed; adds ``row['fa_scaled']`` and ``row['dfa3']``."""
    d = cfg.d
    picked = [j for j in range(len(inst)) if j % cfg.per_seed < cfg.extra_per_seed]  # inst is seed-major
    draws = {j: np.random.default_rng([16, 5, inst[j][0], j]).standard_normal((4, d)) for j in picked}
    fa = [make_member("fa", inst[j][0], inst[j][1], inst[j][2], cfg.extra_alpha * draws[j][:2], [inst[j][3]])
          for j in picked]
    dfa = [make_member("dfa3", inst[j][0], inst[j][1], inst[j][2], np.zeros((3, d)), [draws[j][2], draws[j][3]])
           for j in picked]
    loss = ExponentialLoss("sum")
    ts = np.asarray(times)
    rec = ts >= 1.0
    for key, ms in (("fa_scaled", fa), ("dfa3", dfa)):
        betas = flow_members(ms, cfg.horizon, cfg.rtol, tighten, loss=loss, times=times)["betas"]
        for k, (j, m) in enumerate(zip(picked, ms)):
            s, x, y, b = inst[j]
            own = (ft.fa_max_margin(x, y, b) if key == "fa_scaled"
                   else ft.max_margin_point(x, y, ft.small_init_map(ft.dfa_products(m.feedback))))
            refs = {"pred": own.beta, "l1": ft.max_margin_l1(x, y), "l2": ft.max_margin_l2(x, y)}
            row = out[s][j % cfg.per_seed]
            row[key] = {q: np.array([ft.angle(bt, ref) for bt in betas[rec, k]]) for q, ref in refs.items()}
