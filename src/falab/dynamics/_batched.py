r"""Per-member error control for ensemble flows (issue 17 item 3): DOP853 and Dormand-Prince 5(4), batched in torch.

``simulate_flow(..., method="dop853-members")`` (or ``"dopri5-members"``) integrates an ensemble of K members,
stacked as one float64 state of shape ``(K, P)``, with every member's step size, error norm, step acceptance and
step-size controller its own, as torchode does; members that reached the horizon or met their stop condition leave
the active set, and the field is then evaluated on the active rows only (the ensemble's data and feedback are indexed
along the member axis). The whole ensemble advances as one tensor program: the Python loop is over attempted steps,
never over members. Nothing in a member's arithmetic depends on the other rows (row-wise operations, no fused
multiply-adds, ``pow`` by numpy), so a member's trajectory is bit-identical to the member run alone whenever the
field's own kernels are row-independent too (measured so for falab's MLP fields; ``tests/test_flow_batched.py``).

Why this route: the scipy route integrates the stacked ensemble in lockstep, so the member with the hardest dynamics
sets the step for all and converged members keep costing. Why hand-written: torchode (the batched PyTorch solver with
per-sample control) is not installable here and diffrax is JAX, while falab's vector field is a torch function; the
methods are the textbook ones and fit in this file.

**Methods** (Hairer, Norsett & Wanner, *Solving Ordinary Differential Equations I*, 2nd ed.; HNW below): explicit
FSAL embedded pairs with local extrapolation,

.. math::

    k_i = f\Big(y_n + h\sum_{j<i} a_{ij}k_j\Big), \qquad y_{n+1} = y_n + h\sum_i b_i k_i,

- ``dopri5``: Dormand & Prince 5(4) (HNW II.5, Table 5.2), 6 evaluations a step, error
  :math:`\mathrm{err} = h\sum_i e_i k_i` with :math:`e = b - \hat b`, Shampine's quartic dense output
  :math:`y(t_n + \vartheta h) = y_n + h\sum_i k_i \sum_{q=1}^{4} p_{iq}\vartheta^q` (scipy RK45's coefficients);
- ``dop853``: Dormand & Prince 8(5,3) (HNW II.10, Hairer's DOP853; scipy's coefficients), 12 evaluations a step,
  its 7th-order dense output (3 more evaluations, on the rows that need one) and Hairer's error estimate
  :math:`\mathrm{err}_m = |h|\,E_5^2 / \sqrt{P\,(E_5^2 + 0.01\,E_3^2)}` with :math:`E_q^2 = \sum_i (h^{-1}
  \mathrm{err}^{(q)}_i / sc_i)^2` from the embedded 5th- and 3rd-order estimates.

**Error norm and acceptance, per member** :math:`m` (HNW II.4, eqs. 4.10-4.11): with
:math:`sc_i = \mathrm{atol} + \mathrm{rtol}\max(|y_{n,i}|, |y_{n+1,i}|)`, for ``dopri5``

.. math::

    \mathrm{err}_m = \Big(\tfrac1P \sum_{i \in m} (\mathrm{err}_i / sc_i)^2\Big)^{1/2},

and member m's step is accepted iff :math:`\mathrm{err}_m \le 1`.

**Step-size controller, per member**, with the error estimator's order :math:`q` (4 for ``dopri5``, 7 for
``dop853``), safety :math:`s = 0.9`, factor limits 0.2 and 10:

.. math::

    h_{\mathrm{new}} = h\,\min\!\Big(10, \max\!\big(0.2,\; s\,\mathrm{err}_n^{-(1/(q+1) - 0.75\beta)}\,
    \mathrm{err}_{n-1}^{\beta}\big)\Big),

the PI controller of Hairer's DOPRI5 code with :math:`\beta = 0.04` for ``dopri5`` (PI control: Gustafsson, Lundh &
Soderlind, BIT 28, 1988; HNW II.4) and the I controller (:math:`\beta = 0`, scipy's and DOP853's) for ``dop853``.
:math:`\mathrm{err}_{n-1}` is the member's last accepted error (floored at 1e-4); after a rejection the integral part
alone is used (:math:`h\max(0.2, s\,\mathrm{err}_n^{-1/(q+1) + 0.75\beta})`, never growing) and the next accepted step
may not grow. The first step is HNW's starting-step algorithm (II.4, "Starting Step Size"), per member, as scipy's.
With these choices ``dop853-members`` takes, member by member, exactly the steps of scipy's DOP853 on that member
alone (same evaluation counts; states equal to rounding, measured <= 4e-15 relative). A member stalls when its step
falls below 10 ulp of its time (scipy's rule) or its evaluations exceed ``max_evaluations``.

Example:
    Two one-weight regressions ``w' = -x (x w - 1)`` with rates ``x^2 = 1`` and ``100``: each member takes its own
    steps and lands on its closed form ``w(1) = (1 - e^{-x^2}) / x``:

    >>> import torch
    >>> from falab.dynamics import Problem, simulate_flow
    >>> from falab.functional import SquaredLoss
    >>> from falab.models import deep_linear
    >>> from falab.rules import Backprop
    >>> x = torch.tensor([1.0, 10.0], dtype=torch.float64).view(2, 1, 1)
    >>> prob = Problem(deep_linear((1, 1)), Backprop(), SquaredLoss("mean"), x, torch.ones(2, 1, 1, dtype=torch.float64))
    >>> tr = simulate_flow(prob, {"W1": torch.zeros(2, 1, 1, dtype=torch.float64)}, [0.0, 1.0], method="dop853-members")
    >>> tr.info["member_status"], tr.info["member_steps"]
    (['ok', 'ok'], [8, 43])
    >>> [round(float(w), 6) for w in tr.final["W1"].reshape(-1)]
    [0.632121, 0.1]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .._checks import invalid
from ..models import Params
from ._problem import Measure, Problem, Snapshot, StopInfo, Trajectory
from ._stop import Conditions, Event, Stop

DT = torch.float64
_ACTIVE, _DONE, _STOPPED, _STALLED, _DIVERGED = 0, 1, 2, 3, 4
# "unfinished": the run ended (on another member's non-finite record) before this member reached its end
STATUS_NAMES = {_ACTIVE: "unfinished", _DONE: "ok", _STOPPED: "ok", _STALLED: "stalled", _DIVERGED: "diverged"}
SAFETY = 0.9
BLOCK_NUMBERS = 2**17  # members integrated together: at most this many state numbers (measured, see below)
ERR_FLOOR = 1e-4  # err_{n-1} floor (DOPRI5's facold start), so one tiny error cannot blow the next step up


def _combine(ks: Sequence[Tensor], coeffs: Sequence[float]) -> Tensor:
    """``sum_i c_i k_i`` over the nonzero coefficients, accumulated in place (``add_(k, alpha=c)``: 3.7x faster than
    multiply-then-add with temporaries on a 124 x 1050 block, measured). Not one GEMM over the stacked stages: BLAS's
    result for a row depends on the row's place in the batch (measured), elementwise ``add_`` does not."""
    out: Tensor | None = None
    for c, k in zip(coeffs, ks):
        if c != 0.0:
            out = k * c if out is None else out.add_(k, alpha=c)
    assert out is not None
    return out


