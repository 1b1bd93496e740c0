"""Learning rules: frozen configs with ``init`` (draw feedback) and a pure ``update`` (gradient sign convention)."""

from ._base import AbstractLearningRule, RuleState
from ._feedback import (
    FEEDBACK_KINDS,
    AbstractFeedback,
    CopyOfWeight,
    Gaussian,
    ScaledLikeWeight,
    Uniform,
)
from ._rules import RULES, Backprop, DirectFeedbackAlignment, FAStar, FeedbackAlignment
from ._sign_symmetry import (
    BatchRandomMagnitudeSignFeedback,
    FixedRandomMagnitudeSignFeedback,
    UniformSignFeedback,
)

# Sign-symmetry feedback tracks sign(W) (Liao et al. 2016); registered here because _feedback must not import it.
FEEDBACK_KINDS.update(usf=UniformSignFeedback, frsf=FixedRandomMagnitudeSignFeedback, brsf=BatchRandomMagnitudeSignFeedback)

__all__ = [
    "AbstractLearningRule", "RuleState",
    "FEEDBACK_KINDS", "AbstractFeedback", "CopyOfWeight", "Gaussian", "ScaledLikeWeight", "Uniform",
    "UniformSignFeedback", "FixedRandomMagnitudeSignFeedback", "BatchRandomMagnitudeSignFeedback",
    "RULES", "Backprop", "DirectFeedbackAlignment", "FAStar", "FeedbackAlignment",
]
