"""One registry of names: rules, feedback kinds, models, losses, dynamics and measures, with one set of defaults.

Every place that turns a name into an object — ``falab run`` configs (their ``Literal`` choices are these keys),
:func:`falab.nn.convert` and ``falab train``, and the experiments' small tables — goes through this module, so a name
means the same thing everywhere and a new entry is enrolled in the conformance tests (``tests/test_registry.py``
asserts that the tested set equals the registry) by adding it here. ``docs/registry.md`` is generated from it
(:func:`markdown_table`; a test keeps the file current).

The one default feedback kind is ``scaled_like_weight``: a Gaussian matrix rescaled so that ``||B_l||_F = ||W_l(0)||_F``
(per ensemble member). It is the only random kind whose scale follows the network's (widths, initialisation), so the
backward signal has the forward pass's scale at any width — ``Gaussian(1.0)`` entries are ~sqrt(fan_in) times larger
than Xavier/Kaiming weights in a wide layer — and it is P000/P003's reading of "B drawn like W". Code that needs
another kind names it (the papers' experiments pass their ``Gaussian(std)`` explicitly).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import theory
from ._checks import check_choice, invalid
from .dynamics import Euler, ModifiedTrapezoid, Snapshot
from .functional import get_activation, get_loss
from .instruments import MEASURES as _INSTRUMENT_MEASURES
from .instruments import end_to_end, norm_ratio, relative_distance
from .models import (
    MLP,
    AbstractLayeredModel,
    CircularConvNet,
    DeepMatrixSensing,
    DiagonalNet,
    FullyConnectedTensorNet,
    deep_linear,
    matrix_factorization,
)
from .rules import (
    AbstractFeedback,
    AbstractLearningRule,
    Backprop,
    BatchRandomMagnitudeSignFeedback,
    CopyOfWeight,
    DirectFeedbackAlignment,
    FAStar,
    FeedbackAlignment,
    FixedRandomMagnitudeSignFeedback,
    Gaussian,
    ScaledLikeWeight,
    Uniform,
    UniformSignFeedback,
)


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()
"""The default of an option that has none (the user must set it)."""


@dataclass(frozen=True)
class Entry:
    """A registered name: ``factory(**options)`` builds the object; ``options`` are its settable options with their
    defaults (the one set of defaults); ``summary`` is one line for the table, ``reference`` the paper/section."""

    name: str
    factory: Callable[..., Any]
    summary: str
    options: Mapping[str, Any] = field(default_factory=dict)
    reference: str = ""
    tags: tuple[str, ...] = ()

    def make(self, **options: Any) -> Any:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise invalid(f"{self.name} option", unknown[0],
                          "one of " + ", ".join(self.options) if self.options else f"no options for {self.name!r}")
        merged = {**self.options, **options}
        for k, v in merged.items():
            if v is REQUIRED:
                raise invalid(f"{self.name}.{k}", None, f"a value (required by {self.name!r})")
        return self.factory(**merged)


DEFAULT_FEEDBACK = "scaled_like_weight"
"""The feedback kind of ``fa``, ``dfa`` and ``fa_star`` when none is named (see the module docstring for why)."""

FEEDBACK: dict[str, Entry] = {e.name: e for e in (
    Entry("scaled_like_weight", ScaledLikeWeight, "Gaussian rescaled to ||B||_F = ||W(0)||_F (the default)",
          reference="P000 §4, P003 eq. 2 ('B like W')"),
    Entry("gaussian", Gaussian, "B_ij ~ N(0, std^2) iid", {"std": 1.0}, "Lillicrap et al. 2016"),
    Entry("uniform", Uniform, "B_ij ~ U(-scale, scale) iid", {"scale": 1.0}, "Lillicrap et al. 2016"),
    Entry("copy_of_weight", CopyOfWeight, "B = W(0): starts aligned", reference="P000 Cor. 5.1"),
    Entry("usf", UniformSignFeedback, "B = s sign(W), s = RMS of W(0) unless given", {"scale": None},
          "Liao et al. 2016 §3", ("sign",)),
    Entry("frsf", FixedRandomMagnitudeSignFeedback, "B = |R| o sign(W), R fixed, ||R||_F = ||W(0)||_F",
          reference="Liao et al. 2016 §3", tags=("sign",)),
    Entry("brsf", BatchRandomMagnitudeSignFeedback, "B_t = |R_t| o sign(W), R_t redrawn every step (state-held seed)",
          reference="Liao et al. 2016 §3", tags=("sign", "per_step")),
)}


def make_feedback(name: str, **options: Any) -> AbstractFeedback:
    """The feedback kind ``name`` with ``options`` over its defaults (``make_feedback('gaussian', std=0.5)``)."""
    return FEEDBACK[check_choice("feedback.kind", name, FEEDBACK)].make(**options)


def _feedback_of(feedback: AbstractFeedback | str | None, default: str) -> AbstractFeedback:
    if feedback is None:
        return make_feedback(default)
    if isinstance(feedback, str):
        return make_feedback(feedback)
    return feedback


def _bp(feedback: AbstractFeedback | str | None = None) -> AbstractLearningRule:
    if feedback is not None:
        raise invalid("rule.feedback", feedback, "no feedback for rule 'bp' (it uses the transposed forward weights)")
    return Backprop()


def _chain(cls: type[FeedbackAlignment] | type[DirectFeedbackAlignment] | type[FAStar],
           default: str) -> Callable[..., AbstractLearningRule]:
    def make(feedback: AbstractFeedback | str | None = None) -> AbstractLearningRule:
        return cls(feedback=_feedback_of(feedback, default))
    return make


RULES: dict[str, Entry] = {e.name: e for e in (
    Entry("bp", _bp, "backpropagation / gradient descent", {"feedback": None}, "claims.md §1.2", ("nn",)),
    Entry("fa", _chain(FeedbackAlignment, DEFAULT_FEEDBACK), "feedback alignment: fixed B_l replace W_l",
          {"feedback": None}, "Lillicrap et al. 2016; claims.md §1.3", ("nn",)),
    Entry("dfa", _chain(DirectFeedbackAlignment, DEFAULT_FEEDBACK), "direct FA: the output error through fixed D_l",
          {"feedback": None}, "Nøkland 2016; claims.md §1.3", ("nn",)),
    Entry("fa_star", _chain(FAStar, DEFAULT_FEEDBACK), "FA* : FA below, last layer at its least-squares optimum",
          {"feedback": None}, "P004 eq. 4"),
    Entry("usf", _chain(FeedbackAlignment, "usf"), "FA with uniform sign-concordant feedback (feedback kind usf)",
          {"feedback": None}, "Liao et al. 2016 §3", ("nn", "sign")),
    Entry("frsf", _chain(FeedbackAlignment, "frsf"), "FA with fixed random-magnitude sign feedback (kind frsf)",
          {"feedback": None}, "Liao et al. 2016 §3", ("nn", "sign")),
    Entry("brsf", _chain(FeedbackAlignment, "brsf"), "FA with batchwise random-magnitude sign feedback (kind brsf)",
          {"feedback": None}, "Liao et al. 2016 §3", ("nn", "sign")),
)}
"""Rule names. ``usf``/``frsf``/``brsf`` are FA with that feedback kind (their default); ``fa``/``dfa``/``fa_star``
default to :data:`DEFAULT_FEEDBACK`. Tag ``nn``: available in :func:`falab.nn.convert` / ``falab train``."""

NN_RULES: tuple[str, ...] = tuple(n for n, e in RULES.items() if "nn" in e.tags)


def make_rule(name: str, feedback: AbstractFeedback | str | None = None) -> AbstractLearningRule:
    """The rule ``name`` (``feedback``: a kind object or name; ``None`` = the registry default for that rule)."""
    return RULES[check_choice("rule", name, RULES)].make(feedback=feedback)


def _mlp(widths: tuple[int, ...], activation: str | list[str] = "relu", bias: bool = False) -> MLP:
    acts = tuple(get_activation(a) for a in activation) if isinstance(activation, list) else get_activation(activation)
    return MLP(tuple(widths), acts, bias=bias)


MODELS: dict[str, Entry] = {e.name: e for e in (
    Entry("mlp", _mlp, "multilayer perceptron, widths (n_0, .., n_L)", {"widths": REQUIRED, "activation": "relu",
                                                                       "bias": False}, "claims.md §1.1"),
    Entry("deep_linear", lambda widths, bias=False: deep_linear(tuple(widths), bias=bias),
          "deep linear network (MLP with identity activations)", {"widths": REQUIRED, "bias": False}, "P000 §5, P003"),
    Entry("fully_connected", lambda widths: FullyConnectedTensorNet(tuple(widths)),
          "linear tensor network, fully connected, widths (d_1 = d, .., d_L)", {"widths": REQUIRED}, "P002 eq. 5"),
    Entry("diagonal", lambda d, depth=2: DiagonalNet(d, depth), "linear diagonal network beta = w_1 o .. o w_L",
          {"d": REQUIRED, "depth": 2}, "P002 eq. 3"),
    Entry("circular_conv", lambda d, filters=None: CircularConvNet(d, tuple(filters) if filters else (0,)),
          "linear circular-convolution network, filters (k_1, .., k_{L-1}) (default full length, L = 2)",
          {"d": REQUIRED, "filters": None}, "P002 eq. 4"),
    Entry("deep_matrix_sensing", lambda d, depth=2: DeepMatrixSensing(d, depth),
          "deep matrix sensing f(A) = <A, W_1 .. W_L>", {"d": REQUIRED, "depth": 2}, "P002 eq. 13"),
    Entry("matrix_factorization", lambda n, r, m: matrix_factorization(n, r, m),
          "Y ~ Z W as the two-layer linear net (n, r, m) on X = I_n", {"n": REQUIRED, "r": REQUIRED, "m": REQUIRED}, "P004 eq. 1"),
)}


def make_model(name: str, **options: Any) -> AbstractLayeredModel:
    return MODELS[check_choice("model.kind", name, MODELS)].make(**options)


LOSSES: dict[str, Entry] = {e.name: e for e in (
    Entry("squared", lambda reduction="mean": get_loss("squared", reduction), "1/2 ||f - y||^2 (mean or sum)",
          {"reduction": "mean"}),
    Entry("exponential", lambda reduction="mean": get_loss("exponential", reduction), "exp(-y f), labels +-1",
          {"reduction": "mean"}, "P002 §2"),
    Entry("cross_entropy", lambda reduction="mean": get_loss("cross_entropy", reduction), "softmax cross-entropy",
          {"reduction": "mean"}),
)}

DYNAMICS: dict[str, Entry] = {e.name: e for e in (
    Entry("flow", lambda: None, "exact flow d theta/dt = -update(theta) (scipy solve_ivp, DOP853; or rk4)",
          reference="claims.md §1.4"),
    Entry("euler", lambda lr: Euler(lr=lr), "full-batch Euler / GD, theta <- theta - eta update", {"lr": REQUIRED}),
    Entry("sgd", lambda lr: Euler(lr=lr), "minibatch SGD (Euler on a random batch each step)", {"lr": REQUIRED}),
    Entry("modified_trapezoid", lambda lr: ModifiedTrapezoid(lr=lr),
          "P003's modified trapezoidal scheme (layers in order, midpoint inputs)", {"lr": REQUIRED}, "P003 eqs 24-25, 28"),
)}
"""Dynamics names; the discrete ones' factories build the scheme (``flow`` is :func:`~falab.dynamics.simulate_flow`)."""


