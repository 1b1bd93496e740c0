"""Validated run configurations (YAML or Python), with one-line error messages ``Invalid <field>: <value> (expected ...)``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._checks import FalabInputError, Seed, check_memory, format_validation_errors, invalid
from .._checks import config_rule_error as _rule_error
from .._io import load_yaml_file
from ..functional import ACTIVATIONS
from ..registry import FEEDBACK, MEASURES, MODELS, PREDICTORS, RULES

# The names a config accepts are the registry's keys (one table); type checkers see plain strings.
if TYPE_CHECKING:
    RuleName: TypeAlias = str
    FeedbackName: TypeAlias = str
    ModelKind: TypeAlias = str
    MeasureName: TypeAlias = str
    PredictorName: TypeAlias = str
else:
    RuleName = Literal[tuple(RULES)]
    FeedbackName = Literal[tuple(FEEDBACK)]
    ModelKind = Literal[tuple(MODELS)]
    MeasureName = Literal[tuple(n for n in MEASURES if n != "distance_to_predictor")]
    PredictorName = Literal[tuple(PREDICTORS)]

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


_Pos = Annotated[int, Field(ge=1)]

# Which fields each model kind takes (others are a config mistake) and which it requires.
_MODEL_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "mlp": ({"widths", "activation", "bias", "init"}, {"widths"}),
    "deep_linear": ({"widths", "bias", "init"}, {"widths"}),
    "fully_connected": ({"widths", "alpha", "directions"}, {"widths"}),
    "diagonal": ({"d", "depth", "alpha", "directions"}, {"d"}),
    "circular_conv": ({"d", "filters", "alpha", "directions"}, {"d"}),
    "deep_matrix_sensing": ({"d", "depth", "alpha"}, {"d"}),
    "matrix_factorization": ({"n", "r", "m", "init"}, {"n", "r", "m"}),
}


class ModelConfig(BaseModel):
    """A model family (``kind``, default ``mlp``; names from :data:`falab.registry.MODELS`).

    * ``mlp`` / ``deep_linear``: ``widths (n_0, .., n_L)``, ``activation`` (mlp), ``bias``, ``init``.
    * ``fully_connected`` (``widths (d_1 = d, .., d_L)``), ``diagonal`` (``d``, ``depth``), ``circular_conv``
      (``d``, ``filters (k_1, .., k_{L-1})``, default one full-length filter): P002's linear tensor networks,
      initialised ``v_l(0) = alpha * vbar_l`` with unit directions ``vbar_l`` (``directions``: ``random`` — Gaussian,
      normalised, from the seed —, ``ones`` — normalised all-ones —, or the vectors themselves).
    * ``deep_matrix_sensing``: ``d``, ``depth``, ``W_l(0) = alpha I`` (l < L), ``W_L(0) = 0`` (P002 Cor. 5).
    * ``matrix_factorization``: ``n, r, m`` (``Y ~ Z W`` on ``X = I_n``, P004), ``init`` of ``W1 = Z^T, W2 = W^T``.
    """

    model_config = _STRICT
    kind: ModelKind = "mlp"
    widths: Annotated[list[_Pos], Field(min_length=2)] | None = None
    activation: str | list[str] = "relu"
    bias: bool = False
    init: InitConfig = InitConfig()
    d: _Pos | None = None
    depth: Annotated[int, Field(ge=2)] = 2
    filters: list[_Pos] | None = None
    alpha: Annotated[float, Field(gt=0)] = 1.0
    directions: Literal["random", "ones"] | list[list[float]] = "random"
    n: _Pos | None = None
    r: _Pos | None = None
    m: _Pos | None = None

    @model_validator(mode="after")
    def _fields_of_kind(self) -> ModelConfig:
        allowed, required = _MODEL_FIELDS[self.kind]
        for f in sorted(self.model_fields_set - allowed - {"kind"}):
            if getattr(self, f) == type(self).model_fields[f].default:
                continue  # a dumped config (manifest.json) repeats the defaults: they change nothing
            raise _rule_error(f, f"no {f} for model kind {self.kind!r} (it takes "
                              f"{', '.join(sorted(allowed))})", getattr(self, f))
        for f in sorted(required):
            if getattr(self, f) is None:
                raise _rule_error(f, f"a value (required for model kind {self.kind!r})", None)
        if self.kind == "circular_conv" and self.filters and self.d is not None and max(self.filters) > self.d:
            raise _rule_error("filters", f"filter sizes k_l <= d = {self.d}", self.filters)
        return self

    @property
    def in_out(self) -> tuple[int, int]:
        """The data's input and output widths for this model."""
        if self.kind in ("mlp", "deep_linear"):
            assert self.widths is not None
            return self.widths[0], self.widths[-1]
        if self.kind == "fully_connected":
            assert self.widths is not None
            return self.widths[0], 1
        if self.kind in ("diagonal", "circular_conv"):
            assert self.d is not None
            return self.d, 1
        if self.kind == "deep_matrix_sensing":
            assert self.d is not None
            return self.d * self.d, 1
        assert self.n is not None and self.m is not None
        return self.n, self.m

    @property
    def n_layers(self) -> int:
        if self.kind in ("mlp", "deep_linear", "fully_connected"):
            assert self.widths is not None
            return len(self.widths) - (1 if self.kind != "fully_connected" else 0)
        if self.kind == "circular_conv":
            return len(self.filters or [0]) + 1
        if self.kind == "matrix_factorization":
            return 2
        return self.depth

    @property
    def tensor_net(self) -> bool:
        return self.kind in ("fully_connected", "diagonal", "circular_conv")

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, v: str | list[str]) -> str | list[str]:
        for a in [v] if isinstance(v, str) else v:
            base = a.split(":", 1)[0]
            if base not in ACTIVATIONS:
                raise _rule_error("", f"one of {', '.join(ACTIVATIONS)} (leaky_relu:<slope> for a custom slope)", a)
        return v


