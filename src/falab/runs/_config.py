"""Validated run configurations (YAML or Python), with one-line error messages ``Invalid <field>: <value> (expected ...)``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._checks import FalabInputError, format_validation_error, invalid
from .._checks import config_rule_error as _rule_error
from ..functional import ACTIVATIONS

_STRICT = ConfigDict(extra="forbid", frozen=True)


class InitConfig(BaseModel):
    """Forward-weight initialisation: scheme gaussian (with std, one or per layer) | xavier | kaiming | zeros;
    ``zero_layers`` lists 1-based layers set to 0 afterwards (e.g. ``[1]`` for W_1(0) = 0, P000 Thm 5.2)."""

    model_config = _STRICT
    scheme: Literal["gaussian", "xavier", "kaiming", "zeros"] = "xavier"
    std: float | list[float] | None = None
    zero_layers: list[int] = []


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
        return self


MEASURE_NAMES = ("loss", "layer_norms", "conserved", "feedback_angle", "update_angle")


class RunConfig(BaseModel):
    """A complete run: model, data, rule, loss, dynamics, ensemble size, seed and measures to record."""

    model_config = _STRICT
    seed: Annotated[int, Field(ge=0)] = 0
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
        if self.data.kind == "file" and not self.data.path:
            raise _rule_error("data.path", "a path to an .npz file with arrays X and y for data.kind 'file'", None)
        return self


def parse_config(data: dict[str, Any] | RunConfig) -> RunConfig:
    """Validate a config dict; raise :class:`FalabInputError` with a one-line message naming the first bad field."""
    if isinstance(data, RunConfig):
        return data
    if not isinstance(data, dict):
        raise invalid("config", type(data).__name__, "a mapping with fields model, rule, dynamics, ...")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # Report the first error of the most specific kind (a union produces one per branch).
        raise FalabInputError(format_validation_error(errors[0], union_kinds=("flow", "euler", "sgd"))) from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run config."""
    p = Path(path)
    if not p.is_file():
        raise invalid("config path", str(p), "an existing YAML file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise invalid("config YAML", p.name, f"valid YAML ({first})") from None
    return parse_config(data)