# ------------------------------------------------------------------------------------------------------- measures
def _feedback_norm_ratio(snap: Snapshot) -> Tensor:
    """Per layer l = 2..L: ``||B_l||_F / ||W_l||_F`` of the feedback used (NaN where the rule uses none)."""
    p = snap.problem
    ws = p.model.layer_weights(snap.params)
    fb = p.rule.feedback_used(p.model, snap.params, p.state)
    return torch.stack([norm_ratio(fb[l], ws[l - 1]) if l in fb else torch.full(ws[0].shape[:-2], float("nan"),
                                                                                  dtype=ws[0].dtype)
                        for l in range(2, len(ws) + 1)], dim=-1)


def _end_to_end_matrix(snap: Snapshot) -> Tensor:
    return end_to_end(snap.problem.model.layer_weights(snap.params))


def _end_to_end(snap: Snapshot) -> Tensor:
    """The end-to-end linear map ``W_L .. W_1`` flattened, ``(..., n_L n_0)`` (linear models)."""
    m = _end_to_end_matrix(snap)
    return m.reshape(*m.shape[:-2], -1)


def distance_to(reference: Tensor | np.ndarray) -> Callable[[Snapshot], Tensor]:
    """A measure: ``||W_L .. W_1 - R||_F / ||R||_F`` for a fixed reference map ``R`` ``(n_L, n_0)`` (a predictor).

    ``R`` is a map, not a name: a named predictor depends on the data, so compute it first with
    ``predict(name, x, y)`` (run configs do this from ``measures: [{name: distance_to_predictor, predictor: pinv}]``).
    """
    if isinstance(reference, str):
        raise invalid("reference", reference, "the predictor's end-to-end map as an array (n_L, n_0); for a named "
                      f"predictor ({', '.join(PREDICTORS)}) pass predict(name, x, y)")
    ref = torch.as_tensor(reference, dtype=torch.float64)

    def measure(snap: Snapshot) -> Tensor:
        return relative_distance(_end_to_end_matrix(snap), ref)

    return measure


