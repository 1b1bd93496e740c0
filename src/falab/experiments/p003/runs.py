"""P003 simulations: each returns a typed result (trajectories and solver outputs). No verdicts, no I/O, no caches.

Every random draw comes from the seeds passed in; the draws of all seeds form one ensemble (leading dimension K) and
``seed_index`` says which member belongs to which seed. Flow tolerances are ``configs.RTOL/ATOL * tighten``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ... import theory as th
from ...dynamics import Euler, ModifiedTrapezoid, Problem, simulate_discrete, simulate_flow
from ...functional import SquaredLoss
from ...models import deep_linear
from ...rules import FeedbackAlignment, Gaussian
from . import configs as C
from .systems import (
    DT,
    deep_scalar_system,
    init7,
    init11,
    scalar_params,
    scalar_system,
    scalar_thetas,
    theta_event,
)


def run_flow(problem: Problem, thetas0: np.ndarray, ts: np.ndarray, tighten: float = 1.0,
             **kw: Any) -> tuple[np.ndarray, Any]:
    """Integrate a scalar-system ensemble (DOP853, rtol/atol of configs times ``tighten``): ``(thetas (T, K, L), traj)``."""
    traj = simulate_flow(problem, scalar_params(thetas0), [float(t) for t in ts], rtol=C.RTOL * tighten, atol=C.ATOL * tighten, **kw)
    return np.stack([scalar_thetas(p) for p in traj.params]), traj


def run_discrete(problem: Problem, thetas0: np.ndarray, scheme: Any, steps: int) -> np.ndarray:
    """Run a discrete scheme on a scalar-system ensemble; returns ``thetas (steps + 1, K, L)``."""
    traj = simulate_discrete(problem, scalar_params(thetas0), scheme, steps)
    return np.stack([scalar_thetas(p) for p in traj.params])


def _seeded(seeds: tuple[int, ...], offset: int, draw) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``draw(rng)`` over the seeds (``rng = default_rng(seed + offset)``) with the seed index per row."""
    parts = [np.asarray(draw(np.random.default_rng(s + offset)), dtype=float) for s in seeds]
    return np.concatenate(parts), np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])


# ------------------------------------------------------------------------------------------------ Fig. 1a
@dataclass(frozen=True)
class Fig1aResult:
    ts: np.ndarray
    starts: np.ndarray
    thetas: np.ndarray  # (T, 25, 2)
    matrix_flow: list[np.ndarray]  # per seed: invariant matrices C(t) along the flow, (T, h, h)
    matrix_modified: list[np.ndarray]
    matrix_euler: list[np.ndarray]


def _matrix_fa_problem(gen: torch.Generator, d_in: int = 5, h: int = 4, o: int = 3, n: int = 50):
    """A 2-layer linear FA problem on data with a non-identity empirical covariance (for the matrix invariant)."""
    x = torch.randn(n, d_in, generator=gen, dtype=DT) @ torch.randn(d_in, d_in, generator=gen, dtype=DT) * 0.5
    y = x @ torch.randn(d_in, o, generator=gen, dtype=DT) * 0.5
    model = deep_linear((d_in, h, o))
    p0 = model.init_params(gen, scheme="gaussian", std=0.5)
    rule = FeedbackAlignment(Gaussian())  # N(0, 1) feedback, named (not the registry default)
    return Problem(model, rule, SquaredLoss("mean"), x, y, rule.init(model, p0, generator=gen)), p0


def _invariants(problem: Problem, params_list) -> np.ndarray:
    from ...instruments import fa_quantity_matrix

    out = []
    for p in params_list:
        ws = problem.model.layer_weights(p)
        out.append(fa_quantity_matrix(ws, problem.rule.feedback_used(problem.model, p, problem.state))[0].numpy())
    return np.stack(out)


