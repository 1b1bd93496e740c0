"""Small test problems with exact answers (float64), shared by the core test suite.

Each helper builds data, a model and initial parameters from a seed, so every test is reproducible; the problems that
carry an exact answer compute it here with plain numpy/torch linear algebra, independently of the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from falab.functional import AbstractLoss, CrossEntropyLoss, ExponentialLoss, SquaredLoss
from falab.models import MLP, Params

DT = torch.float64
ACTIVATION_NAMES = ("identity", "relu", "leaky_relu", "tanh", "sigmoid", "gelu")
HOMOGENEOUS = ("identity", "relu", "leaky_relu")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, g: torch.Generator, scale: float = 1.0) -> Tensor:
    return scale * torch.randn(shape, generator=g, dtype=DT)


def targets_for(loss: AbstractLoss, n: int, n_out: int, g: torch.Generator, lead: tuple[int, ...] = ()) -> Tensor:
    """Targets of the right kind for each loss: real vectors, +-1 labels, or one-hot rows."""
    if isinstance(loss, ExponentialLoss):
        return torch.where(torch.rand((*lead, n, n_out), generator=g, dtype=DT) > 0.5, 1.0, -1.0).to(DT)
    if isinstance(loss, CrossEntropyLoss):
        idx = torch.randint(0, n_out, (*lead, n), generator=g)
        return torch.nn.functional.one_hot(idx, n_out).to(DT)
    return randn(*lead, n, n_out, g=g)


LOSS_CASES: dict[str, AbstractLoss] = {
    "squared_mean": SquaredLoss("mean"),
    "squared_sum": SquaredLoss("sum"),
    "exponential_sum": ExponentialLoss("sum"),
    "exponential_mean": ExponentialLoss("mean"),
    "cross_entropy_mean": CrossEntropyLoss("mean"),
    "cross_entropy_sum": CrossEntropyLoss("sum"),
}


def random_mlp(
    widths: tuple[int, ...], activation: str, bias: bool, seed: int, *, n: int = 7, ensemble: int | None = None,
    loss: AbstractLoss | None = None, bias_scale: float = 0.3,
) -> tuple[MLP, Params, Tensor, Tensor]:
    """An MLP with Gaussian weights (std 1.2/sqrt(fan_in)), nonzero random biases (std bias_scale), data x ~ N(0, 1)
    and targets y of the kind the loss needs (per member when ``ensemble`` is given)."""
    g = gen(seed)
    model = MLP(widths, activation, bias=bias)
    stds = [1.2 / np.sqrt(widths[l]) for l in range(len(widths) - 1)]
    params = model.init_params(g, scheme="gaussian", std=stds, ensemble=ensemble)
    lead = () if ensemble is None else (ensemble,)
    if bias:  # nonzero biases, so the bias paths are exercised
        for k in list(params):
            if k.startswith("b"):
                params[k] = randn(*params[k].shape, g=g, scale=bias_scale)
    x = randn(n, widths[0], g=g)
    y = targets_for(loss or SquaredLoss(), n, widths[-1], g, lead)
    return model, params, x, y


@dataclass(frozen=True)
class LinearRegressionFlow:
    r"""One linear layer ``f = X W^T`` under the BP flow with mean squared loss: exact solution

    .. math:: W(t) = W_* + (W_0 - W_*)\exp(-t S),\quad S = X^TX/N,\quad W_* = (X^+Y)^T

    (X full column rank), and Euler with step ``eta``: ``W_k = W_* + (W_0 - W_*)(I - \eta S)^k``.
    """

    x: Tensor
    y: Tensor
    w0: Tensor

    @property
    def s(self) -> np.ndarray:
        x = self.x.numpy()
        return x.T @ x / x.shape[0]

    @property
    def w_star(self) -> np.ndarray:
        return (np.linalg.pinv(self.x.numpy()) @ self.y.numpy()).T

    def flow(self, t: float) -> np.ndarray:
        ws = self.w_star
        return ws + (self.w0.numpy() - ws) @ scipy.linalg.expm(-t * self.s)

    def euler(self, eta: float, k: int) -> np.ndarray:
        ws = self.w_star
        step = np.eye(self.s.shape[0]) - eta * self.s
        return ws + (self.w0.numpy() - ws) @ np.linalg.matrix_power(step, k)


def linear_regression(seed: int = 0, n: int = 12, d: int = 4, o: int = 3) -> LinearRegressionFlow:
    g = gen(seed)
    return LinearRegressionFlow(randn(n, d, g=g), randn(n, o, g=g), randn(o, d, g=g, scale=0.5))


@dataclass(frozen=True)
class TwoLayerLinearFA:
    r"""P000 Thm 5.2 setting: scalar-output two-layer linear net, N < d, FA with ``W_1(0) = 0``.

    FA's first-layer update is ``G_1 = B^T e^T X`` (row convention), so ``W_1`` stays in the row space of X and so
    does the end-to-end map; the FA flow converges to the minimum-norm interpolator ``(X^+ y)^T``.
    """

    x: Tensor
    y: Tensor
    params0: Params
    feedback: Tensor

    @property
    def limit(self) -> Tensor:
        return (torch.linalg.pinv(self.x) @ self.y).transpose(-1, -2)


def two_layer_linear_fa(seed: int = 0, n: int = 4, d: int = 7, h: int = 5) -> TwoLayerLinearFA:
    g = gen(seed)
    x = randn(n, d, g=g)
    y = randn(n, 1, g=g)
    params0 = {"W1": torch.zeros(h, d, dtype=DT), "W2": randn(1, h, g=g, scale=0.5)}
    return TwoLayerLinearFA(x, y, params0, randn(1, h, g=g))


def linear_teacher(seed: int, widths: tuple[int, ...], n: int = 20, ensemble: int | None = None,
                   activation: str = "relu") -> tuple[MLP, Params, Tensor, Tensor]:
    """A student MLP and data labelled by a random linear teacher ``y = x T^T`` (an easy, realisable target)."""
    g = gen(seed)
    model = MLP(widths, activation)
    params = model.init_params(g, scheme="xavier", ensemble=ensemble)
    x = randn(n, widths[0], g=g)
    teacher = randn(widths[-1], widths[0], g=g, scale=1.0 / np.sqrt(widths[0]))
    return model, params, x, x @ teacher.T
