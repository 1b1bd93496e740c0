"""Conformance suite over falab.registry: every registered name is tested here because the tested sets must equal the
registry (adding an entry without a test fails), and every rule x every model family where it is defined reduces to
backprop when its feedback is the forward weights (1e-12, float64)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from falab import registry
from falab._checks import FalabInputError
from falab.functional import SquaredLoss
from falab.models import AbstractTensorNet, DeepMatrixSensing
from falab.rules import (
    AbstractFeedback,
    Backprop,
    DirectFeedbackAlignment,
    FAStar,
    FeedbackAlignment,
    ScaledLikeWeight,
)

D64 = torch.float64
ROOT = Path(__file__).resolve().parents[1]

TESTED_RULES = {"bp", "fa", "dfa", "fa_star", "usf", "frsf", "brsf"}
TESTED_FEEDBACK = {"scaled_like_weight", "gaussian", "uniform", "copy_of_weight", "usf", "frsf", "brsf"}
MODEL_CASES = {  # options of each family for a small instance
    "mlp": {"widths": (4, 6, 5, 3), "activation": "tanh"},
    "deep_linear": {"widths": (4, 5, 3, 2)},
    "fully_connected": {"widths": (4, 3, 2)},
    "diagonal": {"d": 5, "depth": 3},
    "circular_conv": {"d": 5, "filters": (3, 5)},
    "deep_matrix_sensing": {"d": 2, "depth": 3},
    "matrix_factorization": {"n": 5, "r": 3, "m": 4},
}
TESTED_LOSSES = {"squared", "exponential", "cross_entropy"}
TESTED_DYNAMICS = {"flow", "euler", "sgd", "modified_trapezoid"}
TESTED_PREDICTORS = {"pinv", "min_l2", "min_l1", "theorem6"}
# FA* slaves a last dense layer 'W<L>' whose parameter is that matrix: MLPs and matrix factorisation only.
FA_STAR_MODELS = {"mlp", "deep_linear", "matrix_factorization"}


def _rel_all(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Relative error over all parameters together (FA*'s last-layer gradient is 0 at its optimum)."""
    num = sum(float((a[k] - b[k]).norm()) ** 2 for k in b) ** 0.5
    return num / max(sum(float(b[k].norm()) ** 2 for k in b) ** 0.5, 1e-300)


def test_the_tested_sets_are_the_registry() -> None:
    assert set(registry.RULES) == TESTED_RULES
    assert set(registry.FEEDBACK) == TESTED_FEEDBACK
    assert set(registry.MODELS) == set(MODEL_CASES)
    assert set(registry.LOSSES) == TESTED_LOSSES
    assert set(registry.DYNAMICS) == TESTED_DYNAMICS
    assert set(registry.PREDICTORS) == TESTED_PREDICTORS
    assert set(registry.MEASURES) == set(MEASURE_CHECKS)


def _problem(name: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = registry.make_model(name, **MODEL_CASES[name])
    zero = _zero_params(model)
    params = {k: 0.6 * torch.randn(v.shape, generator=g, dtype=D64) for k, v in zero.items()}
    n_in = model.layer_weights(params)[0].shape[-1]
    n_out = model.layer_weights(params)[-1].shape[-2]
    x = torch.randn(7, n_in, generator=g, dtype=D64)
    y = torch.randn(7, n_out, generator=g, dtype=D64)
    return model, params, x, y


def _zero_params(model):
    if isinstance(model, AbstractTensorNet):
        return {f"v{l}": torch.zeros(k, dtype=D64) for l, k in enumerate(model.param_sizes, start=1)}
    if isinstance(model, DeepMatrixSensing):
        return {f"W{l}": torch.zeros(model.d, model.d, dtype=D64) for l in range(1, model.depth + 1)}
    return model.init_params(torch.Generator().manual_seed(0))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / max(float(b.norm()), 1e-300))


