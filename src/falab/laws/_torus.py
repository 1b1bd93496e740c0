r"""A torus of scalings under which the field is homogeneous: the structure that splits the linear system into blocks.

Let a torus :math:`s\in(\mathbb R_{>0})^T` act on coordinates by :math:`(s\cdot\theta)_i = s^{w_i}\theta_i` and
suppose the field (with the data ``(x, e)`` held fixed, see ``_field``) is homogeneous,
:math:`v_i(s\cdot\theta) = s^{\nu_i} v_i(\theta)`. For a monomial :math:`m = \prod_r \theta_{i_r}` the term
:math:`\partial_{i_r} m\, v_{i_r}` then scales with the *character* :math:`\chi = \sum_{q\ne r} w_{i_q} + \nu_{i_r}`.
Since :math:`\langle\nabla P(s\cdot\theta), v(s\cdot\theta)\rangle = \sum_\chi s^\chi E_\chi(\theta)` vanishes for all
:math:`s>0` only if every :math:`E_\chi` vanishes, each sample gives one small equation per character, on the
monomials of that character only.

Candidate tori come from the MLP's structure: one scaling per layer (``W_l -> s_l W_l``, ``b_l`` with the product of
the scalings up to ``l``; exact for positively 1-homogeneous activations once ``e`` is free) and one per hidden neuron
(row ``j`` of ``W_l`` and ``b_l[j]`` by ``s``, column ``j`` of ``W_{l+1}`` by ``1/s``). Nothing is assumed: the
exponents :math:`\nu` are fitted from field evaluations and the homogeneity is verified to 1e-9 on fresh points; a
candidate that fails (tanh) is dropped, down to the trivial torus (the dense system).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._field import Field

# A field coordinate at most this (relative to the largest, and to 1: samples are O(1)) on every sample is zero up to
# rounding: e.g. FA* on a linear net with n_1 >= n_0, whose least-squares residual is orthogonal to every input.
STATIC = 1e-11


@dataclass
class Torus:
    """Weights ``w (D, T)`` of the coordinates and exponents ``nu (D, T)`` of the field; ``name`` says which."""

    name: str
    w: Tensor
    nu: Tensor
    static: Tensor  # (D,) bool: coordinates whose field is identically zero (their terms carry no equation)
    error: float  # worst relative homogeneity error on the verification points


def _layer_weights(f: Field) -> Tensor:
    L = f.model.n_layers
    w = torch.zeros(f.D, L, dtype=torch.long)
    for i, c in enumerate(f.coords):
        if c.kind == "W":
            w[i, c.layer - 1] = 1
        else:
            w[i, : c.layer] = 1
    return w


HOMOGENEOUS = ("identity", "relu", "leaky_relu")  # positively 1-homogeneous: phi(s h) = s phi(h), s > 0


def _neuron_weights(f: Field, only_homogeneous: bool = False) -> Tensor:
    widths = f.model.widths
    index: dict[tuple[int, int], int] = {}
    for l in range(1, len(widths) - 1):
        if only_homogeneous and f.model.activations[l - 1].name not in HOMOGENEOUS:
            continue
        for j in range(widths[l]):
            index[(l, j)] = len(index)
    w = torch.zeros(f.D, max(len(index), 1), dtype=torch.long)
    for i, c in enumerate(f.coords):
        if (c.layer, c.row) in index:
            w[i, index[(c.layer, c.row)]] += 1
        if c.kind == "W" and (c.layer - 1, c.col) in index:
            w[i, index[(c.layer - 1, c.col)]] -= 1
    return w if index else w[:, :0]


def _fit(f: Field, w: Tensor, g: torch.Generator, n_points: int = 32) -> tuple[Tensor, Tensor, float] | None:
    """Fit integer exponents ``nu`` with ``v(s.theta) = s^nu v(theta)`` and verify them on fresh scalings."""
    T = w.shape[1]
    n_fit, n_check = T + 4, 4
    th = f.sample_theta(n_points, g)
    x, z = f.sample_data(n_points, g)
    logs = (torch.rand(n_fit + n_check, T, generator=g, dtype=torch.float64) - 0.5) * 1.0
    # all scaled copies in one batch: (n_scalings + 1) x n_points samples
    scaled = [th] + [th * torch.exp(ls @ w.T.double()) for ls in logs]
    thb = torch.cat(scaled)
    reps = len(scaled)
    v = f(thb, x.repeat(reps, 1, 1), z.repeat(reps, 1, 1)).view(reps, n_points, f.D)
    v0, vs = v[0], v[1:]
    scale = v0.abs().amax(dim=0)  # (D,)
    static = scale <= STATIC * max(float(scale.max()), 1.0)
    # per coordinate, use the point where |v_i| is largest (log ratios are then accurate)
    best = v0.abs().argmax(dim=0)
    num = vs[:, best, torch.arange(f.D)]
    den = v0[best, torch.arange(f.D)]
    ok = ~static
    ratio = torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.ones_like(num))
    if bool((ratio[:, ok] <= 0).any()):
        return None
    r = torch.log(ratio)  # (n, D)
    sol = torch.linalg.lstsq(logs[:n_fit], r[:n_fit]).solution  # (T, D)
    nu = torch.round(sol).long().T  # (D, T)
    nu[static] = 0
    # verify on every point and the held-out scalings: v(s.theta) - s^nu v(theta)
    pred = v0.unsqueeze(0) * torch.exp(logs @ nu.T.double()).unsqueeze(1)
    err = ((vs - pred).abs().amax(dim=(0, 1)) / scale.clamp_min(1e-300))[ok]
    worst = float(err.max()) if err.numel() else 0.0
    if worst > 1e-9:
        return None
    return nu, static, worst


def detect_torus(f: Field, g: torch.Generator, *, structured: bool = True, n_points: int = 32) -> Torus:
    """The largest verified candidate torus (layer x neuron, neuron, layer), or the trivial one (dense system)."""
    cands: list[tuple[str, Tensor]] = []
    if structured:
        lw, nw = _layer_weights(f), _neuron_weights(f)
        # mixed activations: the units of homogeneous layers still scale (e.g. a ReLU layer after a tanh layer)
        cands = [("layer+neuron", torch.cat([lw, nw], dim=1)), ("neuron", nw), ("layer", lw),
                 ("neuron (homogeneous layers)", _neuron_weights(f, only_homogeneous=True))]
    for name, w in cands:
        if w.shape[1] == 0:
            continue
        got = _fit(f, w, g, n_points)
        if got is not None:
            nu, static, err = got
            return Torus(name, w, nu, static, err)
    # trivial torus: one character, the dense system; still find identically-zero field coordinates
    th = f.sample_theta(n_points, g)
    x, z = f.sample_data(n_points, g)
    v = f(th, x, z)
    scale = v.abs().amax(dim=0)
    static = scale <= STATIC * max(float(scale.max()), 1.0)
    zero = torch.zeros(f.D, 0, dtype=torch.long)
    return Torus("none (dense)", zero, zero.clone(), static, 0.0)
