"""The papers' systems as engine problems: public constructors (closed forms of the same systems live in
:mod:`falab.theory`; simulations in :mod:`falab.dynamics`).

* P003 (Girotti, Mitliagkas & Gidel): the scalar FA system (6) and its GD twin, the deep DFA system (10), the linear
  autoencoder of Sec. 6 (eqs 3/8), their parameters as ``(K, L)`` arrays of ``theta_l`` and an event for crossings;
* P004 (Garg & Vempala): matrix factorisation ``Y ~ Z W`` under GD, FA, FA* (eqs 1-4).
"""

from ._p003 import (
    autoencoder_data,
    autoencoder_problem,
    covariance_data,
    deep_scalar_system,
    scalar_params,
    scalar_system,
    scalar_thetas,
    theta_event,
)
from ._p004 import MF_LOSS, MF_RULES, mf_problem

__all__ = [
    "autoencoder_data", "autoencoder_problem", "covariance_data", "deep_scalar_system", "scalar_params",
    "scalar_system", "scalar_thetas", "theta_event",
    "MF_LOSS", "MF_RULES", "mf_problem",
]
