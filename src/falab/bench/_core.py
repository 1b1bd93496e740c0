"""Core-engine benchmarks, measured in one run and reported as ratios (so machine load cancels out as far as
possible). Nothing here is asserted by tests; ``falab bench`` prints the figures and can write them as JSON.

Settings (issue 2): K = 1024 two-layer linear FA networks, d = 20, h = 50, scalar output, n = 10, float64, full-batch
steps; the quick-start flow (one network, W1(0) = 0, B ~ N(0, 1/h), mean squared loss, t = 50, rtol 1e-10).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ..dynamics import Euler, Problem, simulate_discrete, simulate_flow
from ..functional import SquaredLoss
from ..instruments import fa_quantity
from ..models import MLP, Params, member
from ..rules import FeedbackAlignment, Gaussian

D, H, N = 20, 50, 10


def _setup(k: int, seed: int = 0) -> tuple[Problem, Params]:
    g = torch.Generator().manual_seed(seed)
    model = MLP((D, H, 1), "identity")
    params = model.init_params(g, ensemble=k, scheme="gaussian", std=0.1)
    x = torch.randn(N, D, generator=g, dtype=torch.float64)
    y = torch.randn(N, 1, generator=g, dtype=torch.float64)
    rule = FeedbackAlignment(Gaussian(H**-0.5))
    state = rule.init(model, params, generator=g)
    return Problem(model, rule, SquaredLoss("mean"), x, y, state), params


def _best_of(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (allocator, lazy init)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_gflops(repeats: int = 5, size: int = 384) -> float:
    """The machine's float64 GEMM throughput at the current thread count (GFLOP/s)."""
    a = torch.randn(size, size, dtype=torch.float64)
    b = torch.randn(size, size, dtype=torch.float64)
    sec = _best_of(lambda: a @ b, repeats)
    return 2 * size**3 / sec / 1e9


def ensemble_vs_loop(k: int = 1024, steps: int = 50, loop_members: int = 32, repeats: int = 3) -> dict[str, float]:
    """Network-steps/s of the batched ensemble vs a per-network loop over the same kernel."""
    problem, params = _setup(k)
    sec_batched = _best_of(lambda: simulate_discrete(problem, params, Euler(0.01), steps, record_steps=[0],
                                                     keep_params=False), repeats)
    singles = [(Problem(problem.model, problem.rule, problem.loss, problem.x, problem.y, member(problem.state, i)),
                member(params, i)) for i in range(loop_members)]

    def loop() -> None:
        for prob, p in singles:
            simulate_discrete(prob, p, Euler(0.01), steps, record_steps=[0], keep_params=False)

    sec_loop = _best_of(loop, repeats)
    batched_rate = k * steps / sec_batched
    loop_rate = loop_members * steps / sec_loop
    flops = 4 * N * D * H + 4 * N * H
    return {
        "ensemble_steps_per_s": batched_rate,
        "loop_steps_per_s": loop_rate,
        "ensemble_speedup": batched_rate / loop_rate,
        "ensemble_gflops": batched_rate * flops / 1e9,
    }


def quickstart_flow(k: int | None = None, t_end: float = 50.0, rtol: float = 1e-10) -> dict[str, float]:
    """Integrate the quick-start FA flow (W1(0) = 0) to ``t_end``; wall time and relative drift of Q_1."""
    problem, params = _setup(k or 1)
    if k is None:
        params, state = member(params, 0), member(problem.state, 0)
        problem = Problem(problem.model, problem.rule, problem.loss, problem.x, problem.y, state)
    params = dict(params)
    params["W1"] = torch.zeros_like(params["W1"])
    t0 = time.perf_counter()
    traj = simulate_flow(problem, params, [0.0, t_end], rtol=rtol, atol=1e-12)
    sec = time.perf_counter() - t0
    fb = problem.rule.feedback_used(problem.model, traj.params[0], problem.state)
    q0 = fa_quantity(problem.model.layer_weights(traj.params[0]), fb)
    q1 = fa_quantity(problem.model.layer_weights(traj.params[-1]), fb)
    drift = float(((q1 - q0).abs() / q0.abs()).max())
    loss = float(problem.loss_value(traj.params[-1]).max())
    return {"seconds": sec, "drift": drift, "final_loss": loss, "nfev": float(traj.info["nfev"])}


def solver_import_seconds() -> float:
    """One-time cost of importing scipy's integrators (falab.dynamics imports them lazily, on the first flow).

    Timed separately so that ``flow_seconds`` measures the integration a researcher repeats, not a per-process import.
    """
    import sys

    if "scipy.integrate" in sys.modules:
        return 0.0
    t0 = time.perf_counter()
    import scipy.integrate  # noqa: F401

    return time.perf_counter() - t0


def run_core(quick: bool = False, echo: Callable[[str], None] = print) -> dict[str, float]:
    """All core figures of issue 2 (threads as set by the caller)."""
    out: dict[str, float] = {"torch_threads": float(torch.get_num_threads())}
    out["solver_import_seconds"] = solver_import_seconds()
    gf = matmul_gflops()
    out["matmul_gflops"] = gf
    ens = ensemble_vs_loop(k=256 if quick else 1024, steps=20 if quick else 50, repeats=2 if quick else 3)
    out.update(ens)
    out["ensemble_roofline_fraction"] = ens["ensemble_gflops"] / gf
    echo(f"ensemble: {ens['ensemble_steps_per_s']:.0f} network-steps/s batched vs {ens['loop_steps_per_s']:.0f} "
         f"looped -> speedup {ens['ensemble_speedup']:.2f}x (target >= 6); {ens['ensemble_gflops']:.2f} GFLOP/s = "
         f"{out['ensemble_roofline_fraction']:.2f} of float64 matmul {gf:.1f} GFLOP/s (target >= 0.4)")
    fl = quickstart_flow()
    out["flow_seconds"], out["flow_invariant_drift"] = fl["seconds"], fl["drift"]
    echo(f"quick-start flow (t = 50, rtol 1e-10): {fl['seconds']:.3f} s (target <= 0.1), {fl['nfev']:.0f} evaluations, "
         f"relative drift of Q_1 {fl['drift']:.2e} (target <= 1e-10), final loss {fl['final_loss']:.2e}; "
         f"one-time import of scipy.integrate {out['solver_import_seconds']:.3f} s, not included")
    k = 128 if quick else 1024
    efl = quickstart_flow(k=k)
    out["ensemble_flow_seconds"] = efl["seconds"]
    out["ensemble_flow_members"] = float(k)
    out["ensemble_flow_drift"] = efl["drift"]
    echo(f"ensemble flow, K = {k}: {efl['seconds']:.2f} s (target <= 15 s for K = 1024), {efl['nfev']:.0f} "
         f"evaluations, max relative drift {efl['drift']:.2e}")
    return out