def run_fig1a(cfg: C.Fig1a, seeds: tuple[int, ...], tighten: float = 1.0) -> Fig1aResult:
    grid = np.asarray(cfg.grid)
    starts = np.array([[a, b] for a in grid for b in grid])
    ts = np.linspace(0.0, cfg.t_end, cfg.n_t)
    thetas, _ = run_flow(scalar_system(cfg.d, cfg.lam), starts, ts, tighten)
    flows, mods, eulers = [], [], []
    for s in seeds:
        pb, p0 = _matrix_fa_problem(torch.Generator().manual_seed(s + 3))
        tr = simulate_flow(pb, p0, np.linspace(0, 5, 51).tolist(), rtol=C.RTOL * tighten, atol=C.ATOL * tighten)
        flows.append(_invariants(pb, tr.params))
        mods.append(_invariants(pb, simulate_discrete(pb, p0, ModifiedTrapezoid(lr=cfg.matrix_lr),
                                                      cfg.matrix_steps).params))
        eulers.append(_invariants(pb, simulate_discrete(pb, p0, Euler(lr=cfg.matrix_lr), cfg.matrix_steps).params))
    return Fig1aResult(ts, starts, thetas, flows, mods, eulers)


# ------------------------------------------------------------------------------------------------ Fig. 1b / 1c
@dataclass(frozen=True)
class Fig1bResult:
    ts: np.ndarray
    theta0: np.ndarray
    seed_index: np.ndarray
    fa: np.ndarray  # (T, K, 2)
    gd: np.ndarray
    gd_velocity_at_origin: float


def run_fig1b(cfg: C.Fig1b, seeds: tuple[int, ...], tighten: float = 1.0) -> Fig1bResult:
    theta0, idx = _seeded(seeds, 11, lambda rng: np.concatenate([[0.0], rng.uniform(-5, 5, cfg.draws)]))
    ts = np.linspace(0.0, cfg.t_end, cfg.n_t)
    fa, _ = run_flow(scalar_system(cfg.d, cfg.lam, rule="fa"), init7(theta0, cfg.d), ts, tighten)
    gd, _ = run_flow(scalar_system(cfg.d, cfg.lam, rule="gd"), init7(theta0, cfg.d), ts, tighten)
    v0 = scalar_system(cfg.d, cfg.lam, rule="gd").update(scalar_params(np.zeros((1, 2))))
    return Fig1bResult(ts, theta0, idx, fa, gd, float(max(v.abs().max() for v in v0.values())))


@dataclass(frozen=True)
class Fig1cResult:
    ts: np.ndarray
    starts: np.ndarray
    seed_index: np.ndarray
    thetas: np.ndarray


def run_fig1c(cfg: C.Fig1c, seeds: tuple[int, ...], tighten: float = 1.0) -> Fig1cResult:
    starts, idx = _seeded(seeds, 13, lambda rng: rng.uniform(-5, 5, (cfg.draws, 2)))
    ts = np.linspace(0.0, cfg.t_end, cfg.n_t)
    thetas, _ = run_flow(scalar_system(cfg.d, cfg.lam), starts, ts, tighten)
    return Fig1cResult(ts, starts, idx, thetas)


# ------------------------------------------------------------------------------------------------ Fig. 3 / Sec. 5
@dataclass(frozen=True)
class Fig3Result:
    ts: np.ndarray
    theta0: np.ndarray
    seed_index: np.ndarray
    thetas: np.ndarray
    t_vanish: np.ndarray  # event times for cfg.vanish_starts
    t_vanish_by_lambda: np.ndarray  # theta_0 = -5, lambda in cfg.vanish_lams
    euler: dict[float, np.ndarray]  # eta -> (steps + 1, 2)
    modified: dict[float, np.ndarray]
    one_step: np.ndarray  # the modified scheme at Remark 23's eta, one step


def _event_times(traj) -> np.ndarray:
    return np.array([float(e[0]) if len(e) else float("nan") for e in traj.events])


