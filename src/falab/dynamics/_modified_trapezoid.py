r"""P003's modified trapezoidal ("midpoint") scheme, eqs (24)-(25) and (28)/(128)-(132), for layered networks of any depth.

Layers are updated in order l = 1..L (Gauss-Seidel). Every layer uses the output error and the backward signals
``delta_l`` of time t, but the *input* of layer l is rebuilt from the midpoint weights
:math:`W_k^{t+1/2} = (W_k^t + W_k^{t+1})/2` of the layers below, which are already known:

.. math::
    A_0^{mid} = X,\qquad A_k^{mid} = \phi_k\big(A_{k-1}^{mid} (W_k^{t+1/2})^T + b_k^{t+1/2}\big),\qquad
    W_l^{t+1} = W_l^t - \eta_l\,\delta_l(t)^T A_{l-1}^{mid}.

For a 2-layer linear FA net this is (24)-(25): :math:`W_1^{t+1} = W_1^t + \eta M E_t`,
:math:`W_2^{t+1} = W_2^t + \eta E_t (W_1^{t+1/2})^T`, and it conserves :math:`W_1W_1^T - MW_2 - W_2^TM^T` exactly
(the :math:`\eta^2 MEE^TM^T` that Euler adds cancels, claims.md §1.9). For 1-wide linear DFA nets it is (28): the
factor :math:`\prod_{k<l}(\theta_k^t + \theta_k^{t+1})/2` keeps the invariants :math:`\theta_l = c_l\theta_1^{2^{l-1}}` of
init (11) exact (P003 Lemma 19 / eq. 136). All backward maths comes from :mod:`falab.functional`'s kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from .._checks import invalid
from ..functional import bias_gradient, chain_backward, direct_backward, linear, weight_gradient
from ..models import MLP
from ..rules import DirectFeedbackAlignment, FAStar
from ._discrete import AbstractScheme, StepSizes


def _backward_signals(problem, params, x, y):
    """``delta_l`` of every layer at the current parameters, through the rule's own kernel (chain or direct)."""
    model, rule, state = problem.model, problem.rule, problem.state
    trace = model.trace(params, x)
    e = problem.loss.output_error(trace.output, y)
    with_bias = model.with_bias(params)
    if isinstance(rule, DirectFeedbackAlignment):
        direct = rule.direct_feedback(model, params, state)
        _, _, deltas = direct_backward(trace, e, direct, model.activations, with_bias=with_bias)
    else:
        used = rule.feedback_used(model, params, state)
        feedback = [None] + [used[l] for l in range(2, model.n_layers + 1)]
        _, _, deltas = chain_backward(trace, e, feedback, model.activations, with_bias=with_bias)
    return deltas


@final
@dataclass(frozen=True)
class ModifiedTrapezoid(AbstractScheme):
    r"""P003's modified trapezoidal scheme (eqs 24-25, 28): sequential layers, inputs built from midpoint weights.

    ``lr`` is one step size or ``{param name: step size}`` like :class:`~falab.dynamics.Euler`. Works with every
    chain rule (BP, FA, sign symmetry) and DFA on an :class:`~falab.models.MLP` (deep linear nets are the case of the
    paper); FA* (slaved last layer) is not supported.

    Examples:
        >>> import torch
        >>> from falab.models import deep_linear
        >>> from falab.rules import FeedbackAlignment
        >>> from falab.functional import SquaredLoss
        >>> from falab.dynamics import Problem, simulate_discrete
        >>> model = deep_linear((1, 1, 1))
        >>> p0 = {"W1": torch.zeros(1, 1, dtype=torch.float64), "W2": torch.zeros(1, 1, dtype=torch.float64)}
        >>> rule = FeedbackAlignment()
        >>> st = rule.init(model, p0, generator=torch.Generator(), feedback={"B2": torch.full((1, 1), 2.0, dtype=torch.float64)})
        >>> pb = Problem(model, rule, SquaredLoss("mean"), torch.ones(1, 1, dtype=torch.float64), torch.full((1, 1), 3.0, dtype=torch.float64), st)
        >>> traj = simulate_discrete(pb, p0, ModifiedTrapezoid(lr=0.05), 400)
        >>> round(float(traj.final["W2"] @ traj.final["W1"]), 10)
        3.0
    """

    lr: StepSizes = 1e-2

    def step(self, problem, params, update, lrs, batch):
        del update  # the scheme needs the per-layer signals delta_l(t), not only the finished updates
        model = problem.model
        if not isinstance(model, MLP):
            raise invalid("model", type(model).__name__, "an MLP / deep_linear network for the modified scheme")
        if isinstance(problem.rule, FAStar):
            raise invalid("rule", problem.rule.name, "a chain rule (bp, fa, ...) or dfa for the modified scheme")
        x, y = batch if batch is not None else (problem.x, problem.y)
        deltas = _backward_signals(problem, params, x, y)
        ws, bs = model.layer_weights(params), model.layer_biases(params)
        new = dict(params)
        a_mid = x
        n = model.n_layers
        for l in range(n):
            wname, bname = f"W{l + 1}", f"b{l + 1}"
            w_new = ws[l] - lrs[wname] * weight_gradient(deltas[l], a_mid)
            new[wname] = w_new
            b_mid = None
            if bs[l] is not None:
                b_new = bs[l] - lrs[bname] * bias_gradient(deltas[l])
                new[bname] = b_new
                b_mid = 0.5 * (bs[l] + b_new)
            if l < n - 1:
                a_mid = model.activations[l](linear(a_mid, 0.5 * (ws[l] + w_new), b_mid))
        return new
