"""EXP-NN-1: FA, DFA and sign symmetry on real PyTorch models and offline real data (no paper claims).

Quick mode: digits, MLP, every rule, the reproduce seeds, 5 epochs, one shared learning rate; BP beside a
logistic-regression baseline measured in the same run. Full mode, the protocol of a fair comparison (issue 18):

* baselines first: MNIST-1D's reference MLP and CNN at the reference budget (Adam, batch 100, 8000 steps), BP
  compared with the published 68 % / 94 % (``falab.nn._baselines``); the MLP compared is ``mlp_ref256`` (``MLPBase``
  at ``get_model_args``' hidden width 256, with which the dataset's own trainer reaches 67.5 %), while the 100-wide
  MLP the notebooks print (``mlp_ref``) is trained with BP at the reference learning rate and reported beside the
  dataset's own trainer measured on it (64.82 %); digits' MLP and CNN with BP beside logistic regression on the same
  split;
* per rule, the learning rate chosen on the validation split from a declared grid (tuning seed 1000, training split
  only), then at least 5 evaluation seeds trained on training + validation data with the same budget for every rule,
  the test split read once per run (final weights);
* mean test accuracy with a 95 % bootstrap interval and the rule - BP difference with a paired 95 % interval;
* sequence benchmarks: a transformer on MNIST-1D read as 40 tokens and a character-level transformer LM on fixed files
  of the Python standard library (bits per character), for BP, FA, DFA, uSF and frSF, with per-layer alignment angles
  over training.
"""

from __future__ import annotations

import math
import shutil
import time
from typing import Any

from ..nn._baselines import (
    PUBLISHED,
    PUBLISHED_SOURCE,
    REFERENCE_TRAINER,
    REFERENCE_TRAINER_SOURCE,
    logistic_regression_accuracy,
)
from ..nn._data import load_split, pystdlib_source
from ..nn._train import train_from_config
from ._registry import Experiment, Measured, RunContext, register

ACCEPT_POINTS = 1.5
BP_TOLERANCE = 2.0  # BP within this many points of a published number before any rule is compared
SEQUENCE_RULES = ["bp", "fa", "dfa", "usf", "frsf"]

# Declared tuning grids (learning rates of Adam), one tuning seed each: the grid sizes are set by the cost of the
# reference budgets on one core (measured in the report's timing line), not by the results.
GRIDS = {"digits": [1e-3, 3e-3], "mnist1d": [3e-3, 1e-2], "sequence": [1e-3, 3e-3]}


def _full_seeds(ctx: RunContext) -> list[int]:
    seeds = list(ctx.seeds)
    extra = [s for s in range(1000) if s not in seeds]
    return seeds + extra[:max(0, 5 - len(seeds))]


def _configs(ctx: RunContext) -> list[dict[str, Any]]:
    if ctx.quick:
        return [{"name": "nn_quick", "datasets": ["digits"], "models": ["mlp"], "seeds": list(ctx.seeds), "epochs": 5,
                 "batch_size": 32}]
    seeds = _full_seeds(ctx)
    protocol = {"select": "final", "refit": True, "seeds": seeds}
    reference_budget = {"datasets": ["mnist1d"], "steps": 8000, "eval_every": 1000, "batch_size": 100,
                        "optimizer": {"name": "adam", "lr": 1e-2}, "split": {"val_fraction": 0.2, "standardize": False}}
    return [
        {"name": "nn_digits", "datasets": ["digits"], "models": ["mlp", "cnn"], "epochs": 30, "batch_size": 32,
         "tune": {"lr": GRIDS["digits"], "seeds": [1000]}, **protocol},
        # the rule comparison: the MLP whose BP meets the published 68 % (see falab.nn._baselines) and the CNN
        {"name": "nn_mnist1d", "models": ["mlp_ref256", "cnn_ref"], **reference_budget,
         "tune": {"lr": GRIDS["mnist1d"], "seeds": [1000]}, **protocol},
        # the MLP as the notebooks print it, BP only at the reference learning rate: a baseline row, not a comparison
        {"name": "nn_mnist1d_printed", "models": ["mlp_ref"], "rules": ["bp"], **reference_budget, **protocol},
        {"name": "nn_sequence", "datasets": ["mnist1d", "pystdlib"], "models": ["transformer"], "rules": SEQUENCE_RULES,
         "steps": 2000, "eval_every": 250, "batch_size": 64, "split": {"val_fraction": 0.2, "standardize": False},
         "transformer": {"d_model": 32, "heads": 4, "layers": 2, "ff": 64},
         "tune": {"lr": GRIDS["sequence"], "seeds": [1000]}, **protocol},
    ]


