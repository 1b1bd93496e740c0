"""MNIST-1D's own training protocol, outside falab (issue 18 item 1): does the published 68 % MLP reproduce here?

The pip package ``mnist1d`` (0.0.2.post1, installed) ships only the data (``data.py``, ``transform.py``, ``utils.py``);
its trainer lives in the repository's ``notebooks/train.py`` (``get_model_args``, ``train_model``) and the models in
``notebooks/models.py`` (Greydanus 2020, "Scaling down deep learning", arXiv:2011.14439). This module restates that
protocol with its own defaults so that falab's protocol can be checked against it:

* data: ``mnist1d.data.make_dataset(get_dataset_args())``, generated locally (no download): 4000 training and 1000 test
  examples of length 40, not standardised;
* model: ``MLPBase(40, 10)`` (hidden width 100, 15,210 parameters): ``h1 = relu(W1 x + b1)``,
  ``h2 = h1 + relu(W2 h1 + b2)``, logits ``W3 h2 + b3``; PyTorch's default initialisation after ``set_seed(seed)``;
* optimiser: Adam, learning rate 1e-2, weight decay 0 (``get_model_args``); ``total_steps + 1 = 8001`` steps of batch 100
  taken in the fixed order ``x[bix:bix + 100]``, ``bix = 100 * step mod 4000`` (no shuffling); the loop is
  ``loss.backward(); optimizer.step(); optimizer.zero_grad()``;
* the reported number: test accuracy of the final weights (percent).

Run as ``python tests/mnist1d_reference.py [--seeds N] [--first SEED] [--hidden H]`` (defaults: 5 seeds from 42, the
``get_model_args`` seed). Measured here (one thread): width 100, 64.82 % [64.28, 65.26]; ``--hidden 256``, 67.50 %
[66.22, 68.78] (95 % bootstrap intervals over seeds 42-46). ``tests/test_nn_mnist1d_reference.py`` checks that
falab's ``mlp_ref`` / ``mlp_ref256`` are this ``MLPBase`` (fast) and reruns these numbers (slow).
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch
from torch import nn

DEFAULTS = {"input_size": 40, "output_size": 10, "hidden_size": 100, "learning_rate": 1e-2, "weight_decay": 0.0,
            "batch_size": 100, "total_steps": 8000, "seed": 42}  # hidden 100: MLPBase's default, as the notebook calls it


class MLPBase(nn.Module):
    """``h = relu(linear1 x)``; ``h = h + relu(linear2 h)``; ``linear3 h`` (the reference MLP)."""

    def __init__(self, input_size: int, output_size: int, hidden_size: int = 100) -> None:
        super().__init__()
        self.linear1 = nn.Linear(input_size, hidden_size)
        self.linear2 = nn.Linear(hidden_size, hidden_size)
        self.linear3 = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear1(x).relu()
        h = h + self.linear2(h).relu()
        return self.linear3(h)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_dataset() -> dict[str, np.ndarray]:
    """The default MNIST-1D data set, generated locally with the package's own ``make_dataset``."""
    from mnist1d.data import get_dataset_args, make_dataset

    return make_dataset(get_dataset_args())


def train_reference_mlp(data: dict[str, np.ndarray], seed: int, *, total_steps: int = 8000, hidden_size: int = 100
                        ) -> float:
    """Final test accuracy (percent) of ``MLPBase`` trained by the reference loop with seed ``seed``."""
    a = dict(DEFAULTS, total_steps=total_steps, hidden_size=hidden_size)
    set_seed(seed)
    model = MLPBase(a["input_size"], a["output_size"], a["hidden_size"])
    opt = torch.optim.Adam(model.parameters(), a["learning_rate"], weight_decay=a["weight_decay"])
    crit = nn.CrossEntropyLoss()
    x, y = torch.Tensor(data["x"]), torch.LongTensor(data["y"])
    xt, yt = torch.Tensor(data["x_test"]), torch.LongTensor(data["y_test"])
    b = a["batch_size"]
    for step in range(a["total_steps"] + 1):
        bix = (step * b) % len(x)
        loss = crit(model(x[bix:bix + b]), y[bix:bix + b])
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        return 100.0 * float((model(xt).argmax(-1) == yt).double().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first", type=int, default=DEFAULTS["seed"])
    p.add_argument("--hidden", type=int, default=100, help="256 is get_model_args' unused hidden_size")
    args = p.parse_args()
    from falab.instruments import bootstrap_interval

    torch.set_num_threads(1)
    data = default_dataset()
    print(f"train {len(data['y'])}, test {len(data['y_test'])}, length {data['x'].shape[1]}")
    accs = []
    for s in range(args.first, args.first + args.seeds):
        t0 = time.perf_counter()
        accs.append(train_reference_mlp(data, s, hidden_size=args.hidden))
        print(f"seed {s}: test {accs[-1]:.2f} % ({time.perf_counter() - t0:.1f} s)", flush=True)
    iv = bootstrap_interval(accs)
    print(f"mean {iv.estimate:.2f} % [{iv.low:.2f}, {iv.high:.2f}] over {len(accs)} seeds (published 68 %)")


if __name__ == "__main__":
    main()
