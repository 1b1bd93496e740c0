"""Exact-flow benchmarks (issue 17): the ReLU event route against fixed-step RK4, the Jacobian route against DOP853
on a long-horizon diagonal-network flow, and a K = 1024 ensemble by per-member control against lockstep. Ratios are
measured in one run."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_relu(quick: bool, echo: Callable[[str], None]) -> dict[str, float]:
    """P000's Fig. 1 network (seed 0, member 0, quick sizes): RK4 at the experiment's step vs the event route."""
    from ..dynamics import Problem, simulate_flow
    from ..experiments.p000 import runs as p000
    from ..experiments.p000.configs import Fig1Config
    from ..functional import SquaredLoss
    from ..instruments import fa_quantity
    from ..models import MLP
    from ..rules import FeedbackAlignment, Gaussian

    cfg = Fig1Config.quick()
    x, y, p0, b = p000.fig1_init(cfg, [0])
    x, y, b = x[:1], y[:1], b[:1]
    p0 = {k: v[:1] for k, v in p0.items()}
    model = MLP((cfg.d, cfg.h, 1), "relu")
    rule = FeedbackAlignment(Gaussian())
    prob = Problem(model, rule, SquaredLoss("mean"), x, y, rule.init(model, p0, feedback={"B2": b}))
    t_end = 0.01 if quick else 0.05
    ts = np.linspace(0.0, t_end, 11).tolist()
    meas = {"Q": lambda s: fa_quantity(model.layer_weights(s.params), {2: b})[..., 0]}

    def drift(tr) -> float:
        q = tr.metric("Q").reshape(-1)
        return float((q - q[0]).abs().max() / q[0].abs())

    rk, t_rk = _timed(lambda: simulate_flow(prob, p0, ts, method="rk4", step_size=cfg.relu_dt, measures=meas,
                                            keep_params=False))
    ev, t_ev = _timed(lambda: simulate_flow(prob, p0, ts, method="events", measures=meas, keep_params=False))
    echo(f"ReLU flow (P000 Fig. 1 net, t = {t_end:g}): RK4 dt {cfg.relu_dt:g} {t_rk:.2f} s, drift {drift(rk):.2e}; "
         f"events {t_ev:.2f} s, drift {drift(ev):.2e}, {ev.info['switches']} switches, "
         f"{ev.info['sliding_entries']} sliding entries (time ratio events/RK4 {t_ev / t_rk:.2f})")
    return {"flow_relu_rk4_s": t_rk, "flow_relu_rk4_drift": drift(rk), "flow_relu_events_s": t_ev,
            "flow_relu_events_drift": drift(ev), "flow_relu_switches": float(ev.info["switches"]),
            "flow_relu_sliding_entries": float(ev.info["sliding_entries"])}


def bench_stiff(quick: bool, echo: Callable[[str], None]) -> dict[str, float]:
    """An 80-parameter diagonal-network GD flow (d = 40, n = 20, 3-sparse teacher, init 1) to t = 1e4 (quick: 1e3): LSODA with
    the torch.func Jacobian vs DOP853 (DOP853 under an evaluation budget; its evaluations are then a lower bound)."""
    from ..dynamics import Problem, simulate_flow
    from ..functional import SquaredLoss
    from ..models import DiagonalNet
    from ..rules import Backprop

    g = torch.Generator().manual_seed(0)
    d, n = 40, 20
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    beta = torch.zeros(d, dtype=torch.float64)
    beta[:3] = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    prob = Problem(DiagonalNet(d=d, depth=2), Backprop(), SquaredLoss("mean"), x, (x @ beta)[:, None])
    # init 1.0: at 0.1 the flow passes saddles (incremental learning) that amplify 1e-9 differences between any two
    # solvers to O(1) by t = 100 (measured: LSODA with or without the Jacobian alike), so no route can be compared
    p0 = {"v1": torch.full((d,), 1.0, dtype=torch.float64), "v2": torch.full((d,), 1.0, dtype=torch.float64)}
    t_end = 1e3 if quick else 1e4
    budget = 50_000 if quick else 500_000
    jr, t_j = _timed(lambda: simulate_flow(prob, p0, [0.0, t_end], method="LSODA", rtol=1e-10, atol=1e-12))
    ex, t_e = _timed(lambda: simulate_flow(prob, p0, [0.0, t_end], method="DOP853", rtol=1e-10, atol=1e-12,
                                           max_evaluations=budget))
    agree = float("nan")
    if ex.status == "ok":
        agree = float(max((jr.final[k] - ex.final[k]).abs().max() for k in p0))
    echo(f"stiff diagonal flow (80 params, t = {t_end:g}): LSODA+Jacobian {jr.info['nfev']} evaluations + "
         f"{jr.info['njev']} Jacobians, {t_j:.2f} s; DOP853 {ex.info['nfev']} evaluations ({ex.status}), {t_e:.2f} s; "
         f"final parameters agree to {agree:.1e}")
    return {"flow_stiff_lsoda_nfev": float(jr.info["nfev"]), "flow_stiff_lsoda_njev": float(jr.info["njev"]),
            "flow_stiff_lsoda_s": t_j, "flow_stiff_dop853_nfev": float(ex.info["nfev"]), "flow_stiff_dop853_s": t_e,
            "flow_stiff_agree": agree}


def bench_ensemble(quick: bool, echo: Callable[[str], None]) -> dict[str, float]:
    """K small FA flows (MLP 3-4-2 tanh, t = 1, rtol 1e-10): per-member control (``method='dop853-members'`` and
    ``'dopri5-members'``: each member its own steps, one batched torch program) against the lockstep route (DOP853 on
    the stacked state in chunks of 128) and one member alone, then the same ensemble with members of different time
    scales (lockstep vs dop853-members); diffrax reported if installed. Agreement: the largest relative difference
    ``||theta_a - theta_b|| / ||theta_b||`` of a member's final parameters between two routes."""
    from ..dynamics import Problem, simulate_flow
    from ..functional import SquaredLoss
    from ..models import MLP, member
    from ..rules import FeedbackAlignment, Gaussian

    k = 128 if quick else 1024
    g = torch.Generator().manual_seed(0)
    model = MLP((3, 4, 2), "tanh")
    p0 = model.init_params(g, ensemble=k)
    rule = FeedbackAlignment(Gaussian())
    state = rule.init(model, p0, generator=g)
    x, y = torch.randn(k, 5, 3, generator=g, dtype=torch.float64), torch.randn(k, 5, 2, generator=g, dtype=torch.float64)
    prob = Problem(model, rule, SquaredLoss("mean"), x, y, state)
    one = Problem(model, rule, SquaredLoss("mean"), x[0], y[0], member(state, 0))
    lock, t_all = _timed(lambda: simulate_flow(prob, p0, [0.0, 1.0]))
    alone, t_one = _timed(lambda: simulate_flow(one, member(p0, 0), [0.0, 1.0]))

    def rel(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-member relative difference of the final parameters (all tensors of a member together)."""
        num = sum(((a[n] - b[n]) ** 2).reshape(a[n].shape[0], -1).sum(1) for n in p0)
        den = sum((b[n] ** 2).reshape(b[n].shape[0], -1).sum(1) for n in p0)
        return torch.sqrt(torch.as_tensor(num) / torch.as_tensor(den))

    out = {"flow_ensemble_k": float(k), "flow_ensemble_lockstep_s": t_all, "flow_ensemble_one_s": t_one}
    echo(f"ensemble flows: K = {k} lockstep (DOP853, chunks of 128) {t_all:.2f} s, one member (DOP853) {t_one:.3f} s")
    for method, key in (("dop853-members", "members"), ("dopri5-members", "members_dp5")):
        per, t_per = _timed(lambda m=method: simulate_flow(prob, p0, [0.0, 1.0], method=m))
        if method == "dop853-members":
            per_dop853, t_members = per, t_per
        alone_per, t_one_per = _timed(lambda m=method: simulate_flow(one, member(p0, 0), [0.0, 1.0], method=m))
        agree = float(rel(per.final, lock.final).max())
        agree_one = float(rel({n: v[:1] for n, v in per.final.items()},
                              {n: v[None] for n, v in alone.final.items()})[0])
        same_alone = all(torch.equal(per.final[n][0], alone_per.final[n]) for n in p0)
        steps = per.info["member_steps"]
        echo(f"  per-member {method}: {t_per:.2f} s (lockstep / per-member {t_all / t_per:.1f}; members took "
             f"{min(steps)}..{max(steps)} steps, {per.info['nfev']} batched evaluations), one member "
             f"{t_one_per:.3f} s; agrees with lockstep to {agree:.1e}, member 0 with DOP853 alone to "
             f"{agree_one:.1e}, member 0 {'bit-identical' if same_alone else 'NOT bit-identical'} to itself alone")
        out.update({f"flow_ensemble_{key}_s": t_per, f"flow_ensemble_one_{key}_s": t_one_per,
                    f"flow_ensemble_{key}_speedup": t_all / t_per, f"flow_ensemble_{key}_vs_lockstep": agree,
                    f"flow_ensemble_{key}_vs_alone": agree_one, f"flow_ensemble_{key}_alone_identical": float(same_alone),
                    f"flow_ensemble_{key}_steps_min": float(min(steps)),
                    f"flow_ensemble_{key}_steps_max": float(max(steps)), f"flow_ensemble_{key}_nfev": float(per.info["nfev"])})
    # members of different time scales (inputs scaled log-uniformly in [1/4, 4], so fields by 1/16 .. 16): the
    # case lockstep is worst at, as the fastest member of each chunk sets everyone's step
    scale = 4.0 ** (2 * torch.rand(k, generator=g, dtype=torch.float64) - 1)
    het = Problem(model, rule, SquaredLoss("mean"), x * scale[:, None, None], y, state)
    lock_h, t_lock_h = _timed(lambda: simulate_flow(het, p0, [0.0, 1.0]))
    per_h, t_per_h = _timed(lambda: simulate_flow(het, p0, [0.0, 1.0], method="dop853-members"))
    agree_h = float(rel(per_h.final, lock_h.final).max())
    steps_h = per_h.info["member_steps"]
    echo(f"  time scales 1/16..16: lockstep {t_lock_h:.2f} s, dop853-members {t_per_h:.2f} s "
         f"(lockstep / per-member {t_lock_h / t_per_h:.1f}; members took {min(steps_h)}..{max(steps_h)} steps); agree to {agree_h:.1e}")
    out.update({"flow_ensemble_scales_lockstep_s": t_lock_h, "flow_ensemble_scales_members_s": t_per_h,
                "flow_ensemble_scales_speedup": t_lock_h / t_per_h, "flow_ensemble_scales_vs_lockstep": agree_h,
                "flow_ensemble_scales_steps_min": float(min(steps_h)),
                "flow_ensemble_scales_steps_max": float(max(steps_h))})
    out.update(_quickstart_ensemble(32 if quick else 1024, echo))
    if importlib.util.find_spec("diffrax") is None:
        echo("  diffrax not installed (pip install -e '.[compare]' to compare with vmapped diffrax)")
    else:
        out.update(_diffrax_ensemble(one, p0, state, x, y, per_members=per_dop853, t_members=t_members, echo=echo))
    return out


def _diffrax_ensemble(one: Any, p0: dict[str, torch.Tensor], state: dict[str, torch.Tensor], x: torch.Tensor,
                      y: torch.Tensor, *, per_members: Any, t_members: float, echo: Callable[[str], None]
                      ) -> dict[str, float]:
    """The same K flows by diffrax ``Dopri8`` under ``jax.vmap`` (per-member control, JIT compiled), its field checked
    against falab's first; agreement with falab's dop853-members finals."""
    from ..dynamics import vector_field
    from ..models import member
    from . import _diffrax

    w1, w2, b2, xs, ys = (t.numpy() for t in (p0["W1"], p0["W2"], state["B2"], x, y))
    ref = vector_field(one)(member(p0, 0))
    field_err = _diffrax.field_agreement(w1[0], w2[0], b2[0], xs[0], ys[0],
                                         reference=(ref["W1"].numpy(), ref["W2"].numpy()))
    res = _diffrax.solve_ensemble(w1, w2, b2, xs, ys, t_end=1.0, rtol=1e-10, atol=1e-12)
    num = sum(((res[n] - per_members.final[n].numpy()) ** 2).reshape(len(res[n]), -1).sum(1) for n in ("W1", "W2"))
    den = sum((per_members.final[n].numpy() ** 2).reshape(len(res[n]), -1).sum(1) for n in ("W1", "W2"))
    agree = float(np.sqrt(num / den).max())
    echo(f"  diffrax {res['version']} Dopri8 + PID under jax.vmap (one XLA thread): {res['s']:.2f} s "
         f"(+ {res['first_call_s'] - res['s']:.1f} s JIT on the first call; members took {res['steps'].min()}.."
         f"{res['steps'].max()} steps); dop853-members / diffrax {t_members / res['s']:.2f}; its field equals "
         f"falab's to {field_err:.1e}, its finals falab's dop853-members to {agree:.1e}")
    return {"flow_ensemble_diffrax_s": res["s"], "flow_ensemble_diffrax_first_call_s": res["first_call_s"],
            "flow_ensemble_members_over_diffrax": t_members / res["s"], "flow_ensemble_diffrax_vs_members": agree,
            "flow_ensemble_diffrax_field_err": field_err}


def _quickstart_ensemble(k: int, echo: Callable[[str], None]) -> dict[str, float]:
    """The issue's K = 1024 figure: the quick-start FA flow (linear 20-50-1, W1(0) = 0, shared data, t = 50, the
    setting of ``falab bench``'s core group) as one ensemble, lockstep vs dop853-members."""
    from ..dynamics import simulate_flow
    from ._core import _setup

    prob, p0 = _setup(k)
    p0 = dict(p0)
    p0["W1"] = torch.zeros_like(p0["W1"])
    lock, t_lock = _timed(lambda: simulate_flow(prob, p0, [0.0, 50.0]))
    per, t_per = _timed(lambda: simulate_flow(prob, p0, [0.0, 50.0], method="dop853-members"))
    agree = max(float((per.final[n] - lock.final[n]).norm() / lock.final[n].norm()) for n in p0)
    steps = per.info["member_steps"]
    echo(f"  quick-start flow, K = {k}, t = 50: lockstep {t_lock:.2f} s ({lock.info['nfev']} evaluations in "
         f"{lock.info.get('chunks', 1)} chunk(s)), dop853-members {t_per:.2f} s (lockstep / per-member "
         f"{t_lock / t_per:.2f}; members took {min(steps)}..{max(steps)} steps); agree to {agree:.1e}")
    return {"flow_ensemble_quickstart_k": float(k), "flow_ensemble_quickstart_lockstep_s": t_lock,
            "flow_ensemble_quickstart_members_s": t_per, "flow_ensemble_quickstart_speedup": t_lock / t_per,
            "flow_ensemble_quickstart_vs_lockstep": agree, "flow_ensemble_quickstart_steps_min": float(min(steps)),
            "flow_ensemble_quickstart_steps_max": float(max(steps))}


def run_flow_bench(quick: bool = False, echo: Callable[[str], None] = print) -> dict[str, float]:
    """All exact-flow benchmarks (single-threaded torch, as the engine runs them)."""
    out: dict[str, float] = {}
    for fn in (bench_relu, bench_stiff, bench_ensemble):
        out.update(fn(quick, echo))
    return out


__all__ = ["run_flow_bench", "bench_relu", "bench_stiff", "bench_ensemble"]
