"""Model families as parameter containers plus a forward pass; each presents itself to the rules as layers."""

from ._base import AbstractLayeredModel, Params, member, stack_params
from ._matfac import factors, feedback_slot, from_factors, identity_inputs, matrix_factorization
from ._mlp import MLP, deep_linear
from ._tensor_nets import AbstractTensorNet, CircularConvNet, DeepMatrixSensing, DiagonalNet, FullyConnectedTensorNet

__all__ = ["AbstractLayeredModel", "Params", "member", "stack_params", "MLP", "deep_linear",
           "matrix_factorization", "identity_inputs", "factors", "from_factors", "feedback_slot",
           "AbstractTensorNet", "FullyConnectedTensorNet", "DiagonalNet", "CircularConvNet", "DeepMatrixSensing"]