def _first_line(fn: Callable[..., Any]) -> str:
    return (fn.__doc__ or fn.__name__).strip().splitlines()[0].rstrip(".")


_ALIGNMENT = ("feedback_angle", "update_angle")
MEASURES: dict[str, Entry] = {
    # every named measure of falab.instruments (loss, layer_norms, conserved, feedback_angle, update_angle, ...)
    **{name: Entry(name, (lambda fn=fn: fn), _first_line(fn), tags=("alignment",) if name in _ALIGNMENT else ())
       for name, fn in _INSTRUMENT_MEASURES.items()},
    **{e.name: e for e in (
        Entry("feedback_norm_ratio", lambda: _feedback_norm_ratio, "||B_l||_F / ||W_l||_F of the feedback used",
              tags=("alignment",)),
        Entry("end_to_end", lambda: _end_to_end, "the end-to-end linear map W_L .. W_1 (flattened; linear models)"),
        Entry("distance_to_predictor", distance_to,
              "||W_L .. W_1 - R||_F / ||R||_F to a named predictor R (pinv, min_l2, min_l1, theorem6)",
              {"reference": REQUIRED}, "P000 Thm 5.2, P002 Thm 6/7, Cor. 5"),
    )},
}
"""Measure names. ``distance_to_predictor`` takes the predictor's map (run configs compute it from
:data:`PREDICTORS` and the data)."""