class DataConfig(BaseModel):
    """Data: ``teacher`` (Gaussian inputs, linear teacher y = T x + noise), ``sparse_teacher`` (the same with
    ``sparsity`` nonzero teacher entries per output), ``low_rank`` (a rank-``rank`` target: ``Y = U V^T`` on
    ``X = I_n`` for matrix factorisation, ``y_i = <A_i, M*>`` with Gaussian ``A_i`` for deep matrix sensing),
    ``digits`` (scikit-learn, 64 inputs, 10 classes one-hot), ``mnist1d`` (generated locally, 40 inputs, 10 classes)
    or ``file`` (an .npz with X, y)."""

    model_config = _STRICT
    kind: Literal["teacher", "sparse_teacher", "low_rank", "digits", "mnist1d", "file"] = "teacher"
    n_samples: Annotated[int, Field(ge=1)] = 10
    noise: Annotated[float, Field(ge=0)] = 0.0
    sparsity: Annotated[int, Field(ge=1)] = 1
    rank: Annotated[int, Field(ge=1)] = 1
    path: str | None = None

    @model_validator(mode="after")
    def _options_of_kind(self) -> DataConfig:
        for f, owner in (("sparsity", "sparse_teacher"), ("rank", "low_rank")):
            if f in self.model_fields_set and self.kind != owner and getattr(self, f) != 1:
                raise _rule_error(f, f"no {f} for data.kind {self.kind!r} (it is used by kind {owner!r} "
                                  "only)", getattr(self, f))
        return self


