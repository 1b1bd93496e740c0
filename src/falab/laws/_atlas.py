"""The laws atlas: a YAML config (rules x activations x widths) -> ``discover`` for each -> ``laws.md`` + ``laws.json``.

Config (``configs/laws_atlas.yaml``)::

    seed: 0
    function_class: {kind: polynomial, degree: 2}
    rules: [bp, fa, dfa, usf, {name: fa_star, widths: [[4, 2, 3]]}]   # a rule may bring its own widths
    activations: [identity, relu, tanh]
    widths: [[3, 4, 2], [3, 3, 3, 2]]
    verify_flow: true

Mistakes give one line ``Invalid <name>: <value> (expected ...)`` (exit 2 from the CLI).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._checks import invalid
from ..models import MLP
from ..registry import RULES
from ..registry import make_rule as registry_rule
from ..rules import Backprop
from ._discover import FUNCTION_CLASSES, Discovery, Polynomials, discover
from ._field import check_rule


# The rule names of falab.registry; fa/dfa/fa_star keep the atlas's named N(0, 1) feedback (its certificates were
# computed with it), the others take the registry's default kind.
def _factory(name: str) -> Callable[[], Any]:
    def make() -> Any:
        return registry_rule(name, "gaussian" if name in ("fa", "dfa", "fa_star") else None)
    return make


RULE_FACTORIES: dict[str, Callable[[], Any]] = {name: _factory(name) for name in RULES}
ACTIVATIONS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid", "gelu")
KEYS = ("seed", "function_class", "rules", "activations", "widths", "verify_flow", "structured", "bias")


def make_rule(name: object):
    """A rule from its atlas name; per-step random feedback (brsf) is rejected here, before any work."""
    if not isinstance(name, str) or name not in RULE_FACTORIES:
        raise invalid("rule", name, "one of " + ", ".join(f"'{k}'" for k in RULE_FACTORIES))
    return check_rule(RULE_FACTORIES[name]())


def _widths(value: object, where: str) -> list[tuple[int, ...]]:
    if not isinstance(value, list) or not value or not all(
            isinstance(w, list) and len(w) >= 3 and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                                                         for n in w) for w in value):
        raise invalid(where, value, "a list of width lists such as [[3, 4, 2], [3, 3, 3, 2]] (input first, "
                                    "at least one hidden layer)")
    return [tuple(w) for w in value]


@dataclass
class AtlasEntry:
    rule: str
    activation: str
    widths: tuple[int, ...]


@dataclass
class AtlasConfig:
    seed: int
    function_class: Polynomials
    entries: list[AtlasEntry]
    verify_flow: bool = True
    structured: bool = True
    bias: bool = False
    raw: dict[str, Any] = field(default_factory=dict)


def parse_atlas(raw: object) -> AtlasConfig:
    """Validate an atlas config mapping (see module docstring)."""
    if not isinstance(raw, dict):
        raise invalid("config", type(raw).__name__, "a mapping with keys " + ", ".join(KEYS))
    for k in raw:
        if k not in KEYS:
            raise invalid("config key", k, "one of " + ", ".join(KEYS))
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise invalid("seed", seed, "an integer >= 0")
    fc_raw = raw.get("function_class", {"kind": "polynomial", "degree": 2})
    if not isinstance(fc_raw, dict) or fc_raw.get("kind", "polynomial") not in FUNCTION_CLASSES:
        kind = fc_raw.get("kind") if isinstance(fc_raw, dict) else fc_raw
        raise invalid("function_class.kind", kind, "'polynomial' (polynomials in the parameters; the only class "
                                                   "with a complete linear-algebra search)")
    extra = sorted(set(fc_raw) - {"kind", "degree"})
    if extra:
        raise invalid("function_class key", extra[0], "'kind' or 'degree'")
    fc = FUNCTION_CLASSES[fc_raw.get("kind", "polynomial")](degree=fc_raw.get("degree", 2))
    acts = raw.get("activations", ["identity", "relu", "tanh"])
    if not isinstance(acts, list) or not acts or not all(isinstance(a, str) for a in acts):
        raise invalid("activations", acts, "a list of activation names")
    for a in acts:
        if a.split(":")[0] not in ACTIVATIONS:
            raise invalid("activation", a, "one of " + ", ".join(f"'{x}'" for x in ACTIVATIONS))
    widths = _widths(raw.get("widths", [[3, 4, 2], [3, 3, 3, 2]]), "widths")
    rules = raw.get("rules", ["bp", "fa", "dfa"])
    if not isinstance(rules, list) or not rules:
        raise invalid("rules", rules, "a list of rule names (or {name: ..., widths: [...]})")
    entries: list[AtlasEntry] = []
    for r in rules:
        if isinstance(r, dict):
            extra = sorted(set(r) - {"name", "widths"})
            if extra:
                raise invalid("rules entry key", extra[0], "'name' or 'widths'")
            name, ws = r.get("name"), _widths(r["widths"], f"rules.{r.get('name')}.widths") if "widths" in r else widths
        else:
            name, ws = r, widths
        make_rule(name)
        entries += [AtlasEntry(str(name), a, w) for a in acts for w in ws]
    flags = {}
    for k, default in (("verify_flow", True), ("structured", True), ("bias", False)):
        v = raw.get(k, default)
        if not isinstance(v, bool):
            raise invalid(k, v, "true or false")
        flags[k] = v
    return AtlasConfig(seed, fc, entries, raw=dict(raw), **flags)


def load_atlas(path: Path) -> AtlasConfig:
    """Read and validate an atlas YAML file through falab's one input boundary (bounded UTF-8 read, YAML without
    duplicate keys, alias bombs or deep nesting)."""
    from .._io import load_yaml_file

    return parse_atlas(load_yaml_file(path))


def _entry_json(e: AtlasEntry, d: Discovery) -> dict[str, Any]:
    c = d.certificate
    return {
        "rule": e.rule, "rule_config": d.rule, "activation": e.activation, "widths": list(e.widths), "D": d.D,
        "degree": d.degree, "monomials": d.n_monomials, "laws": d.n_laws, "independent_laws": c.independent,
        "lie_dim": c.lie_dim, "lie_levels": c.lie_levels, "lie_stabilised": c.lie_stabilised, "bound": c.bound,
        "complete": c.complete, "gap": c.gap, "function_class": c.function_class, "assumptions": c.assumptions,
        "samples": d.n_samples, "torus": d.torus, "blocks": d.n_blocks, "largest_block": d.largest_block,
        "rank_margin_decades": d.rank_margin, "independence_margin_decades": c.independent_margin,
        "lie_margin_decades": c.lie_margin, "validation_residual": d.validation_residual,
        "flow_drift": d.flow_drift, "flow": d.flow_status, "seconds_discovery": d.seconds,
        "seconds_certificate": d.seconds_certificate,
        "readable": [{"kind": r.kind, "text": r.text, "count": r.count, "coefficients": r.coefficients,
                      "span_residual": r.span_residual, "drift": r.drift, "stated_in_seeds": r.known}
                     for r in d.readable],
    }


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.1e}"


def _markdown(cfg: AtlasConfig, rows: list[dict[str, Any]]) -> str:
    out = ["# Conservation laws atlas", "",
           f"Function class: {cfg.function_class.describe()}. Seed {cfg.seed}. A law is a polynomial P with "
           "<grad P(theta), v_x(theta)> = 0 for every data set x and every theta, v_x the rule's update from "
           "falab.rules. *laws* = dimension of the space of such polynomials; *independent* = rank of their "
           "gradients at a generic point; *bound* = D - dim Lie{v_x}(theta0) (Marcotte, Gribonval & Peyré, "
           "NeurIPS 2023): *complete* when independent = bound.", "",
           "| rule | activation | widths | D | laws | independent | bound | complete | flow drift | seconds |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['rule']} | {r['activation']} | {r['widths']} | — | error | | | | | |")
            continue
        comp = "yes" if r["complete"] else f"no (gap {r['gap']})"
        out.append(f"| {r['rule']} | {r['activation']} | {tuple(r['widths'])} | {r['D']} | {r['laws']} | "
                   f"{r['independent_laws']} | {r['bound']} | {comp} | {_fmt(r['flow_drift'])} | "
                   f"{r['seconds_discovery'] + r['seconds_certificate']:.2f} |")
    for r in rows:
        out += ["", f"## {r['rule']} × {r['activation']} × {tuple(r['widths'])}", ""]
        if "error" in r:
            out.append(f"Not decided: {r['error']}")
            continue
        out += [f"- D = {r['D']} parameters, {r['monomials']} monomials; {r['samples']} samples; torus "
                f"'{r['torus']}' -> {r['blocks']} blocks (largest {r['largest_block']} unknowns); smallest rank "
                f"margin {r['rank_margin_decades']:.1f} decades; fresh-sample residual "
                f"{r['validation_residual']:.1e}.",
                f"- Certificate: {r['independent_laws']} independent law(s) (margin "
                f"{r['independence_margin_decades']:.1f} decades); dim Lie = {r['lie_dim']} (levels "
                f"{r['lie_levels']}, {'stabilised' if r['lie_stabilised'] else 'not stabilised'}); bound "
                f"{r['bound']}: **{'complete' if r['complete'] else 'gap ' + str(r['gap'])}**.",
                f"- Function class: {r['function_class']}. Assumptions: {r['assumptions']}.",
                f"- Flow check: {r['flow']}, worst relative drift over the basis {_fmt(r['flow_drift'])}.", ""]
        if not r["readable"]:
            out.append("No polynomial law in this class.")
        for law in r["readable"]:
            tag = "" if law["stated_in_seeds"] else " — **falab finding (not stated in the seeds)**"
            out.append(f"  - *{law['kind']}* ({law['count']}): {law['text']}; drift {_fmt(law['drift'])}, rounded-law "
                       f"span residual {law['span_residual']:.1e}{tag}")
    return "\n".join(out) + "\n"


def run_atlas(cfg: AtlasConfig, out: Path, *, echo: Callable[[str], None] = lambda s: None) -> list[dict[str, Any]]:
    """Discover the laws of every atlas entry and write ``out/laws.md`` and ``out/laws.json`` (rewritten after each
    entry, so an interrupted run keeps what it found)."""
    from .._io import atomic_write_text
    from ._system import LawDiscoveryError

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    # torch.func imports its compiler stack on first use (~2-3 s, once per process): pay it before the timings
    discover(MLP((2, 2, 1), "identity"), Backprop(), verify_flow=False, readable=False)
    for e in cfg.entries:
        t = time.perf_counter()
        model = MLP(e.widths, e.activation, bias=cfg.bias)
        try:
            d = discover(model, make_rule(e.rule), cfg.function_class, seed=cfg.seed, verify_flow=cfg.verify_flow,
                         structured=cfg.structured)
            row = _entry_json(e, d)
            c = d.certificate
            echo(f"{e.rule:8s} {e.activation:9s} {str(e.widths):14s} D={d.D:4d} laws={d.n_laws:4d} "
                 f"independent={c.independent:3d} bound={c.bound:3d} "
                 f"{'complete' if c.complete else 'gap ' + str(c.gap)} ({time.perf_counter() - t:.1f} s)")
        except LawDiscoveryError as exc:
            row = {"rule": e.rule, "activation": e.activation, "widths": list(e.widths), "error": str(exc)}
            echo(f"{e.rule:8s} {e.activation:9s} {str(e.widths):14s} not decided: {exc}")
        rows.append(row)
        atomic_write_text(out / "laws.json", json.dumps({"config": cfg.raw, "entries": rows}, indent=2,
                                                        default=str) + "\n")
        atomic_write_text(out / "laws.md", _markdown(cfg, rows))
    return rows
