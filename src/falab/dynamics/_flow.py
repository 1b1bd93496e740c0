"""Exact flows ``dtheta/dt = -rule.update(theta)`` integrated by scipy's ``solve_ivp`` (DOP853 by default).

scipy is used rather than torchdiffeq because it was faster here (measured in ``falab bench``: the solver's per-step
overhead dominates for small networks, and DOP853's high order needs fewer vector-field evaluations at rtol 1e-10).
A whole ensemble is one stacked state vector, so one solver call advances all members with one tensor program
per evaluation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from .._checks import check_choice, check_positive, invalid
from ..models import Params
from ._jacobian import STIFF_PRODUCT, FieldJacobian, stiff
from ._piecewise import PatternSwitcher, piecewise_linear
from ._problem import Measure, Problem, Snapshot, StopInfo, Trajectory
from ._stop import Conditions, Event, EventFn, Stop

METHODS = ("DOP853", "RK45", "Radau", "LSODA", "BDF", "RK23")
ROUTES = ("events", "auto", "dop853-members", "dopri5-members")  # falab's own routes (see simulate_flow's ``method``)
CHUNK_MEMBERS = 128  # default member chunk of an ensemble flow (measured fastest, see simulate_flow)


class _Flattener:
    """Pack a parameter dict into one float64 vector and back (views, no copies on the way in)."""

    def __init__(self, params: Params) -> None:
        self.names = list(params)
        self.shapes = [tuple(params[n].shape) for n in self.names]
        self.sizes = [int(np.prod(s)) if s else 1 for s in self.shapes]
        self.offsets = np.cumsum([0, *self.sizes])

    def pack(self, params: Params) -> np.ndarray:
        return np.concatenate([params[n].detach().reshape(-1).numpy() for n in self.names])

    def unpack(self, vec: np.ndarray) -> Params:
        t = torch.from_numpy(vec)
        return {n: t[a:b].view(s) for n, s, a, b in zip(self.names, self.shapes, self.offsets[:-1], self.offsets[1:])}


def vector_field(problem: Problem) -> Callable[[Params], Params]:
    """The flow's right-hand side as a function of parameters: ``-rule.update(constrain(theta))``."""

    def field_fn(params: Params) -> Params:
        p = problem.constrain(params)
        upd = problem.update(p)
        return {k: -upd[k] if k in upd else torch.zeros_like(v) for k, v in params.items()}

    return field_fn