def _budget(cfg: dict[str, Any]) -> str:
    b = f"{cfg['steps']} steps" if "steps" in cfg else f"{cfg['epochs']} epochs"
    grid = cfg.get("tune", {}).get("lr")
    lr = cfg.get("optimizer", {}).get("lr", 1e-3)  # TrainConfig's default Adam rate
    tune = f", lr grid {grid} chosen on validation per rule" if grid else f", lr {lr:g} for every rule"
    return f"{b}, batch {cfg['batch_size']}, {len(cfg['seeds'])} seed(s){tune}"


def _baseline_rows(summary: list[dict[str, Any]], lr_digits: dict[bool, float]) -> tuple[list[str], dict[str, Any]]:
    lines = ["| data | model | BP test acc. % [95 % CI] | reference | reference acc. % | BP - reference | "
             f"BP within {BP_TOLERANCE:g} points |", "|---|---|---|---|---|---|---|"]
    numbers: dict[str, Any] = {}
    for row in summary:
        if row["rule"] != "bp" or row["dataset"] == "pystdlib":
            continue
        key = (row["dataset"], row["model"])
        if key in PUBLISHED:
            ref, label = PUBLISHED[key], "published (Greydanus 2020)"
            if key in REFERENCE_TRAINER:
                label += f"; the dataset's own trainer {REFERENCE_TRAINER[key][0]:.2f} %"
        elif key in REFERENCE_TRAINER:
            ref, lo, hi = REFERENCE_TRAINER[key]
            label = f"the dataset's own trainer, measured [{lo:.2f}, {hi:.2f}] (printed architecture)"
        elif row["dataset"] == "digits":
            if bool(row.get("refit")) not in lr_digits:
                continue
            ref, label = lr_digits[bool(row.get("refit"))], "logistic regression, same split"
        else:
            continue
        diff = row["test_acc_mean"] - ref
        against_network = key in PUBLISHED or key in REFERENCE_TRAINER
        ok = math.isfinite(diff) and abs(diff) <= BP_TOLERANCE
        numbers[f"bp_minus_reference_{key[0]}_{key[1]}"] = diff
        numbers[f"reference_acc_{key[0]}_{key[1]}"] = ref
        verdict = ("yes" if ok else "NO") if against_network else "–"
        lines.append(f"| {key[0]} | {key[1]} | {row['test_acc_mean']:.2f} [{row['test_acc_low']:.2f}, "
                     f"{row['test_acc_high']:.2f}] | {label} | {ref:.2f} | {diff:+.2f} | {verdict} |")
    return lines, numbers


def _tuning_table(tuning: dict[str, Any]) -> str:
    if not tuning:
        return ""
    lines = ["| data / model / rule | validation score per learning rate | chosen lr |", "|---|---|---|"]
    for key, t in tuning.items():
        grid = ", ".join(f"{lr}: {'–' if v is None else f'{v:.3f}'}" for lr, v in t["grid"].items())
        lines.append(f"| {key} | {grid} ({t['score']}) | {t['chosen_lr'] if t['chosen_lr'] is not None else '–'} |")
    return "\n".join(lines)


