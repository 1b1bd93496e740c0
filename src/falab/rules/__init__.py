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

__all__ = [
    "AbstractLearningRule", "RuleState",
    "FEEDBACK_KINDS", "AbstractFeedback", "CopyOfWeight", "Gaussian", "ScaledLikeWeight", "Uniform",
    "RULES", "Backprop", "DirectFeedbackAlignment", "FAStar", "FeedbackAlignment",
]