def make_measure(name: str, **options: Any) -> Callable[[Snapshot], Tensor]:
    return MEASURES[check_choice("measures entry", name, MEASURES)].make(**options)


# ----------------------------------------------------------------------------------------------------- predictors
def _theorem6(x: np.ndarray, y: np.ndarray, *, model: AbstractLayeredModel, directions: list[np.ndarray],
              alpha: float) -> np.ndarray:
    if not isinstance(model, (FullyConnectedTensorNet, DiagonalNet, CircularConvNet)) or model.n_layers != 2:
        raise invalid("predictor", "theorem6", "a two-layer tensor network (fully_connected, diagonal, circular_conv)")
    if x.shape[0] != 1:
        raise invalid("predictor", "theorem6", "one data point (P002 Theorem 6 is stated for n = 1)")

    def tensor(v: np.ndarray) -> np.ndarray:
        if isinstance(model, DiagonalNet):
            return theory.data_tensor_diag(v, 2)
        if isinstance(model, CircularConvNet):
            return theory.data_tensor_conv(v, model.param_sizes)
        return theory.data_tensor_fc(v, model.widths)

    d = x.shape[1]
    basis = [tensor(np.eye(d)[k]) for k in range(d)]
    out = theory.theorem6_limit(tensor(x[0]), directions[0], directions[1], alpha, float(y[0, 0]), basis)
    return np.asarray(out["beta"], dtype=float)[None, :]