class FeedbackConfig(BaseModel):
    """A feedback kind of :data:`falab.registry.FEEDBACK` with its options (``std`` for gaussian, ``scale`` for
    uniform and usf). ``structured: true`` (tensor networks, FA) draws ``b_l`` shaped like ``v_l`` and uses
    ``B_l = A_l(b_l)``, feedback with the layer's structure (a diagonal, a circulant); by default ``B_l`` is a dense
    matrix of the dense weight's shape."""

    model_config = _STRICT
    kind: FeedbackName = "scaled_like_weight"
    std: Annotated[float, Field(gt=0)] = 1.0
    scale: Annotated[float, Field(gt=0)] = 1.0
    structured: bool = False

    @model_validator(mode="after")
    def _no_ignored_options(self) -> FeedbackConfig:
        for field, owners in (("std", ("gaussian",)), ("scale", ("uniform", "usf"))):
            if field in self.model_fields_set and self.kind not in owners:
                raise _rule_error(field, f"no {field} for kind {self.kind!r} (it is used by kind "
                                  f"{' / '.join(repr(o) for o in owners)} only)", getattr(self, field))
        if self.structured and self.kind not in ("gaussian", "uniform", "scaled_like_weight"):
            raise _rule_error("structured", "a random fixed kind (gaussian, uniform, scaled_like_weight) for "
                              "structured feedback", self.kind)
        return self

    def options(self) -> dict[str, Any]:
        """The kind's options as :func:`falab.registry.make_feedback` takes them."""
        return {k: getattr(self, k) for k in FEEDBACK[self.kind].options if k in ("std", "scale")
                and (k in self.model_fields_set or self.kind != "usf")}


class RuleConfig(BaseModel):
    """A rule of :data:`falab.registry.RULES`; without a feedback block the registry's default kind is used
    (``scaled_like_weight`` for fa/dfa/fa_star, the kind of the same name for usf/frsf/brsf)."""

    model_config = _STRICT
    name: RuleName
    feedback: FeedbackConfig = FeedbackConfig()


class LossConfig(BaseModel):
    model_config = _STRICT
    name: Literal["squared", "exponential", "cross_entropy"] = "squared"
    reduction: Literal["mean", "sum"] = "mean"


class FlowConfig(BaseModel):
    """Exact flow: integrate to ``t_end`` with ``method`` at ``rtol``/``atol``; ``n_points`` output times.

    ``method`` is a scipy ``solve_ivp`` method, or one of falab's routes of :func:`falab.dynamics.simulate_flow`:
    ``events`` (piecewise-smooth ReLU flows, activation switches located and the solver restarted there), ``auto``
    (events for piecewise-linear activations, else a stiffness check choosing LSODA with the Jacobian or DOP853),
    ``dop853-members`` / ``dopri5-members`` (ensembles with per-member error control), or fixed-step ``rk4`` with
    ``step_size``."""

    model_config = _STRICT
    kind: Literal["flow"]
    t_end: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    n_points: Annotated[int, Field(ge=2)] = 101
    rtol: Annotated[float, Field(gt=0)] = 1e-10
    atol: Annotated[float, Field(gt=0)] = 1e-12
    method: Literal["DOP853", "RK45", "Radau", "LSODA", "BDF", "RK23", "rk4", "events", "auto", "dop853-members",
                    "dopri5-members"] = "DOP853"
    step_size: Annotated[float, Field(gt=0)] | None = None
    max_evaluations: Annotated[int, Field(ge=1)] = 2_000_000
    stop: StopConfig | None = None

    @model_validator(mode="after")
    def _rk4_needs_step(self) -> FlowConfig:
        if self.method == "rk4" and self.step_size is None:
            raise _rule_error("step_size", "a step > 0 for the fixed-step method 'rk4'", None)
        if self.method != "rk4" and self.step_size is not None:
            raise _rule_error("step_size", f"no step_size for the adaptive method {self.method!r} (it is used by "
                              "'rk4' only)", self.step_size)
        return self


