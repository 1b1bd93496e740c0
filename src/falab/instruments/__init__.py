"""Measurements as pure functions: loss, conserved quantities and exact discrete identities, alignment, distances."""

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

__all__ = [
    "angle_degrees", "end_to_end", "norm_ratio", "relative_distance", "update_angles_to_gradient",
    "weight_feedback_angles", "FAStepIdentity", "dfa_last_pair", "fa_quantity", "fa_quantity_matrix",
    "fa_quantity_per_neuron", "fa_step_change", "gd_balancedness", "MEASURES", "conserved", "get_measures",
    "layer_norms", "loss",
]