def run_fig3(cfg: C.Fig3, seeds: tuple[int, ...], tighten: float = 1.0) -> Fig3Result:
    d, lam = cfg.d, cfg.lam
    theta0, idx = _seeded(seeds, 17, lambda rng: np.concatenate([cfg.fixed, rng.uniform(-5, 5, cfg.draws)]))
    ts = np.linspace(0.0, cfg.t_end, cfg.n_t)
    thetas, _ = run_flow(scalar_system(d, lam), init7(theta0, d), ts, tighten)
    vt0 = np.asarray(cfg.vanish_starts)
    _, vtraj = run_flow(scalar_system(d, lam), init7(vt0, d), np.array([0.0, 1.0]), tighten,
                        events=[theta_event(k) for k in range(len(vt0))])
    lams = np.asarray(cfg.vanish_lams)
    _, ltraj = run_flow(scalar_system(d, lams), init7(np.full(len(lams), -5.0), d), np.array([0.0, 3.0]), tighten,
                        events=[theta_event(k) for k in range(len(lams))])
    zero = np.zeros((1, 2))
    euler = {eta: run_discrete(scalar_system(d, lam), zero, Euler(lr=eta), cfg.euler_steps)[:, 0]
             for eta in cfg.euler_etas}
    eta_max = th.modified_eta_max(d, lam)
    etas = [e if e < 0.5 else e * eta_max for e in cfg.modified_etas]
    modified = {eta: run_discrete(scalar_system(d, lam), zero, ModifiedTrapezoid(lr=eta), cfg.modified_steps)[:, 0]
                for eta in etas}
    one = run_discrete(scalar_system(d, lam), zero, ModifiedTrapezoid(lr=th.modified_one_step_eta(d, lam)), 1)[:, 0]
    return Fig3Result(ts, theta0, idx, thetas, _event_times(vtraj), _event_times(ltraj), euler, modified, one)


# ------------------------------------------------------------------------------------------------ Fig. 4 / Thm 10
@dataclass(frozen=True)
class Fig4Result:
    ts: np.ndarray
    theta0: np.ndarray
    seed_index: np.ndarray
    thetas: np.ndarray  # (T, K, 3)
    etas: np.ndarray  # per seed: (seeds, etas_per_seed)
    modified: list[list[np.ndarray]]  # [seed][j] -> (steps + 1, 3)


def run_fig4(cfg: C.Fig4, seeds: tuple[int, ...], tighten: float = 1.0) -> Fig4Result:
    theta0, idx = _seeded(seeds, 19, lambda rng: np.concatenate([cfg.fixed, rng.uniform(-1, 2, cfg.draws)]))
    ts = np.linspace(0.0, cfg.t_end, cfg.n_t)
    thetas, _ = run_flow(deep_scalar_system(cfg.ds, np.full(len(theta0), cfg.lam)), init11(theta0, cfg.ds), ts,
                         tighten)
    eta_max = th.deep_modified_eta_max(cfg.lam, cfg.ds)
    etas = np.stack([np.sort(np.random.default_rng(s + 29).uniform(0.01, 0.99 * eta_max, cfg.etas_per_seed))
                     for s in seeds])
    zero = np.zeros((1, len(cfg.ds)))
    modified = [[run_discrete(deep_scalar_system(cfg.ds, [cfg.lam]), zero, ModifiedTrapezoid(lr=float(e)),
                              cfg.modified_steps)[:, 0] for e in row] for row in etas]
    return Fig4Result(ts, theta0, idx, thetas, etas, modified)


# ------------------------------------------------------------------------------------------------ Fig. 5a / 5b
@dataclass(frozen=True)
class BackwardResult:
    lams: np.ndarray
    roots: np.ndarray  # (n_lambda, 3)
    crossings: dict[float, np.ndarray]  # delta -> event times of theta_1 crossing (r_2 + r_3)/2, per lambda
    ts: np.ndarray  # the last delta's trajectory
    thetas: np.ndarray
    cubic_crossings: dict[float, float]  # the printed cubic (-2, 1, 2), delta -> crossing time
    cubic_curves: dict[float, tuple[np.ndarray, np.ndarray]]
    k0_vanish: np.ndarray  # K = 0, theta_0 = -5, d = k0_d: vanishing times per lambda


def _backward_flow(d: float, kk: float, lams: np.ndarray, delta: float, n_t: int, tighten: float):
    """FA flow (6) from ``theta_1(0) = r_2 + e^-delta`` on the parabola of K = kk; crossings by event detection."""
    roots = np.array([th.cubic_roots(d, kk, lam) for lam in lams])
    theta0 = roots[:, 1] + np.exp(-delta)
    start = np.stack([theta0, theta0 ** 2 / (2 * d) + kk], axis=-1)
    ts = np.linspace(0.0, 2.6 * delta, n_t)
    events = [theta_event(i, 0.5 * (roots[i, 1] + roots[i, 2])) for i in range(len(lams))]
    thetas, traj = run_flow(scalar_system(d, lams), start, ts, tighten, events=events)
    return roots, ts, thetas, _event_times(traj)


