"""Validated run configurations (YAML or Python), with one-line error messages ``Invalid <field>: <value> (expected ...)``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._checks import FalabInputError, Seed, check_memory, format_validation_errors, invalid
from .._checks import config_rule_error as _rule_error
from .._io import load_yaml_file
from ..functional import ACTIVATIONS

# strict: no bool -> int or str -> number coercion (``steps: true`` and ``widths: ['3']`` are errors);
# allow_inf_nan=False: ``noise: .inf`` is a config mistake (exit 2), not a diverging run
_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class InitConfig(BaseModel):
    """Forward-weight initialisation: scheme gaussian (with std, one or per layer) | xavier | kaiming | zeros;
    ``zero_layers`` lists 1-based layers set to 0 afterwards (e.g. ``[1]`` for W_1(0) = 0, P000 Thm 5.2)."""

    model_config = _STRICT
    scheme: Literal["gaussian", "xavier", "kaiming", "zeros"] = "xavier"
    std: Annotated[float, Field(ge=0)] | list[Annotated[float, Field(ge=0)]] | None = None
    zero_layers: list[int] = []

    @model_validator(mode="after")
    def _std_only_for_gaussian(self) -> InitConfig:
        if self.std is not None and self.scheme != "gaussian":
            raise _rule_error("std", f"no std for scheme {self.scheme!r} (it is used by scheme 'gaussian' only)",
                              self.std)
        return self


class ModelConfig(BaseModel):
    model_config = _STRICT
    widths: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=2)]
    activation: str | list[str] = "relu"
    bias: bool = False
    init: InitConfig = InitConfig()

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, v: str | list[str]) -> str | list[str]:
        for a in [v] if isinstance(v, str) else v:
            base = a.split(":", 1)[0]
            if base not in ACTIVATIONS:
                raise _rule_error("", f"one of {', '.join(ACTIVATIONS)} (leaky_relu:<slope> for a custom slope)", a)
        return v


class DataConfig(BaseModel):
    """Data: ``teacher`` (Gaussian inputs, linear teacher y = T x + noise), ``digits`` (scikit-learn, 64 inputs,
    10 classes one-hot), ``mnist1d`` (generated locally, 40 inputs, 10 classes) or ``file`` (an .npz with X, y)."""

    model_config = _STRICT
    kind: Literal["teacher", "digits", "mnist1d", "file"] = "teacher"
    n_samples: Annotated[int, Field(ge=1)] = 10
    noise: Annotated[float, Field(ge=0)] = 0.0
    path: str | None = None


class FeedbackConfig(BaseModel):
    model_config = _STRICT
    kind: Literal["gaussian", "uniform", "copy_of_weight", "scaled_like_weight", "usf", "frsf", "brsf"] = "gaussian"
    std: Annotated[float, Field(gt=0)] = 1.0
    scale: Annotated[float, Field(gt=0)] = 1.0

    @model_validator(mode="after")
    def _no_ignored_options(self) -> FeedbackConfig:
        for field, owner in (("std", "gaussian"), ("scale", "uniform")):
            if field in self.model_fields_set and self.kind != owner:
                raise _rule_error(field, f"no {field} for kind {self.kind!r} (it is used by kind {owner!r} only)",
                                  getattr(self, field))
        return self


class RuleConfig(BaseModel):
    model_config = _STRICT
    name: Literal["bp", "fa", "dfa", "fa_star"]
    feedback: FeedbackConfig = FeedbackConfig()


class LossConfig(BaseModel):
    model_config = _STRICT
    name: Literal["squared", "exponential", "cross_entropy"] = "squared"
    reduction: Literal["mean", "sum"] = "mean"


class FlowConfig(BaseModel):
    """Exact flow: integrate to ``t_end`` with scipy ``method`` at ``rtol``/``atol`` (or fixed-step ``rk4`` with
    ``step_size``, advisable for ReLU networks); ``n_points`` output times."""

    model_config = _STRICT
    kind: Literal["flow"]
    t_end: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    n_points: Annotated[int, Field(ge=2)] = 101
    rtol: Annotated[float, Field(gt=0)] = 1e-10
    atol: Annotated[float, Field(gt=0)] = 1e-12
    method: Literal["DOP853", "RK45", "Radau", "LSODA", "BDF", "RK23", "rk4"] = "DOP853"
    step_size: Annotated[float, Field(gt=0)] | None = None
    max_evaluations: Annotated[int, Field(ge=1)] = 2_000_000

    @model_validator(mode="after")
    def _rk4_needs_step(self) -> FlowConfig:
        if self.method == "rk4" and self.step_size is None:
            raise _rule_error("step_size", "a step > 0 for the fixed-step method 'rk4'", None)
        if self.method != "rk4" and self.step_size is not None:
            raise _rule_error("step_size", f"no step_size for the adaptive method {self.method!r} (it is used by "
                              "'rk4' only)", self.step_size)
        return self


class EulerConfig(BaseModel):
    """Full-batch Euler/GD (``kind: euler``) or minibatch SGD (``kind: sgd`` with ``batch_size``);
    ``lr`` is one step size or one per parameter (``{W1: 0.1, W2: 0.01}``)."""

    model_config = _STRICT
    kind: Literal["euler", "sgd"]
    lr: Annotated[float, Field(gt=0, allow_inf_nan=False)] | dict[str, Annotated[float, Field(gt=0)]]
    steps: Annotated[int, Field(ge=1)]
    record_every: Annotated[int, Field(ge=1)] = 1
    batch_size: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _sgd_needs_batch(self) -> EulerConfig:
        if self.kind == "sgd" and self.batch_size is None:
            raise _rule_error("batch_size", "an integer >= 1 (required for kind 'sgd')", None)
        if self.kind == "euler" and self.batch_size is not None:
            raise _rule_error("batch_size", "no batch_size for kind 'euler' (full batch; use kind 'sgd' for "
                              "minibatches)", self.batch_size)
        return self


MEASURE_NAMES = ("loss", "layer_norms", "conserved", "feedback_angle", "update_angle")


class RunConfig(BaseModel):
    """A complete run: model, data, rule, loss, dynamics, ensemble size, seed and measures to record."""

    model_config = _STRICT
    seed: Seed = 0
    ensemble: Annotated[int, Field(ge=1)] = 1
    model: ModelConfig
    data: DataConfig = DataConfig()
    rule: RuleConfig
    loss: LossConfig = LossConfig()
    dynamics: Annotated[FlowConfig | EulerConfig, Field(discriminator="kind")]
    measures: list[Literal["loss", "layer_norms", "conserved", "feedback_angle", "update_angle"]] = [
        "loss", "layer_norms", "conserved"]

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        n_layers = len(self.model.widths) - 1
        for l in self.model.init.zero_layers:
            if not 1 <= l <= n_layers:
                raise _rule_error("model.init.zero_layers", f"layer indices in 1..{n_layers}", l)
        if self.rule.name == "fa_star" and self.loss.name != "squared":
            raise _rule_error("loss.name", "'squared' for rule 'fa_star'", self.loss.name)
        if self.loss.name == "exponential" and self.model.widths[-1] != 1:
            raise _rule_error("model.widths", "a last width of 1 for the exponential loss", self.model.widths[-1])
        if self.loss.name == "cross_entropy" and self.model.widths[-1] < 2:
            raise _rule_error("model.widths", "a last width of at least 2 for the cross-entropy loss (with one "
                              "output the softmax is constant and the loss is 0)", self.model.widths[-1])
        if self.rule.name == "bp" and "feedback" in self.rule.model_fields_set:
            raise _rule_error("rule.feedback", "no feedback block for rule 'bp' (it uses the transposed forward "
                              "weights)", self.rule.feedback.model_dump())
        if self.data.kind == "file" and not self.data.path:
            raise _rule_error("data.path", "a path to an .npz file with arrays X and y for data.kind 'file'", None)
        if self.data.kind != "file" and self.data.path is not None:
            raise _rule_error("data.path", f"no path for data.kind {self.data.kind!r} (it is used by kind 'file' "
                              "only)", self.data.path)
        if self.data.kind != "teacher" and "noise" in self.data.model_fields_set:
            raise _rule_error("data.noise", f"no noise for data.kind {self.data.kind!r} (it is used by kind "
                              "'teacher' only)", self.data.noise)
        if self.data.kind == "file" and "n_samples" in self.data.model_fields_set:
            raise _rule_error("data.n_samples", "no n_samples for data.kind 'file' (the file's rows are used)",
                              self.data.n_samples)
        return self


def parse_config(data: dict[str, Any] | RunConfig) -> RunConfig:
    """Validate a config dict; raise :class:`FalabInputError` with a one-line message naming the first bad field."""
    if isinstance(data, RunConfig):
        return data
    if data is None or data == {}:
        raise invalid("config", "empty", "a mapping with fields model, rule, dynamics, ...", quote=False)
    if not isinstance(data, dict):
        raise invalid("config", type(data).__name__, "a mapping with fields model, rule, dynamics, ...")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        # The first error; the other members of a failed union add their expectation.
        # ErrorDetails is a TypedDict (a plain dict at runtime), the dicts format_validation_errors reads
        errors = cast("list[dict[str, Any]]", exc.errors())
        raise FalabInputError(format_validation_errors(errors, union_kinds=("flow", "euler", "sgd"),
                                                       model=RunConfig)) from None
    except RecursionError:  # a self-referencing YAML alias
        raise invalid("config", "a self-referencing structure", "a tree of fields", quote=False) from None


def load_config(path: str | Path) -> RunConfig:
    """Read (at most 1 MB of UTF-8), parse (hardened YAML: no duplicate keys, bounded aliases and depth) and validate
    a YAML run config."""
    return parse_config(load_yaml_file(path))


# Bytes per row of the in-memory metrics table (a tuple of six Python objects) and of its CSV line.
_ROW_BYTES = 220


def estimate_memory(cfg: RunConfig) -> tuple[float, str]:
    """Estimated peak bytes of a run and what dominates: parameters x ensemble (with the solver's or the scheme's
    working copies), the forward trace, the data, the recorded metrics (kept in memory, then written as CSV rows) and
    the output-time grids."""
    w = cfg.model.widths
    k = cfg.ensemble
    n_params = sum(a * b + (b if cfg.model.bias else 0) for a, b in zip(w[:-1], w[1:]))
    n_layers = len(w) - 1
    d = cfg.data
    n = {"teacher": d.n_samples, "digits": min(d.n_samples, 1797), "mnist1d": min(d.n_samples, 4000)}.get(d.kind, 0)
    dyn = cfg.dynamics
    if dyn.kind == "flow":
        records = dyn.n_points
        copies = 16  # DOP853's stages and dense output on the packed state, feedback, update
        grid = 0.0 if dyn.step_size is None else dyn.t_end / (dyn.n_points - 1) / dyn.step_size * 8 * 4
    else:
        records = dyn.steps // dyn.record_every + 2
        copies = 5  # parameters, update, feedback, snapshot clone, batch
        grid = 0.0
    values_per_record = k * (1 + 2 * n_layers + n_layers**2)  # loss, norms, angles, conserved pairs (upper bound)
    parts = {
        "parameters x ensemble": 8.0 * n_params * k * copies,
        "forward trace": 8.0 * k * n * sum(w) * 3,
        "data": 8.0 * n * (w[0] + w[-1]),
        "recorded metrics": float(records) * values_per_record * (_ROW_BYTES + 8),
        "time grid": 8.0 * records * 4 + grid,
    }
    top = max(parts, key=lambda key: parts[key])
    detail = (f"{top} dominate: {n_params:,} parameters x ensemble {k:,}, {records:,} records")
    return sum(parts.values()), detail


def check_run_size(cfg: RunConfig, *, allow_large: bool = False) -> None:
    """Refuse (exit 2) a run whose estimated memory exceeds the available memory, before anything is allocated."""
    estimate, detail = estimate_memory(cfg)
    check_memory("run size", estimate, detail, allow_large=allow_large)
