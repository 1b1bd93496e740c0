"""Learning rules: frozen configs with ``init`` (draw feedback) and a pure ``update`` returning
``(updates, new_state)`` (gradient sign convention; per-step randomness lives in the state)."""

from ._base import STEP_KEY, AbstractLearningRule, RuleState, advance_state
from ._feedback import (
    FEEDBACK_KINDS,
    AbstractFeedback,
    CopyOfWeight,
    Gaussian,
    ScaledLikeWeight,
    Uniform,
    step_generator,
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
    "AbstractLearningRule", "RuleState", "STEP_KEY", "advance_state", "step_generator",
    "FEEDBACK_KINDS", "AbstractFeedback", "CopyOfWeight", "Gaussian", "ScaledLikeWeight", "Uniform",
    "UniformSignFeedback", "FixedRandomMagnitudeSignFeedback", "BatchRandomMagnitudeSignFeedback",
    "RULES", "Backprop", "DirectFeedbackAlignment", "FAStar", "FeedbackAlignment",
]
