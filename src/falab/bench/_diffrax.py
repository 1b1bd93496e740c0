"""The diffrax side of ``falab bench --only flows``: the same K small FA flows, integrated by diffrax under ``jax.vmap``.

diffrax (Kidger 2021, JAX) is the best-known batched ODE solver: ``vmap`` over ``diffeqsolve`` gives every member its
own step size and error control, the comparison issue 17 asks for ("measured, not assumed"). It is optional: this
module is imported only when diffrax is installed (``pip install diffrax``), never by falab itself.

The vector field here is the benchmark's one problem (MLP 3-4-2 tanh, no biases, FA with feedback ``B2``, squared loss
``L = 1/(2N) sum_n ||W2 tanh(W1 x_n) - y_n||^2``) written again in JAX, because diffrax integrates JAX functions and
falab's field is torch. It is a comparator, not a second implementation of the rule: :func:`field_agreement` checks it
against falab's own field (``falab.dynamics.vector_field``) before any time is reported, and the final states are
compared with falab's per-member route.

jax and diffrax are reached through ``importlib`` so that type checking does not depend on an optional package.
"""

from __future__ import annotations

import importlib
import os
import time
from typing import Any

import numpy as np


def _jax() -> tuple[Any, Any, Any]:
    # one XLA thread, as falab runs torch with one thread (measured faster on these 2-vCPU machines)
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    jax = importlib.import_module("jax")
    jax.config.update("jax_enable_x64", True)
    return jax, importlib.import_module("jax.numpy"), importlib.import_module("diffrax")


def _fa_field(jnp: Any) -> Any:
    r"""FA's negative update on one member: :math:`e = (f - y)/N`, :math:`\dot W_2 = -e^\top h`,
    :math:`\dot W_1 = -((e B_2) \odot (1 - h^2))^\top x` with :math:`h = \tanh(x W_1^\top)` (P000 eq. (3))."""

    def field(t: Any, state: Any, args: Any) -> Any:
        w1, w2 = state
        b2, x, y = args
        h = jnp.tanh(x @ w1.T)
        e = (h @ w2.T - y) / x.shape[0]
        return (-((e @ b2) * (1.0 - h * h)).T @ x, -e.T @ h)

    return field


def field_agreement(w1: np.ndarray, w2: np.ndarray, b2: np.ndarray, x: np.ndarray, y: np.ndarray,
                    reference: tuple[np.ndarray, np.ndarray]) -> float:
    """Largest relative difference between this module's field at one member's state and ``reference`` (falab's)."""
    _, jnp, _ = _jax()
    d1, d2 = _fa_field(jnp)(0.0, (jnp.asarray(w1), jnp.asarray(w2)), (jnp.asarray(b2), jnp.asarray(x), jnp.asarray(y)))
    return max(float(np.abs(np.asarray(d) - r).max() / np.abs(r).max()) for d, r in zip((d1, d2), reference))


def solve_ensemble(w1: np.ndarray, w2: np.ndarray, b2: np.ndarray, x: np.ndarray, y: np.ndarray, t_end: float,
                   rtol: float, atol: float) -> dict[str, Any]:
    """Integrate K members (leading axis of every array) to ``t_end`` with diffrax ``Dopri8`` (an 8th-order pair, as
    DOP853) and a PID controller at ``rtol``/``atol`` under ``jax.vmap``. Returns the final ``W1``, ``W2``, the first
    call's time (JIT compilation included), the second call's time, and the steps each member took."""
    jax, jnp, dfx = _jax()
    term = dfx.ODETerm(_fa_field(jnp))

    def one(w1_k: Any, w2_k: Any, b2_k: Any, x_k: Any, y_k: Any) -> Any:
        sol = dfx.diffeqsolve(term, dfx.Dopri8(), t0=0.0, t1=t_end, dt0=None, y0=(w1_k, w2_k),
                              args=(b2_k, x_k, y_k), stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol),
                              saveat=dfx.SaveAt(t1=True), max_steps=100_000)
        return sol.ys[0][-1], sol.ys[1][-1], sol.stats["num_accepted_steps"]

    solve = jax.jit(jax.vmap(one))
    args = [jnp.asarray(a) for a in (w1, w2, b2, x, y)]
    t0 = time.perf_counter()
    jax.block_until_ready(solve(*args))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    f1, f2, steps = jax.block_until_ready(solve(*args))
    second = time.perf_counter() - t0
    return {"W1": np.asarray(f1), "W2": np.asarray(f2), "first_call_s": first, "s": second,
            "steps": np.asarray(steps), "version": importlib.import_module("importlib.metadata").version("diffrax")}
