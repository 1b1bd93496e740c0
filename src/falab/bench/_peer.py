"""The BioTorch side of ``falab bench --with-biotorch``, run by the peer's own interpreter in a subprocess.

This file is executed as a script (``PEER_PYTHON -I _peer.py '{"repeats": 40}'``) by the interpreter of a separate
virtual environment that holds ``biotorch==0.0.16`` and torch; it imports nothing from falab (falab is not installed
there) and prints one JSON object: step-time ratios of BioTorch's FA and DFA layers to native torch backprop in that
same process, with the protocol of :mod:`falab.bench._nn` (CPU time, median of interleaved blocks of two steps).
It refuses any other BioTorch version with exit code 3.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata
import io
import json
import statistics
import sys
import time
import warnings

PINNED = "0.0.16"


def main(argv: list[str]) -> int:
    """Time BP and BioTorch FA/DFA on the MLP and the CNN of the falab bench; print the ratios as JSON."""
    options = json.loads(argv[1]) if len(argv) > 1 else {}
    try:
        version = importlib.metadata.version("biotorch")
    except importlib.metadata.PackageNotFoundError:
        print(json.dumps({"error": "biotorch is not installed in this environment"}))
        return 3
    if version != PINNED:
        print(json.dumps({"error": f"biotorch {version} found, the comparison is pinned to {PINNED}"}))
        return 3
    import torch
    from biotorch.module.biomodule import BioModule  # type: ignore[import-not-found]  # only in the peer's own venv
    from torch import nn

    torch.set_num_threads(int(options.get("threads", 1)))
    repeats = int(options.get("repeats", 40))

    def mlp() -> nn.Module:
        return nn.Sequential(nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 1000), nn.ReLU(), nn.Linear(1000, 10))

    def lenet() -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                             nn.ReLU(), nn.Linear(84, 10))

    def stepper(model: nn.Module, x: torch.Tensor, y: torch.Tensor, with_targets: bool):
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            out = model(x, y, loss_fn) if with_targets else model(x)  # BioTorch's DFA needs the targets
            loss_fn(out, y).backward()
            opt.step()

        return step

    g = torch.Generator().manual_seed(0)
    data = {"mlp": (torch.randn(128, 784, generator=g), torch.randint(0, 10, (128,), generator=g), mlp),
            "cnn": (torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g), lenet)}
    result: dict[str, float | str] = {"biotorch_version": version, "biotorch_torch": torch.__version__}
    for arch, (x, y, make) in data.items():
        torch.manual_seed(0)
        base = make()
        models = {"bp": copy.deepcopy(base)}
        for mode in ("fa", "dfa"):
            cfg = {"type": mode, "options": {"constrain_weights": False, "gradient_clip": False, "init": "xavier"}}
            kw = {"output_dim": 10} if mode == "dfa" else {}
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # BioTorch prints its conversion and uses deprecated hooks
                models[mode] = BioModule(copy.deepcopy(base), mode=mode, layer_config=cfg, **kw)
        steps = {k: stepper(m, x, y, k == "dfa") for k, m in models.items()}
        samples: dict[str, list[float]] = {k: [] for k in steps}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for f in steps.values():
                for _ in range(3):
                    f()
            for _ in range(repeats):
                for k, f in steps.items():
                    t0 = time.process_time()
                    for _ in range(2):
                        f()
                    samples[k].append((time.process_time() - t0) / 2)
        t = {k: statistics.median(v) for k, v in samples.items()}
        for mode in ("fa", "dfa"):
            result[f"biotorch_{mode}_over_bp_{arch}"] = t[mode] / t["bp"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
