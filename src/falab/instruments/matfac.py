r"""P004 instruments (Garg & Vempala; claims.md §1.6, §2.4): residual, alignment, surrogate loss, the FA* identities.

Pure functions of P004's factors ``Z (..., n, r)``, ``W (..., r, m)``, targets ``Y (..., n, m)`` and feedback
``B (..., m, r)`` (use :func:`falab.models.factors` to view engine parameters as ``(Z, W)``), plus
:data:`P004_MEASURES`, snapshot measures for a matrix-factorisation :class:`~falab.dynamics.Problem` (``X = I_n``,
feedback slot ``'B2' = B``). Residual sign as the paper: ``E = Y - Z W``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..dynamics import Snapshot
from ..models import factors
from ._conservation import fa_quantity_matrix


def _t(a: Tensor) -> Tensor:
    return a.transpose(-1, -2)


def _sq(a: Tensor) -> Tensor:
    return (a * a).sum(dim=(-2, -1))


def error(z: Tensor, w: Tensor, y: Tensor) -> Tensor:
    """``E = Y - Z W`` (..., n, m)."""
    return y - z @ w


def residual(z: Tensor, w: Tensor, y: Tensor, b: Tensor) -> Tensor:
    """P004's residual ``R = (Y - Z W) B`` (..., n, r); FA/FA* stationarity is ``R = 0`` and ``Z^T E = 0`` (eq. 7)."""
    return error(z, w, y) @ b


def alignment(w: Tensor, b: Tensor) -> Tensor:
    """P004's alignment ``A = W B`` (..., r, r) (equal to ``Z^T Y B`` under FA* when ``Z^T Z = I``)."""
    return w @ b


def surrogate_loss(z: Tensor, w: Tensor, y: Tensor, b: Tensor) -> Tensor:
    r"""The surrogate loss :math:`\tilde L = \tfrac12\|R\|_F^2` (...)."""
    return 0.5 * _sq(residual(z, w, y, b))


def mf_loss(z: Tensor, w: Tensor, y: Tensor) -> Tensor:
    r""":math:`L = \tfrac12\|Y - ZW\|_F^2` (P004 eq. 1)."""
    return 0.5 * _sq(error(z, w, y))


def lam_min(a: Tensor) -> Tensor:
    r"""Smallest eigenvalue of the symmetric part :math:`\tfrac12(A + A^T)`; ``v^T A v >= lam_min`` for unit v (...)."""
    return torch.linalg.eigvalsh(0.5 * (a + _t(a)))[..., 0]


def quadratic_forms(a: Tensor, v: Tensor) -> Tensor:
    """``v_j^T A v_j`` for the rows ``v_j`` of ``v (p, r)`` -> (..., p) (P004 Fig. 4a)."""
    return ((v @ a) * v).sum(-1)


