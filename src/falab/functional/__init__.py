"""Pure tensor maths: activations, losses, the forward trace and the backward kernels. No state, no RNG, no I/O."""

from ._activations import (
    ACTIVATIONS,
    GELU,
    AbstractActivation,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Tanh,
    get_activation,
)
from ._backward import (
    bias_gradient,
    chain_backward,
    direct_backward,
    feedback_signal,
    linear_backward,
    weight_gradient,
)
from ._forward import Trace, forward, linear
from ._losses import LOSSES, AbstractLoss, CrossEntropyLoss, ExponentialLoss, SquaredLoss, get_loss

__all__ = [
    "ACTIVATIONS", "GELU", "AbstractActivation", "Identity", "LeakyReLU", "ReLU", "Sigmoid", "Tanh", "get_activation",
    "bias_gradient", "chain_backward", "direct_backward", "feedback_signal", "linear_backward", "weight_gradient",
    "Trace", "forward", "linear",
    "LOSSES", "AbstractLoss", "CrossEntropyLoss", "ExponentialLoss", "SquaredLoss", "get_loss",
]
