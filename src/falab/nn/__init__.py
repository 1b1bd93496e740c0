"""Drop-in PyTorch layers for FA, DFA and sign symmetry (issue 7): layers, ``convert``, instruments, training.

The layers' backward passes call the kernels of :mod:`falab.functional`, so the nn route and the functional route
(``falab.rules`` + ``falab.dynamics``) compute the same updates; tests check this to 1e-12 in float64.
"""

from ..rules._sign_symmetry import (
    SIGN_SYMMETRY_KINDS,
    BatchRandomMagnitudeSignFeedback,
    FixedRandomMagnitudeSignFeedback,
    UniformSignFeedback,
)
from ._convert import RULE_NAMES, ConversionReport, ConvertedLayer, SkippedModule, convert, rule_from_name
from ._layers import (
    DFAConv1d,
    DFAConv2d,
    DFALinear,
    ErrorBroadcast,
    FAConv1d,
    FAConv2d,
    FALinear,
    FeedbackLayer,
    exact_backprop,
)

__all__ = [
    "SIGN_SYMMETRY_KINDS", "BatchRandomMagnitudeSignFeedback", "FixedRandomMagnitudeSignFeedback", "UniformSignFeedback",
    "RULE_NAMES", "ConversionReport", "ConvertedLayer", "SkippedModule", "convert", "rule_from_name",
    "DFAConv1d", "DFAConv2d", "DFALinear", "ErrorBroadcast", "FAConv1d", "FAConv2d", "FALinear", "FeedbackLayer",
    "exact_backprop",
]