class _Interpolant:
    """A step's dense output on the rows ``need`` of the active batch; :meth:`at` takes a sub-mask of ``need``."""

    def __init__(self, need: Tensor, y0: Tensor, h: Tensor, coef: list[Tensor], kind: str) -> None:
        self.pos = torch.cumsum(need.long(), 0) - 1
        self.y0, self.h, self.coef, self.kind = y0, h, coef, kind

    def at(self, sel: Tensor, theta: Tensor) -> Tensor:
        r = self.pos[sel]
        x = theta[:, None]
        if self.kind == "dp5":  # y0 + h (Q0 x + Q1 x^2 + Q2 x^3 + Q3 x^4), powers by products (see _pow)
            acc = self.coef[3][r] * x
            for q in (2, 1, 0):
                acc = (acc + self.coef[q][r]) * x
            return self.y0[r] + self.h[r][:, None] * acc
        y = torch.zeros_like(self.y0[r])  # DOP853: Hairer's nested form over F_6 .. F_0, as scipy's
        for i, f in enumerate(reversed(self.coef)):
            y = (y + f[r]) * (x if i % 2 == 0 else 1 - x)
        return y + self.y0[r]


class _Tableau:
    """An embedded explicit Runge-Kutta pair with FSAL: stage matrix, weights, error estimate and dense output."""

    name = ""
    n_stages = 0  # stages per step (the FSAL stage f(y_{n+1}) is the next step's first)
    a: tuple[tuple[float, ...], ...] = ()  # a[s]: coefficients of k_0..k_{s-1} in stage s (a[0] unused)
    b: tuple[float, ...] = ()
    error_order = 0  # q: the controller's exponent is 1/(q+1)
    beta = 0.0  # PI part of the controller (0: the I controller)
    fac_min, fac_max = 0.2, 10.0
    extra_stages = 0  # field evaluations a dense output costs a member

    def error(self, ks: Sequence[Tensor], h: Tensor, scale: Tensor) -> Tensor:
        raise NotImplementedError

    def interpolant(self, need: Tensor, ya: Tensor, y_new: Tensor, hs: Tensor, ks: Sequence[Tensor],
                    field_rows: Callable[[Tensor, Tensor], Tensor]) -> _Interpolant:
        raise NotImplementedError


