"""Train torch models with BP, FA, DFA and the sign-symmetry rules on offline real data: ``train_from_config``.

A run is a grid ``datasets x models x rules x seeds``. Every run builds the model from its seed (so all rules start
from the same weights), converts it with :func:`falab.nn.convert`, trains with minibatches, evaluates the validation
split after every epoch, keeps the parameters of the best validation epoch and evaluates the *test* split once, with
those parameters (the test split never selects anything). Alignment (feedback angle per layer on the feedback actually
used) is recorded every epoch; the update angle to the BP gradient at the end.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from .._checks import (
    FalabInputError,
    Seed,
    check_memory,
    clamp_threads,
    config_rule_error,
    format_validation_errors,
    invalid,
)
from .._io import atomic_write_bytes, atomic_write_text, check_out_dir, check_targets, load_yaml_file, make_out_dir
from ._convert import RULE_NAMES, RuleName, convert
from ._data import DATASETS, MAX_HELD_OUT, Split, load_split
from ._metrics import layer_alignment, update_angles

# strict: no bool -> int or str -> number coercion; non-finite numbers are config mistakes
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# Field(default=...) as a keyword: type checkers read only that one (dataclass_transform), so that
# OptimizerConfig() / SplitConfig() are known to need no arguments (default_factory= below)
class OptimizerConfig(BaseModel):
    model_config = _STRICT
    name: Literal["sgd", "adam"] = "adam"
    lr: float = Field(default=1e-3, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _momentum_only_for_sgd(self) -> OptimizerConfig:
        if self.name != "sgd" and "momentum" in self.model_fields_set:
            raise config_rule_error("momentum", f"no momentum for optimizer {self.name!r} (it is used by 'sgd' only)",
                                    self.momentum)
        return self


class SplitConfig(BaseModel):
    model_config = _STRICT
    val_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    data_seed: Seed = 0

    @model_validator(mode="after")
    def _training_split_left(self) -> SplitConfig:
        held = self.val_fraction + self.test_fraction
        if held > MAX_HELD_OUT + 1e-12:
            raise config_rule_error("val_fraction + test_fraction", f"at most {MAX_HELD_OUT} (at least "
                                    f"{1 - MAX_HELD_OUT:.0%} of the data left for training)", round(held, 6))
        return self


DatasetName = Literal["digits", "mnist1d"]
ModelName = Literal["mlp", "cnn"]
# typed tuples: a lambda returning a list literal is inferred as list[str], which the Literal fields reject
_DEFAULT_DATASETS: tuple[DatasetName, ...] = ("digits",)
_DEFAULT_MODELS: tuple[ModelName, ...] = ("mlp", "cnn")


class TrainConfig(BaseModel):
    """The YAML schema of ``falab train`` (every field optional; defaults give the digits benchmark)."""

    model_config = _STRICT
    name: str = Field(default="nn_practice", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    datasets: list[DatasetName] = Field(default_factory=lambda: list(_DEFAULT_DATASETS), min_length=1)
    models: list[ModelName] = Field(default_factory=lambda: list(_DEFAULT_MODELS), min_length=1)
    rules: list[RuleName] = Field(default_factory=lambda: list(RULE_NAMES), min_length=1)
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2], min_length=1, max_length=1000)
    epochs: int = Field(default=30, ge=1)
    batch_size: int = Field(default=32, ge=1)
    hidden: int = Field(default=128, ge=1)
    init: Literal["default", "xavier", "kaiming"] = "default"
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    dtype: Literal["float32", "float64"] = "float32"
    threads: int = Field(default=1, ge=1)
    deterministic: bool = True


def _pydantic_to_falab(err: ValidationError) -> FalabInputError:
    # ErrorDetails is a TypedDict (a plain dict at runtime), the dicts format_validation_errors reads
    return FalabInputError(format_validation_errors(cast("list[dict[str, Any]]", err.errors()), model=TrainConfig))


def load_config(config: str | Path | Mapping[str, Any] | TrainConfig) -> TrainConfig:
    """Validate a config given as a YAML path, a dict or a :class:`TrainConfig`; errors are ``FalabInputError``
    ("Invalid <field>: <value> (expected ...)"). A file is read through the hardened boundary (1 MB, UTF-8, no
    duplicate keys, bounded aliases and depth). An empty config is an error, as for ``falab run``: it used to launch
    the full default grid of 36 runs."""
    if isinstance(config, TrainConfig):
        return config
    data = load_yaml_file(config) if isinstance(config, (str, Path)) else config
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise invalid("config", type(data).__name__, "a mapping of fields (see configs/nn_digits.yaml)")
    if not data:
        raise invalid("config", "empty", "at least one field, e.g. datasets, models, rules (see "
                      "configs/nn_digits.yaml)", quote=False)
    try:
        return TrainConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise _pydantic_to_falab(exc) from None
    except RecursionError:  # a self-referencing YAML alias
        raise invalid("config", "a self-referencing structure", "a tree of fields", quote=False) from None


def estimate_memory(cfg: TrainConfig) -> tuple[float, str]:
    """Estimated peak bytes of one training run (runs are sequential): parameters with feedback, gradients, two
    optimiser moments, the best-epoch copy and the state dicts (8 copies), the largest data set (MNIST-1D, 5000 x 40)
    in float64 and float32 with three splits, and activations of a full evaluation pass."""
    h = cfg.hidden
    itemsize = 8 if cfg.dtype == "float64" else 4
    d, k = 64, 10
    mlp = d * h + h * h + h * k
    cnn = 16 * 9 + 16 * 32 * 9 + 32 * 10 * h + h * k  # MNIST-1D CNN flattens 32 x 10 features
    n_params = max(mlp if "mlp" in cfg.models else 0, cnn if "cnn" in cfg.models else 0)
    activations = 5000 * (3 * h + 32 * 40) * itemsize * 3
    data = 5000 * 40 * (8 + itemsize) * 2
    total = 8.0 * n_params * itemsize + activations + data
    return total, f"{n_params:,} parameters per model with hidden = {h:,}"


def check_train_size(cfg: TrainConfig, *, allow_large: bool = False) -> None:
    """Refuse (exit 2) a training config whose estimated memory exceeds the available memory."""
    estimate, detail = estimate_memory(cfg)
    check_memory("train size", estimate, detail, allow_large=allow_large)


# ------------------------------------------------------------------------------------------------------------ models


def build_model(kind: str, split: Split, hidden: int) -> nn.Module:
    """MLP ``d - h - h - 10`` (ReLU) or a small CNN (two conv + max-pool blocks, then two dense layers)."""
    d = int(np.prod(split.image_shape))
    k = split.n_classes
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                             nn.Linear(hidden, k))
    if len(split.image_shape) == 3:  # 1 x 8 x 8 images
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(32 * 2 * 2, hidden), nn.ReLU(), nn.Linear(hidden, k))
    length = split.image_shape[-1]
    return nn.Sequential(
        nn.Conv1d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(),
        nn.Linear(32 * (length // 4), hidden), nn.ReLU(), nn.Linear(hidden, k))


def _init(model: nn.Module, scheme: str) -> None:
    if scheme == "default":
        return
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if scheme == "xavier":
                nn.init.xavier_normal_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _inputs(x: torch.Tensor, kind: str, split: Split) -> torch.Tensor:
    return x if kind == "mlp" else x.reshape(-1, *split.image_shape)


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    acc = float((model(x).argmax(-1) == y).double().mean())
    model.train()
    return 100.0 * acc


def _mean_angle(model: nn.Module) -> float:
    vals = [a.feedback_angle for a in layer_alignment(model) if a.informative]
    return float(np.mean(vals)) if vals else math.nan


def train_one(cfg: TrainConfig, split: Split, model_kind: str, rule: str, seed: int) -> dict[str, Any]:
    """One run; returns final numbers and per-epoch curves (val accuracy, train loss, mean feedback angle)."""
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    torch.manual_seed(seed)
    model = build_model(model_kind, split, cfg.hidden).to(dtype)
    _init(model, cfg.init)
    xtr, xva, xte = (_inputs(t, model_kind, split).to(dtype) for t in (split.x_train, split.x_val, split.x_test))
    ytr = split.y_train
    report = convert(model, rule, seed=seed + 1000, example_input=xtr[:2] if rule == "dfa" else None)
    o = cfg.optimizer
    if o.name == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    best_val, best_epoch, best_state = -1.0, 0, copy.deepcopy(model.state_dict())
    curves: dict[str, list[float]] = {"val_acc": [], "train_loss": [], "angle": []}
    n = len(ytr)
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        perm = torch.randperm(n, generator=g)
        total = 0.0
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        val = _accuracy(model, xva, split.y_val)
        curves["val_acc"].append(val)
        curves["train_loss"].append(total / n)
        curves["angle"].append(_mean_angle(model))
        if not math.isfinite(total):
            break
        if val > best_val:
            best_val, best_epoch, best_state = val, epoch, copy.deepcopy(model.state_dict())
    seconds = time.perf_counter() - t0
    final_angles = {a.name: a.feedback_angle for a in layer_alignment(model) if a.informative}
    upd = update_angles(model, loss_fn, xva, split.y_val)
    model.load_state_dict(best_state)
    test = _accuracy(model, xte, split.y_test)
    if report.handle is not None:
        report.handle.remove()
    return {
        "dataset": split.name, "model": model_kind, "rule": rule, "seed": seed,
        "best_epoch": best_epoch, "val_acc": best_val, "test_acc": test,
        "final_angle": float(np.mean(list(final_angles.values()))) if final_angles else math.nan,
        "final_update_angle": float(np.nanmean(list(upd.values()))) if upd else math.nan,
        "layer_angles": final_angles, "update_angles": upd, "seconds": seconds, "curves": curves,
        "converted": len(report.converted),
    }


# ---------------------------------------------------------------------------------------------------------- summary


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std over seeds per (dataset, model, rule), and the gap to BP (points of test accuracy)."""
    keys = sorted({(r["dataset"], r["model"], r["rule"]) for r in runs},
                  key=lambda k: (k[0], k[1], RULE_NAMES.index(k[2])))
    rows = []
    for ds, mk, rule in keys:
        sel = [r for r in runs if (r["dataset"], r["model"], r["rule"]) == (ds, mk, rule)]
        acc = np.array([r["test_acc"] for r in sel])
        ang = np.array([r["final_angle"] for r in sel], dtype=float)
        upd = np.array([r["final_update_angle"] for r in sel], dtype=float)
        rows.append({
            "dataset": ds, "model": mk, "rule": rule, "seeds": len(sel),
            "test_acc_mean": float(acc.mean()), "test_acc_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "val_acc_mean": float(np.mean([r["val_acc"] for r in sel])),
            "angle_mean": float(np.nanmean(ang)) if np.isfinite(ang).any() else math.nan,
            "update_angle_mean": float(np.nanmean(upd)) if np.isfinite(upd).any() else math.nan,
            "seconds": float(np.sum([r["seconds"] for r in sel])),
        })
    for row in rows:
        bp = [r for r in rows if (r["dataset"], r["model"], r["rule"]) == (row["dataset"], row["model"], "bp")]
        row["gap_to_bp"] = row["test_acc_mean"] - bp[0]["test_acc_mean"] if bp else math.nan
    return rows


