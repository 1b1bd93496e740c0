"""Step-time benchmark of the ``falab.nn`` layers against native torch backprop (BioTorch's layers are timed in their
own venv by ``_peer.py``, see :mod:`falab.bench`).

One training step = forward, cross-entropy, ``loss.backward()``, ``SGD.step()``, ``zero_grad``; float32 on CPU.
Models: MLP 784-1000-1000-10 (batch 128), a LeNet-5-like CNN on 1x28x28 (batch 64) and a transformer (the
sequence classifier of ``falab train``: 40 tokens, width 64, 4 heads, 2 pre-norm encoder layers with MLP width 128,
batch 64), whose attention projections ``convert`` turns into FA / DFA linears. Times are CPU time of
the process (``time.process_time``: on a shared machine, time spent descheduled is not charged to the step), median
over many blocks of two steps; the ratios divide a rule's time by native BP's, measured in the same run and
interleaved (BP, FA, DFA, BP, ...) so that drifts of the machine affect every variant alike. The thread count is chosen by measuring native BP at
1 and 2 threads (``nn_bench_threads``); never used in timed assertions.
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from ..nn import convert


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 1000), nn.ReLU(), nn.Linear(1000, 10))


def _lenet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


def _transformer() -> nn.Module:
    from ..nn._train import SeqTransformer, TransformerConfig

    return SeqTransformer(40, 10, TransformerConfig(d_model=64, heads=4, layers=2, ff=128))


def _stepper(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def _time_variants(steps: dict[str, Callable[[], None]], repeats: int, inner: int) -> dict[str, float]:
    for f in steps.values():  # warm-up (allocator, lazy DFA feedback)
        for _ in range(3):
            f()
    samples: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for k, f in steps.items():
            t0 = time.process_time()
            for _ in range(inner):
                f()
            samples[k].append((time.process_time() - t0) / inner)
    return {k: statistics.median(v) for k, v in samples.items()}


def _choose_threads(x: torch.Tensor, y: torch.Tensor) -> int:
    best, best_t = 1, float("inf")
    for n in (1, 2):
        torch.set_num_threads(n)
        torch.manual_seed(0)
        t = _time_variants({"bp": _stepper(_mlp(), x, y)}, repeats=3, inner=3)["bp"]
        if t < best_t * 0.97:  # prefer fewer threads unless more are clearly faster
            best, best_t = n, t
    return best


def run_nn_bench(repeats: int = 40, *, threads: int | None = None, quick: bool = False,
                 echo: Callable[[str], None] | None = None) -> dict[str, float]:
    """Ratios ``step time(rule) / step time(native BP)`` for the MLP, the CNN and the transformer; see the module
    docstring.

    ``quick`` uses 10 repeats; ``echo`` receives one progress line per model.

    Keys: ``nn_fa_over_bp_mlp``, ``nn_dfa_over_bp_mlp``, ``nn_fa_over_bp_cnn``, ``nn_dfa_over_bp_cnn``,
    ``nn_fa_over_bp_transformer``, ``nn_dfa_over_bp_transformer``,
    ``fa_over_bp_step`` (= the MLP FA ratio), ``nn_bench_threads`` and the BP step times in ms.
    """
    if quick:
        repeats = min(repeats, 10)
    old_threads = torch.get_num_threads()
    g = torch.Generator().manual_seed(0)
    data = {
        "mlp": (torch.randn(128, 784, generator=g), torch.randint(0, 10, (128,), generator=g), _mlp),
        "cnn": (torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g), _lenet),
        "transformer": (torch.randn(64, 40, generator=g), torch.randint(0, 10, (64,), generator=g), _transformer),
    }
    try:
        n_threads = threads if threads is not None else _choose_threads(data["mlp"][0], data["mlp"][1])
        torch.set_num_threads(n_threads)
        out: dict[str, float] = {"nn_bench_threads": float(n_threads)}
        for arch, (x, y, make) in data.items():
            torch.manual_seed(0)
            base = make()
            models = {"bp": copy.deepcopy(base)}
            for rule in ("fa", "dfa"):
                m = copy.deepcopy(base)
                convert(m, rule, seed=0, example_input=x[:2] if rule == "dfa" else None)
                models[rule] = m
            steps = {k: _stepper(m, x, y) for k, m in models.items()}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = _time_variants(steps, repeats=repeats, inner=2)
            out[f"nn_bp_step_ms_{arch}"] = 1e3 * t["bp"]
            if echo is not None:
                echo(f"nn bench {arch}: " + ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in t.items())
                     + f" ({n_threads} thread(s))")
            for k in t:
                if k != "bp":
                    out[f"nn_{k}_over_bp_{arch}"] = t[k] / t["bp"]
        out["fa_over_bp_step"] = out["nn_fa_over_bp_mlp"]
        return out
    finally:
        torch.set_num_threads(old_threads)
