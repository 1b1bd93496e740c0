"""Piecewise-smooth ReLU flows (issue 17 item 1): activation-pattern switches located as events, sliding modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from falab.dynamics import Problem, simulate_flow
from falab.experiments.p000 import runs as p000
from falab.experiments.p000.configs import Fig1Config
from falab.functional import SquaredLoss
from falab.instruments import fa_quantity
from falab.models import MLP
from falab.rules import FeedbackAlignment, Gaussian
from falab.theory import k0_time

DT = torch.float64


def _scalar_relu(theta0: np.ndarray, d: float, lams: np.ndarray) -> tuple[Problem, dict[str, torch.Tensor]]:
    """P003's system (6) with a ReLU hidden unit: ``f = theta2 relu(theta1)``, FA feedback ``B2 = d``, x = 1, y = lam.
    While theta1 > 0 it is the linear system; with lam < 0 the K = 0 flow (init (7)) drives theta1 to
    r = (2 d lam)^(1/3) < 0, so it crosses 0 at ``k0_time(theta0, 0, d, lam)`` (P003 eqs 46-47); below 0 the unit
    is off and the field vanishes (a transversal crossing, no sliding)."""
    k = len(theta0)
    model = MLP((1, 1, 1), "relu")
    p0 = {"W1": torch.tensor(theta0, dtype=DT).view(k, 1, 1),
          "W2": torch.tensor(theta0**2 / (2 * d), dtype=DT).view(k, 1, 1)}
    rule = FeedbackAlignment()
    state = rule.init(model, p0, feedback={"B2": torch.full((k, 1, 1), d, dtype=DT)})
    return Problem(model, rule, SquaredLoss("mean"), torch.ones(1, 1, dtype=DT),
                   torch.tensor(lams, dtype=DT).view(k, 1, 1), state), p0


def test_relu_crossings_at_closed_form_times_and_invariant_kept():
    theta0, d, lams = np.array([0.5, 1.0, 2.0]), 1.5, np.array([-0.5, -1.0, -0.2])
    prob, p0 = _scalar_relu(theta0, d, lams)
    want = sorted(float(k0_time(a, 0.0, d, lam)) for a, lam in zip(theta0, lams))
    ts = np.linspace(0, 1.5 * want[-1], 16).tolist()
    traj = simulate_flow(prob, p0, ts, rtol=1e-12, atol=1e-14)  # the default for ReLU: events
    assert traj.info["solver"] == "events" and traj.status == "ok"
    got = sorted(traj.info["switch_times"])
    assert len(got) == 3
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    # invariant K = theta2 - theta1^2/(2d) (P003 eq. 37) along the whole run, kinks included
    w1, w2 = traj.param("W1").reshape(-1, 3), traj.param("W2").reshape(-1, 3)
    kk = w2 - w1**2 / (2 * d)
    assert float(kk.abs().max()) < 1e-12
    # DOP853 across the kink (no event handling) is worse by orders of magnitude, RK4 at dt = 1e-2 too
    rk = simulate_flow(prob, p0, ts, method="rk4", step_size=1e-2)
    kr = rk.param("W2").reshape(-1, 3) - rk.param("W1").reshape(-1, 3) ** 2 / (2 * d)
    assert float(kr.abs().max()) > 1e3 * float(kk.abs().max())


def _fig1_member(member: int) -> tuple[Problem, dict[str, torch.Tensor], torch.Tensor]:
    """One network of P000's quick Fig. 1 ensemble (seed 0): it enters Filippov sliding modes within t < 0.01."""
    cfg = Fig1Config.quick()
    x, y, p0, b = p000.fig1_init(cfg, [0])
    sel = slice(member, member + 1)
    x, y, b = x[sel], y[sel], b[sel]
    p0 = {k: v[sel] for k, v in p0.items()}
    model = MLP((cfg.d, cfg.h, 1), "relu")
    rule = FeedbackAlignment(Gaussian())
    state = rule.init(model, p0, feedback={"B2": b})
    return Problem(model, rule, SquaredLoss("mean"), x, y, state), p0, b


def test_sliding_mode_detected_and_stopped_or_integrated():
    prob, p0, b = _fig1_member(1)
    ts = np.linspace(0.0, 0.003, 7).tolist()
    stopped = simulate_flow(prob, p0, ts, sliding="stop")
    assert stopped.status == "sliding" and stopped.stop is not None and stopped.stop.reason == "sliding"
    assert "unit" in stopped.stop.detail and "sample" in stopped.stop.detail
    t_s = stopped.stop.time
    assert 0 < t_s < ts[-1] and stopped.times[-1] == t_s
    pre = prob.model.trace(stopped.final, prob.x).pre[0]
    assert float(pre.abs().min()) < 1e-12  # stopped on the switching surface
    # Filippov: the run continues on the surface; the sliding pre-activation stays at 0, FA's law is conserved
    fil = simulate_flow(prob, p0, ts, measures={"Q": lambda s: fa_quantity(prob.model.layer_weights(s.params),
                                                                          {2: b})[..., 0]})
    assert fil.status == "ok" and fil.info["sliding_entries"] >= 1
    q = fil.metric("Q").reshape(-1)
    assert float((q - q[0]).abs().max() / q[0].abs()) < 1e-11
    unit = tuple(int(v) for v in np.unravel_index(int(pre.abs().argmin()), tuple(pre.shape)))
    after = next(i for i, t in enumerate(fil.times) if t > t_s)  # the first record on the sliding interval
    assert fil.times[after] - t_s < 1e-5
    assert abs(float(prob.model.trace(fil.params[after], prob.x).pre[0][unit])) < 1e-10
    # RK4 converges to this solution at first order (the chattering scheme's error halves with the step)
    errs = []
    for dt in (1e-5, 5e-6):
        rk = simulate_flow(prob, p0, ts, method="rk4", step_size=dt)
        errs.append(float((rk.final["W1"] - fil.final["W1"]).abs().max()))
    assert errs[1] < errs[0] and 1.4 < errs[0] / errs[1] < 2.8, errs


def test_explicit_methods_keep_their_behaviour():
    theta0, d, lams = np.array([0.5]), 1.5, np.array([-0.5])
    prob, p0 = _scalar_relu(theta0, d, lams)
    tr = simulate_flow(prob, p0, [0.0, 0.5], method="DOP853")
    assert tr.info["solver"] == "DOP853" and "switches" not in tr.info
    with pytest.raises(Exception, match="Invalid flow.sliding"):
        simulate_flow(prob, p0, [0.0, 0.5], sliding="chatter")