def run_backward(cfg: C.Backward, tighten: float = 1.0) -> BackwardResult:
    lams = np.asarray(cfg.lams)
    crossings = {}
    for delta in cfg.deltas:
        roots, ts, thetas, crossings[delta] = _backward_flow(cfg.d, cfg.K, lams, delta, cfg.n_t, tighten)
    form = th.depressed_form(*cfg.roots_printed)  # the printed cubic is (6) with lambda < 0, shifted by 1/3
    cubic, curves = {}, {}
    for delta in cfg.cubic_deltas:
        _, t_c, th_c, cross = _backward_flow(form.d, form.K, np.array([form.lam]), delta, 201, tighten)
        cubic[delta] = float(cross[0])
        curves[delta] = (t_c, th_c[:, 0, 0] + form.shift)
    _, vtraj = run_flow(scalar_system(cfg.k0_d, lams), init7(np.full(len(lams), cfg.k0_theta0), cfg.k0_d),
                        np.array([0.0, 3.0]), tighten, events=[theta_event(k) for k in range(len(lams))])
    return BackwardResult(lams, roots, crossings, ts, thetas, cubic, curves, _event_times(vtraj))


# ------------------------------------------------------------------------------------------------ Fig. 2 (Sec. 6)
@dataclass(frozen=True)
class AESeed:
    """One seed's autoencoder data: covariance, its rows, the optimum projector, the init and the FA feedback draws."""

    sigma: torch.Tensor
    a: torch.Tensor
    x: torch.Tensor
    w0: torch.Tensor
    m2: torch.Tensor  # (reps, d, d): P003's M for 2 layers (B2 = M^T), entries U(0, 1)
    m3: torch.Tensor  # (reps, 2, d, d): M_1, M_2 for 3 layers


def ae_seed(cfg: C.Autoencoder, seed: int, reps: int) -> AESeed:
    from .systems import autoencoder_data

    gen = torch.Generator().manual_seed(seed + 23)
    x, a = autoencoder_data(gen, n=cfg.n, d=cfg.d, k=cfg.k, latent_var=cfg.latent_var, noise=cfg.noise)
    w0 = cfg.init_scale * torch.rand(cfg.d, cfg.d, generator=gen, dtype=DT)
    m2 = torch.rand(reps, cfg.d, cfg.d, generator=gen, dtype=DT)
    m3 = torch.rand(reps, 2, cfg.d, cfg.d, generator=gen, dtype=DT)
    return AESeed(x.T @ x / cfg.n, a, x, w0, m2, m3)


def ae_feedback(m: torch.Tensor, n_layers: int, normalise: bool) -> dict[str, torch.Tensor]:
    """The rule's feedback for M draws (``(K, d, d)`` or ``(K, 2, d, d)``), each scaled to ``||M||_2 = 1`` when
    ``normalise`` (matched first-layer step: GD's ``W_2^T`` has spectral norm 1 at a balanced optimum)."""
    if normalise:
        m = m / torch.linalg.matrix_norm(m, ord=2)[..., None, None]
    if n_layers == 2:
        return {"B2": m.transpose(-1, -2).contiguous()}
    return {"D1": m[:, 0].transpose(-1, -2).contiguous(), "D2": m[:, 1].transpose(-1, -2).contiguous()}


@dataclass(frozen=True)
class AERun:
    """Records of one autoencoder run: ``steps`` and per-member metrics (T, K, 4): trace norm, training error,
    ``||Theta - A A^+||_F^2``, ``||Theta - P_j||_F`` (P_j: top-j principal projector, j = round(trace norm));
    ``status``: 'ok' or the divergence message."""

    steps: np.ndarray
    metrics: np.ndarray
    status: str