def _columns(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    def predictor(x: np.ndarray, y: np.ndarray, **_: Any) -> np.ndarray:
        return np.stack([np.asarray(fn(x, y[:, j]), dtype=float) for j in range(y.shape[1])])  # (n_L, n_0)
    return predictor


def _predictors() -> dict[str, Entry]:
    return {e.name: e for e in (
        Entry("pinv", _columns(theory.min_norm_solution), "X^+ y, the minimum-norm interpolator", reference="P000 Thm 5.2"),
        Entry("min_l2", _columns(theory.min_l2_interpolator), "argmin ||z||_2 s.t. X z = y", reference="P002 Thm 7"),
        Entry("min_l1", _columns(theory.min_l1_interpolator), "argmin ||z||_1 s.t. X z = y (LP)",
              reference="P002 Cor. 5 (alpha -> 0)"),
        Entry("theorem6", _theorem6, "the two-layer tensor net's limit for one point (needs the init directions)",
              reference="P002 Thm 6"),
    )}


PREDICTORS: dict[str, Entry] = _predictors()
"""Named predictors of the end-to-end map from data ``(X (N, n_0), Y (N, n_L))``: ``factory(x, y, **context)``
returns ``(n_L, n_0)`` as numpy (closed forms of :mod:`falab.theory`)."""


def predict(name: str, x: np.ndarray, y: np.ndarray, **context: Any) -> np.ndarray:
    """The predictor ``name``'s end-to-end map for data ``(x, y)``."""
    return PREDICTORS[check_choice("predictor", name, PREDICTORS)].factory(np.asarray(x, float), np.asarray(y, float),
                                                                         **context)


# --------------------------------------------------------------------------------------------------------- table
TABLES: dict[str, dict[str, Entry]] = {"rules": RULES, "feedback": FEEDBACK, "models": MODELS, "losses": LOSSES,
                                       "dynamics": DYNAMICS, "measures": MEASURES, "predictors": PREDICTORS}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table() -> str:
    """The registry as markdown (``docs/registry.md`` is this text): one table per kind of name."""
    lines = ["# Registry", "", "Generated from `falab.registry` (`python -m falab.registry > docs/registry.md`; a test "
             "keeps it current). Every name below is accepted by run configs and, where tagged `nn`, by "
             "`falab.nn.convert` and `falab train`.", "",
             f"The default feedback kind of `fa`, `dfa` and `fa_star` is `{DEFAULT_FEEDBACK}` "
             "(`||B||_F = ||W(0)||_F`): its scale follows the network's at every width; the papers' experiments name "
             "their `gaussian` feedback explicitly.", ""]
    for title, table in TABLES.items():
        lines += [f"## {title}", "", "| name | what | options (defaults) | reference | tags |", "|---|---|---|---|---|"]
        for e in table.values():
            if title == "rules":
                fb = {"bp": "none"}.get(e.name, e.name if "sign" in e.tags else DEFAULT_FEEDBACK)
                opts = f"feedback = {fb}"
            else:
                opts = ", ".join(f"{k} = {v!r}" for k, v in e.options.items()) or "-"
            lines.append(f"| `{e.name}` | {_cell(e.summary)} | {_cell(opts)} | {e.reference or '-'} | "
                         f"{', '.join(e.tags) or '-'} |")
        lines.append("")
    return "\n".join(lines)


__all__ = ["Entry", "REQUIRED", "DEFAULT_FEEDBACK", "FEEDBACK", "RULES", "NN_RULES", "MODELS", "LOSSES", "DYNAMICS", "MEASURES",
           "PREDICTORS", "TABLES", "make_feedback", "make_rule", "make_model", "make_measure", "predict", "distance_to",
           "markdown_table"]

if __name__ == "__main__":  # pragma: no cover - regenerates docs/registry.md
    print(markdown_table(), end="")
