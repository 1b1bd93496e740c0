r"""P003 (Girotti, Mitliagkas & Gidel) instruments: the population FA/DFA updates of deep linear networks written out.

Eq. (8), gradient sign (the engine's convention), with :math:`E = \Sigma_{xy} - W_L\cdots W_1\Sigma_{xx}` and
:math:`M_L = I`:

.. math:: g_l = -M_l\,E\,(W_{l-1}\cdots W_1)^\top

(for two layers this is eq. (3): :math:`g_1 = -ME`, :math:`g_2 = -E W_1^\top`). Compared with the engine's finite-batch
updates on data whose empirical covariances are :math:`\Sigma_{xx}, \Sigma_{xy}` (P003-P1).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ._alignment import end_to_end


def linear_fa_update(weights: Sequence[Tensor], ms: Sequence[Tensor], sxx: Tensor, sxy: Tensor) -> list[Tensor]:
    """Eq. (8) (gradient sign) for weights ``W_1..W_L`` and feedback ``M_1..M_{L-1}`` (``M_l``: ``(n_l, n_L)``)."""
    e = sxy - end_to_end(list(weights)) @ sxx
    out = []
    for l in range(len(weights)):
        left = ms[l] @ e if l < len(weights) - 1 else e
        out.append(-left if l == 0 else -(left @ end_to_end(list(weights[:l])).transpose(-1, -2)))
    return out