class _DP5(_Tableau):
    """Dormand-Prince 5(4) (HNW I, Table 5.2) with Shampine's quartic dense output (the coefficients of scipy's RK45)."""

    name, n_stages, error_order, beta = "dopri5", 6, 4, 0.04  # beta: Hairer's DOPRI5 PI controller
    a = ((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
         (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
         (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656))
    b = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)
    e = (-71 / 57600, 0.0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40)  # b - b_hat, 7 stages
    p = ((1.0, -8048581381 / 2820520608, 8663915743 / 2820520608, -12715105075 / 11282082432),
         (0.0, 0.0, 0.0, 0.0),
         (0.0, 131558114200 / 32700410799, -68118460800 / 10900136933, 87487479700 / 32700410799),
         (0.0, -1754552775 / 470086768, 14199869525 / 1410260304, -10690763975 / 1880347072),
         (0.0, 127303824393 / 49829197408, -318862633887 / 49829197408, 701980252875 / 199316789632),
         (0.0, -282668133 / 205662961, 2019193451 / 616988883, -1453857185 / 822651844),
         (0.0, 40617522 / 29380423, -110615467 / 29380423, 69997945 / 29380423))

    def error(self, ks: Sequence[Tensor], h: Tensor, scale: Tensor) -> Tensor:
        err = _combine(ks, self.e).mul_(h[:, None]).div_(scale)
        return _rms(err)

    def interpolant(self, need, ya, y_new, hs, ks, field_rows):
        kn = [k[need] for k in ks]
        coef = [_combine(kn, [row[q] for row in self.p]) for q in range(4)]
        return _Interpolant(need, ya[need], hs[need], coef, "dp5")


class _DOP853(_Tableau):
    """Dormand-Prince 8(5,3) (HNW I, Sec. II.10; Hairer's DOP853) with its 7th-order dense output (3 extra stages).

    The coefficients are scipy's (``scipy.integrate._ivp.dop853_coefficients``, the same numbers as Hairer's code),
    so this is falab's scipy DOP853 route with the error norm and step control of each member its own."""

    name, n_stages, error_order, beta, extra_stages = "dop853", 12, 7, 0.0, 3

    def __init__(self) -> None:
        from scipy.integrate._ivp import dop853_coefficients as dc

        n = dc.N_STAGES
        self.a = tuple(tuple(float(v) for v in dc.A[s, :s]) for s in range(n))
        self.b = tuple(float(v) for v in dc.B)
        self.e5 = tuple(float(v) for v in dc.E5)
        self.e3 = tuple(float(v) for v in dc.E3)
        self.a_extra = tuple(tuple(float(v) for v in dc.A[s, :s]) for s in range(n + 1, dc.N_STAGES_EXTENDED))
        self.d = tuple(tuple(float(v) for v in row) for row in dc.D)

    def error(self, ks: Sequence[Tensor], h: Tensor, scale: Tensor) -> Tensor:
        """Hairer's DOP853 estimate: ``|h| e5^2 / sqrt(P (e5^2 + 0.01 e3^2))`` with the scaled 5th- and
        3rd-order error sums ``e5^2``, ``e3^2`` (HNW I, II.10)."""
        e5 = _combine(ks, self.e5).div_(scale)
        e3 = _combine(ks, self.e3).div_(scale)
        n5, n3 = (e5 * e5).sum(dim=1), (e3 * e3).sum(dim=1)
        denom = n5 + 0.01 * n3
        zero = denom == 0  # a NaN estimate must stay NaN (rejected), not become 0 (accepted)
        safe = torch.where(zero, torch.ones_like(denom), denom)
        return torch.where(zero, torch.zeros_like(denom), h.abs() * n5 / torch.sqrt(safe * scale.shape[1]))

    def interpolant(self, need, ya, y_new, hs, ks, field_rows):
        kn = [k[need] for k in ks]
        y0, y1, h = ya[need], y_new[need], hs[need][:, None]
        for a in self.a_extra:  # the 3 extra stages, on the rows that need a dense output only
            kn.append(field_rows(need, y0 + h * _combine(kn, a)))
        dy = y1 - y0
        coef = [dy, h * kn[0] - dy, 2 * dy - h * (kn[self.n_stages] + kn[0])]
        coef += [h * _combine(kn, row) for row in self.d]
        return _Interpolant(need, y0, hs[need], coef, "dop853")


TABLEAUS: dict[str, Callable[[], _Tableau]] = {"dopri5-members": _DP5, "dop853-members": _DOP853}


class _Members:
    """The ensemble as a ``(K, P)`` state: pack / unpack parameters and index the problem along the member axis."""

    def __init__(self, problem: Problem, params: Params, k: int) -> None:
        self.problem, self.k = problem, k
        self.names = list(params)
        self.shapes = [tuple(params[n].shape[1:]) for n in self.names]
        self.offsets = np.cumsum([0, *[int(np.prod(s)) if s else 1 for s in self.shapes]]).tolist()

    def pack(self, params: Params) -> Tensor:
        return torch.cat([params[n].reshape(params[n].shape[0], -1) for n in self.names], dim=1)

    def unpack(self, y: Tensor) -> Params:
        return {n: y[:, a:b].reshape(y.shape[0], *s)
                for n, s, a, b in zip(self.names, self.shapes, self.offsets[:-1], self.offsets[1:])}

    def rows(self, idx: Tensor) -> Problem:
        """The problem of the members ``idx`` (per-member data and every state entry indexed; shared data kept)."""
        p = self.problem

        def pick(t: Tensor) -> Tensor:
            return t[idx] if t.dim() == 3 and t.shape[0] == self.k else t

        return dataclasses.replace(p, x=pick(p.x), y=pick(p.y), state={n: v[idx] for n, v in p.state.items()})


def _pow(x: Tensor, a: float) -> Tensor:
    """``x ** a`` by numpy. Why: torch's vectorised pow (SLEEF) and its scalar tail loop (libm) can differ by an ulp,
    so a member's step size would depend on its row's place in the batch; numpy's pow treats every element alike."""
    return torch.from_numpy(np.power(x.numpy(), a))


def _rms(v: Tensor) -> Tensor:
    return torch.sqrt((v * v).mean(dim=1))


def _members_of(problem: Problem, params: Params) -> int | None:
    """K when the problem is an ensemble along one leading member axis (params, state and per-member data)."""
    lead = tuple(problem.loss_value(params).shape)
    if len(lead) != 1:
        return None
    k = lead[0]
    if any(v.dim() < 1 or v.shape[0] != k for v in (*params.values(), *problem.state.values())):
        return None
    for t in (problem.x, problem.y):
        if t.dim() != 2 and not (t.dim() == 3 and t.shape[0] == k):
            return None
    return k


def simulate_members(
    problem: Problem,
    params0: Params,
    ts: list[float],
    *,
    method: str = "dop853-members",
    rtol: float,
    atol: float,
    max_evaluations: int,
    measures: Mapping[str, Measure] | None,
    keep_params: bool,
    stop: Stop | None,
    terminal: Sequence[Event],
    max_step: float,
    progress: Callable[[float], None] | None,
) -> Trajectory:
    """The ``'dop853-members'`` / ``'dopri5-members'`` routes of :func:`simulate_flow` (validated arguments, float64
    problem and params).

    A single network is integrated as an ensemble of one. Terminal events and ``Stop(events=...)`` functions are
    called as ``g(t, params)`` with ``t`` a ``(K_active,)`` tensor of the members' own times and must return one
    value per member. ``max_evaluations`` is per member (each attempted step costs a member 6 (dopri5) or 12 (dop853)
    evaluations, a DOP853 dense output 3 more: ``info['member_nfev']``);
    ``info['nfev']`` counts batched evaluations of the field (one tensor program over the active rows each).
    An output time is recorded once every member passed it; when the ensemble runs in several blocks (more than
    ``BLOCK_NUMBERS`` state numbers) the records of all output times are held until the last block ran (T x K x P
    numbers), so measures and ``progress`` come at the end."""
    from ._flow import vector_field  # the one field of every flow route: -update(constrain(theta))

    tab = TABLEAUS[method]()

    single = not tuple(problem.loss_value(params0).shape)
    full_problem = problem
    if single:  # an ensemble of one: a leading member axis on the parameters and the rule state
        params0 = {n: v[None] for n, v in params0.items()}
        problem = dataclasses.replace(problem, state={n: v[None] for n, v in problem.state.items()})
        # the user's events see the single network's own parameters and a float time, as on the scipy route
        terminal = [dataclasses.replace(e, fn=_single_event(e.fn)) for e in terminal]
        if stop is not None:
            stop = dataclasses.replace(stop, events=[dataclasses.replace(e, fn=_single_event(e.fn))
                                                     for e in stop.events if isinstance(e, Event)])
    k = _members_of(problem, params0)
    if k is None:
        raise invalid("flow.method", method, "an ensemble with one leading member axis shared by the "
                      "parameters, the rule state and per-member data (or a single network)")
    params0 = problem.constrain(params0)
    mem = _Members(problem, params0, k)
    ts_t = torch.tensor(ts, dtype=DT)
    n_out, t_end = len(ts), ts[-1]
    counter = {"nfev": 0}
    traj = Trajectory()

    def field(prob: Problem, y: Tensor) -> Tensor:
        counter["nfev"] += 1
        return mem.pack(vector_field(prob)(mem.unpack(y)))

    conds = Conditions.build(problem, params0, stop, list(terminal))

    def cond_values(prob: Problem, t: Tensor, y: Tensor, f: Tensor | None = None) -> np.ndarray:
        assert conds is not None
        sub = dataclasses.replace(conds, problem=prob, members=y.shape[0], lead=(y.shape[0],))
        params = prob.constrain(mem.unpack(y))
        update = None if f is None else {n: -v for n, v in mem.unpack(f).items()}
        return sub.values(t, params, update)  # type: ignore[arg-type]

    y = mem.pack(params0).clone()
    t = torch.zeros(k, dtype=DT)
    status = torch.full((k,), _ACTIVE, dtype=torch.long)
    stop_time = torch.full((k,), np.inf, dtype=DT)
    n_acc = torch.zeros(k, dtype=torch.long)
    n_rej = torch.zeros(k, dtype=torch.long)
    nfev_m = torch.zeros(k, dtype=torch.long)
    nxt = torch.zeros(k, dtype=torch.long)  # index of each member's next output time
    rows: dict[int, Tensor] = {}
    n_rec = 0
    stops: list[StopInfo] = []

    def write(j: int, sel: Tensor, vals: Tensor) -> None:
        if j not in rows:
            rows[j] = torch.empty_like(y)
        rows[j][sel] = vals

    def record(j: int, tj: float, vec: Tensor) -> bool:
        params = mem.unpack(vec)
        prob = full_problem
        if single:
            params = {n: v[0] for n, v in params.items()}
        bad = ~torch.isfinite(vec).all(dim=1)
        what = "parameters"
        if not bool(bad.any()):
            bad = ~torch.isfinite(prob.loss_value(params).reshape(-1))
            what = "loss"
        if bool(bad.any()):
            members = torch.nonzero(bad).reshape(-1).tolist()
            status[bad] = _DIVERGED
            traj.status = "diverged"
            traj.message = f"non-finite {what} at t = {tj:.6g}" + ("" if single else f" (members {members[:10]})")
            return False
        traj.record(Snapshot(t=tj, step=j, params=params, problem=prob), measures, keep_params)
        if progress is not None:
            progress(tj / t_end)
        return True

    def flush() -> bool:
        """Record every complete output row in order (all members past it or frozen, some member integrated past
        it); False when a record failed (non-finite)."""
        nonlocal n_rec
        while n_rec < n_out:
            j = n_rec
            frozen = (status == _STOPPED) & (stop_time < ts[j])
            if not bool(((nxt > j) | frozen).all()) or not bool((nxt > j).any()):
                return True
            row = rows.pop(j, None)
            if row is None:
                row = torch.empty_like(y)
            row[frozen] = y[frozen]
            n_rec += 1
            if not record(j, ts[j], row):
                return False
        return True

    def stop_members(members: Tensor, times: Tensor, labels: list[int]) -> None:
        for m, tc, c in zip(members.tolist(), times.tolist(), labels):
            reason, detail, _ = conds.labels[c]  # type: ignore[union-attr]
            stops.append(StopInfo(time=float(tc), reason=reason, member=None if single else m, detail=detail))
        status[members] = _STOPPED
        stop_time[members] = times

    # --- start: the field, output time 0 and conditions met at the start
    if ts[0] == 0.0:
        write(0, torch.ones(k, dtype=torch.bool), y)
        nxt[:] = 1
    all_idx = torch.arange(k)
    f = field(problem, y)
    nfev_m += 1
    cond_prev = None
    if conds is not None:
        cond_prev = cond_values(problem, t, y, f)
        hit0 = conds.met(None, cond_prev)
        if hit0.any():
            members = torch.from_numpy(np.nonzero(hit0.any(0))[0])
            labels = [int(np.nonzero(hit0[:, m])[0][0]) for m in members.tolist()]
            stop_members(members, torch.zeros(len(members), dtype=DT), labels)
    # --- starting step size (HNW I, II.4), per member
    sc = atol + rtol * y.abs()
    d0, d1 = _rms(y / sc), _rms(f / sc)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1).clamp(max=t_end)
    f1 = field(problem, y + h0[:, None] * f)
    nfev_m += 1
    d2 = _rms((f1 - f) / sc) / h0
    dmax = torch.maximum(d1, d2)
    h1 = torch.where(dmax <= 1e-15, torch.clamp(h0 * 1e-3, min=1e-6), _pow(0.01 / dmax, 1 / (tab.error_order + 1)))
    h = torch.minimum(torch.minimum(100 * h0, h1), torch.full_like(h0, max_step))
    err_old = torch.full((k,), ERR_FLOOR, dtype=DT)
    was_rejected = torch.zeros(k, dtype=torch.bool)
    iterations = 0
    ok = flush()
    expo = 1 / (tab.error_order + 1) - 0.75 * tab.beta  # the controller's integral exponent
    max_h = torch.tensor(max_step, dtype=DT)

    def run_block(idx: Tensor) -> bool:
        """Integrate the members ``idx`` until each has left; False when a record failed (the run ends)."""
        nonlocal iterations
        ok = True
        # Working copies of the active rows, compacted only when members leave: a step gathers and scatters nothing.
        ya, fa, ta, ha = y[idx], f[idx], t[idx], h[idx]
        eo, rej, nxt_a = err_old[idx], was_rejected[idx], nxt[idx]
        nacc_a, nrej_a, nfev_a = n_acc[idx], n_rej[idx], nfev_m[idx]
        prev_a = None if cond_prev is None else cond_prev[:, idx.numpy()]
        prob = mem.rows(idx)

        def write_back() -> None:
            y[idx], f[idx], t[idx], h[idx], err_old[idx], was_rejected[idx] = ya, fa, ta, ha, eo, rej
            nxt[idx], n_acc[idx], n_rej[idx], nfev_m[idx] = nxt_a, nacc_a, nrej_a, nfev_a
            if prev_a is not None and cond_prev is not None:
                cond_prev[:, idx.numpy()] = prev_a

        while ok and idx.numel() > 0:
            iterations += 1
            left = t_end - ta
            reaching = ha >= left
            hs = torch.minimum(ha, left)  # the step taken (the last one lands on t_end exactly)
            hc = hs[:, None]
            ks = [fa]
            for s in range(1, tab.n_stages):
                ks.append(field(prob, ya + hc * _combine(ks, tab.a[s])))
            y_new = ya + hc * _combine(ks, tab.b)
            ks.append(field(prob, y_new))  # FSAL: the next step's first stage
            err = tab.error(ks, hs, torch.maximum(ya.abs(), y_new.abs()).mul_(rtol).add_(atol))
            err = torch.nan_to_num(err, nan=np.inf, posinf=np.inf)  # a non-finite candidate is rejected
            accept = err <= 1.0
            nfev_a += tab.n_stages
            # --- step-size control, per member: PI on accepted steps (no growth right after a rejection), I on rejected
            fac11 = _pow(err, expo)
            grow = SAFETY / fac11 if tab.beta == 0 else SAFETY / fac11 * _pow(eo, tab.beta)
            grow = torch.clamp(grow, tab.fac_min, tab.fac_max)
            grow = torch.where(rej, torch.clamp(grow, max=1.0), grow)
            shrink = torch.clamp(SAFETY / fac11, tab.fac_min, 1.0)
            ha = torch.minimum(hs * torch.where(accept, grow, shrink), max_h)
            eo = torch.where(accept, torch.clamp(err, min=ERR_FLOOR), eo)
            rej = ~accept
            nacc_a += accept
            nrej_a += rej
            t_new = torch.where(reaching, torch.full_like(ta, t_end), ta + hs)
            t_reach = torch.where(accept, t_new, ta)  # how far each member's accepted piece reaches
            # --- stop conditions at the accepted steps' ends
            hit = None
            now = None
            if prev_a is not None and conds is not None and bool(accept.any()):
                now = cond_values(prob, t_reach, torch.where(accept[:, None], y_new, ya),
                                  torch.where(accept[:, None], ks[-1], fa))
                hit = conds.met(prev_a, now) & accept.numpy()[None, :]
                if not hit.any():
                    hit = None
            # --- the dense output of the members that pass an output time or cross a stop in this step
            need = accept & (nxt_a < n_out) & (ts_t[nxt_a.clamp(max=n_out - 1)] <= t_new)
            if hit is not None:
                need = need | torch.from_numpy(hit.any(0))
            interp = None
            if bool(need.any()):
                def field_rows(sel: Tensor, y_sel: Tensor, idx=idx) -> Tensor:
                    return field(mem.rows(idx[sel]), y_sel)

                interp = tab.interpolant(need, ya, y_new, hs, ks, field_rows)
                nfev_a += need.long() * tab.extra_stages
            stopped_local = torch.zeros(idx.numel(), dtype=torch.bool)
            if hit is not None:
                assert interp is not None and now is not None and prev_a is not None

                def g_at(sel: Tensor, th: Tensor, idx=idx, ta=ta, hs=hs, interp=interp) -> np.ndarray:
                    """The conditions of the members ``sel`` at ``t_n + th h`` on their dense output."""
                    return cond_values(mem.rows(idx[sel]), ta[sel] + th * hs[sel], interp.at(sel, th))

                tc, label = _locate(hit, prev_a, now, g_at, ta, hs)
                hit_m = torch.from_numpy(np.nonzero(hit.any(0))[0])
                stopped_local[hit_m] = True
                t_reach[hit_m] = tc[hit_m]
                stop_members(idx[hit_m], tc[hit_m], [label[m] for m in hit_m.tolist()])
            if now is not None and prev_a is not None:
                prev_a = np.where(accept.numpy()[None, :], now, prev_a)
            # --- output times passed by the accepted pieces, from the dense output (the step's end taken exactly)
            wrote = False
            while interp is not None:
                due = accept & (nxt_a < n_out) & (ts_t[nxt_a.clamp(max=n_out - 1)] <= t_reach)
                if not bool(due.any()):
                    break
                for j in torch.unique(nxt_a[due]).tolist():
                    sel = due & (nxt_a == j)
                    tj = ts[j]
                    vals = interp.at(sel, (tj - ta[sel]) / hs[sel])
                    exact = (t_new[sel] == tj) & ~stopped_local[sel]
                    write(j, idx[sel], torch.where(exact[:, None], y_new[sel], vals))
                nxt_a += due
                wrote = True
            # --- commit the accepted steps; stopped members freeze at their located state
            nonfinite = ~torch.isfinite(y_new).all(dim=1)
            if bool(stopped_local.any()):
                assert interp is not None
                sl = stopped_local
                y_new[sl] = interp.at(sl, (t_reach[sl] - ta[sl]) / hs[sl])
            ya = torch.where(accept[:, None], y_new, ya)
            fa = torch.where(accept[:, None], ks[-1], fa)
            ta = torch.where(accept, t_reach, ta)
            done = accept & reaching & ~stopped_local
            # --- stalls: a step below 10 ulp of the member's time, or the member's evaluation budget spent
            tiny = ~torch.isfinite(ha) | (ha < 10 * (torch.nextafter(ta, torch.full_like(ta, np.inf)) - ta))
            failed = ~done & ~stopped_local & (tiny | (nfev_a > max_evaluations))
            leaving = done | stopped_local | failed
            if bool(leaving.any()):
                write_back()
                status[idx[done]] = _DONE
                if bool(failed.any()):
                    status[idx[failed]] = torch.where(nonfinite[failed], _DIVERGED, _STALLED)
                keep = ~leaving
                idx = idx[keep]
                ya, fa, ta, ha, eo, rej, nxt_a = ya[keep], fa[keep], ta[keep], ha[keep], eo[keep], rej[keep], nxt_a[keep]
                nacc_a, nrej_a, nfev_a = nacc_a[keep], nrej_a[keep], nfev_a[keep]
                if prev_a is not None:
                    prev_a = prev_a[:, keep.numpy()]
                if idx.numel():
                    prob = mem.rows(idx)
                ok = flush()
            elif wrote:
                nxt[idx] = nxt_a
                ok = flush()
        if idx.numel():  # the loop ended on a failed record: keep the members' last state in the info
            write_back()
        return ok

    # members in blocks of <= BLOCK_NUMBERS state numbers, one after the other: a block's stages stay in cache.
    # Measured on the quick-start ensemble (K = 1024 x 1050 numbers, t = 50): blocks of 2^15 / 2^17 / 2^19 numbers
    # took 32.8 / 21.5 / 27.4 s (one block of 2^20 numbers runs at memory bandwidth). Members are independent, so
    # blocking changes a member's numbers at most by the field kernels' rounding (tests/test_flow_batched.py).
    active = all_idx[status == _ACTIVE]
    block = max(1, BLOCK_NUMBERS // y.shape[1])
    for first in range(0, active.numel(), block):
        if not ok:
            break
        ok = run_block(active[first:first + block])
    # --- the run's end: every member stopped -> a last record at the last stop time (all frozen)
    if ok and bool((status == _STOPPED).all()) and n_rec < n_out:
        t_last = float(stop_time.max())
        if not traj.times or traj.times[-1] != t_last:
            record(n_rec, t_last, y.clone())
    failed_m = torch.nonzero((status == _STALLED) | (status == _DIVERGED)).reshape(-1).tolist()
    if failed_m and traj.status == "ok":
        first = min(failed_m, key=lambda m: float(t[m]))
        why = "diverged" if int(status[first]) == _DIVERGED else "stalled"
        reason = ("its step candidates were non-finite" if why == "diverged" else
                  f"its evaluations exceeded max_evaluations = {max_evaluations}" if int(nfev_m[first]) >
                  max_evaluations else "its step fell below 10 ulp of its time")
        traj.status = "diverged" if all(int(status[m]) == _DIVERGED for m in failed_m) else "stalled"
        traj.message = (f"{len(failed_m)} member(s) failed; member {first} {why} at t = {float(t[first]):.6g} "
                        f"({reason}); records end at the last time every member reached")
    stops.sort(key=lambda s: s.time)
    traj.stops = stops
    if stops and bool((status == _STOPPED).all()):
        traj.stop = stops[-1]
    traj.info.update(
        nfev=counter["nfev"], solver=method, rtol=rtol, atol=atol, step_size=None,
        integrator=("DOP853 (Dormand-Prince 8(5,3)), per-member error norm and I step control" if tab.name == "dop853"
                    else "Dormand-Prince 5(4), per-member error norm and PI step control") + " (batched torch)",
        iterations=iterations, member_steps=n_acc.tolist(), member_rejected=n_rej.tolist(),
        member_nfev=nfev_m.tolist(), member_time=t.tolist(),
        member_status=[STATUS_NAMES[int(s)] for s in status])
    if conds is not None:
        traj.set_stops()
    return traj


def _single_event(fn: Callable) -> Callable:
    def wrapped(t: Tensor, params: Params) -> Tensor:
        return torch.as_tensor(fn(float(t.reshape(-1)[0]), {n: v[0] for n, v in params.items()})).reshape(1)

    return wrapped


def _locate(hit: np.ndarray, prev: np.ndarray, now: np.ndarray,
            g: Callable[[Tensor, Tensor], np.ndarray], ta: Tensor, ha: Tensor) -> tuple[Tensor, list[int]]:
    """The earliest crossing time in the step of every member with a hit, by the Illinois method on the dense output
    (vectorised over members, one loop per condition); returns per-member times (inf elsewhere) and the condition."""
    m_all = hit.shape[1]
    best = torch.full((m_all,), np.inf, dtype=DT)
    label = [-1] * m_all
    for c in range(hit.shape[0]):
        sel_np = hit[c]
        if not sel_np.any():
            continue
        sel = torch.from_numpy(sel_np)
        a = torch.zeros(int(sel.sum()), dtype=DT)
        b = torch.ones_like(a)
        ga = torch.from_numpy(prev[c, sel_np].copy())
        gb = torch.from_numpy(now[c, sel_np].copy())
        root = torch.where(gb == 0, b, torch.where(ga == 0, a, torch.full_like(a, np.nan)))
        side = torch.zeros_like(a)  # which end was kept last (Illinois halves the kept end's value)
        hs = ha[sel]
        xtol = 1e-15 * torch.clamp((ta[sel] + hs).abs(), min=1.0) / hs
        for _ in range(200):
            open_ = torch.isnan(root) & ((b - a) > xtol)
            if not bool(open_.any()):
                break
            x = torch.where(open_, (a * gb - b * ga) / (gb - ga), a)
            x = torch.where(open_ & ((x <= a) | (x >= b) | ~torch.isfinite(x)), 0.5 * (a + b), x)
            gx = torch.from_numpy(g(sel.clone().masked_scatter_(sel, open_), x[open_])[c].copy())
            gfull = torch.zeros_like(a)
            gfull[open_] = gx
            zero = open_ & (gfull == 0)
            root = torch.where(zero, x, root)
            left = open_ & ~zero & (torch.sign(gfull) == torch.sign(ga))  # root in [x, b]
            right = open_ & ~zero & ~left  # root in [a, x]
            gb = torch.where(left & (side == 1), 0.5 * gb, gb)
            ga = torch.where(right & (side == -1), 0.5 * ga, ga)
            a, ga = torch.where(left, x, a), torch.where(left, gfull, ga)
            b, gb = torch.where(right, x, b), torch.where(right, gfull, gb)
            side = torch.where(left, torch.ones_like(side), torch.where(right, -torch.ones_like(side), side))
        # a threshold crossing is taken at the bracket's end where g <= 0 holds (the member stops met, not before)
        root = torch.where(torch.isnan(root), b, root)
        tc = ta[sel] + root * hs
        cur = best[sel]
        better = tc < cur
        best[sel] = torch.where(better, tc, cur)
        for m, bt in zip(torch.nonzero(sel).reshape(-1).tolist(), better.tolist()):
            if bt:
                label[m] = c
    return best, label


__all__ = ["simulate_members", "STATUS_NAMES"]
