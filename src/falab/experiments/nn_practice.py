"""EXP-NN-1: FA, DFA and sign symmetry on real PyTorch models and offline real data (no paper claims).

Quick mode: digits, MLP, every rule, the reproduce seeds, 5 epochs. Full mode: digits and MNIST-1D, MLP and CNN, every rule,
the reproduce seeds (3 by default). Models are selected on the validation split; the test split is evaluated once per run. The acceptance check
(the practice target): on digits, every rule's mean test accuracy within 1.5 points of BP.
"""

from __future__ import annotations

import math
import shutil
import time
from typing import Any

from ..nn._train import train_from_config
from ._registry import Experiment, Measured, RunContext, register

ACCEPT_POINTS = 1.5


def _configs(ctx: RunContext) -> list[dict[str, Any]]:
    if ctx.quick:
        return [{"name": "nn_quick", "datasets": ["digits"], "models": ["mlp"], "seeds": list(ctx.seeds), "epochs": 5,
                 "batch_size": 32}]
    seeds = list(ctx.seeds)
    return [
        {"name": "nn_digits", "datasets": ["digits"], "models": ["mlp", "cnn"], "seeds": seeds, "epochs": 30,
         "batch_size": 32},
        {"name": "nn_mnist1d", "datasets": ["mnist1d"], "models": ["mlp", "cnn"], "seeds": seeds, "epochs": 20,
         "batch_size": 64},
    ]


def run(ctx: RunContext) -> Measured:
    t0, c0 = time.perf_counter(), time.process_time()
    cfgs = _configs(ctx)
    figures, summary, tables = [], [], []
    for cfg in cfgs:
        res = train_from_config(cfg, ctx.data_dir / cfg["name"], progress=ctx.progress)
        for f in res["figures"]:
            dest = ctx.figures_dir / f.name  # already named nn_curves_<dataset>_<model>.png
            shutil.copyfile(f, dest)
            figures.append(dest)
        summary += res["summary"]
        tables.append(f"**{cfg['datasets'][0]}** ({cfg['epochs']} epochs, batch {cfg['batch_size']}, "
                      f"{len(cfg['seeds'])} seed(s)):\n\n" + res["markdown"])
    numbers: dict[str, Any] = {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                               "seeds": len(cfgs[0]["seeds"])}
    lines = []
    for row in summary:
        key = f"{row['dataset']}_{row['model']}_{row['rule']}"
        numbers[f"test_acc_{key}"] = row["test_acc_mean"]
        numbers[f"test_acc_std_{key}"] = row["test_acc_std"]
        numbers[f"angle_{key}"] = row["angle_mean"]
        if row["dataset"] == "digits" and row["rule"] != "bp" and math.isfinite(row["gap_to_bp"]):
            ok = row["gap_to_bp"] >= -ACCEPT_POINTS
            lines.append(f"- digits/{row['model']}/{row['rule']}: {row['test_acc_mean']:.2f} % vs BP, gap "
                         f"{row['gap_to_bp']:+.2f} points -> {'within' if ok else 'NOT within'} {ACCEPT_POINTS} points")
    n_seeds = len(cfgs[0]["seeds"])
    caveat = ("" if n_seeds >= 3 else
              f"\n\n*Quick mode: {n_seeds} seed(s), {cfgs[0]['epochs']} epochs — indicative only; the acceptance "
              "check needs the full run (3 seeds, 30 epochs).*")
    md = (
        "Feedback alignment (FA), direct FA (DFA) and the sign-symmetry rules (uSF, frSF, brSF) on PyTorch models "
        "converted with `falab.nn.convert`, trained with Adam (lr 1e-3), the same hyper-parameters for every rule. Validation split selects the "
        "epoch; the test split is evaluated once. Angles: mean over informative layers of angle(W, feedback actually "
        "used) at the end of training (the first layer, whose feedback is never used, and DFA hidden layers, whose "
        "D has the output's shape, are excluded); update angle: angle between the rule's update and the BP gradient "
        "at the same weights (validation batch).\n\n"
        + "\n\n".join(tables)
        + "\n\nAcceptance target (within 1.5 points of BP on digits, mean over seeds):\n\n"
        + "\n".join(lines) + caveat
    )
    return Measured(per_seed=[{} for _ in ctx.seeds], markdown=md, figures=figures, numbers=numbers,
                    sizes={"seeds": n_seeds, "epochs": cfgs[0]["epochs"]})


register(Experiment(id="EXP-NN-1", paper="NN", title="Learning rules on real PyTorch models (falab.nn)", claims=(),
                    run=run))