def _chain_slots(ws: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """DFA's D_l^T = W_L .. W_{l+1} (the chain it replaces)."""
    out, chain = {}, ws[-1]
    for l in range(len(ws) - 1, 0, -1):
        out[f"D{l}"] = chain
        chain = chain @ ws[l - 1]
    return out


@pytest.mark.parametrize("family", sorted(MODEL_CASES))
@pytest.mark.parametrize("rule_name", sorted(TESTED_RULES))
def test_every_rule_with_the_forward_weights_as_feedback_is_backprop(rule_name: str, family: str) -> None:
    """FA-type rules (fa, fa_star and the sign-symmetry rules' FA) with B_l = W_l, and DFA with D_l^T = W_L..W_{l+1}
    on linear families (two-layer on the MLP), give BP's update to 1e-12; sign-symmetry rules give the FA update of the
    matrix their feedback_used reports (B = s sign(W), |R| sign(W): not W itself)."""
    model, params, x, y = _problem(family)
    loss = SquaredLoss("sum")
    rule = registry.make_rule(rule_name)
    linear = family != "mlp"
    if rule_name == "fa_star" and family not in FA_STAR_MODELS:
        with pytest.raises(FalabInputError):
            state = rule.init(model, params, generator=torch.Generator().manual_seed(1))
            rule.constrain(model, params, state, x, y, loss)
        return
    if rule_name == "fa_star":
        params = rule.constrain(model, params, {}, x, y, loss)
    bp, _ = Backprop().update(model, params, {}, x, y, loss)
    ws = model.layer_weights(params)
    if rule_name in ("fa", "fa_star"):
        state = rule.init(model, params, feedback={f"B{l}": ws[l - 1] for l in range(2, len(ws) + 1)})
    elif rule_name == "dfa":
        if not linear:
            model, params, x, y = _problem(family)
            model = registry.make_model("mlp", widths=(4, 6, 3), activation="tanh")
            params = model.init_params(torch.Generator().manual_seed(2))
            x, y = x[:, :4], y[:, :3]
            bp, _ = Backprop().update(model, params, {}, x, y, loss)
            ws = model.layer_weights(params)
        state = rule.init(model, params, feedback=_chain_slots(ws))
    elif rule_name == "bp":
        state = rule.init(model, params)
    else:  # sign symmetry: the FA update of the matrices it reports using
        state = rule.init(model, params, generator=torch.Generator().manual_seed(3))
        used = rule.feedback_used(model, params, state)
        fixed = FeedbackAlignment().init(model, params, feedback={f"B{l}": used[l] for l in used})
        bp, _ = FeedbackAlignment().update(model, params, fixed, x, y, loss)
        for l, b in used.items():
            assert torch.equal(torch.sign(b), torch.sign(ws[l - 1]))
    upd, _ = rule.update(model, params, state, x, y, loss)
    assert set(upd) == set(bp)
    assert _rel_all(upd, bp) <= 1e-12


@pytest.mark.parametrize("kind_name", sorted(TESTED_FEEDBACK))
def test_every_feedback_kind_draws_its_shape_and_feedback_used_is_what_the_update_uses(kind_name: str) -> None:
    model, params, x, y = _problem("mlp", seed=4)
    kind = registry.make_feedback(kind_name)
    assert isinstance(kind, AbstractFeedback)
    rule = FeedbackAlignment(kind)
    state = rule.init(model, params, generator=torch.Generator().manual_seed(5))
    used = rule.feedback_used(model, params, state)
    ws = model.layer_weights(params)
    assert sorted(used) == [2, 3] and all(used[l].shape == ws[l - 1].shape for l in used)
    fixed = FeedbackAlignment().init(model, params, feedback={f"B{l}": used[l] for l in used})
    ref, _ = FeedbackAlignment().update(model, params, fixed, x, y, SquaredLoss())
    upd, new_state = rule.update(model, params, state, x, y, SquaredLoss())
    assert max(_rel(upd[k], ref[k]) for k in ref) <= 1e-12
    assert (new_state is state) == (not kind.per_step)
    if kind_name == "copy_of_weight":
        assert all(torch.equal(used[l], ws[l - 1]) for l in used)
    if kind_name == "scaled_like_weight":
        assert all(abs(float(used[l].norm() / ws[l - 1].norm()) - 1) < 1e-12 for l in used)
    if kind.fixed:  # fixed kinds do not follow W
        moved = {k: v + 1.0 for k, v in params.items()}
        assert all(torch.equal(rule.feedback_used(model, moved, state)[l], used[l]) for l in used)


def test_one_default_everywhere() -> None:
    """fa/dfa/fa_star default to the registry's kind whether built by name, by class or by nn.convert."""
    from falab.nn import RULE_NAMES, convert, rule_from_name

    assert registry.DEFAULT_FEEDBACK == "scaled_like_weight"
    for cls, name in ((FeedbackAlignment, "fa"), (DirectFeedbackAlignment, "dfa"), (FAStar, "fa_star")):
        assert cls() == registry.make_rule(name) and isinstance(cls().feedback, ScaledLikeWeight)
    assert tuple(RULE_NAMES) == registry.NN_RULES == ("bp", "fa", "dfa", "usf", "frsf", "brsf")
    for name in RULE_NAMES:
        assert rule_from_name(name) == registry.make_rule(name)
        net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        assert convert(net, name, seed=0).rule == registry.make_rule(name)
    assert registry.make_rule("fa", "gaussian") == FeedbackAlignment(registry.make_feedback("gaussian"))
    with pytest.raises(FalabInputError, match=r"^Invalid rule: 'backprop'"):
        registry.make_rule("backprop")
    with pytest.raises(FalabInputError, match=r"^Invalid gaussian option: 'sigma'"):
        registry.make_feedback("gaussian", sigma=1.0)
    with pytest.raises(FalabInputError, match=r"^Invalid rule.feedback"):
        registry.make_rule("bp", "gaussian")


@pytest.mark.parametrize("name", sorted(TESTED_LOSSES))
def test_losses_by_name(name: str) -> None:
    loss = registry.LOSSES[name].make(reduction="sum")
    f = torch.tensor([[0.3, -0.2]], dtype=D64)
    y = torch.tensor([[1.0, 0.0]], dtype=D64) if name != "exponential" else torch.tensor([[1.0, -1.0]], dtype=D64)
    expected = {"squared": 0.5 * float(((f - y) ** 2).sum()),
                "exponential": float(torch.exp(-y * f).sum()),
                "cross_entropy": float(-(torch.log_softmax(f, -1) * y).sum())}[name]
    assert abs(float(loss.value(f, y)) - expected) <= 1e-15


def test_dynamics_by_name_step_as_stated() -> None:
    from falab.dynamics import Euler, ModifiedTrapezoid

    assert registry.DYNAMICS["euler"].make(lr=0.1) == Euler(lr=0.1) == registry.DYNAMICS["sgd"].make(lr=0.1)
    assert registry.DYNAMICS["modified_trapezoid"].make(lr=0.1) == ModifiedTrapezoid(lr=0.1)
    assert registry.DYNAMICS["flow"].make() is None  # the flow is simulate_flow itself
    with pytest.raises(FalabInputError, match=r"^Invalid euler.lr: None"):
        registry.DYNAMICS["euler"].make()


def test_predictors_are_the_theory_closed_forms() -> None:
    import numpy as np

    from falab import theory

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 6)), rng.standard_normal((3, 2))
    pinv = registry.predict("pinv", x, y)
    assert pinv.shape == (2, 6) and np.allclose(x @ pinv.T, y, atol=1e-12)
    assert np.allclose(pinv, registry.predict("min_l2", x, y), atol=1e-13)
    l1 = registry.predict("min_l1", x, y[:, :1])
    assert np.allclose(x @ l1[0], y[:, 0], atol=1e-9)
    assert abs(np.abs(l1).sum() - np.abs(theory.min_l1_by_enumeration(x, y[:, 0])).sum()) < 1e-9
    with pytest.raises(FalabInputError, match="one data point"):
        registry.predict("theorem6", x, y[:, :1], model=registry.make_model("diagonal", d=6),
                         directions=[np.ones(6), np.ones(6)], alpha=1.0)


