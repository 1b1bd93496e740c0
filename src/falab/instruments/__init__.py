"""Measurements as pure functions: loss, conserved quantities and exact discrete identities, alignment, distances.

Flat names: the generic instruments, P002's balancedness invariants and singular alignment, P003's population FA/DFA
update (eq. 8) and the claims engine's statistics (Wilson / bootstrap intervals, fitted slopes). P004's
matrix-factorisation instruments (residual, alignment, surrogate loss, the FA* identities, snapshot measures and step
monitors) keep their short names in the public submodule :mod:`falab.instruments.matfac`.
"""

from . import matfac
from ._alignment import (
    angle_degrees,
    end_to_end,
    norm_ratio,
    relative_distance,
    update_angles_to_gradient,
    weight_feedback_angles,
)
from ._conservation import (
    FAStepIdentity,
    dfa_last_pair,
    fa_quantity,
    fa_quantity_matrix,
    fa_quantity_per_neuron,
    fa_step_change,
    gd_balancedness,
)
from ._measures import MEASURES, conserved, get_measures, layer_norms, loss
from ._p002 import (
    cosine,
    euler_balancedness_residual,
    fc_matrix_invariants,
    layer_norm_gaps,
    mode_gaps,
    relative_drift,
    singular_alignment,
)
from ._p003 import linear_fa_update
from ._stats import Interval, bootstrap_interval, fitted_slope, wilson_interval

__all__ = [
    "angle_degrees", "end_to_end", "norm_ratio", "relative_distance", "update_angles_to_gradient",
    "weight_feedback_angles", "FAStepIdentity", "dfa_last_pair", "fa_quantity", "fa_quantity_matrix",
    "fa_quantity_per_neuron", "fa_step_change", "gd_balancedness", "MEASURES", "conserved", "get_measures",
    "layer_norms", "loss",
    "cosine", "euler_balancedness_residual", "fc_matrix_invariants", "layer_norm_gaps", "mode_gaps", "relative_drift",
    "singular_alignment",
    "linear_fa_update",
    "Interval", "bootstrap_interval", "fitted_slope", "wilson_interval",
    "matfac",
]