def run(ctx: RunContext) -> Measured:
    t0, c0 = time.perf_counter(), time.process_time()
    cfgs = _configs(ctx)
    figures, summary, tables, tuning_tables = [], [], [], []
    timings = []
    for cfg in cfgs:
        t1 = time.process_time()
        res = train_from_config(cfg, ctx.data_dir / cfg["name"], progress=ctx.progress, overwrite=True)
        timings.append(f"{cfg['name']} {time.process_time() - t1:.0f} s CPU ({len(res['runs'])} runs)")
        for f in res["figures"]:
            dest = ctx.figures_dir / f.name  # already named nn_curves_<dataset>_<model>.png
            shutil.copyfile(f, dest)
            figures.append(dest)
        if "transformer" in cfg["models"]:
            from ..plots._nn import plot_layer_angles

            for ds in cfg["datasets"]:
                sel = [r for r in res["runs"] if r["dataset"] == ds and r.get("phase") == "test"
                       and r["status"] == "ok"]
                figures.append(plot_layer_angles(sel, ctx.figures_dir / f"nn_layer_angles_{ds}_transformer.png",
                                                 title=f"{ds} / transformer: feedback angle per layer"))
        for row in res["summary"]:
            row["refit"] = bool(cfg.get("refit"))
        summary += res["summary"]
        tables.append(f"**{', '.join(cfg['datasets'])}** ({_budget(cfg)}):\n\n" + res["markdown"])
        if res["tuning"]:
            tuning_tables.append(_tuning_table(res["tuning"]))
    digits = load_split("digits")
    lr_digits = {not ctx.quick: logistic_regression_accuracy(digits, refit=not ctx.quick)}  # the protocol's split
    base_lines, base_numbers = _baseline_rows(summary, lr_digits)
    numbers: dict[str, Any] = {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                               "seeds": len(cfgs[0]["seeds"]), **base_numbers,
                               "logreg_test_acc_digits": lr_digits[not ctx.quick]}
    lines = []
    for row in summary:
        key = f"{row['dataset']}_{row['model']}_{row['rule']}"
        numbers[f"test_acc_{key}"] = row["test_acc_mean"]
        numbers[f"test_acc_std_{key}"] = row["test_acc_std"]
        numbers[f"test_acc_ci_{key}"] = [row["test_acc_low"], row["test_acc_high"]]
        numbers[f"gap_to_bp_{key}"] = row["gap_to_bp"]
        numbers[f"gap_ci_{key}"] = [row["gap_low"], row["gap_high"]]
        numbers[f"lr_{key}"] = row["lr"]
        numbers[f"angle_{key}"] = row["angle_mean"]
        if math.isfinite(row["test_bpc_mean"]):
            numbers[f"test_bpc_{key}"] = row["test_bpc_mean"]
        if row["dataset"] == "digits" and row["rule"] != "bp" and math.isfinite(row["gap_to_bp"]):
            ok = row["gap_to_bp"] >= -ACCEPT_POINTS
            lines.append(f"- digits/{row['model']}/{row['rule']}: {row['test_acc_mean']:.2f} % vs BP, gap "
                         f"{row['gap_to_bp']:+.2f} points -> {'within' if ok else 'NOT within'} {ACCEPT_POINTS} points")
    n_seeds = len(cfgs[0]["seeds"])
    caveat = ("" if not ctx.quick else
              f"\n\n*Quick mode: {n_seeds} seed(s), {cfgs[0]['epochs']} epochs, one learning rate for every rule — "
              "indicative only; the protocol (per-rule learning rates, 5 seeds, reference budgets) is the full run.*")
    lm = ""
    if any(r["dataset"] == "pystdlib" for r in summary):
        src = pystdlib_source()
        lm = ("\n\nCharacter LM text (pystdlib): Python " + str(src["python"]) + " standard library, "
              + "; ".join(f"{part}: {', '.join(src[part]['files'])} ({src[part]['chars']:,} chars, sha256 "  # type: ignore[index]
                          f"{src[part]['sha256']})" for part in ("train", "val", "test"))  # type: ignore[index]
              + f"; context {src['context']} characters.")
    md = (
        "Feedback alignment (FA), direct FA (DFA) and the sign-symmetry rules (uSF, frSF, brSF) on PyTorch models "
        "converted with `falab.nn.convert` (attention projections included), trained with Adam and the loop a user "
        "writes. " + ("Quick mode: validation selects the epoch, the test split is read once."
                      if ctx.quick else
                      "Protocol: the learning rate of every rule is chosen on the validation split from the declared "
                      "grid (tuning seed 1000, training split only); the evaluation seeds train on training + "
                      "validation data with the budget shared by every rule and read the test split once, at the end. "
                      "Intervals: 95 % percentile bootstrap of the mean over seeds; Δ vs BP: paired per seed.")
        + "\n\n**Baselines** (" + PUBLISHED_SOURCE + "; " + REFERENCE_TRAINER_SOURCE
        + "; digits: logistic regression measured in this run, "
        f"{lr_digits[not ctx.quick]:.2f} %):\n\n" + "\n".join(base_lines) + "\n\n"
        + "\n\n".join(tables)
        + ("\n\n**Learning rate per rule** (validation):\n\n" + "\n\n".join(tuning_tables) if tuning_tables else "")
        + lm
        + "\n\nAngles: mean over informative layers of angle(W, feedback actually used) at the end of training (the "
        "first layer, whose feedback is never used, and DFA hidden layers, whose D has the output's shape, are "
        "excluded); update angle: angle between the rule's update and the BP gradient at the same weights."
        + "\n\nAcceptance target (within 1.5 points of BP on digits, mean over seeds):\n\n"
        + "\n".join(lines) + caveat + "\n\nCompute: " + "; ".join(timings) + "."
    )
    return Measured(per_seed=[{} for _ in ctx.seeds], markdown=md, figures=figures, numbers=numbers,
                    sizes={"seeds": n_seeds, "configs": [c["name"] for c in cfgs]})


register(Experiment(id="EXP-NN-1", paper="NN", title="Learning rules on real PyTorch models (falab.nn)", claims=(),
                    run=run))