# name -> a check of the measure on a snapshot of a small FA problem (every measure is exercised)
def _snapshot():
    from falab.dynamics import Problem, Snapshot

    model, params, x, y = _problem("deep_linear", seed=6)
    rule = registry.make_rule("fa")
    problem = Problem(model, rule, SquaredLoss(), x, y, rule.init(model, params, generator=torch.Generator()))
    return Snapshot(0.0, 0, params, problem)


def _check_e2e(snap, v):
    ws = snap.problem.model.layer_weights(snap.params)
    assert torch.allclose(v, (ws[2] @ ws[1] @ ws[0]).reshape(-1), rtol=1e-14, atol=0)


def _check_distance(snap, v):
    del v
    m = registry.make_measure("end_to_end")(snap).reshape(2, 4)
    assert abs(float(registry.make_measure("distance_to_predictor", reference=m)(snap))) == 0.0
    assert abs(float(registry.make_measure("distance_to_predictor", reference=2 * m)(snap)) - 0.5) < 1e-15


MEASURE_CHECKS = {
    "loss": lambda s, v: abs(float(v) - float(s.problem.loss_value(s.params))) == 0,
    "layer_norms": lambda s, v: v.shape == (3,),
    "conserved": lambda s, v: v.shape[-1] == 2,
    "feedback_angle": lambda s, v: v.shape == (2,) and bool(((v > 0) & (v < 180)).all()),
    "feedback_norm_ratio": lambda s, v: bool(torch.allclose(v, torch.ones(2, dtype=D64), rtol=1e-12)),
    "update_angle": lambda s, v: v.shape == (3,) and float(v[-1]) < 1e-6,  # the last layer's FA update is its gradient
    "end_to_end": _check_e2e,
    "distance_to_predictor": _check_distance,
}
# measures added to falab.instruments by other work are enrolled here with a shape check of their own
for _name in registry.MEASURES:
    MEASURE_CHECKS.setdefault(_name, lambda s, v: bool(torch.isfinite(torch.as_tensor(v)).all()))


