"""How an experiment's simulations were integrated, as data the report states beside each claim.

An experiment puts a list of these records in ``Measured.numbers["integration"]``; the report writer
(:mod:`falab.report`) reads them (one line per record in the experiment's section, and the records naming a claim in
that claim's row). A record:

- ``part``: what was integrated (which flow or run);
- ``method``: the solver as the trajectory recorded it (``traj.info['solver']``: ``'events'``, ``'DOP853'``,
  ``'LSODA'``, ``'rk4'``, ...) or ``'euler'`` for a discrete run; ``rtol``/``atol`` (adaptive), ``step_size``
  (RK4's dt, Euler's eta), ``steps`` (Euler), ``nfev`` (field evaluations), ``jacobian`` (who gave it), ``requested``
  (what ``method='auto'`` was asked to choose from);
- ``accuracy``: ``{"quantity": ..., "value": ...}``, the accuracy the run reached, measured (e.g. the drift of a
  conserved quantity that is exactly constant along the exact flow), or None when only the tolerances say it;
- ``claims``: the claim IDs whose numbers come from this part (empty: figure or report text only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_INFO = ("solver", "rtol", "atol", "step_size", "nfev", "jacobian", "requested", "chunks")


def flow_method(part: str, info: Mapping[str, Any] | Sequence[Mapping[str, Any]], claims: Sequence[str] = (),
                accuracy: tuple[str, float] | None = None) -> dict[str, Any]:
    """The record of a flow part from its trajectory's ``info`` (``simulate_flow`` sets solver, rtol, atol,
    step_size, nfev; several runs of one route: evaluations summed, the settings of the first)."""
    infos = [info] if isinstance(info, Mapping) else list(info)
    first = infos[0]
    out: dict[str, Any] = {"part": part, "method": first.get("solver", "DOP853")}
    for k in _INFO[1:]:
        if first.get(k) is not None:
            out[k] = first[k]
    if out["method"] != "rk4":
        out.pop("step_size", None)
    else:
        out.pop("rtol", None)
        out.pop("atol", None)
    if any("nfev" in i for i in infos):
        out["nfev"] = int(sum(i.get("nfev", 0) for i in infos))
    return _finish(out, claims, accuracy)


def euler_method(part: str, eta: float, steps: int, claims: Sequence[str] = (),
                 accuracy: tuple[str, float] | None = None) -> dict[str, Any]:
    """The record of a discrete (Euler/GD) run: the step and the number of steps (the run is the object studied,
    so its 'accuracy' is the float64 round-off of the identity checked on it)."""
    return _finish({"part": part, "method": "euler", "step_size": float(eta), "steps": int(steps)}, claims, accuracy)


def _finish(out: dict[str, Any], claims: Sequence[str], accuracy: tuple[str, float] | None) -> dict[str, Any]:
    out["accuracy"] = None if accuracy is None else {"quantity": accuracy[0], "value": float(accuracy[1])}
    out["claims"] = list(claims)
    return out