class StopConfig(BaseModel):
    """Stop conditions (:class:`falab.dynamics.Stop`): the run ends when the loss reaches ``loss`` or the update norm
    ``update_norm`` (per member; the time and reason go to ``manifest.json``)."""

    model_config = _STRICT
    loss: Annotated[float, Field(ge=0)] | None = None
    update_norm: Annotated[float, Field(ge=0)] | None = None


class EulerConfig(BaseModel):
    """Full-batch Euler/GD (``kind: euler``), minibatch SGD (``kind: sgd`` with ``batch_size``) or P003's modified
    trapezoidal scheme (``kind: modified_trapezoid``, MLPs); ``lr`` is one step size or one per parameter
    (``{W1: 0.1, W2: 0.01}``)."""

    model_config = _STRICT
    kind: Literal["euler", "sgd", "modified_trapezoid"]
    lr: Annotated[float, Field(gt=0, allow_inf_nan=False)] | dict[str, Annotated[float, Field(gt=0)]]
    steps: Annotated[int, Field(ge=1)]
    record_every: Annotated[int, Field(ge=1)] = 1
    batch_size: Annotated[int, Field(ge=1)] | None = None
    stop: StopConfig | None = None

    @model_validator(mode="after")
    def _sgd_needs_batch(self) -> EulerConfig:
        if self.kind == "sgd" and self.batch_size is None:
            raise _rule_error("batch_size", "an integer >= 1 (required for kind 'sgd')", None)
        if self.kind != "sgd" and self.batch_size is not None:
            raise _rule_error("batch_size", f"no batch_size for kind {self.kind!r} (full batch; use kind 'sgd' for "
                              "minibatches)", self.batch_size)
        return self


MEASURE_NAMES: tuple[str, ...] = tuple(MEASURES)


class PredictorMeasure(BaseModel):
    """``{name: distance_to_predictor, predictor: pinv | min_l2 | min_l1 | theorem6}``: the relative distance of the
    end-to-end map ``W_L .. W_1`` (``beta`` for tensor networks) to a named predictor computed from the data
    (:data:`falab.registry.PREDICTORS`, closed forms of :mod:`falab.theory`). Recorded as
    ``distance_to_<predictor>``."""

    model_config = _STRICT
    name: Literal["distance_to_predictor"]
    predictor: PredictorName


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
    measures: list[MeasureName | PredictorMeasure] = ["loss", "layer_norms", "conserved"]

    @field_validator("measures", mode="before")
    @classmethod
    def _measure_names(cls, v: Any) -> Any:
        # a name outside the registry gets the list of names (not the predictor mapping's complaint)
        if isinstance(v, list):
            names = [n for n in MEASURES if n != "distance_to_predictor"]
            for i, item in enumerate(v):
                if not isinstance(item, dict) and item not in names:
                    raise _rule_error(str(i), ", ".join(repr(n) for n in names) + " or {name: distance_to_predictor, "
                                      "predictor: ...}", item)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        n_layers = self.model.n_layers
        n_out = self.model.in_out[1]
        for l in self.model.init.zero_layers:
            if not 1 <= l <= n_layers:
                raise _rule_error("model.init.zero_layers", f"layer indices in 1..{n_layers}", l)
        if self.rule.name == "fa_star" and self.loss.name != "squared":
            raise _rule_error("loss.name", "'squared' for rule 'fa_star'", self.loss.name)
        if self.loss.name == "exponential" and n_out != 1:
            raise _rule_error("model.widths", "a last width of 1 for the exponential loss", n_out)
        if self.loss.name == "cross_entropy" and n_out < 2:
            raise _rule_error("model.widths", "a last width of at least 2 for the cross-entropy loss (with one "
                              "output the softmax is constant and the loss is 0)", n_out)
        if self.rule.feedback.structured and not (self.model.tensor_net and self.rule.name in ("fa", "fa_star")):
            raise _rule_error("rule.feedback.structured", "a tensor network (fully_connected, diagonal, "
                              "circular_conv) trained by fa or fa_star", True)
        if self.dynamics.kind == "modified_trapezoid" and (self.model.kind not in ("mlp", "deep_linear")
                                                          or self.rule.name == "fa_star"):
            raise _rule_error("dynamics.kind", "an mlp / deep_linear model and a rule other than fa_star for "
                              "'modified_trapezoid'", self.dynamics.kind)
        if self.data.kind == "low_rank" and self.model.kind not in ("matrix_factorization", "deep_matrix_sensing"):
            raise _rule_error("data.kind", "a model kind matrix_factorization or deep_matrix_sensing for data "
                              "'low_rank'", self.data.kind)
        if self.model.kind == "matrix_factorization" and self.data.kind not in ("low_rank", "file"):
            raise _rule_error("data.kind", "'low_rank' or 'file' for matrix_factorization (inputs X = I_n)",
                              self.data.kind)
        if self.rule.name == "bp" and "feedback" in self.rule.model_fields_set:
            raise _rule_error("rule.feedback", "no feedback block for rule 'bp' (it uses the transposed forward "
                              "weights)", self.rule.feedback.model_dump())
        if self.data.kind == "file" and not self.data.path:
            raise _rule_error("data.path", "a path to an .npz file with arrays X and y for data.kind 'file'", None)
        if self.data.kind != "file" and self.data.path is not None:
            raise _rule_error("data.path", f"no path for data.kind {self.data.kind!r} (it is used by kind 'file' "
                              "only)", self.data.path)
        if self.data.kind not in ("teacher", "sparse_teacher", "low_rank") and "noise" in self.data.model_fields_set:
            raise _rule_error("data.noise", f"no noise for data.kind {self.data.kind!r} (it is used by the "
                              "teacher kinds only)", self.data.noise)
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
        raise FalabInputError(format_validation_errors(errors, union_kinds=("flow", "euler", "sgd", "modified_trapezoid"),
                                                       model=RunConfig)) from None
    except RecursionError:  # a self-referencing YAML alias
        raise invalid("config", "a self-referencing structure", "a tree of fields", quote=False) from None