@pytest.mark.parametrize("name", sorted(MEASURE_CHECKS))
def test_every_measure(name: str) -> None:
    snap = _snapshot()
    if name == "distance_to_predictor":
        MEASURE_CHECKS[name](snap, None)
        return
    v = registry.make_measure(name)(snap)
    result = MEASURE_CHECKS[name](snap, v)
    assert result is None or result, (name, v)


def test_docs_table_is_current() -> None:
    assert (ROOT / "docs" / "registry.md").read_text() == registry.markdown_table()
    text = registry.markdown_table()
    for table in registry.TABLES.values():
        for name in table:
            assert f"| `{name}` |" in text


def test_distance_to_predictor_names_its_reference_kind():
    """A predictor *name* where a map is required is one clear error, and the map route measures a real distance."""
    import numpy as np
    import pytest as _pytest

    from falab._checks import FalabInputError
    from falab.registry import make_measure, predict

    with _pytest.raises(FalabInputError, match=r"Invalid reference: 'pinv' \(expected the predictor's end-to-end map"):
        make_measure("distance_to_predictor", reference="pinv")
    x = np.random.default_rng(0).normal(size=(3, 5))
    y = np.random.default_rng(1).normal(size=(3, 1))
    ref = predict("pinv", x, y)
    assert ref.shape == (1, 5)
    np.testing.assert_allclose(ref @ x.T, y.T, atol=1e-12)  # the minimum-norm map interpolates (n < d)
