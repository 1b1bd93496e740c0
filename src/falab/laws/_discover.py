r"""``discover``: every polynomial conservation law of a learning rule on an MLP, with a completeness certificate.

A function :math:`P(\theta)` is conserved by the rule when :math:`\langle\nabla P(\theta), v_x(\theta)\rangle = 0`
for every data set :math:`x` and every :math:`\theta`, with :math:`v_x = -\mathrm{update}` the rule's field
(claims.md §1.9 lists the laws known for BP/GD, FA, DFA, FA*). For :math:`P` in the span of the monomials of degree
:math:`1..d` this is linear in the coefficients: its null space at random samples :math:`(\theta_s, x_s)` is the
space of laws (``_system``), computed by character blocks of a verified scaling torus (``_torus``). The certificate
compares the number of functionally independent laws found (rank of their gradients at a generic point) with the
bound :math:`D - \dim\mathrm{Lie}(\{v_x\})(\theta_0)` of Marcotte, Gribonval & Peyré (NeurIPS 2023) (``_lie``).

Examples:
    >>> from falab.laws import discover
    >>> from falab.models import MLP
    >>> from falab.rules import FeedbackAlignment
    >>> r = discover(MLP((3, 4, 2), "relu"), FeedbackAlignment(), verify_flow=False)
    >>> r.n_laws, r.certificate.complete
    (4, True)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .._checks import check_positive_int, invalid
from ..models import MLP
from ..rules import AbstractLearningRule
from ._field import LOSS, Field, check_rule, sign_tracking
from ._lie import LieResult, lie_dimension_generic
from ._readable import ReadableLaw, describe
from ._system import (
    BlockSolution,
    LawDiscoveryError,
    RankDecision,
    Terms,
    build_terms,
    decide_rank,
    monomials,
    solve_blocks,
    term_values,
)
from ._torus import STATIC, Torus, detect_torus

MAX_DEGREE = 4


@dataclass(frozen=True)
class Polynomials:
    """Function class: polynomials in the parameters of degree ``1..degree`` (linear terms included; constants are
    trivially conserved and left out)."""

    degree: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.degree, bool) or not isinstance(self.degree, int) or not 1 <= self.degree <= MAX_DEGREE:
            raise invalid("function_class.degree", self.degree, f"an integer in [1, {MAX_DEGREE}]")

    def describe(self) -> str:
        return f"polynomials of degree 1..{self.degree} in the D parameters (no constant)"


FUNCTION_CLASSES = {"polynomial": Polynomials}


@dataclass
class Certificate:
    """Completeness certificate: independent laws found vs the Lie-algebra bound, with its assumptions."""

    function_class: str
    assumptions: str
    D: int
    lie_dim: int
    lie_levels: list[int]
    lie_stabilised: bool
    lie_margin: float
    independent: int
    independent_margin: float

    @property
    def bound(self) -> int:
        return self.D - self.lie_dim

    @property
    def complete(self) -> bool:
        """The independent laws found reach the bound (no law of any form is missing)."""
        return self.independent == self.bound

    @property
    def consistent(self) -> bool:
        """More independent laws than the bound is impossible: it would mean a numerical failure."""
        return self.independent <= self.bound

    @property
    def gap(self) -> int:
        return max(self.bound - self.independent, 0)

    def summary(self) -> str:
        state = ("complete" if self.complete else f"gap {self.gap}" if self.consistent
                 else "INCONSISTENT (more laws than the bound: a numerical failure)")
        return (f"{self.independent} independent law(s) found, bound D - dim Lie = {self.D} - {self.lie_dim} = "
                f"{self.bound}: {state}")


@dataclass
class Discovery:
    """What :func:`discover` found: the basis, how it was decided, the certificate and the readable laws."""

    model: str
    rule: str
    activation: str
    D: int
    degree: int
    n_monomials: int
    basis: Tensor = field(repr=False)  # (n_monomials, n_laws), orthonormal columns
    monomials: list[Tensor] = field(repr=False)
    n_samples: int
    torus: str
    n_blocks: int
    largest_block: int
    rank_margin: float  # smallest margin over every block decision (decades)
    validation_residual: float
    certificate: Certificate
    readable: list[ReadableLaw]
    flow_drift: float | None
    flow_status: str
    seconds: float
    seconds_certificate: float
    coords: list[str] = field(repr=False)

    @property
    def n_laws(self) -> int:
        """Dimension of the space of polynomial laws found (linearly independent polynomials)."""
        return int(self.basis.shape[1])

    def evaluate(self, theta: Tensor) -> Tensor:
        """Values of the basis laws at ``theta (..., D)``."""
        return monomial_values(self.monomials, theta) @ self.basis


def monomial_values(mons: list[Tensor], theta: Tensor) -> Tensor:
    """``(..., n_monomials)``: every monomial at ``theta (..., D)``."""
    vals = []
    for idx in mons:
        v = theta[..., idx[:, 0]]
        for q in range(1, idx.shape[1]):
            v = v * theta[..., idx[:, q]]
        vals.append(v)
    return torch.cat(vals, dim=-1)


def law_gradients(mons: list[Tensor], basis: Tensor, theta: Tensor) -> Tensor:
    """``(D, n_laws)``: gradients of the basis laws at one point ``theta (D,)``."""
    D = theta.shape[0]
    terms = build_terms(mons, torch.zeros(D, 0, dtype=torch.long), torch.zeros(D, 0, dtype=torch.long), None)
    coef = torch.ones(terms.mono.shape[0], dtype=theta.dtype)
    for q in range(terms.others.shape[1]):
        col = terms.others[:, q]
        coef = coef * torch.where(col >= 0, theta[col.clamp_min(0)], torch.ones(1, dtype=theta.dtype))
    g = torch.zeros(D, basis.shape[1], dtype=theta.dtype)
    g.index_add_(0, terms.coord, coef.unsqueeze(1) * basis[terms.mono])
    return g


def span_distance(a: Tensor, b: Tensor) -> float:
    """Largest principal-angle sine between the column spans of ``a`` and ``b`` (1.0 if dimensions differ)."""
    if a.shape[1] != b.shape[1]:
        return 1.0
    if a.shape[1] == 0:
        return 0.0
    qa, qb = torch.linalg.qr(a).Q, torch.linalg.qr(b).Q
    # sines directly, as the norm of the part of b's span outside a's (1 - cos^2 loses half the digits)
    return float(torch.linalg.matrix_norm(qb - qa @ (qa.T @ qb), ord=2))


def in_span(basis: Tensor, p: Tensor) -> float:
    """Relative distance of the polynomial ``p`` (coefficient vector) from the span of ``basis``."""
    q = torch.linalg.qr(basis).Q if basis.shape[1] else basis
    r = p - q @ (q.T @ p)
    return float(r.norm() / p.norm().clamp_min(1e-300))


def _activation_names(model: MLP) -> str:
    names = sorted({a.name for a in model.activations}) if model.activations else ["(none)"]
    return "/".join(names)


def _assumptions(model: MLP, rule: AbstractLearningRule, torus: str) -> str:
    acts = {a.name for a in model.activations}
    out = ["fields analytic near the generic point theta0 (Marcotte, Gribonval & Peyre 2023, Thm 3.3)",
           "bound valid where dim Lie(v_x) is locally constant (generic theta0, random data)"]
    if acts & {"relu", "leaky_relu"}:
        out.append("ReLU-type activations: the certificate holds on the activation-pattern region of theta0 "
                   "(laws found are polynomial identities valid on every region sampled)")
    if sign_tracking(rule):
        out.append("sign-symmetry feedback: B = s sign(W) is fixed only inside the sign orthant of the reference "
                   "weights; samples, theta0 and flows stay in that orthant")
    out.append(f"block structure from the verified scaling torus '{torus}'")
    return "; ".join(out)


def discover(
    model: MLP,
    rule: AbstractLearningRule,
    function_class: Polynomials | None = None,
    *,
    seed: int = 0,
    n_samples: int | None = None,
    oversample: float = 1.3,
    structured: bool = True,
    feedback: dict[str, Tensor] | None = None,
    distinct_points: int | None = None,
    verify_flow: bool = True,
    flow_time: float = 1.0,
    max_lie_level: int = 4,
    readable: bool = True,
) -> Discovery:
    r"""Find a basis of the conservation laws of ``rule`` on ``model`` in ``function_class``, and certify it.

    .. math:: \{P \in \mathcal P_{\le d} :\ \langle\nabla P(\theta), v_x(\theta)\rangle = 0\ \ \forall x, \theta\},
              \qquad \#\text{independent laws} \le D - \dim\mathrm{Lie}(\{v_x\})(\theta_0)

    Main arguments:
        model: an :class:`falab.models.MLP` (any depth, activations, biases).
        rule: BP, FA, DFA, FA* or FA with uSF/frSF feedback (in one sign orthant); its ``update`` is the field.
        function_class: :class:`Polynomials` (degree 2 by default).

    Other arguments (keyword-only):
        seed: draws the reference weights, the feedback and every sample.
        n_samples: equations per block (default: ``oversample`` x the largest block's unknowns); fewer than the
            largest block is an error, never a silently wrong count.
        structured: use the scaling torus (block systems); ``False`` is the dense brute force.
        feedback: the rule's feedback tensors instead of random ones (keys as ``rule.init``).
        distinct_points: only this many distinct parameter points among the samples (to test degenerate sample
            sets; they are caught by the fresh-sample validation).
        verify_flow: integrate an exact flow (``simulate_flow``, rtol 1e-12) and report each law's drift.

    Returns:
        :class:`Discovery` with the basis (coefficients over :attr:`Discovery.monomials`), the rank decisions, the
        :class:`Certificate` and the readable laws.

    Raises:
        FalabInputError: unsupported function class, rule (per-step random feedback) or model; too few samples.
        LawDiscoveryError: the samples cannot decide (degenerate sample set, no clear singular-value gap).

    References:
        G. Marcotte, R. Gribonval, G. Peyré, "Abide by the law and follow the flow: conservation laws for gradient
        flows", NeurIPS 2023. Robertson & Koyejo (P000) Thm 5.1; claims.md §1.9.
    """
    t_start = time.perf_counter()
    fc = Polynomials() if function_class is None else function_class
    if not isinstance(fc, Polynomials):
        raise invalid("function_class", type(fc).__name__ if not isinstance(fc, str) else fc,
                      "falab.laws.Polynomials(degree=...) (polynomials in the parameters; kinds: polynomial)")
    check_rule(rule)
    if not isinstance(model, MLP):
        raise invalid("model", type(model).__name__, "a falab.models.MLP (any depth and activation)")
    if n_samples is not None:
        check_positive_int("n_samples", n_samples)
    if not (isinstance(oversample, (int, float)) and oversample >= 1.0):
        raise invalid("oversample", oversample, "a number >= 1")
    g = torch.Generator().manual_seed(int(seed))
    ref = model.init_params(g, scheme="gaussian", std=[1.0 / math.sqrt(n) for n in model.widths[:-1]])
    state = rule.init(model, ref, generator=g, feedback=feedback)
    f = Field(model, rule, state, ref)
    torus = detect_torus(f, g, structured=structured)
    mons = monomials(f.D, fc.degree)
    terms = build_terms(mons, torus.w, torus.nu, torus.static)
    # unknowns per block = distinct monomials per character
    pair = torch.unique(terms.char * (terms.n_monomials + 1) + terms.mono)
    per_char = torch.bincount(pair // (terms.n_monomials + 1))
    largest = int(per_char.max()) if per_char.numel() else 0
    needed = largest
    S = int(math.ceil(oversample * largest)) + 8 if n_samples is None else int(n_samples)
    if S < needed:
        raise invalid("n_samples", S, f">= {needed} (the largest block has {needed} unknowns; fewer equations "
                                      "cannot determine its null space)")
    if distinct_points is not None:
        check_positive_int("distinct_points", distinct_points)
    n_val = 48
    theta_v, xv, zv = f.sample(n_val, g)
    v_val = f(theta_v, xv, zv)
    # With ReLU (and sign orthants) a sample can leave a whole block without an equation (a unit inactive there),
    # so a block may get fewer useful rows than planned: then sample more, twice at most, unless the user fixed
    # n_samples. Every attempt is validated on fresh samples, so a count is never accepted silently.
    attempts = 1 if n_samples is not None or distinct_points is not None else 3
    for attempt in range(attempts):
        try:
            basis, info, terms, torus = _solve(f, mons, terms, torus, S, g, structured, distinct_points,
                                               theta_v, v_val)
            break
        except LawDiscoveryError:
            if attempt == attempts - 1:
                raise
            S *= 2
    margins = [d.margin for d in info.decisions + info.consistency]
    rank_margin = min(margins) if margins else float("inf")
    # certificate: functional independence at a generic point, and the Lie-algebra bound there
    t_cert = time.perf_counter()
    theta0 = generic_point(f, g)
    grads = law_gradients(mons, basis, theta0)
    if grads.shape[1]:
        gn = grads / grads.norm(dim=0).clamp_min(1e-300)
        sv = torch.linalg.svdvals(gn)
        dec = decide_rank(sv, gn.shape[0], gn.shape[1])
        independent, ind_margin = gn.shape[1] - dec.null_dim, dec.margin
    else:
        independent, ind_margin = 0, float("inf")
    piecewise = bool({a.name for a in model.activations} & {"relu", "leaky_relu"}) or f.signs is not None
    lie: LieResult = lie_dimension_generic(f, [theta0], g, max_level=max_lie_level)
    if piecewise and lie.bound > independent:
        # Piecewise fields: the dimension is constant only per region and the generic value is the largest, so a
        # gap may come from a degenerate region. Only a gap can change (the bound never drops below the laws found,
        # so a complete certificate stays complete): then look at two more generic points.
        more = lie_dimension_generic(f, [generic_point(f, g) for _ in range(2)], g, max_level=max_lie_level)
        if more.dim > lie.dim:
            lie = more
    cert = Certificate(fc.describe(), _assumptions(model, rule, torus.name), f.D, lie.dim, lie.levels, lie.stabilised,
                       lie.decision.margin if lie.decision else float("inf"), independent, ind_margin)
    seconds_cert = time.perf_counter() - t_cert
    # readable laws: feedback matrices actually used (fixed), DFA's direct matrices by hidden layer
    laws: list[ReadableLaw] = []
    if readable:
        full_ref = f.full_params(f.pack(ref), *f.random_dataset(g))
        fb_used = {k: v_.detach() for k, v_ in rule.feedback_used(model, full_ref, state).items()}
        if rule.name == "bp":
            fb_used = {}
        direct = {int(k[1:]): v_ for k, v_ in state.items() if k.startswith("D")}
        if direct:
            fb_used = {}
        laws = describe(f, basis, mons, fb_used, direct)
        for law in laws:
            law.known = _stated_in_seeds(rule, model, law)
            if not law.known and law.kind in ("matrix", "per-neuron") and rule.name in ("dfa", "fa_star"):
                law.text += " (a stronger form than the one the seeds state)"
    seconds = time.perf_counter() - t_start - seconds_cert
    drift, status = None, "not run"
    if verify_flow and basis.shape[1]:
        drift, status = _verify_by_flow(f, mons, basis, laws, g, flow_time)
    return Discovery(
        model=f"MLP{tuple(model.widths)}" + (" +bias" if model.bias else ""), rule=_rule_label(rule),
        activation=_activation_names(model), D=f.D, degree=fc.degree, n_monomials=terms.n_monomials, basis=basis,
        monomials=mons, n_samples=S, torus=torus.name, n_blocks=info.chars, largest_block=largest,
        rank_margin=rank_margin, validation_residual=info.validation_residual, certificate=cert, readable=laws,
        flow_drift=drift, flow_status=status, seconds=seconds, seconds_certificate=seconds_cert,
        coords=[f"{c.name}[{c.row},{c.col}]" if c.kind == "W" else f"{c.name}[{c.row}]" for c in f.coords])


def _solve(f: Field, mons: list[Tensor], terms: Terms, torus: Torus, S: int, g: torch.Generator, structured: bool,
           distinct_points: int | None, theta_v: Tensor, v_val: Tensor) -> tuple[Tensor, BlockSolution, Terms, Torus]:
    """Sample ``S`` equations per block, solve the blocks, validate the assembled basis on fresh samples."""
    theta, x, z = f.sample(S, g)
    if distinct_points is not None:
        theta = theta[torch.arange(S) % distinct_points]
    v = torch.cat([f(theta[i:i + 4096], x[i:i + 4096], z[i:i + 4096]) for i in range(0, S, 4096)])
    scale = v.abs().amax(dim=0)
    static = scale <= STATIC * max(float(scale.max()), 1.0)
    if not torch.equal(static, torus.static):
        # a coordinate looked static on the torus points (e.g. a ReLU unit inactive there) but moves on the
        # samples: its exponent is unknown, so its terms' characters would be wrong. Refit on more points, else
        # solve the dense system.
        torus = detect_torus(f, g, structured=structured, n_points=512)
        if not torch.equal(static, torus.static):
            torus = detect_torus(f, g, structured=False)
            torus.static = static
        terms = build_terms(mons, torus.w, torus.nu, torus.static)
    basis, info = solve_blocks(terms, theta, v, theta_v, v_val)
    # the assembled basis, on fresh samples, against the whole system (every character at once)
    if basis.shape[1]:
        tv = term_values(terms, torch.arange(terms.mono.numel()), theta_v, v_val)  # (n_val, n_terms)
        zt = basis[terms.mono]  # (n_terms, k)
        den = tv.abs() @ zt.abs()
        res = (tv @ zt).abs() / den.clamp_min(1e-6 * float(den.max()) + 1e-300)
        info.validation_residual = max(info.validation_residual, float(res.max()))
        if info.validation_residual > 1e-8:
            raise LawDiscoveryError(f"assembled laws fail on fresh samples (residual {info.validation_residual:.1e})")
    return basis, info, terms, torus


def _mixed_signs(f: Field, g: torch.Generator, tries: int = 200) -> Tensor:
    """A random point where every unit fed by ReLU-type units has incoming weights of both signs.

    Why: otherwise the unit is active (or inactive) for every input on an open set of points — a degenerate region
    with extra local laws (its weights frozen, or a linear unit) — and the Lie dimension there is not the generic
    one. In a sign orthant (uSF/frSF) the orthant is given, so no condition is imposed."""
    th = f.sample_theta(1, g)[0]
    if f.signs is not None:
        return th
    acts = f.model.activations
    for _ in range(tries):
        ok = True
        p = f.unpack(th)
        for l in range(2, f.model.n_layers + 1):
            if f"W{l}" not in p or acts[l - 2].name not in ("relu", "leaky_relu") or f.model.widths[l - 1] < 2:
                continue
            w = p[f"W{l}"]
            if not bool(((w > 0).any(dim=1) & (w < 0).any(dim=1)).all()):
                ok = False
                break
        if ok:
            return th
        th = f.sample_theta(1, g)[0]
    return th


def generic_point(f: Field, g: torch.Generator, candidates: int = 6) -> Tensor:
    """A generic point: among a few random points, the one where the fields span the most directions.

    Why: for ReLU nets a random point lies with positive probability in a region where a unit is dead for every
    input; there the fields lose rank and more laws hold locally, so the bound would not be the generic one (rank
    is lower semicontinuous: the generic value is the largest)."""
    best, best_rank = None, -1
    for _ in range(candidates):
        th = _mixed_signs(f, g)
        x, z = f.sample_data(f.D + 4, g)
        v = f(th.expand(f.D + 4, f.D), x, z)
        r = int(torch.linalg.matrix_rank(v / v.norm(dim=1, keepdim=True).clamp_min(1e-300), rtol=1e-9))
        if r > best_rank:
            best, best_rank = th, r
    assert best is not None, "generic_point needs candidates >= 1"
    return best


def _stated_in_seeds(rule: AbstractLearningRule, model: MLP, law: ReadableLaw) -> bool:
    """Whether claims.md §1.9 states this law (else it is reported as falab's finding, with its flow drift).

    §1.9 states: GD per-neuron / matrix (linear) balancedness; FA trace, per-neuron and matrix (linear) forms with
    fixed B; DFA's last-pair and linear-pair laws in trace form only; FA*'s Z^T Z (linear). Not stated: linear
    laws and their products, sign-symmetry feedback, DFA's per-neuron/matrix forms, FA*'s ReLU per-neuron form."""
    if law.kind not in ("matrix", "per-neuron", "trace"):
        return False
    if sign_tracking(rule):
        return False
    if rule.name == "dfa":
        return law.kind == "trace"
    if rule.name == "fa_star":
        return law.kind == "matrix" and all(a.name == "identity" for a in model.activations)
    return rule.name in ("bp", "fa")


def _rule_label(rule: AbstractLearningRule) -> str:
    fb = getattr(rule, "feedback", None)
    return rule.name if fb is None else f"{rule.name}({type(fb).__name__})"


def _verify_by_flow(f: Field, mons: list[Tensor], basis: Tensor, laws: list[ReadableLaw], g: torch.Generator,
                    t_end: float) -> tuple[float, str]:
    """Integrate the exact flow (DOP853, rtol 1e-12) from a random start and return the worst relative drift over
    the basis laws and every readable group (stored on each group), and the solver status."""
    from ..dynamics import Problem, simulate_flow

    x, y = f.random_dataset(g, max(f.batch, 4))
    theta0 = f.sample_theta(1, g)[0]
    if f.signs is not None:
        # sign-tracking feedback is fixed only inside the orthant: start away from its walls and stay briefly
        theta0 = theta0.sign() * (theta0.abs() + f.std)
        t_end = min(t_end, 0.2)
    p0 = f.full_params(theta0, x, y)
    prob = Problem(f.model, f.rule, LOSS, x, y, f.state)
    ts = list(np.linspace(0.0, t_end, 6))
    if {a.name for a in f.model.activations} & {"relu", "leaky_relu"}:
        # ReLU fields jump where a pre-activation crosses 0: the adaptive solver stalls there, so use the core's
        # fixed-step RK4 (what P000 does); the drift then includes the O(h) error of the steps across kinks
        t_end = min(t_end, 0.25)
        ts = list(np.linspace(0.0, t_end, 6))
        traj = simulate_flow(prob, p0, ts, method="rk4", step_size=t_end / 500)
        how = f"rk4 h={t_end / 500:g}, t = {t_end:g}"
    else:
        traj = simulate_flow(prob, p0, ts, rtol=1e-12, atol=1e-14, max_evaluations=200_000)
        how = "DOP853 rtol 1e-12"
    ths = torch.stack([f.pack(p) for p in traj.params])
    mv = monomial_values(mons, ths)  # (T, M)
    mv0 = mv[0].abs()

    def drift(polys: Tensor) -> float:
        vals = mv @ polys
        scale = (mv0 @ polys.abs()).clamp_min(1e-300)  # sum of |terms| at the start
        return float(((vals - vals[0]).abs() / scale).max())

    worst = drift(basis)
    for law in laws:
        if law.polys is not None and law.polys.shape[1]:
            law.drift = drift(law.polys)
    return worst, f"{traj.status} ({how})"


__all__ = ["Polynomials", "Certificate", "Discovery", "discover", "LawDiscoveryError", "span_distance", "in_span",
           "monomial_values", "law_gradients", "RankDecision", "FUNCTION_CLASSES"]