def unit_vectors(p: int, r: int, generator: torch.Generator, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """``p`` vectors uniform on the unit sphere of R^r, as rows (p, r)."""
    g = torch.randn(p, r, generator=generator, dtype=dtype)
    return g / torch.linalg.vector_norm(g, dim=-1, keepdim=True)


def representation_cosine(z1: Tensor, z2: Tensor) -> Tensor:
    r"""P004 Thm 4: :math:`|\langle Z_1, Z_2\rangle_F| / (\|Z_1\|_F\|Z_2\|_F)` between two runs' representations (...)."""
    return (z1 * z2).sum(dim=(-2, -1)).abs() / (torch.linalg.matrix_norm(z1) * torch.linalg.matrix_norm(z2))


def subspace_overlap(z1: Tensor, z2: Tensor) -> Tensor:
    r""":math:`\|Q_1^TQ_2\|_F/\sqrt{r}` for orthonormal bases of col(Z_1), col(Z_2): 1 = same column space, 0 = orthogonal
    (equals :func:`representation_cosine` for r = 1)."""
    q1, q2 = torch.linalg.qr(z1)[0], torch.linalg.qr(z2)[0]
    return torch.linalg.matrix_norm(_t(q1) @ q2) / q1.shape[-1] ** 0.5


def fa_conserved(z: Tensor, w: Tensor, b: Tensor) -> Tensor:
    r"""FA's conserved matrix :math:`C = Z^TZ - WB - B^TW^T` (r x r; claims.md §1.9, P004-Baldi), computed by the
    engine's :func:`fa_quantity_matrix` on the network view ``W1 = Z^T``, ``W2 = W^T``, ``B2 = B``."""
    return fa_quantity_matrix([_t(z), _t(w)], {2: b})[0]


def slaved_w_rate(z: Tensor, w: Tensor, y: Tensor, dz: Tensor) -> Tensor:
    r"""Time derivative of FA*'s slaved factor :math:`W = (Z^TZ)^{-1}Z^TY` along ``dZ/dt = dz``:

    .. math:: \dot W = (Z^TZ)^{-1}\big(\dot Z^T E - Z^T\dot Z\,W\big),\qquad E = Y - ZW.
    """
    return torch.linalg.solve(_t(z) @ z, _t(dz) @ error(z, w, y) - _t(z) @ dz @ w)


def surrogate_loss_rate(z: Tensor, w: Tensor, y: Tensor, b: Tensor, dz: Tensor, dw: Tensor) -> Tensor:
    r"""Chain rule :math:`\frac{d}{dt}\tfrac12\|R\|^2 = -\langle R, (\dot ZW + Z\dot W)B\rangle` (...)."""
    return -(residual(z, w, y, b) * ((dz @ w + z @ dw) @ b)).sum(dim=(-2, -1))


def lemma4_rate(z: Tensor, w: Tensor, y: Tensor, b: Tensor) -> Tensor:
    r"""P004 Lemma 4 prediction [RECON]: :math:`\frac{d}{dt}\tfrac12\|R\|_F^2 = -\mathrm{tr}(R\,(WB)\,R^T)` under FA*."""
    r = residual(z, w, y, b)
    return -(r * (r @ _t(alignment(w, b)))).sum(dim=(-2, -1))


def alignment_rate(dz: Tensor, y: Tensor, b: Tensor) -> Tensor:
    r""":math:`\frac{d}{dt}(Z^TYB) = \dot Z^TYB` (r x r)."""
    return _t(dz) @ y @ b


def gram_rr(z: Tensor, w: Tensor, y: Tensor, b: Tensor) -> Tensor:
    """``R^T R`` (..., r, r): the predicted rate of ``Z^T Y B`` under FA* (Lemma 5) and the Euler increment scale."""
    r = residual(z, w, y, b)
    return _t(r) @ r


def fa_star_step_identities(z: Tensor, w: Tensor, z_next: Tensor, y: Tensor, b: Tensor, eta: float
                            ) -> dict[str, Tensor]:
    r"""Exact Euler identities of FA* (claims.md §4.4.6; P004 Fact 3 and Lemma 5 in discrete time):

    .. math:: Z_{k+1}^TZ_{k+1} - Z_k^TZ_k = \eta^2R_k^TR_k,\qquad Z_{k+1}^TYB - Z_k^TYB = \eta R_k^TR_k

    (they need ``Z_k^T E_k = 0``, i.e. the slaved ``W_k``). The changes are computed from ``Delta = Z_{k+1} - Z_k`` in
    cancellation-free form. Returns measured and predicted changes, each (..., r, r).
    """
    d = z_next - z
    rr = gram_rr(z, w, y, b)
    return {
        "gram_measured": _t(z) @ d + _t(d) @ z + _t(d) @ d,
        "gram_predicted": eta**2 * rr,
        "align_measured": _t(d) @ y @ b,
        "align_predicted": eta * rr,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Snapshot measures for a matrix-factorisation Problem (X = I_n, targets Y, feedback 'B2' = B)
# ---------------------------------------------------------------------------------------------------------------------

def _zwyb(snap: Snapshot) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    z, w = factors(snap.params)
    return z, w, snap.problem.y, snap.problem.state["B2"]


def _rates(snap: Snapshot) -> tuple[Tensor, Tensor]:
    """``(dZ/dt, dW/dt)`` of the engine's flow at the snapshot (the rule's update has the gradient sign)."""
    upd = snap.update
    dz, dw = -_t(upd["W1"]), -_t(upd["W2"])
    return dz, dw


def m_surrogate(snap: Snapshot) -> Tensor:
    """Snapshot measure: :func:`surrogate_loss` ``0.5 ||(Y - Z W) B||_F^2`` (P004 Lemma 4)."""
    return surrogate_loss(*_zwyb(snap))


def m_lam_min(snap: Snapshot) -> Tensor:
    """Snapshot measure: :func:`lam_min` of the alignment ``A = W B`` (P004 Lemma 5, Theorem 1)."""
    _, w, _, b = _zwyb(snap)
    return lam_min(alignment(w, b))


def m_alignment(snap: Snapshot) -> Tensor:
    """Snapshot measure: the alignment matrix ``A = W B`` (r x r; P004 Lemma 5)."""
    _, w, _, b = _zwyb(snap)
    return alignment(w, b)


def m_zyb(snap: Snapshot) -> Tensor:
    """``Z^T Y B`` (r x r)."""
    z, _, y, b = _zwyb(snap)
    return _t(z) @ y @ b


def m_gram(snap: Snapshot) -> Tensor:
    """``Z^T Z`` (r x r), conserved by the FA* flow (Fact 3)."""
    z = _zwyb(snap)[0]
    return _t(z) @ z


def m_fa_conserved(snap: Snapshot) -> Tensor:
    """Snapshot measure: :func:`fa_conserved`, the matrix FA conserves (claims.md §1.9, P004-Baldi)."""
    z, w, _, b = _zwyb(snap)
    return fa_conserved(z, w, b)


def m_residual_norm(snap: Snapshot) -> Tensor:
    """Snapshot measure: ``||R||_F`` with ``R = (Y - Z W) B`` (P004 Theorem 1)."""
    return torch.linalg.matrix_norm(residual(*_zwyb(snap)))


def m_stationarity(snap: Snapshot) -> Tensor:
    """``(||E B||_F, ||Z^T E||_F)``: both vanish at FA/FA* stationary points (eq. 7). Shape (..., 2)."""
    z, w, y, b = _zwyb(snap)
    e = error(z, w, y)
    return torch.stack([torch.linalg.matrix_norm(e @ b), torch.linalg.matrix_norm(_t(z) @ e)], dim=-1)


def m_lemma5(snap: Snapshot) -> Tensor:
    r"""``(||d/dt(Z^T Y B) - R^T R||_F, ||R^T R||_F)`` at the snapshot, with the engine's dZ/dt (Lemma 5 under FA*;
    under FA the difference is the extra term ``B^T E^T Z W B``, P004-FAimpl). Shape (..., 2); normalise by the
    largest ``||R^T R||`` of a run (``R -> 0`` at convergence, so a pointwise ratio would measure rounding only)."""
    z, w, y, b = _zwyb(snap)
    dz, _ = _rates(snap)
    rr = gram_rr(z, w, y, b)
    nrm = torch.linalg.matrix_norm
    return torch.stack([nrm(alignment_rate(dz, y, b) - rr), nrm(rr)], dim=-1)


def m_lemma4(snap: Snapshot, h: float = 1e-6) -> Tensor:
    """Three values of ``d/dt 0.5||R||^2`` under FA*, shape (..., 3): the chain rule with the slaved ``dW/dt``,
    Lemma 4's ``-tr(R A R^T)``, and a central finite difference along the engine's vector field (step ``h`` relative
    to ``||Z|| / ||dZ/dt||``; W re-solved by the rule's ``constrain``)."""
    z, w, y, b = _zwyb(snap)
    dz, _ = _rates(snap)
    dw = slaved_w_rate(z, w, y, dz)
    p = snap.problem
    step = h * torch.linalg.matrix_norm(z) / torch.linalg.matrix_norm(dz).clamp_min(1e-300)
    step_w = step.reshape(*step.shape, 1, 1)

    def sur(sign: float) -> Tensor:
        moved = dict(snap.params)
        moved["W1"] = snap.params["W1"] + sign * step_w * _t(dz)
        zz, ww = factors(p.constrain(moved))
        return surrogate_loss(zz, ww, y, b)

    fd = (sur(1.0) - sur(-1.0)) / (2 * step)
    return torch.stack([surrogate_loss_rate(z, w, y, b, dz, dw), lemma4_rate(z, w, y, b), fd], dim=-1)


def m_loss_rate(snap: Snapshot) -> Tensor:
    """``dL/dt`` of the true loss along FA*: ``-<E, dZ W + Z dW>`` with the slaved ``dW/dt`` (sign changes = Fig. 3b)."""
    z, w, y, _ = _zwyb(snap)
    dz, _ = _rates(snap)
    dw = slaved_w_rate(z, w, y, dz)
    return -(error(z, w, y) * (dz @ w + z @ dw)).sum(dim=(-2, -1))


P004_MEASURES: dict[str, Callable[[Snapshot], Tensor]] = {
    "surrogate": m_surrogate,
    "lam_min": m_lam_min,
    "alignment": m_alignment,
    "zyb": m_zyb,
    "gram": m_gram,
    "fa_conserved": m_fa_conserved,
    "residual_norm": m_residual_norm,
    "stationarity": m_stationarity,
    "lemma5": m_lemma5,
    "lemma4": m_lemma4,
    "loss_rate": m_loss_rate,
}


def m_error_norm(snap: Snapshot) -> Tensor:
    """``||Y - Z W||_F`` (...)."""
    z, w = factors(snap.params)
    return torch.linalg.matrix_norm(error(z, w, snap.problem.y))


def m_loss(snap: Snapshot) -> Tensor:
    """The problem's loss ``0.5 ||Y - Z W||_F^2`` (...)."""
    return snap.problem.loss_value(snap.params)


# ---------------------------------------------------------------------------------------------------------------------
# Exact Euler identities as ``on_step`` monitors and trajectory summaries
# ---------------------------------------------------------------------------------------------------------------------

def fa_step_identity(z: Tensor, w: Tensor, z_next: Tensor, w_next: Tensor, y: Tensor, b: Tensor, eta: float
                     ) -> dict[str, Tensor]:
    r"""FA's exact Euler identity with equal step sizes (claims.md §1.9; P004-Baldi in discrete time):

    .. math:: C_{k+1} - C_k = \eta^2 R_k^TR_k,\qquad C = Z^TZ - WB - B^TW^T,

    the change computed from ``Delta Z``, ``Delta W`` in cancellation-free form. Returns measured and predicted
    changes, each (..., r, r).
    """
    dz, dw = z_next - z, w_next - w
    measured = _t(z) @ dz + _t(dz) @ z + _t(dz) @ dz - dw @ b - _t(dw @ b)
    return {"measured": measured, "predicted": eta**2 * gram_rr(z, w, y, b)}


def _running_max(old: Tensor | None, new: Tensor) -> Tensor:
    new = new.detach()
    return new if old is None else torch.maximum(old, new)


def _after_a_step(value: Tensor | None) -> Tensor:
    """A monitor's running maximum, which exists once the monitor has seen a step (its summaries are read after a run)."""
    assert value is not None, "the monitor has not seen a step yet"
    return value


class FAStarStepMonitor:
    """``on_step`` monitor of FA*'s exact Euler identities (:func:`fa_star_step_identities`; Fact 3 and Lemma 5).

    After a run, per ensemble member: ``gram_rel`` = max_k ||violation_k|| / ||Z_k^T Z_k|| (Fact 3),
    ``gram_rel_inc`` = max_k ||violation_k|| / max_k ||eta^2 R_k^T R_k|| and ``align_rel`` = max_k ||violation_k|| /
    max_k ||eta R_k^T R_k|| (Lemma 5), each a tensor of the members' shape."""

    def __init__(self, y: Tensor, b: Tensor, eta: float) -> None:
        self.y, self.b, self.eta = y, b, eta
        self._g_rel: Tensor | None = None
        self._g_err: Tensor | None = None
        self._g_pred: Tensor | None = None
        self._a_err: Tensor | None = None
        self._a_pred: Tensor | None = None

    @property
    def gram_rel(self) -> Tensor:
        return _after_a_step(self._g_rel)

    @property
    def gram_rel_inc(self) -> Tensor:
        return _after_a_step(self._g_err) / _after_a_step(self._g_pred)

    @property
    def align_rel(self) -> Tensor:
        return _after_a_step(self._a_err) / _after_a_step(self._a_pred)

    def __call__(self, k: int, params, update, new) -> None:
        del k, update
        z, w = factors(params)
        d = fa_star_step_identities(z, w, factors(new)[0], self.y, self.b, self.eta)
        nrm = torch.linalg.matrix_norm
        g_err = nrm(d["gram_measured"] - d["gram_predicted"])
        self._g_rel = _running_max(self._g_rel, g_err / nrm(_t(z) @ z))
        self._g_err = _running_max(self._g_err, g_err)
        self._g_pred = _running_max(self._g_pred, nrm(d["gram_predicted"]))
        self._a_err = _running_max(self._a_err, nrm(d["align_measured"] - d["align_predicted"]))
        self._a_pred = _running_max(self._a_pred, nrm(d["align_predicted"]))


class FAStepMonitor:
    """``on_step`` monitor of FA's exact Euler identity (:func:`fa_step_identity`, equal step sizes); after a run
    ``rel`` = max_k ||violation_k|| / max_k ||eta^2 R_k^T R_k|| per ensemble member."""

    def __init__(self, y: Tensor, b: Tensor, eta: float) -> None:
        self.y, self.b, self.eta = y, b, eta
        self._err: Tensor | None = None
        self._pred: Tensor | None = None

    @property
    def rel(self) -> Tensor:
        return _after_a_step(self._err) / _after_a_step(self._pred)

    def __call__(self, k: int, params, update, new) -> None:
        del k, update
        z, w = factors(params)
        zn, wn = factors(new)
        d = fa_step_identity(z, w, zn, wn, self.y, self.b, self.eta)
        nrm = torch.linalg.matrix_norm
        self._err = _running_max(self._err, nrm(d["measured"] - d["predicted"]))
        self._pred = _running_max(self._pred, nrm(d["predicted"]))


def sign_changes(x: Tensor, floor: float = 1e-9) -> Tensor:
    """Sign changes along the first axis of ``x (T, ...)``, ignoring entries with ``|x| <= floor * max_t |x|``
    (rounding noise once a rate has converged to 0). Returns an integer tensor of shape ``x.shape[1:]``
    (P004 Fig. 3b: how often ``dL/dt`` switches between increase and decrease)."""
    x = torch.as_tensor(x)
    scale = x.abs().amax(dim=0, keepdim=True)
    s = torch.where(x.abs() > floor * scale, torch.sign(x), torch.zeros_like(x))
    flat = s.reshape(s.shape[0], -1)
    out = []
    for col in flat.T:
        nz = col[col != 0]
        out.append(int((nz[1:] != nz[:-1]).sum()))
    return torch.tensor(out).reshape(x.shape[1:])


def log_curve_distance(a: Tensor, b: Tensor, *, floor: float = 1e-30) -> Tensor:
    """Mean over the first (time) axis of ``|log10 a - log10 b|`` between two loss curves (T, ...) -> (...)."""
    return (torch.log10(torch.as_tensor(a) + floor) - torch.log10(torch.as_tensor(b) + floor)).abs().mean(dim=0)


__all__ = [
    "error", "residual", "alignment", "surrogate_loss", "mf_loss", "lam_min", "quadratic_forms", "unit_vectors",
    "representation_cosine", "subspace_overlap", "fa_conserved", "slaved_w_rate", "surrogate_loss_rate",
    "lemma4_rate", "alignment_rate", "gram_rr", "fa_star_step_identities", "m_surrogate", "m_lam_min",
    "m_alignment", "m_zyb", "m_gram", "m_fa_conserved", "m_residual_norm", "m_stationarity", "m_lemma5", "m_lemma4",
    "m_loss_rate", "m_error_norm", "m_loss", "fa_step_identity", "FAStarStepMonitor", "FAStepMonitor",
    "sign_changes", "log_curve_distance", "P004_MEASURES",
]