def simulate_flow(
    problem: Problem,
    params0: Params,
    ts: Sequence[float],
    *,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    method: str | None = None,
    step_size: float | None = None,
    max_evaluations: int = 2_000_000,
    measures: Mapping[str, Measure] | None = None,
    keep_params: bool = True,
    events: Sequence[Event | EventFn] | None = None,
    stop: Stop | None = None,
    sliding: str = "filippov",
    jacobian: bool | None = None,
    max_step: float = np.inf,
    chunk_members: int | None = CHUNK_MEMBERS,
    progress: Callable[[float], None] | None = None,
) -> Trajectory:
    r"""Integrate :math:`\dot\theta = -\mathrm{update}(\theta)` and record at the times ``ts``.

    Main arguments:
        problem: model, rule, loss, data and feedback.
        params0: initial parameters (leading dims = ensemble members).
        ts: increasing output times >= 0; the last one is the horizon.

    Other arguments (keyword-only):
        rtol, atol: tolerances of the adaptive solver (tight defaults 1e-10 / 1e-12).
        method: a scipy ``solve_ivp`` method (``DOP853``, ``RK45``, ``Radau``, ...) stepped by falab so that
            every output time reached is recorded even if a later step fails; ``'events'``, the piecewise-smooth
            route for ReLU / leaky-ReLU MLPs (DOP853 on the current activation pattern, every switch of a
            pre-activation's sign located on the dense output and the solver restarted there; see
            :mod:`falab.dynamics._piecewise`); ``'auto'``: ``'events'`` for piecewise-linear activations, else the
            stiffness check of :mod:`falab.dynamics._jacobian` (:math:`\rho(J(\theta_0))\,T > 10^4`: LSODA with the
            Jacobian, else DOP853; the measured spectral radius and the choice are in ``info['auto']``); or ``'rk4'``, torchdiffeq's fixed-step RK4 with ``step_size`` (first
            order at ReLU kinks); or ``'dop853-members'`` / ``'dopri5-members'``, per-member error control for
            ensembles: DOP853 or Dormand-Prince 5(4) batched in torch, every member with its own step size, error
            norm, acceptance and step-size controller, members that reached ``t_end`` or their stop leaving the
            active set (see :mod:`falab.dynamics._batched`; ``info['member_steps']``, ``['member_status']`` per
            member; ``max_evaluations`` is per member; terminal events get ``t`` as a tensor of the members' own
            times; no non-terminal ``events``; ``chunk_members`` is not used: members run in blocks of at most 2^17
            state numbers; smooth fields: at ReLU kinks its steps shrink as any adaptive solver's).
            Default (None): ``'events'`` for piecewise-linear activations, else ``DOP853``.
        max_evaluations: budget of vector-field evaluations; when exhausted the run stops with
            ``status = 'stalled'`` and keeps what it recorded.
        measures: name -> function of a :class:`Snapshot`, evaluated at every output time.
        progress: called with ``t / t_end`` after every record (for progress bars; chunks report their share).
        events: functions ``g(t, params)`` or :class:`Event` objects; zero crossings of the non-terminal ones are
            located (scipy methods) and returned in ``trajectory.events`` (one array of times per event); terminal
            events stop the run (or their member) like ``stop.events``.
        jacobian: give Radau/BDF/LSODA the field's Jacobian from ``torch.func`` (block-diagonal for ensembles, sparse
            for Radau/BDF). Default (None): yes for those methods; False lets scipy difference it.
        sliding: what the ``'events'`` route does in a Filippov sliding mode (a pre-activation whose field points into
            0 from both sides): ``'filippov'`` integrates the motion on the switching surface (equivalent control),
            ``'stop'`` stops the member there with ``StopInfo(reason='sliding')`` (time, layer, unit, sample) and
            the trajectory's ``status = 'sliding'``.
        stop: a :class:`Stop` (loss <= target, update norm <= tolerance, terminal events): the run stops at the
            located crossing time, records the state there last and sets ``trajectory.stop``
            (:class:`StopInfo`: time, reason, member). In an ensemble each member stops on its own (frozen at its
            stop state) and the run ends when all have stopped. Not with ``method='rk4'``.
        chunk_members: integrate an ensemble of more than this many members (one leading dimension shared by
            parameters, feedback and per-member data) as consecutive chunks of at most ``chunk_members`` members,
            each one solver run over one batched tensor program, and stitch the records (measures are evaluated on
            the stitched ensemble). Why: the solver's vector operations on a stacked state of ~10^6 numbers run
            at memory (L3) bandwidth, while a chunk's stages stay in cache; K = 1024 quick-start networks took
            16.9 s unchunked and ~11 s in chunks of 128 (``falab bench``). Each chunk gets its own error norm and
            step sizes, so every member still meets ``rtol``/``atol`` (results agree with an unchunked run to the
            solver tolerance, not bitwise). ``None`` (or 0) never chunks; chunking is also skipped with ``events``
            (they see the whole ensemble at every step), with ``method='rk4'`` and when a run without
            ``keep_params`` would have to hold more than 1 GiB of stitched states. ``max_evaluations`` applies to
            each chunk's solver run and ``info['nfev']`` sums the chunks' evaluations (``info['chunks']`` says how
            many). A divergence or stall in any chunk ends the stitched trajectory at that chunk's last record.

    A non-finite state or loss ends the run with ``status = 'diverged'``; the times already reached are kept.
    """
    if method is None or (method == "auto" and piecewise_linear(problem)):
        method = "events" if piecewise_linear(problem) else "DOP853"
    check_choice("flow.method", method, (*METHODS, *ROUTES, "rk4"))
    check_choice("flow.sliding", sliding, ("filippov", "stop"))
    check_positive("flow.rtol", rtol)
    check_positive("flow.atol", atol)
    ts = [float(t) for t in ts]
    if not ts:
        raise invalid("ts", ts, "at least one output time")
    if ts[0] < 0 or any(b <= a for a, b in zip(ts, ts[1:])):
        raise invalid("ts", ts[:5], "strictly increasing times >= 0")
    if ts[-1] <= 0:
        raise invalid("t_end", ts[-1], "a time > 0")
    if stop is not None and not isinstance(stop, Stop):
        raise invalid("flow.stop", type(stop).__name__, "a falab.dynamics.Stop")
    terminal = [e for e in events or [] if isinstance(e, Event) and e.terminal]
    if method == "rk4" and ((stop is not None and not stop.empty) or terminal):
        raise invalid("flow.stop", stop, "no stop conditions with method 'rk4' (fixed steps locate no crossing); "
                      "use an adaptive method")
    events = [e.fn if isinstance(e, Event) else e for e in events or [] if not (isinstance(e, Event) and e.terminal)]
    has_stop = (stop is not None and not stop.empty) or bool(terminal)
    if method == "rk4" and (step_size is None or not step_size > 0):
        raise invalid("flow.step_size", step_size, "a step > 0 for method 'rk4'")
    if chunk_members is not None and (isinstance(chunk_members, bool) or not isinstance(chunk_members, int)
                                      or chunk_members < 1):
        raise invalid("flow.chunk_members", chunk_members, "an integer >= 1, or None for one solver run")
    problem.model.check_params(params0)  # one Invalid line for a transposed or misplaced parameter
    params0 = {k: v.detach().to(torch.float64).contiguous() for k, v in params0.items()}
    # the solver state is float64, so data and feedback must be too (float32 ones crashed in the first matmul)
    problem = dataclasses.replace(problem, x=problem.x.to(torch.float64), y=problem.y.to(torch.float64),
                                  state={k: v.to(torch.float64) for k, v in problem.state.items()})
    if method.endswith("-members"):  # per-member error control (issue 17 item 3): one batched torch solver
        if events:
            raise invalid("flow.events", f"{len(events)} non-terminal event(s)", f"terminal events only with method "
                          f"{method!r} (members run on their own clocks; use Stop(events=...))", quote=False)
        from ._batched import simulate_members

        return simulate_members(problem, params0, ts, method=method, rtol=rtol, atol=atol, max_evaluations=max_evaluations,
                                measures=measures, keep_params=keep_params, stop=stop, terminal=terminal,
                                max_step=max_step, progress=progress)
    n_chunks = _chunk_count(problem, params0, chunk_members, ts, keep_params) \
        if not events and not has_stop and method != "rk4" else 1
    if n_chunks > 1:
        return _simulate_chunked(problem, params0, ts, n_chunks, measures=measures, keep_params=keep_params,
                                 progress=progress, rtol=rtol, atol=atol, method=method, step_size=step_size,
                                 max_evaluations=max_evaluations, max_step=max_step)
    params0 = problem.constrain(params0)
    flat = _Flattener(params0)
    traj = Trajectory()
    counter = {"nfev": 0}

    def record(i: int, t: float, vec: np.ndarray) -> bool:
        """Record one output time; False when the state or loss is non-finite (the run stops there)."""
        if not np.all(np.isfinite(vec)):
            traj.status, traj.message = "diverged", f"non-finite parameters at t = {t:.6g}"
            return False
        params = problem.constrain(flat.unpack(vec.copy()))
        if not bool(torch.isfinite(problem.loss_value(params)).all()):
            traj.status, traj.message = "diverged", f"non-finite loss at t = {t:.6g}"
            return False
        traj.record(Snapshot(t=t, step=i, params=params, problem=problem), measures, keep_params)
        if progress is not None:
            progress(t / ts[-1])
        return True

    def field_of(prob: Problem, vec: np.ndarray) -> np.ndarray:
        """``-update(constrain(theta))`` as one flat vector (what :func:`vector_field` computes, negated after packing:
        one numpy pass instead of one tensor op per parameter)."""
        counter["nfev"] += 1
        upd = prob.update(prob.constrain(flat.unpack(vec)))
        out = np.concatenate([upd[n].reshape(-1).numpy() if n in upd else np.zeros(size)
                              for n, size in zip(flat.names, flat.sizes)])
        return np.negative(out, out=out)

    switcher = None
    if method == "events":
        switcher = PatternSwitcher(problem, lambda v: problem.constrain(flat.unpack(v.copy())),
                                   lambda v: flat.unpack(v.copy()), problem.loss_value(params0).dim(), field_of,
                                   sliding)

    def rhs(t: float, vec: np.ndarray) -> np.ndarray:
        del t
        return field_of(problem, vec) if switcher is None else switcher.field(vec)

    y0 = flat.pack(params0)
    jac = None
    requested = method
    if method in ("Radau", "BDF", "LSODA", "auto") and jacobian is not False:
        lead = tuple(problem.loss_value(params0).shape)
        members = int(np.prod(lead)) if lead else 1
        per_member = bool(lead) and all(tuple(v.shape[:len(lead)]) == lead for v in params0.values())
        jac = FieldJacobian(problem, flat.names, flat.shapes, flat.sizes, members, per_member,
                            sparse=method in ("Radau", "BDF"))
    if method == "auto":
        assert jac is not None
        is_stiff, rho = stiff(jac, y0, ts[-1])
        method = "LSODA" if is_stiff else "DOP853"
        traj.info["auto"] = {"spectral_radius": rho, "rho_times_horizon": rho * ts[-1], "threshold": STIFF_PRODUCT,
                             "chosen": method}
        if method == "DOP853":
            jac = None
        else:
            jac.sparse = False
    if method == "rk4":
        assert step_size is not None  # checked on entry: rk4 needs a step > 0
        _fixed_step_rk4(rhs, y0, ts, step_size, record)
    else:
        conds = Conditions.build(problem, params0, stop, terminal) if has_stop or switcher is not None else None
        if switcher is not None:
            if conds is None:
                conds = Conditions.build(problem, params0, Stop(), [Event(_never, terminal=True, name="none")])
            switcher.set_pattern(y0)
        _adaptive(rhs, y0, ts, "DOP853" if method == "events" else method, rtol, atol, max_step, max_evaluations,
                  counter, record, traj, events, flat, problem, conds, switcher=switcher, jac=jac)
    traj.info.update(nfev=counter["nfev"], solver=method, rtol=rtol, atol=atol, step_size=step_size)
    if requested != method:
        traj.info["requested"] = requested
    if jac is not None:
        traj.info.update(jacobian="torch.func (forward mode)" + (", block-diagonal" if jac.members > 1 else ""),
                         njev=jac.njev, jacobian_tangents=jac.nfev)
    if switcher is not None:
        traj.info.update(switches=switcher.switches, switch_times=switcher.switch_times[:10_000],
                         sliding_entries=switcher.sliding_entries, sliding=sliding,
                         integrator="DOP853 restarted at each activation-pattern switch")
        slid = [s for s in traj.stops if s.reason == "sliding"]
        if slid and traj.status == "ok":
            traj.status = "sliding"
            traj.message = (f"{len(slid)} sliding mode(s), first at t = {slid[0].time:.6g}"
                            + ("" if slid[0].member is None else f" (member {slid[0].member})")
                            + f": {slid[0].detail}")
        has_stop = True
    if has_stop:
        traj.set_stops()
    return traj


