r"""Conservation laws of learning rules, discovered with a certificate that none is missing (issue 15).

``discover(model, rule, function_class=Polynomials(degree=2))`` returns a basis of every polynomial law
:math:`P` with :math:`\langle\nabla P(\theta), v_x(\theta)\rangle = 0` for all data :math:`x` and all
:math:`\theta` (:math:`v_x = -` the rule's own ``update``), the rank decisions behind it, the completeness
certificate (independent laws vs :math:`D - \dim\mathrm{Lie}\{v_x\}(\theta_0)`, Marcotte, Gribonval & Peyré,
NeurIPS 2023) with its assumptions, and the laws grouped the way a paper writes them; ``run_atlas`` /
``falab laws CONFIG.yaml --out DIR`` write ``laws.md`` and ``laws.json``.

How it works, one module per step (imports: models, rules, dynamics for the flow check; nothing above):

* ``_field``    the field on flat parameters, batched over samples; the output error is sampled instead of the
                target (same "for every data set", and it makes the field homogeneous); FA*'s slaved last layer;
* ``_torus``    scalings (per layer, per hidden unit) under which the field is homogeneous, exponents fitted and
                verified numerically — they split the system into small character blocks (exact, not a heuristic);
* ``_system``   monomial terms, block null spaces with singular-value gap and margin, fresh-sample validation,
                the consistency system that glues blocks into one global basis;
* ``_lie``      left-normed brackets by nested ``torch.func.jvp``, level by level, at a generic point;
* ``_readable`` linear laws, their products, matrix / per-neuron / trace laws at each hidden layer, the rest;
* ``_discover`` the entry point, functional independence, flow verification (``simulate_flow``);
* ``_atlas``    YAML config -> report; ``_bench`` timings (structured vs dense, largest D within a budget).

Limits: MLPs only (the falab.models MLP, any depth, activations and biases); polynomial classes only; rules whose
field is one vector field per data set (fixed feedback, or uSF/frSF inside one sign orthant; brSF is rejected).
"""

from ._atlas import AtlasConfig, load_atlas, make_rule, parse_atlas, run_atlas
from ._bench import bench_laws
from ._discover import (
    FUNCTION_CLASSES,
    Certificate,
    Discovery,
    Polynomials,
    discover,
    in_span,
    law_gradients,
    monomial_values,
    span_distance,
)
from ._readable import Monomials, ReadableLaw
from ._system import LawDiscoveryError

__all__ = [
    "bench_laws", "AtlasConfig", "load_atlas", "make_rule", "parse_atlas", "run_atlas",
    "FUNCTION_CLASSES", "Certificate", "Discovery", "Polynomials", "discover", "in_span", "law_gradients",
    "monomial_values", "span_distance", "Monomials", "ReadableLaw", "LawDiscoveryError",
]
