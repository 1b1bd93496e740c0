r"""The Jacobian of a flow's vector field from ``torch.func``, for scipy's implicit solvers, and the stiffness check.

For :math:`\dot\theta = F(\theta) = -\mathrm{update}(\theta)` the Jacobian :math:`J = \partial F/\partial\theta` is
computed by forward-mode AD (``torch.func.jvp``, vectorised over the unit directions with ``torch.func.vmap``). An
ensemble's members are independent, so its Jacobian is block-diagonal: one batch of P tangents (P = parameters per
member), each the same unit direction in every member, gives every block at once, and the blocks are handed to scipy
as one sparse block-diagonal matrix (Radau/BDF factorise it as such; LSODA takes it dense).

Stiffness (``method='auto'``): an explicit method's step is bounded by its stability region,
:math:`h \lesssim c/\rho(J)` (DOP853: c about 6), so reaching the horizon T costs at least :math:`\rho(J)\,T/c` steps
wherever the dynamics has slowed down; an implicit method's steps follow the accuracy of the slow motion only
(Hairer & Wanner, Solving ODEs II, §IV.1). ``auto`` takes LSODA with the Jacobian when
:math:`\rho(J(\theta_0))\,T > 10^4` (or the same at a probe time), otherwise DOP853.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..models import Params
from ._problem import Problem

STIFF_PRODUCT = 1e4  # rho(J) * T above which 'auto' takes the implicit route (about 2e3 DOP853 steps at least)


class FieldJacobian:
    """``jac(t, y)`` for scipy: the Jacobian of the flat field at the flat state ``y`` (internal).

    ``unpack(vec) -> params`` must be differentiable (views of a tensor); ``members`` > 1 with ``per_member`` gives a
    sparse block-diagonal matrix."""

    def __init__(self, problem: Problem, names: list[str], shapes: list[tuple[int, ...]], sizes: list[int],
                 members: int, per_member: bool, sparse: bool) -> None:
        self.problem = problem
        self.names, self.shapes, self.sizes = names, shapes, sizes
        self.members = members if per_member and members > 1 else 1
        self.sparse = sparse and self.members > 1
        self.njev = 0
        self.nfev = 0  # tangent evaluations (each about one field evaluation)

    def _field(self, vec: torch.Tensor) -> torch.Tensor:
        parts, off = {}, 0
        for n, s, k in zip(self.names, self.shapes, self.sizes):
            parts[n] = vec[off:off + k].reshape(s)
            off += k
        p = self.problem.constrain(parts)
        upd = self.problem.update(p)
        return -torch.cat([upd[n].reshape(-1) if n in upd else torch.zeros(k, dtype=vec.dtype)
                           for n, k in zip(self.names, self.sizes)])

    def _member_layout(self) -> tuple[np.ndarray, int]:
        """Member index and position within the member of every flat entry (parameters are member-major)."""
        m = self.members
        member = np.concatenate([np.repeat(np.arange(m), k // m) for k in self.sizes])
        pos = np.concatenate([off // m + np.tile(np.arange(k // m), m)
                              for off, k in zip(np.cumsum([0, *self.sizes[:-1]]), self.sizes)])
        return np.stack([member, pos]), sum(k // m for k in self.sizes)

    def __call__(self, t: float, y: np.ndarray):
        del t
        from torch.func import jvp, vmap

        self.njev += 1
        x = torch.from_numpy(np.ascontiguousarray(y))
        n = x.numel()
        if self.members == 1:
            eye = torch.eye(n, dtype=x.dtype)
            cols = vmap(lambda v: jvp(self._field, (x,), (v,))[1])(eye)  # (n, n): row j = J e_j
            self.nfev += n
            return cols.T.numpy()
        layout, p = self._member_layout()
        member, pos = layout
        dirs = torch.zeros((p, n), dtype=x.dtype)
        dirs[torch.from_numpy(pos), torch.arange(n)] = 1.0  # direction j: coordinate j of every member
        cols = vmap(lambda v: jvp(self._field, (x,), (v,))[1])(dirs).numpy()  # (p, n)
        self.nfev += p
        # entry (row r, direction j) belongs to block member[r], column pos j of that member
        blocks = np.zeros((self.members, p, p))
        blocks[member, pos, :] = cols.T
        order = np.lexsort((pos, member))  # flat entries sorted by (member, pos): the block order
        inv = np.empty(n, dtype=int)
        inv[order] = np.arange(n)
        if self.sparse:
            from scipy.sparse import block_diag

            mat = block_diag(list(blocks), format="csr")
            return mat[inv][:, inv]
        dense = np.zeros((n, n))
        for mm in range(self.members):
            idx = order[mm * p:(mm + 1) * p]
            dense[np.ix_(idx, idx)] = blocks[mm]
        return dense


def spectral_radius(jac: Callable[[float, np.ndarray], object], y: np.ndarray) -> float:
    """:math:`\\rho(J)` at ``y`` (dense eigenvalues per block; at most a few hundred unknowns per member here)."""
    j = jac(0.0, y)
    if hasattr(j, "toarray"):
        j = j.toarray()
    a = np.asarray(j)
    if not np.all(np.isfinite(a)):
        return float("inf")
    return float(np.max(np.abs(np.linalg.eigvals(a)))) if a.size else 0.0


def stiff(jac: Callable[[float, np.ndarray], object], y0: np.ndarray, t_end: float) -> tuple[bool, float]:
    """The stiffness check of ``method='auto'``: ``(rho(J(y0)) * t_end > STIFF_PRODUCT, rho)``."""
    rho = spectral_radius(jac, y0)
    return rho * t_end > STIFF_PRODUCT, rho


def jacobian_of(problem: Problem, params: Params) -> torch.Tensor:
    """The dense Jacobian :math:`\\partial F/\\partial\\theta` of the flow field at ``params`` (flattened in the
    parameters' order), from ``torch.func.jacfwd``: a public helper for checks and small analyses."""
    names = list(params)
    shapes = [tuple(params[n].shape) for n in names]
    sizes = [int(np.prod(s)) if s else 1 for s in shapes]
    fj = FieldJacobian(problem, names, shapes, sizes, 1, False, False)
    vec = torch.cat([params[n].detach().reshape(-1).to(torch.float64) for n in names])
    return torch.from_numpy(np.asarray(fj(0.0, vec.numpy())))


__all__ = ["FieldJacobian", "jacobian_of", "spectral_radius", "stiff", "STIFF_PRODUCT"]