def _never(t: float, params: Params) -> float:
    """A terminal event that never fires (gives the events route its per-member freezing machinery)."""
    del t, params
    return 1.0


def _ensemble_size(problem: Problem, params: Params) -> int | None:
    """K when parameters, feedback and per-member data share one leading ensemble dimension of size K, else None
    (single networks, several leading dimensions, or data/feedback that would not split member by member)."""
    weights = problem.model.layer_weights(params)
    if not weights or weights[0].dim() != 3:
        return None
    k = weights[0].shape[0]
    if any(v.dim() < 1 or v.shape[0] != k for v in params.values()):
        return None
    if any(v.dim() < 1 or v.shape[0] != k for v in problem.state.values()):
        return None
    for t in (problem.x, problem.y):
        if t.dim() != 2 and not (t.dim() == 3 and t.shape[0] == k):
            return None
    return k


def _chunk_count(problem: Problem, params: Params, chunk_members: int | None, ts: list[float],
                 keep_params: bool) -> int:
    """How many member chunks to integrate separately (1 = one solver run over the whole ensemble)."""
    if not chunk_members:
        return 1
    k = _ensemble_size(problem, params)
    if k is None or k <= chunk_members:
        return 1
    state_bytes = sum(v.numel() * v.element_size() for v in params.values())
    if not keep_params and len(ts) * state_bytes > 2**30:
        return 1  # the chunks' records must be held until stitched; keep memory bounded
    return -(-k // chunk_members)


def _simulate_chunked(problem: Problem, params0: Params, ts: list[float], n_chunks: int, *,
                      measures: Mapping[str, Measure] | None, keep_params: bool,
                      progress: Callable[[float], None] | None, **solver) -> Trajectory:
    """Integrate member chunks one after the other (see ``chunk_members``) and stitch their records in order."""
    k = problem.model.layer_weights(params0)[0].shape[0]
    bounds = np.linspace(0, k, n_chunks + 1).round().astype(int)
    parts: list[Trajectory] = []
    for c, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        a, b = int(a), int(b)
        chunk_progress = None if progress is None else (lambda f, c=c: progress((c + f) / n_chunks))
        sub_problem = dataclasses.replace(
            problem,
            x=problem.x[a:b] if problem.x.dim() == 3 else problem.x,
            y=problem.y[a:b] if problem.y.dim() == 3 else problem.y,
            state={n: v[a:b] for n, v in problem.state.items()})
        parts.append(simulate_flow(sub_problem, {n: v[a:b] for n, v in params0.items()}, ts, keep_params=True,
                                   chunk_members=None, progress=chunk_progress, **solver))
    traj = Trajectory()
    shortest = min(parts, key=lambda p: len(p.times))
    for i in range(len(shortest.times)):
        params = {n: torch.cat([p.params[i][n] for p in parts]) for n in params0}
        traj.record(Snapshot(t=shortest.times[i], step=shortest.steps[i], params=params, problem=problem),
                    measures, keep_params)
    traj.status, traj.message = shortest.status, shortest.message
    traj.info.update(nfev=sum(p.info["nfev"] for p in parts), solver=solver["method"], rtol=solver["rtol"],
                     atol=solver["atol"], step_size=solver["step_size"], chunks=n_chunks)
    return traj


def _fixed_step_rk4(rhs, y0: np.ndarray, ts: list[float], step_size: float, record) -> None:
    """torchdiffeq's fixed-grid RK4 (3/8 rule) between consecutive output times (each interval split evenly)."""
    from torchdiffeq import odeint

    def f(t, y):
        return torch.from_numpy(rhs(float(t), y.numpy()))

    y = y0
    t_prev = 0.0
    if ts[0] == 0.0:
        if not record(0, 0.0, y):
            return
        ts_rest = ts[1:]
    else:
        ts_rest = ts
    for i, t in enumerate(ts_rest, start=len(ts) - len(ts_rest)):
        n = max(1, int(np.ceil((t - t_prev) / step_size - 1e-9)))
        out = odeint(f, torch.from_numpy(y), torch.tensor([t_prev, t], dtype=torch.float64), method="rk4",
                     options={"step_size": (t - t_prev) / n})
        y = out[-1].numpy()
        t_prev = t
        if not record(i, t, y):
            return


def _adaptive(rhs, y0, ts, method, rtol, atol, max_step, max_evaluations, counter, record, traj, events, flat,
              problem, conds: Conditions | None = None, jac=None, switcher: PatternSwitcher | None = None) -> None:
    """Step a scipy solver ourselves (as solve_ivp does) so that output times are recorded as they are passed.

    With stop conditions (``conds``), each accepted step is checked for a crossing; its time is located by root finding
    on the step's dense output. A stopping ensemble member is frozen at its located state (its field set to zero) and
    the solver restarted from the end of the step; the run ends when every member (or the single network) stopped.
    With a ``switcher`` (method 'events'), a step that crosses an activation-pattern switch is cut at the located
    switch time, the pattern switched and the solver restarted there (first step = the last accepted step size).
    """
    from scipy.integrate._ivp.ivp import METHODS as SCIPY_METHODS

    frozen = np.zeros(y0.size, dtype=bool)  # entries of stopped members (field 0 from their stop time on)
    frozen_vals = np.zeros(y0.size)
    stop_time = np.full(conds.members if conds else 1, np.inf)

    def f(t: float, y: np.ndarray) -> np.ndarray:
        out = rhs(t, y)
        if frozen.any():
            out[frozen] = 0.0
        return out

    def start(t0: float, y: np.ndarray, first_step: float | None = None):
        kw: dict = {} if jac is None else {"jac": jac}
        if first_step is not None and 0 < first_step < ts[-1] - t0:
            kw["first_step"] = first_step
        return SCIPY_METHODS[method](f, t0, y, ts[-1], rtol=rtol, atol=atol, max_step=max_step, **kw)

    solver = start(0.0, y0)
    ev_fns = []
    for ev in events or []:
        def g(t: float, vec: np.ndarray, ev=ev) -> float:
            return float(ev(t, problem.constrain(flat.unpack(vec))))
        ev_fns.append(g)
    ev_times: list[list[float]] = [[] for _ in ev_fns]
    ev_prev = [g(0.0, y0) for g in ev_fns]
    member_of = _member_index(flat, conds) if conds is not None and conds.per_member else None

    def at(s: float, y: np.ndarray) -> np.ndarray:
        """The state at time s: members stopped at or before s keep their stop state."""
        if not frozen.any():
            return y
        y = y.copy()
        done = frozen if member_of is None else frozen & (stop_time[member_of] <= s)
        y[done] = frozen_vals[done]
        return y

    def cond_values(s: float, y: np.ndarray) -> np.ndarray:
        assert conds is not None
        return conds.values(s, problem.constrain(flat.unpack(y.copy())))

    i = 0
    if ts[0] == 0.0:
        if not record(0, 0.0, y0):
            return
        i = 1
    cond_prev = None
    if conds is not None:
        now0 = cond_values(0.0, y0)
        hit0 = conds.met(None, now0)
        if hit0.any() and _stop_members(conds, hit0, np.zeros_like(now0), 0.0, traj, stop_time, frozen, frozen_vals,
                                        member_of, lambda s: y0):
            if not traj.times:
                _final_record(i, ts, 0.0, y0, record)
            return
        if frozen.any():
            solver = start(0.0, at(0.0, y0))
        cond_prev = now0
    while i < len(ts):
        if counter["nfev"] > max_evaluations:
            traj.status = "stalled"
            traj.message = (f"stopped after {counter['nfev']} vector-field evaluations at t = {solver.t:.6g} "
                            f"(budget max_evaluations = {max_evaluations}); a discontinuous field (ReLU) can stall "
                            "adaptive solvers: try method 'events' (or 'rk4' with a step_size)")
            return
        msg = solver.step()
        if solver.status == "failed":
            reached = traj.times[-1] if traj.times else 0.0
            traj.status, traj.message = "diverged", f"solver failed after t = {reached:.6g}: {msg}"
            return
        dense = None
        t_hi, y_hi = solver.t, solver.y  # the end of the accepted piece (a switch cuts the step short)
        switch_at = None
        if switcher is not None:
            dense = solver.dense_output()
            tc = switcher.locate(dense, solver.t_old, solver.t, solver.y)
            if tc is not None:
                t_hi, y_hi, switch_at = tc, dense(tc), tc
        if ev_fns:
            dense = dense or solver.dense_output()
            for j, g in enumerate(ev_fns):
                now = g(t_hi, y_hi)
                if np.sign(now) != np.sign(ev_prev[j]) and ev_prev[j] != 0.0:
                    from scipy.optimize import brentq

                    ev_times[j].append(brentq(lambda s, g=g, dense=dense: g(s, dense(s)), solver.t_old, t_hi, xtol=1e-14,
                                              rtol=4 * np.finfo(float).eps))
                ev_prev[j] = now
        t_end_run = np.inf
        restart = False
        if conds is not None:
            now_c = cond_values(t_hi, y_hi)
            hit = conds.met(cond_prev, now_c)
            active = np.isinf(stop_time)
            hit &= active[None, :]
            if hit.any():
                dense = dense or solver.dense_output()
                t_old = solver.t_old
                assert cond_prev is not None  # set at the start
                ended = _stop_members(conds, hit, cond_prev, t_old, traj, stop_time, frozen, frozen_vals, member_of,
                                      dense, lambda s, d=dense: cond_values(s, d(s)), t_hi, now_c)
                if ended:
                    t_end_run = float(traj.stop.time) if traj.stop is not None else t_hi
                else:
                    restart = True
            cond_prev = now_c
        t_reach = min(t_hi, t_end_run)
        while i < len(ts) and ts[i] <= t_reach:
            if dense is None:
                dense = solver.dense_output()
            y = y_hi if ts[i] == t_hi else dense(ts[i])
            if not record(i, ts[i], at(ts[i], y)):
                return
            i += 1
        if np.isfinite(t_end_run):
            if not traj.times or traj.times[-1] != t_end_run:
                assert dense is not None
                _final_record(i, ts, t_end_run, at(t_end_run, dense(t_end_run)), record)
            break
        if switch_at is not None:
            assert switcher is not None and conds is not None
            y_now = at(t_hi, y_hi)
            h_last = solver.step_size
            slid = switcher.switch(y_now, t_hi)
            if slid:
                ended = _slide(conds, slid, t_hi, y_now, traj, stop_time, frozen, frozen_vals, member_of)
                if ended:
                    if not traj.times or traj.times[-1] != t_hi:
                        _final_record(i, ts, t_hi, at(t_hi, y_now), record)
                    break
                y_now = at(t_hi, y_now)
            solver = start(t_hi, y_now, h_last)
            cond_prev = cond_values(t_hi, y_now)
            continue
        if restart:
            y_now = at(solver.t, solver.y)
            solver = start(solver.t, y_now, solver.step_size)
            cond_prev = cond_values(solver.t, y_now)
            continue
        if solver.status == "finished" and i < len(ts):
            if not record(i, ts[i], at(ts[i], solver.y)):
                return
            i += 1
    traj.events = [np.asarray(e) for e in ev_times]


def _member_index(flat: _Flattener, conds: Conditions) -> np.ndarray:
    """The ensemble member of every entry of the flat state (parameters are member-major: leading dims first)."""
    m = conds.members
    return np.concatenate([np.repeat(np.arange(m), size // m) for size in flat.sizes])


def _locate(g, a: float, b: float, ga: float, gb: float) -> float:
    """Root of ``g`` in ``[a, b]`` (``g(a)``, ``g(b)`` of opposite sign or ``g(b) == 0``) to ~1 ulp of the time."""
    from scipy.optimize import brentq

    if gb == 0.0 or a == b:
        return b
    if ga == 0.0:
        return a
    return float(brentq(g, a, b, xtol=1e-15 * max(1.0, abs(b)), rtol=4 * np.finfo(float).eps))


def _stop_members(conds: Conditions, hit: np.ndarray, prev: np.ndarray, t_old: float, traj: Trajectory,
                  stop_time: np.ndarray, frozen: np.ndarray, frozen_vals: np.ndarray, member_of: np.ndarray | None,
                  dense, g_at=None, t_new: float | None = None, now: np.ndarray | None = None) -> bool:
    """Locate the stop time of every (condition, member) hit in ``[t_old, t_new]``; freeze stopping members.

    True when the run ends (a single network, conditions that cannot stop members one by one, or every member
    stopped); then ``traj.stop`` is the stop that ended it."""
    located: dict[int, tuple[float, int]] = {}
    for c, m in zip(*np.nonzero(hit)):
        c, m = int(c), int(m)
        if t_new is None or now is None or g_at is None:
            tc = t_old  # met at the start
        else:
            tc = _locate(lambda s, c=c, m=m: float(g_at(s)[c, m]), t_old, t_new, float(prev[c, m]), float(now[c, m]))
        if m not in located or tc < located[m][0]:
            located[m] = (tc, c)
    single = not conds.lead
    if single or not conds.per_member:
        m = min(located, key=lambda j: located[j][0])
        tc, c = located[m]
        reason, detail, _ = conds.labels[c]
        traj.stop = StopInfo(time=float(tc), reason=reason, member=None if single else m, detail=detail)
        traj.stops.append(traj.stop)
        stop_time[:] = tc
        return True
    assert member_of is not None
    for m, (tc, c) in sorted(located.items(), key=lambda kv: kv[1][0]):
        reason, detail, _ = conds.labels[c]
        info = StopInfo(time=float(tc), reason=reason, member=m, detail=detail)
        traj.stops.append(info)
        stop_time[m] = tc
        sel = member_of == m
        frozen[sel] = True
        frozen_vals[sel] = dense(tc)[sel]
    if np.isfinite(stop_time).all():
        traj.stop = traj.stops[-1]
        return True
    return False


def _slide(conds: Conditions, slid: list[tuple[int | None, str]], t: float, y: np.ndarray, traj: Trajectory,
           stop_time: np.ndarray, frozen: np.ndarray, frozen_vals: np.ndarray, member_of: np.ndarray | None) -> bool:
    """Stop the members that entered a sliding mode at ``t`` (frozen at ``y``); True when the run ends."""
    members = sorted({m for m, _ in slid if m is not None})
    if not members or member_of is None:
        traj.stop = StopInfo(time=float(t), reason="sliding", member=slid[0][0], detail=slid[0][1])
        traj.stops.append(traj.stop)
        stop_time[:] = t
        return True
    for m in members:
        if np.isfinite(stop_time[m]):
            continue
        detail = next(d for mm, d in slid if mm == m)
        traj.stops.append(StopInfo(time=float(t), reason="sliding", member=m, detail=detail))
        stop_time[m] = t
        sel = member_of == m
        frozen[sel] = True
        frozen_vals[sel] = y[sel]
    if np.isfinite(stop_time).all():
        traj.stop = traj.stops[-1]
        return True
    return False


def _final_record(i: int, ts: list[float], t: float, y: np.ndarray, record) -> None:
    """The record at a stop time (step index = the next output index)."""
    record(i, t, y)
