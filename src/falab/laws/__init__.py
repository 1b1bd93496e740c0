"""Conservation laws of learning rules, discovered with a certificate that none is missing (issue 15).

``discover(model, rule, function_class=Polynomials(degree=2))`` returns a basis of every polynomial law, the rank
decisions behind it, the completeness certificate (Marcotte, Gribonval & Peyré 2023) and the laws grouped the way a
paper writes them; ``run_atlas`` / ``falab laws CONFIG.yaml`` write the report.
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