def _ae_measures(sigma: torch.Tensor, p_a: torch.Tensor):
    from ...instruments import end_to_end

    d = sigma.shape[-1]
    _, vecs = torch.linalg.eigh(sigma)
    vecs = vecs.flip(-1)
    proj = torch.stack([vecs[..., :, :j] @ vecs[..., :, :j].transpose(-1, -2) for j in range(d + 1)], dim=-3)
    eye = torch.eye(d, dtype=DT)

    def m(snap):
        theta = end_to_end(snap.problem.model.layer_weights(snap.params))
        res = eye - theta
        tn = torch.linalg.matrix_norm(theta, ord="nuc")
        j = tn.round().long().clamp(0, d)
        pk = torch.take_along_dim(proj, j[:, None, None, None], dim=-3)[:, 0] if proj.dim() == 4 else proj[j]
        return torch.stack([tn, (res @ sigma * res).sum(dim=(-2, -1)), ((theta - p_a) ** 2).sum(dim=(-2, -1)),
                            torch.linalg.matrix_norm(theta - pk)], dim=-1)
    return {"m": m}


def run_autoencoder(rule_name: str, n_layers: int, sigma: torch.Tensor, p_a: torch.Tensor, w0: torch.Tensor,
                    feedback: dict[str, torch.Tensor] | None, eta: float, steps: int, record: list[int]) -> AERun:
    """Euler on the autoencoder ensemble (one member per row of ``sigma``/``w0``, ``(K, d, d)``)."""
    from .systems import autoencoder_problem, covariance_data

    pb = autoencoder_problem(rule_name, n_layers, covariance_data(sigma), feedback)
    p0 = {f"W{l}": w0.clone() for l in range(1, n_layers + 1)}
    traj = simulate_discrete(pb, p0, Euler(lr=eta), steps, record_steps=record, measures=_ae_measures(sigma, p_a),
                             keep_params=False)
    vals = traj.metric("m").numpy()
    n_rec = len(vals)
    return AERun(np.asarray(record[:n_rec]), vals, traj.status + (f" ({traj.message})" if traj.message else ""))


def record_steps(steps: int, n: int) -> list[int]:
    """Step 0 and ``n`` log-spaced steps up to ``steps``."""
    return sorted({0, *np.unique(np.round(np.logspace(0, np.log10(steps), n)).astype(int)).tolist()})


def stationary_limits(seed: int, members: int, t_end: float, tighten: float = 1.0) -> dict[str, dict[str, Any]]:
    """FA flow (3) with Sigma_xx = I on a bottleneck (h = 2 < o = 4) and a wide (h = o = 4) net: the velocity at
    ``t_end``, the FA limit errors and the global minimum error (Eckart-Young)."""
    from ...instruments import end_to_end
    from .systems import covariance_data

    gen = torch.Generator().manual_seed(seed + 31)
    o = d_in = 4
    sxy = torch.randn(o, d_in, generator=gen, dtype=DT)
    sv = torch.linalg.svdvals(sxy)
    xc = covariance_data(torch.eye(d_in, dtype=DT))
    out = {}
    for h in (2, 4):
        model = deep_linear((d_in, h, o))
        p0 = model.init_params(gen, scheme="gaussian", std=0.1, ensemble=members)
        rule = FeedbackAlignment(Gaussian())  # N(0, 1) feedback, named (not the registry default)
        pb = Problem(model, rule, SquaredLoss("mean"), xc, xc @ sxy.T, rule.init(model, p0, generator=gen))
        pf = simulate_flow(pb, p0, [0.0, t_end], rtol=1e-10 * tighten, atol=1e-12 * tighten).final
        resid = sxy - end_to_end(model.layer_weights(pf))
        out[f"h={h}"] = {"velocity": max(float(v.abs().max()) for v in pb.update(pf).values()),
                         "fa_error": (0.5 * (resid ** 2).sum(dim=(-2, -1))).tolist(),
                         "global_min": 0.5 * float((sv[h:] ** 2).sum())}
    return out


@dataclass(frozen=True)
class Fig2Result:
    """Per seed: the data; the P1 update differences; the stated-setting runs (raw M, raw data; one run per FA draw);
    the scaled runs (one ensemble per rule and depth over every seed's draws); O.stat limits."""

    seeds: list[AESeed]
    reps: int
    p1: list[dict[str, float]]
    stated: dict[str, Any]  # FA: key -> [seed][draw] (one run per draw); GD: key -> one run over the seeds
    scaled: dict[str, AERun]  # key -> ensemble run; FA members ordered seed-major (reps per seed), GD one per seed
    data_scale: list[float]  # per seed: d / tr(Sigma), the factor applied to Sigma
    stationary: list[dict[str, dict[str, Any]]]


