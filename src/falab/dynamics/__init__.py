"""How time advances: exact flows (scipy DOP853) and discrete schemes (Euler/GD, SGD, P003's modified trapezoid), one recording loop each."""

from ._discrete import AbstractScheme, Euler, simulate_discrete
from ._flow import simulate_flow, vector_field
from ._modified_trapezoid import ModifiedTrapezoid
from ._problem import Diverged, Measure, Problem, Snapshot, StopInfo, Trajectory
from ._stop import Event, Stop

__all__ = ["AbstractScheme", "Euler", "ModifiedTrapezoid", "simulate_discrete", "simulate_flow", "vector_field",
           "Diverged", "Event", "Measure", "Problem", "Snapshot", "Stop", "StopInfo", "Trajectory"]