def _fmt(v: float, digits: int = 1) -> str:
    return "–" if not math.isfinite(v) else f"{v:.{digits}f}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| data | model | rule | seeds | test acc. % (mean ± std) | Δ vs BP | feedback angle ° | "
             "update angle to BP ° |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['model']} | {r['rule']} | {r['seeds']} | "
                     f"{r['test_acc_mean']:.2f} ± {r['test_acc_std']:.2f} | {_fmt(r['gap_to_bp'], 2)} | "
                     f"{_fmt(r['angle_mean'])} | {_fmt(r['update_angle_mean'])} |")
    return "\n".join(lines)


OUTPUT_FILES = ("config.json", "runs.json", "summary.md", "summary.csv")


def output_files(cfg: TrainConfig) -> list[str]:
    """The files a training config writes into its output directory."""
    return [*OUTPUT_FILES, *(f"nn_curves_{ds}_{mk}.png" for ds in cfg.datasets for mk in cfg.models)]


def train_from_config(config: str | Path | Mapping[str, Any] | TrainConfig, out_dir: str | Path, *,
                      progress: Callable[[str], None] | None = None, allow_large: bool = False) -> dict[str, Any]:
    """Run the grid of a training config and write its results to ``out_dir``.

    Writes ``config.json`` (validated, with defaults), ``runs.json`` (every run, with curves), ``summary.csv``,
    ``summary.md`` and learning-curve figures ``nn_curves_<dataset>_<model>.png``. Returns
    ``{"config", "runs", "summary", "markdown", "figures", "seconds"}``.
    Raises :class:`falab._checks.FalabInputError` for an invalid config, output directory or size (estimated memory
    above the available memory unless ``allow_large``); nothing is written before those checks pass, the output path
    is resolved once, symlinks among the outputs are refused and every file is written atomically.
    """
    cfg = load_config(config)
    check_train_size(cfg, allow_large=allow_large)
    out = check_out_dir(out_dir)
    check_targets(out, files=output_files(cfg))
    import sys

    threads = clamp_threads("threads", cfg.threads, warn=lambda msg: print(msg, file=sys.stderr))
    make_out_dir(out)
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(cfg.deterministic)
    t0 = time.perf_counter()
    runs: list[dict[str, Any]] = []
    figures: list[Path] = []
    try:
        for ds in cfg.datasets:
            split = load_split(ds, val_fraction=cfg.split.val_fraction, test_fraction=cfg.split.test_fraction,
                               data_seed=cfg.split.data_seed)
            for mk in cfg.models:
                for rule in cfg.rules:
                    for seed in cfg.seeds:
                        if progress is not None:
                            progress(f"{ds}/{mk}/{rule}/seed {seed}")
                        runs.append(train_one(cfg, split, mk, rule, seed))
                        # after every run, so that an interrupted grid keeps the runs it finished
                        atomic_write_text(out / "runs.json", json.dumps(runs, indent=1, default=float))
                from ..plots._nn import plot_learning_curves

                sel = [r for r in runs if r["dataset"] == ds and r["model"] == mk]
                figures.append(plot_learning_curves(sel, out / f"nn_curves_{ds}_{mk}.png", title=f"{ds} / {mk}"))
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)
    summary = summarise(runs)
    md = markdown_table(summary)
    atomic_write_text(out / "config.json", json.dumps(cfg.model_dump(), indent=2))
    atomic_write_text(out / "runs.json", json.dumps(runs, indent=1, default=float))
    atomic_write_text(out / "summary.md", md + "\n")
    import pandas as pd  # type: ignore[import-untyped]  # pandas ships no types and pandas-stubs is not installed

    atomic_write_bytes(out / "summary.csv", pd.DataFrame(summary).to_csv(index=False).encode())
    return {"config": cfg, "runs": runs, "summary": summary, "markdown": md, "figures": figures,
            "seconds": time.perf_counter() - t0}


__all__ = ["DATASETS", "TrainConfig", "build_model", "load_config", "summarise", "markdown_table", "train_one",
           "train_from_config"]