def load_config(path: str | Path) -> RunConfig:
    """Read (at most 1 MB of UTF-8), parse (hardened YAML: no duplicate keys, bounded aliases and depth) and validate
    a YAML run config."""
    return parse_config(load_yaml_file(path))


# Bytes per row of the in-memory metrics table (a tuple of six Python objects) and of its CSV line.
_ROW_BYTES = 220


def dense_widths(m: ModelConfig) -> list[int]:
    """The widths ``(n_0, .., n_L)`` of the dense layers the model presents to the rules."""
    if m.kind in ("mlp", "deep_linear"):
        assert m.widths is not None
        return list(m.widths)
    if m.kind == "fully_connected":
        assert m.widths is not None
        return [*m.widths, 1]
    if m.kind == "matrix_factorization":
        assert m.n is not None and m.r is not None and m.m is not None
        return [m.n, m.r, m.m]
    assert m.d is not None
    width = m.d * m.d if m.kind == "deep_matrix_sensing" else m.d
    return [width] * m.n_layers + [1]


def estimate_memory(cfg: RunConfig) -> tuple[float, str]:
    """Estimated peak bytes of a run and what dominates: parameters x ensemble (with the solver's or the scheme's
    working copies), the forward trace, the data, the recorded metrics (kept in memory, then written as CSV rows) and
    the output-time grids."""
    w = dense_widths(cfg.model)
    k = cfg.ensemble
    n_params = sum(a * b + (b if cfg.model.bias else 0) for a, b in zip(w[:-1], w[1:]))
    n_layers = len(w) - 1
    d = cfg.data
    n = {"teacher": d.n_samples, "sparse_teacher": d.n_samples, "low_rank": d.n_samples, "digits": min(d.n_samples, 1797),
         "mnist1d": min(d.n_samples, 4000)}.get(d.kind, 0)
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
