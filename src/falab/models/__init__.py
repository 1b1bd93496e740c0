"""Model families as parameter containers plus a forward pass; each presents itself to the rules as layers."""

from ._base import AbstractLayeredModel, Params, member, stack_params
from ._mlp import MLP, deep_linear

__all__ = ["AbstractLayeredModel", "Params", "member", "stack_params", "MLP", "deep_linear"]
