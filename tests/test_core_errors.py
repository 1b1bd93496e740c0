"""Bad library-level input raises FalabInputError with a one-line ``Invalid <name>: <value> (expected ...)`` message.

(``invalid`` quotes every str value, also descriptions such as ``'shape (2, 3)'``; the regexes accept either form.)

``ERROR_INPUTS`` is one table: (id, callable that must raise, regex the message must match).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
import pytest
import torch

from falab._checks import FalabInputError, check_finite, check_memory, check_seed, check_shape, clamp_threads
from falab.dynamics import Euler, Problem, simulate_discrete, simulate_flow
from falab.functional import ExponentialLoss, LeakyReLU, SquaredLoss, get_activation, get_loss
from falab.instruments import get_measures
from falab.models import MLP
from falab.nn import load_split
from falab.rules import Backprop, DirectFeedbackAlignment, FAStar, FeedbackAlignment, Gaussian, Uniform
from problems import DT, gen, randn

MODEL = MLP((3, 4, 2), "relu")
PARAMS = MODEL.init_params(gen(0))
X = randn(5, 3, g=gen(1))
Y = randn(5, 2, g=gen(2))
BP_PROBLEM = Problem(MODEL, Backprop(), SquaredLoss(), X, Y)


def _flow(ts, **kw):
    return lambda: simulate_flow(BP_PROBLEM, PARAMS, ts, **kw)


def _euler(lr=0.1, steps=3, **kw):
    return lambda: simulate_discrete(BP_PROBLEM, PARAMS, Euler(lr=lr), steps, **kw)


def _fa_star(loss, bias=False):
    model = MLP((3, 4, 2), "relu", bias=bias)
    params = model.init_params(gen(0))
    state = FAStar().init(model, params, generator=gen(1))
    return lambda: FAStar().constrain(model, params, state, X, Y, loss)


ERROR_INPUTS: list[tuple[str, Callable[[], object], str]] = [
    # functional
    ("unknown activation", lambda: get_activation("swish"), r"^Invalid activation: 'swish' \(expected one of .*'relu'"),
    ("leaky slope not a number", lambda: get_activation("leaky_relu:abc"), r"^Invalid activation: 'leaky_relu:abc'"),
    ("leaky slope nan", lambda: LeakyReLU(slope=math.nan), r"^Invalid activation.slope: nan"),
    ("unknown loss", lambda: get_loss("hinge"), r"^Invalid loss.name: 'hinge' \(expected one of 'squared'"),
    ("bad reduction (class)", lambda: SquaredLoss("avg"), r"^Invalid loss.reduction: 'avg' \(expected one of 'mean', 'sum'\)"),
    ("bad reduction (get_loss)", lambda: get_loss("squared", "avg"), r"^Invalid loss.reduction: 'avg'"),
    # models
    ("widths too short", lambda: MLP((3,)), r"^Invalid model.widths: \(3,\) \(expected a list of at least two"),
    ("width zero", lambda: MLP((3, 0, 1)), r"^Invalid model.widths entry: 0 \(expected an integer >= 1\)"),
    ("width not int", lambda: MLP((3, 2.5, 1)), r"^Invalid model.widths entry: 2.5"),
    ("activation list length", lambda: MLP((2, 3, 4, 1), ("relu",)), r"^Invalid model.activation: \['relu'\] \(expected one activation or a list of 2"),
    ("unknown activation in MLP", lambda: MLP((2, 3, 1), "swish"), r"^Invalid activation: 'swish'"),
    ("unknown init scheme", lambda: MODEL.init_params(gen(0), scheme="he"), r"^Invalid init.scheme: 'he'"),
    ("gaussian init without std", lambda: MODEL.init_params(gen(0), scheme="gaussian"), r"^Invalid init.std: None"),
    ("negative init std", lambda: MODEL.init_params(gen(0), scheme="gaussian", std=-1.0), r"^Invalid init.std: -1.0 \(expected a finite number >= 0\)"),
    ("init std list length", lambda: MODEL.init_params(gen(0), scheme="gaussian", std=[1.0]), r"^Invalid init.std: \[1.0\]"),
    ("ensemble zero", lambda: MODEL.init_params(gen(0), ensemble=0), r"^Invalid ensemble: 0 \(expected an integer >= 1\)"),
    # rules and feedback
    ("negative feedback std", lambda: Gaussian(-1.0), r"^Invalid feedback.std: -1.0 \(expected a finite number > 0\)"),
    ("zero uniform scale", lambda: Uniform(0.0), r"^Invalid feedback.scale: 0.0"),
    ("feedback not an object", lambda: FeedbackAlignment(feedback="gaussian"), r"^Invalid rule.feedback: '?str'? \(expected an AbstractFeedback"),
    ("feedback of the wrong shape", lambda: FeedbackAlignment().init(MODEL, PARAMS, generator=gen(0), feedback={"B2": torch.zeros(4, 2, dtype=DT)}),
     r"^Invalid feedback B2 shape: \(4, 2\) \(expected \(2, 4\)"),
    ("feedback not a tensor", lambda: FeedbackAlignment().init(MODEL, PARAMS, generator=gen(0), feedback={"B2": [[0.0]]}),
     r"^Invalid feedback B2 shape: '?list'? \(expected \(2, 4\)"),
    ("feedback with wrong keys", lambda: FeedbackAlignment().init(MODEL, PARAMS, generator=gen(0), feedback={"B3": torch.zeros(2, 4, dtype=DT)}),
     r"^Invalid feedback: \['B3'\] \(expected exactly the keys B2\)"),
    ("DFA feedback of the wrong shape", lambda: DirectFeedbackAlignment().init(MODEL, PARAMS, generator=gen(0), feedback={"D1": torch.zeros(4, 2, dtype=DT)}),
     r"^Invalid feedback D1 shape: \(4, 2\)"),
    ("feedback given to backprop", lambda: Backprop().init(MODEL, PARAMS, generator=gen(0), feedback={"B2": torch.zeros(2, 4)}),
     r"^Invalid feedback: \['B2'\] \(expected no feedback tensors"),
    ("FA* with exponential loss", _fa_star(ExponentialLoss()), r"^Invalid loss: 'exponential' \(expected 'squared'"),
    ("FA* with a last-layer bias", _fa_star(SquaredLoss(), bias=True), r"^Invalid model.bias: True"),
    # problems (a target of shape (N,) used to broadcast silently in the loss: f - y became N x N)
    ("target without feature axis", lambda: Problem(MODEL, Backprop(), SquaredLoss(), X, Y[:, 0]),
     r"^Invalid problem.y shape: \(5,\) \(expected \(\.\.\., N, features\)"),
    ("data not a tensor", lambda: Problem(MODEL, Backprop(), SquaredLoss(), [[0.0]], Y), r"^Invalid problem.x shape: '?list'?"),
    ("sample counts differ", lambda: Problem(MODEL, Backprop(), SquaredLoss(), X, Y[:4]),
     r"^Invalid problem.y shape: \(4, 2\) \(expected as many samples as x \(x has N = 5 rows\)\)"),
    # discrete dynamics
    ("negative lr", _euler(lr=-0.1), r"^Invalid lr: -0.1 \(expected a finite number > 0\)"),
    ("infinite lr", _euler(lr=math.inf), r"^Invalid lr: inf"),
    ("lr for an unknown parameter", _euler(lr={"W9": 0.1}), r"^Invalid lr: \['W9'\] \(expected step sizes keyed by parameter names W1, W2\)"),
    ("lr missing a parameter", _euler(lr={"W1": 0.1}), r"^Invalid lr\['W2'\]: None"),
    ("negative lr in a dict", _euler(lr={"W1": 0.1, "default": -1.0}), r"^Invalid lr\['W2'\]: -1.0"),
    ("negative steps", _euler(steps=-1), r"^Invalid steps: -1 \(expected an integer >= 0\)"),
    ("record_every zero", _euler(record_every=0), r"^Invalid record_every: 0"),
    ("record_steps out of range", _euler(record_steps=[0, 4]), r"^Invalid record_steps: \[4\] \(expected step indices in \[0, 3\]\)"),
    ("negative record_steps", _euler(record_steps=[-1]), r"^Invalid record_steps: \[-1\]"),
    ("batch_size > N", _euler(batch_size=6, generator=gen(0)), r"^Invalid batch_size: 6 \(expected at most the number of samples \(5\)\)"),
    ("batch_size zero", _euler(batch_size=0, generator=gen(0)), r"^Invalid batch_size: 0"),
    ("batch without generator", _euler(batch_size=2), r"^Invalid generator: None"),
    # flows
    ("no output times", _flow([]), r"^Invalid ts: \[\] \(expected at least one output time\)"),
    ("decreasing ts", _flow([0.0, 2.0, 1.0]), r"^Invalid ts: \[0.0, 2.0, 1.0\] \(expected strictly increasing times >= 0\)"),
    ("repeated ts", _flow([0.0, 1.0, 1.0]), r"^Invalid ts: "),
    ("negative ts", _flow([-1.0, 1.0]), r"^Invalid ts: "),
    ("t_end = 0", _flow([0.0]), r"^Invalid t_end: 0.0 \(expected a time > 0\)"),
    ("chunk_members = 0", _flow([0.0, 1.0], chunk_members=0), r"^Invalid flow.chunk_members: 0 \(expected an integer >= 1, or None"),
    ("unknown method", _flow([0.0, 1.0], method="euler"), r"^Invalid flow.method: 'euler' \(expected one of 'DOP853'"),
    ("negative rtol", _flow([0.0, 1.0], rtol=-1e-8), r"^Invalid flow.rtol: -1e-08"),
    ("zero atol", _flow([0.0, 1.0], atol=0.0), r"^Invalid flow.atol: 0.0"),
    ("rk4 without step size", _flow([0.0, 1.0], method="rk4"), r"^Invalid flow.step_size: None"),
    # data splits (falab.nn)
    ("split fraction 0.5", lambda: load_split("digits", val_fraction=0.5), r"^Invalid split\.val_fraction: 0\.5 \(expected a number in \(0, 0\.5\)\)$"),
    ("split fraction bool", lambda: load_split("digits", test_fraction=True), r"^Invalid split\.test_fraction: True"),
    ("split fractions sum", lambda: load_split("digits", val_fraction=0.45, test_fraction=0.45),
     r"^Invalid split\.val_fraction \+ test_fraction: 0\.9 \(expected at most 0\.6"),
    ("split data seed", lambda: load_split("digits", data_seed=-1), r"^Invalid split\.data_seed: -1 \(expected an integer with 0 <= seed < 2\*\*63\)$"),
    # resource bounds
    ("memory bound", lambda: check_memory("run size", 1e30, "a test"), r"^Invalid run size: about [0-9,.]+ GB \(expected at most the [0-9,.]+ GB of available memory; a test; --allow-large overrides\)$"),
    ("thread count zero", lambda: clamp_threads("threads", 0), r"^Invalid threads: 0 \(expected an integer >= 1\)$"),
    ("thread count text", lambda: clamp_threads("FALAB_THREADS", "4 threads"), r"^Invalid FALAB_THREADS: '4 threads' \(expected a positive integer\)$"),
    ("seed too large", lambda: check_seed("seed", 2**63), r"^Invalid seed: 9223372036854775808 \(expected an integer with 0 <= seed < 2\*\*63\)$"),
    # instruments and checks
    ("unknown measure", lambda: get_measures(["loss", "energy"]), r"^Invalid measures entry: 'energy'"),
    ("non-finite tensor", lambda: check_finite("x", torch.tensor([1.0, math.nan])), r"^Invalid x: '?1 non-finite entries'? \(expected finite values"),
    ("not a tensor", lambda: check_finite("x", [1.0]), r"^Invalid x: '?list'? \(expected a torch.Tensor\)"),
    ("wrong trailing shape", lambda: check_shape("W", torch.zeros(2, 3), (3, 3)), r"^Invalid W: '?shape \(2, 3\)'? \(expected trailing shape \(3, 3\)\)"),
]


@pytest.mark.parametrize(("fn", "pattern"), [(f, p) for _, f, p in ERROR_INPUTS], ids=[i for i, _, _ in ERROR_INPUTS])
def test_bad_input_raises_falab_input_error(fn, pattern) -> None:
    with pytest.raises(FalabInputError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    assert re.search(pattern, message), message
    assert isinstance(info.value, ValueError)  # callers that catch ValueError keep working


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(FalabInputError) as info:
        get_activation("x" * 200)
    assert len(str(info.value)) < 300 and "..." in str(info.value)


def test_valid_edge_inputs_are_accepted() -> None:
    """The boundaries of the checks above: these must not raise."""
    simulate_discrete(BP_PROBLEM, PARAMS, Euler(lr={"W1": 0.1, "default": 0.2}), 0, record_steps=[0])
    simulate_discrete(BP_PROBLEM, PARAMS, Euler(lr=0.1), 2, batch_size=5, generator=gen(0))
    simulate_flow(BP_PROBLEM, PARAMS, [0.5])
    MODEL.init_params(gen(0), scheme="gaussian", std=0.0)
    assert get_activation("leaky_relu:0.2").slope == 0.2
    check_shape("W", torch.zeros(4, 2, 3), (2, 3))


def test_numpy_scalars_are_accepted_as_numbers() -> None:
    """np.int64 steps / np.float32 step sizes are numbers (they were rejected as 'Invalid steps: 3 (expected an
    integer >= 0)')."""
    traj = simulate_discrete(BP_PROBLEM, PARAMS, Euler(lr=np.float32(0.1)), np.int64(3), record_every=np.int64(3))
    assert traj.steps == [0, 3]
    assert MLP((np.int64(3), 4, 2), "relu").n_layers == 2
    with pytest.raises(FalabInputError, match=r"^Invalid steps: True"):
        simulate_discrete(BP_PROBLEM, PARAMS, Euler(lr=0.1), True)
