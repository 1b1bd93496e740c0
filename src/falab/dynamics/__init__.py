"""How time advances: exact flows (scipy DOP853) and discrete schemes (Euler/GD, SGD, P003's modified trapezoid), one recording loop each.

Examples:
    A two-layer linear network fitting a linear teacher, by gradient flow, by Euler steps, and by a flow that stops
    when the loss reaches a target:

    >>> import torch
    >>> from falab.dynamics import Euler, Problem, Stop, simulate_discrete, simulate_flow
    >>> from falab.functional import SquaredLoss
    >>> from falab.models import MLP
    >>> from falab.rules import Backprop
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(8, 3, generator=g, dtype=torch.float64)
    >>> y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)
    >>> model = MLP((3, 4, 1), "identity")
    >>> params = model.init_params(g, scheme="gaussian", std=0.5)
    >>> problem = Problem(model, Backprop(), SquaredLoss("mean"), x, y)
    >>> flow = simulate_flow(problem, params, [0.0, 1.0, 50.0])
    >>> flow.status, flow.times, bool(problem.loss_value(flow.final) < 1e-12)
    ('ok', [0.0, 1.0, 50.0], True)
    >>> steps = simulate_discrete(problem, params, Euler(0.05), 2000, record_steps=[0, 2000])
    >>> bool(problem.loss_value(steps.final) < 1e-12)
    True
    >>> stopped = simulate_flow(problem, params, [0.0, 1e3], stop=Stop(loss=1e-6))
    >>> stopped.stop.reason, stopped.times[-1] < 10, abs(float(problem.loss_value(stopped.final)) - 1e-6) < 1e-12
    ('loss', True, True)
"""

from ._discrete import AbstractScheme, Euler, simulate_discrete
from ._flow import simulate_flow, vector_field
from ._jacobian import jacobian_of
from ._modified_trapezoid import ModifiedTrapezoid
from ._problem import Diverged, Measure, Problem, Snapshot, StopInfo, Trajectory
from ._stop import Event, Stop

__all__ = ["AbstractScheme", "Euler", "ModifiedTrapezoid", "simulate_discrete", "simulate_flow", "vector_field", "jacobian_of",
           "Diverged", "Event", "Measure", "Problem", "Snapshot", "Stop", "StopInfo", "Trajectory"]
