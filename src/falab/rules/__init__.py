"""Learning rules: frozen configs with ``init`` (draw feedback) and a pure ``update`` returning
``(updates, new_state)`` (gradient sign convention; per-step randomness lives in the state).

Examples:
    Backprop's update is autograd's gradient; FA with ``B = W(0)`` (:class:`CopyOfWeight`) starts as backprop:

    >>> import torch
    >>> from falab.functional import SquaredLoss
    >>> from falab.models import MLP
    >>> from falab.rules import Backprop, CopyOfWeight, FeedbackAlignment
    >>> g = torch.Generator().manual_seed(0)
    >>> model, loss = MLP((3, 4, 2), "relu"), SquaredLoss("mean")
    >>> params = model.init_params(g)
    >>> x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    >>> y = torch.randn(5, 2, generator=g, dtype=torch.float64)
    >>> bp_update, _ = Backprop().update(model, params, {}, x, y, loss)
    >>> leaf = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    >>> grads = torch.autograd.grad(loss.value(model(leaf, x), y), list(leaf.values()))
    >>> max(float((bp_update[k] - gr).abs().max()) for k, gr in zip(leaf, grads)) < 1e-12
    True
    >>> fa = FeedbackAlignment(CopyOfWeight())
    >>> state = fa.init(model, params)          # nothing random to draw: no generator needed
    >>> sorted(state), tuple(state["B2"].shape)
    (['B2'], (2, 4))
    >>> fa_update, new_state = fa.update(model, params, state, x, y, loss)
    >>> max(float((fa_update[k] - bp_update[k]).abs().max()) for k in params) < 1e-12
    True
"""

from ._base import STEP_KEY, AbstractLearningRule, RuleState, advance_state
from ._feedback import (
    AbstractFeedback,
    CopyOfWeight,
    Gaussian,
    ScaledLikeWeight,
    Uniform,
    step_generator,
)
from ._rules import Backprop, DirectFeedbackAlignment, FAStar, FeedbackAlignment
from ._sign_symmetry import (
    BatchRandomMagnitudeSignFeedback,
    FixedRandomMagnitudeSignFeedback,
    UniformSignFeedback,
)

# Names -> rules and feedback kinds (one table with the defaults): falab.registry.

__all__ = [
    "AbstractLearningRule", "RuleState", "STEP_KEY", "advance_state", "step_generator",
    "AbstractFeedback", "CopyOfWeight", "Gaussian", "ScaledLikeWeight", "Uniform",
    "UniformSignFeedback", "FixedRandomMagnitudeSignFeedback", "BatchRandomMagnitudeSignFeedback",
    "Backprop", "DirectFeedbackAlignment", "FAStar", "FeedbackAlignment",
]