def _p1(s: AESeed) -> dict[str, float]:
    """Max relative difference between the engine's finite-batch updates (raw rows and covariance rows) and eq. (8)."""
    from ...instruments import linear_fa_update
    from .systems import autoencoder_problem, covariance_data

    out = {}
    xc = covariance_data(s.sigma)
    gen = torch.Generator().manual_seed(7)
    for n_layers, m in ((2, s.m2[:1]), (3, s.m3[:1])):
        fb = ae_feedback(m, n_layers, normalise=False)
        pw = {f"W{l}": 0.3 * torch.randn(1, s.w0.shape[0], s.w0.shape[0], generator=gen, dtype=DT)
              for l in range(1, n_layers + 1)}
        ms = [m[:, i] if n_layers == 3 else m for i in range(n_layers - 1)]
        ws = [pw[f"W{l}"] for l in range(1, n_layers + 1)]
        eq = linear_fa_update(ws, ms, s.sigma, s.sigma)
        scale = max(float(v.abs().max()) for v in eq)
        for name, rows in (("raw", s.x), ("covariance_rows", xc)):
            upd = autoencoder_problem("fa", n_layers, rows, fb).update(pw)
            out[f"{name}_L{n_layers}"] = max(float((upd[f"W{l + 1}"] - eq[l]).abs().max())
                                             for l in range(n_layers)) / scale
    return out


def _stated_fa(cfg: C.Autoencoder, s: AESeed, reps: int) -> dict[str, list[AERun]]:
    """The stated setting (M ~ U(0,1), data as sampled): each FA draw alone (a diverging member ends its run)."""
    rec = record_steps(cfg.stated_steps, cfg.records)
    sig, p_a = s.sigma[None], (s.a @ torch.linalg.pinv(s.a))[None]
    return {f"FA ({n_layers}L)": [run_autoencoder("fa", n_layers, sig, p_a, s.w0[None],
                                                  ae_feedback(m[i:i + 1], n_layers, False), cfg.eta,
                                                  cfg.stated_steps, rec) for i in range(reps)]
            for n_layers, m in ((2, s.m2), (3, s.m3))}


def run_fig2(cfg: C.Autoencoder, seeds: tuple[int, ...], tighten: float = 1.0) -> Fig2Result:
    reps = cfg.reps_per_seed(len(seeds))
    data = [ae_seed(cfg, s, reps) for s in seeds]
    scale = [cfg.d / float(torch.trace(s.sigma)) for s in data]
    sig = torch.stack([s.sigma * c for s, c in zip(data, scale)])
    p_a = torch.stack([s.a @ torch.linalg.pinv(s.a) for s in data])
    w0 = torch.stack([s.w0 for s in data])
    rec = record_steps(cfg.iterations, cfg.records)
    stated: dict[str, Any] = {"FA (2L)": [], "FA (3L)": []}
    for s in data:
        for k, v in _stated_fa(cfg, s, reps).items():
            stated[k].append(v)
    raw = torch.stack([s.sigma for s in data])  # GD in the stated setting: stable, one ensemble over the seeds
    stated["GD (2L)"] = run_autoencoder("gd", 2, raw, p_a, w0, None, cfg.eta, cfg.stated_steps,
                                        record_steps(cfg.stated_steps, cfg.records))
    stated["GD (3L)"] = run_autoencoder("gd", 3, raw, p_a, w0, None, cfg.eta, cfg.gd3_steps,
                                        record_steps(cfg.gd3_steps, cfg.records))
    scaled = {}
    for n_layers in (2, 3):
        m = torch.cat([s.m2 if n_layers == 2 else s.m3 for s in data])
        rep = lambda t: t.repeat_interleave(reps, 0)  # noqa: E731
        scaled[f"FA ({n_layers}L)"] = run_autoencoder("fa", n_layers, rep(sig), rep(p_a), rep(w0),
                                                      ae_feedback(m, n_layers, True), cfg.eta, cfg.iterations, rec)
        scaled[f"GD ({n_layers}L)"] = run_autoencoder("gd", n_layers, sig, p_a, w0, None, cfg.eta, cfg.iterations, rec)
    stat = [stationary_limits(s, cfg.stat_members, cfg.stat_t, tighten) for s in seeds]
    return Fig2Result(data, reps, [_p1(s) for s in data], stated, scaled, scale, stat)
