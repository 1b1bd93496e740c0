"""Drop-in PyTorch layers for FA, DFA and sign symmetry (issue 7): layers, ``convert``, instruments, training.

The layers' backward passes call the kernels of :mod:`falab.functional`, so the nn route and the functional route
(``falab.rules`` + ``falab.dynamics``) compute the same updates; tests check this to 1e-12 in float64.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> from falab.nn import convert, layer_alignment
    >>> net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> report = convert(net, "dfa", seed=0)          # or "fa", "usf", "frsf", "brsf"
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> x, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    >>> nn.functional.cross_entropy(net(x), y).backward()   # no targets in forward
    >>> opt.step()
    >>> [a.name for a in layer_alignment(net)]
    ['0', '2']
"""

from ..rules._sign_symmetry import (
    SIGN_SYMMETRY_KINDS,
    BatchRandomMagnitudeSignFeedback,
    FixedRandomMagnitudeSignFeedback,
    UniformSignFeedback,
)
from ._convert import RULE_NAMES, ConversionReport, ConvertedLayer, SkippedModule, convert, rule_from_name
from ._data import DATASETS, Split, load_split
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
from ._metrics import AlignmentMonitor, LayerAlignment, conserved_quantities, layer_alignment, update_angles
from ._train import TrainConfig, build_model, load_config, train_from_config

__all__ = [
    "SIGN_SYMMETRY_KINDS", "BatchRandomMagnitudeSignFeedback", "FixedRandomMagnitudeSignFeedback", "UniformSignFeedback",
    "RULE_NAMES", "ConversionReport", "ConvertedLayer", "SkippedModule", "convert", "rule_from_name",
    "DFAConv1d", "DFAConv2d", "DFALinear", "ErrorBroadcast", "FAConv1d", "FAConv2d", "FALinear", "FeedbackLayer",
    "exact_backprop", "AlignmentMonitor", "LayerAlignment", "conserved_quantities", "layer_alignment", "update_angles",
    "DATASETS", "Split", "load_split", "TrainConfig", "build_model", "load_config", "train_from_config",
]
