r"""P003's systems (Girotti, Mitliagkas & Gidel) as engine problems: public constructors, no simulation here.

The decoupled scalar systems are the engine's networks with 1x1 weights: (6) is a 2-layer linear net
``W1 = theta_1``, ``W2 = theta_2``, FA feedback ``B2 = d``, input ``x = 1``, target ``lambda``, ``SquaredLoss('mean')``;
(10) is DFA on an L-layer 1-wide net with ``D_l^T = d_l``; GD is :class:`~falab.rules.Backprop` on the same net. Many
scalar systems form one ensemble (leading dimension K: one d, lambda and start per member). The autoencoder uses 20-row
data ``Xc = sqrt(20) Sigma^(1/2)`` with the covariances of the sampled data (P003-P1: the same updates).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .._checks import invalid
from ..dynamics import Problem
from ..functional import SquaredLoss
from ..models import Params, deep_linear
from ..rules import AbstractLearningRule, Backprop, DirectFeedbackAlignment, FeedbackAlignment

DT = torch.float64


def _t(a: Sequence[float] | np.ndarray | float) -> Tensor:
    return torch.as_tensor(np.asarray(a, dtype=float), dtype=DT)


def scalar_params(thetas: np.ndarray) -> Params:
    """``(K, L)`` scalar states -> engine parameters ``{'W1': (K, 1, 1), ..., 'WL': (K, 1, 1)}``."""
    thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
    return {f"W{l + 1}": _t(thetas[:, l]).view(-1, 1, 1).clone() for l in range(thetas.shape[1])}


def scalar_thetas(params: Params) -> np.ndarray:
    """Engine parameters of a 1-wide net -> ``(K, L)`` array of ``theta_l``."""
    n = len(params)
    return np.stack([params[f"W{l}"].reshape(-1).numpy() for l in range(1, n + 1)], axis=-1)


def scalar_system(d: Sequence[float] | np.ndarray | float, lam: Sequence[float] | np.ndarray | float, *,
                  rule: str = "fa") -> Problem:
    r"""The decoupled 2-layer system: FA gives eq. (6), ``rule='gd'`` the GD system
    :math:`\theta_1' = \theta_2(\lambda - \theta_1\theta_2)`, :math:`\theta_2' = \theta_1(\lambda - \theta_1\theta_2)`.
    ``d`` and ``lam`` are one value or one per ensemble member."""
    lam_a, d_a = np.atleast_1d(np.asarray(lam, dtype=float)), np.atleast_1d(np.asarray(d, dtype=float))
    k = max(lam_a.size, d_a.size)
    lam_t, d_t = _t(np.broadcast_to(lam_a, (k,)).copy()), _t(np.broadcast_to(d_a, (k,)).copy())
    model = deep_linear((1, 1, 1))
    r: AbstractLearningRule
    if rule == "fa":
        r = FeedbackAlignment()
        state = r.init(model, scalar_params(np.zeros((k, 2))), generator=torch.Generator(),
                       feedback={"B2": d_t.reshape(k, 1, 1).clone()})
    elif rule == "gd":
        r, state = Backprop(), {}
    else:
        raise ValueError(f"Invalid rule: {rule!r} (expected one of 'fa', 'gd')")
    return Problem(model, r, SquaredLoss("mean"), torch.ones(1, 1, dtype=DT), lam_t.reshape(k, 1, 1).clone(), state)


def deep_scalar_system(ds: Sequence[float], lam: Sequence[float] | np.ndarray | float) -> Problem:
    r"""System (10): DFA on an L-layer 1-wide linear net with ``D_l^T = d_l`` (l < L; ``d_L = 1`` is implicit):
    :math:`\theta_l' = d_l(\lambda - \theta_L\cdots\theta_1)\theta_{l-1}\cdots\theta_1`. ``ds = (d_1, ..., d_{L-1}[, 1])``."""
    lam_t = _t(np.atleast_1d(lam))
    k = lam_t.numel()
    ds = list(ds)
    n_layers = len(ds) if len(ds) > 1 and ds[-1] == 1 else len(ds) + 1
    model = deep_linear((1,) * (n_layers + 1))
    r = DirectFeedbackAlignment()
    fb = {f"D{l}": torch.full((k, 1, 1), float(ds[l - 1]), dtype=DT) for l in range(1, n_layers)}
    state = r.init(model, scalar_params(np.zeros((k, n_layers))), generator=torch.Generator(), feedback=fb)
    return Problem(model, r, SquaredLoss("mean"), torch.ones(1, 1, dtype=DT), lam_t.reshape(k, 1, 1).clone(), state)


def theta_event(k: int, level: float = 0.0) -> Callable[[float, Params], float]:
    """Event function for :func:`~falab.dynamics.simulate_flow`: ``theta_1`` of member k crosses ``level`` (e.g. the
    P003 vanishing time, eqs 16-17, at level 0)."""
    def g(t: float, params: Params) -> float:
        del t
        return float(params["W1"].reshape(-1)[k]) - level
    return g


def autoencoder_data(gen: torch.Generator, *, n: int = 1000, d: int = 20, k: int = 5,
                     latent_var: Sequence[float] = (4.0, 2.0, 1.0, 0.5, 0.25), noise: float = 1e-3
                     ) -> tuple[Tensor, Tensor]:
    """P003 Sec. 6 data: ``x_i = A z_i + eps_i``, ``A_kl ~ U(0,1)`` (d x k), ``z ~ N(0, diag(latent_var))``,
    ``eps ~ noise * N(0, I_d)``. Returns ``(X (n, d), A)``."""
    a = torch.rand(d, k, generator=gen, dtype=DT)
    z = torch.randn(n, k, generator=gen, dtype=DT) * torch.as_tensor(latent_var, dtype=DT).sqrt()
    x = z @ a.T + noise * torch.randn(n, d, generator=gen, dtype=DT)
    return x, a


def covariance_data(sigma: Tensor) -> Tensor:
    r"""Rows ``Xc (m, m)`` with ``Xc^T Xc / m = Sigma`` (``Xc = sqrt(m) Sigma^{1/2}``): a mean-loss linear net trained
    on ``(Xc, Xc)`` follows exactly the autoencoder flow (3)/(8) with ``Sigma_xx = Sigma_xy = Sigma`` (P003-P1)."""
    ev, v = torch.linalg.eigh(sigma)
    m = sigma.shape[-1]
    return math.sqrt(m) * (v * ev.clamp_min(0).sqrt().unsqueeze(-2)) @ v.transpose(-1, -2)


def autoencoder_problem(rule_name: str, n_layers: int, xc: Tensor, feedback: dict[str, Tensor] | None) -> Problem:
    """The linear autoencoder on data rows ``xc`` (``(m, d)`` or one per member ``(K, m, d)``): GD, 2-layer FA with
    ``B2 = M^T``, or the literal eq. (8) for 3 layers (DFA with ``D_l^T = M_l``); ``feedback`` as the rule's state."""
    d = xc.shape[-1]
    model = deep_linear((d,) * (n_layers + 1))
    if rule_name == "gd":
        return Problem(model, Backprop(), SquaredLoss("mean"), xc, xc, {})
    rule = FeedbackAlignment() if n_layers == 2 else DirectFeedbackAlignment()
    if feedback is None:
        raise invalid("feedback", None, f"the feedback matrices of the {n_layers}-layer {rule_name} autoencoder "
                      "(B2 = M^T for 2 layers, D_l^T = M_l for 3)")
    k = next(iter(feedback.values())).shape[0]
    p0 = {f"W{l}": torch.zeros(k, d, d, dtype=DT) for l in range(1, n_layers + 1)}
    state = rule.init(model, p0, generator=torch.Generator(), feedback=feedback)
    return Problem(model, rule, SquaredLoss("mean"), xc, xc, state)
