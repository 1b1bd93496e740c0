"""``convert(model, rule)``: swap the supported layers of any ``nn.Module`` for their falab versions, in place.

The forward weights (the same ``Parameter`` objects, so an optimizer built earlier keeps working) are kept; feedback
is drawn at the scale of each forward weight. The result is a :class:`ConversionReport` (what was converted, what was
not and why) — nothing is printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

import torch
from torch import nn

from .._checks import check_choice, invalid
from ..registry import NN_RULES, make_rule
from ..rules import (
    AbstractFeedback,
    AbstractLearningRule,
    Backprop,
    DirectFeedbackAlignment,
    FeedbackAlignment,
)
from ._attention import FeedbackMultiheadAttention, attention_unsupported, make_attention
from ._layers import (
    DFAConv1d,
    DFAConv2d,
    DFALinear,
    ErrorBroadcast,
    FAConv1d,
    FAConv2d,
    FALinear,
    FeedbackLayer,
)

# The nn rule names are the registry's rules tagged 'nn' (fa_star has no layer form); the Literal is for type checkers.
RuleName = Literal["bp", "fa", "dfa", "usf", "frsf", "brsf"]
RULE_NAMES: tuple[RuleName, ...] = cast("tuple[RuleName, ...]", NN_RULES)
_SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
# Layers no rule changes, and why (reported by convert; their parameters keep exact gradients).
_EXACT_REASONS: dict[type, str] = {
    nn.LayerNorm: "no weight transport to replace: its backward uses only its own per-feature scale (elementwise), "
                  "kept exact under every rule",
    nn.Embedding: "a lookup of token indices: it sends no signal to its input and its update (the rows of the "
                  "tokens seen) is local under every rule, kept exact",
}
_EXACT = tuple(_EXACT_REASONS)


def rule_from_name(name: str, *, generator: torch.Generator | None = None) -> AbstractLearningRule:
    """The rule behind an nn rule name, from :mod:`falab.registry` (one default: ``fa`` and ``dfa`` draw
    ``ScaledLikeWeight`` feedback, ``usf``/``frsf``/``brsf`` are FA with that sign-symmetry kind). ``generator`` is
    unused (kept for callers): brSF's per-step draws come from each layer's seeded state."""
    del generator
    return make_rule(check_choice("rule", name, RULE_NAMES))


@dataclass(frozen=True)
class ConvertedLayer:
    name: str
    original: str
    new: str
    feedback_shape: tuple[int, ...]


@dataclass(frozen=True)
class SkippedModule:
    name: str
    type: str
    reason: str


@dataclass
class ConversionReport:
    """What :func:`convert` did. ``broadcast`` / ``handle``: DFA's error broadcast and its forward hook on the model."""

    rule: AbstractLearningRule
    converted: list[ConvertedLayer] = field(default_factory=list)
    skipped: list[SkippedModule] = field(default_factory=list)
    output_dim: int | None = None
    broadcast: ErrorBroadcast | None = None
    handle: Any = None

    def __str__(self) -> str:
        lines = [f"convert: rule={self.rule!r}, {len(self.converted)} converted, {len(self.skipped)} not converted"]
        lines += [f"  + {c.name}: {c.original} -> {c.new} (feedback {c.feedback_shape})" for c in self.converted]
        lines += [f"  - {s.name}: {s.type} ({s.reason})" for s in self.skipped]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": repr(self.rule),
            "converted": [c.__dict__ for c in self.converted],
            "skipped": [s.__dict__ for s in self.skipped],
            "output_dim": self.output_dim,
        }


def _own_params(m: nn.Module) -> bool:
    return any(True for _ in m.parameters(recurse=False))


def _infer_output_dim(model: nn.Module, example_input: torch.Tensor | None) -> int:
    if example_input is not None:
        with torch.no_grad():
            out = model(example_input)
        if not torch.is_tensor(out):
            raise invalid("model output", type(out).__name__, "a tensor for DFA")
        return int(out.shape[-1])
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m.out_features
    if last is None:
        raise invalid("output_dim", None, "the network's output width (no nn.Linear to infer it from; "
                                          "pass output_dim= or example_input=)")
    return last


def _new_layer(m: nn.Linear | nn.Conv1d | nn.Conv2d, rule: AbstractLearningRule, kind: AbstractFeedback,
               output_dim: int | None, broadcast: ErrorBroadcast | None, generator: torch.Generator) -> FeedbackLayer:
    dfa = isinstance(rule, DirectFeedbackAlignment)
    w = m.weight
    gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
    common: dict[str, Any] = {"feedback": kind, "generator": gen, "device": w.device, "dtype": w.dtype}
    new: FeedbackLayer
    if isinstance(m, nn.Linear):
        linear_cls = DFALinear if dfa else FALinear
        extra = {"output_dim": output_dim, "broadcast": broadcast} if dfa else {}
        # Build on the meta device (no throw-away init), then adopt the original Parameters.
        new = linear_cls(m.in_features, m.out_features, m.bias is not None, **{**common, **extra, "device": "meta"})
    else:
        conv_cls = (DFAConv1d if dfa else FAConv1d) if isinstance(m, nn.Conv1d) else (DFAConv2d if dfa else FAConv2d)
        extra = {"output_dim": output_dim, "broadcast": broadcast} if dfa else {}
        new = conv_cls(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                       dilation=m.dilation, groups=m.groups, bias=m.bias is not None, padding_mode=m.padding_mode,
                       **{**common, **extra, "device": "meta"})
    new.weight = m.weight
    new.bias = m.bias
    if dfa:
        new._generator = gen
        if isinstance(new, DFALinear):
            from ._layers import _draw_direct

            new.feedback = _draw_direct(new, (new.output_dim, new.in_features))
        else:
            new.feedback = torch.empty(0, dtype=w.dtype, device=w.device)
    else:
        from ._layers import _draw

        new.feedback = _draw(kind, new.weight, gen)
    new.train(m.training)
    return new


def convert(
    model: nn.Module,
    rule: str | AbstractLearningRule,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    output_dim: int | None = None,
    example_input: torch.Tensor | None = None,
) -> ConversionReport:
    """Replace every ``nn.Linear``, ``nn.Conv1d`` and ``nn.Conv2d`` of ``model`` (nested anywhere) by its falab version
    trained with ``rule``, in place, and report what was converted and what was not.

    ``nn.MultiheadAttention`` (also inside ``nn.TransformerEncoderLayer`` / ``DecoderLayer``) becomes a
    :class:`~falab.nn._attention.FeedbackMultiheadAttention`: its stacked q/k/v input projection and its output
    projection are falab linears (the same Parameters), the attention product stays exact (Launay et al. 2020).
    ``nn.LayerNorm`` and ``nn.Embedding`` are reported and kept exact (no weight transport to replace).

    Args:
        model: any module (layers are matched by exact type; subclasses such as the out-projection of
            ``nn.MultiheadAttention``, which is used functionally, are reported and left alone).
        rule: a name (``'bp'``, ``'fa'``, ``'dfa'``, ``'usf'``, ``'frsf'``, ``'brsf'``) or a rule object
            (:class:`~falab.rules.FeedbackAlignment` with any feedback kind, :class:`~falab.rules.DirectFeedbackAlignment`,
            :class:`~falab.rules.Backprop`). Names draw feedback at the scale of each forward weight
            (``ScaledLikeWeight``: ``||B||_F = ||W||_F``; RMS-matched for sign symmetry and DFA).
        generator: where feedback is drawn from (each layer gets its own seeded generator, in module order).
        seed: the seed of that generator when ``generator`` is not given (default 0).
        output_dim: DFA only, the width ``n_L`` of the network output (default: from ``example_input`` or the last
            ``nn.Linear``).
        example_input: DFA only, a batch used to infer ``output_dim`` and to draw conv layers' ``D`` at once.

    For DFA an :class:`ErrorBroadcast` is attached to ``model``'s output with a forward hook (``report.handle``), so
    ``loss_fn(model(x), y).backward()`` works unchanged.

    Examples:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> report = convert(net, "fa", seed=0)
        >>> [c.new for c in report.converted]
        ['FALinear', 'FALinear']
    """
    if not isinstance(model, nn.Module):
        raise invalid("model", type(model).__name__, "a torch.nn.Module")
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    if isinstance(rule, str):
        rule = rule_from_name(rule, generator=torch.Generator().manual_seed(
            int(torch.randint(0, 2**62, (1,), generator=generator))))
    if not isinstance(rule, (Backprop, FeedbackAlignment, DirectFeedbackAlignment)):
        raise invalid("rule", type(rule).__name__, "'bp', 'fa', 'dfa', 'usf', 'frsf', 'brsf', or a Backprop / "
                                                   "FeedbackAlignment / DirectFeedbackAlignment object")
    report = ConversionReport(rule=rule)
    dfa = isinstance(rule, DirectFeedbackAlignment)
    if dfa:
        report.output_dim = output_dim if output_dim is not None else _infer_output_dim(model, example_input)
        report.broadcast = ErrorBroadcast()

    def visit(parent: nn.Module, prefix: str) -> None:
        for child_name, child in list(parent.named_children()):
            name = f"{prefix}{child_name}"
            if isinstance(child, FeedbackLayer):
                report.skipped.append(SkippedModule(name, type(child).__name__, "already a falab layer"))
                continue
            if type(child) is nn.MultiheadAttention and not isinstance(rule, Backprop):
                why = attention_unsupported(child)
                if why is not None:
                    report.skipped.append(SkippedModule(name, type(child).__name__, why))
                    continue
                attn = make_attention(child, lambda lin: _new_layer(lin, rule, rule.feedback, report.output_dim,
                                                                     report.broadcast, generator))
                setattr(parent, child_name, attn)
                for part in ("in_proj", "out_proj"):
                    layer = getattr(attn, part)
                    report.converted.append(ConvertedLayer(f"{name}.{part}", "MultiheadAttention." + (
                        "in_proj_weight" if part == "in_proj" else "out_proj"), type(layer).__name__,
                        tuple(layer.feedback.shape)))
                report.skipped.append(SkippedModule(f"{name}.attention", "scaled_dot_product_attention",
                                                    "the attention product has no weight: exact gradient"))
                continue
            if isinstance(child, FeedbackMultiheadAttention):
                report.skipped.append(SkippedModule(name, type(child).__name__, "already a falab layer"))
                continue
            if isinstance(child, _EXACT):
                reason = _EXACT_REASONS.get(type(child), "no falab version: exact gradients")
                report.skipped.append(SkippedModule(name, type(child).__name__, reason))
                continue
            if type(child) in _SUPPORTED:
                if isinstance(rule, Backprop):
                    report.skipped.append(SkippedModule(name, type(child).__name__, "rule is backprop: kept native"))
                    continue
                assert isinstance(child, _SUPPORTED)  # its exact type is one of them
                new = _new_layer(child, rule, rule.feedback, report.output_dim, report.broadcast, generator)
                setattr(parent, child_name, new)
                report.converted.append(ConvertedLayer(name, type(child).__name__, type(new).__name__,
                                                       tuple(new.feedback.shape)))
                continue
            if isinstance(child, _SUPPORTED):
                report.skipped.append(SkippedModule(name, type(child).__name__,
                                                    "subclass of a supported layer (may be used functionally)"))
            elif _own_params(child):
                report.skipped.append(SkippedModule(name, type(child).__name__,
                                                    "no falab version of this layer: its parameters keep exact gradients"))
            visit(child, name + ".")

    if type(model) in _SUPPORTED:
        raise invalid("model", type(model).__name__, "a container module (wrap a single layer in nn.Sequential)")
    visit(model, "")
    if report.broadcast is not None:  # DFA
        report.handle = report.broadcast.attach(model)
        if example_input is not None:
            with torch.no_grad():
                model(example_input)  # draws the conv layers' D for this input shape
            for i, c in enumerate(report.converted):
                layer = model.get_submodule(c.name)
                assert isinstance(layer, FeedbackLayer)  # converted above
                report.converted[i] = ConvertedLayer(c.name, c.original, c.new, tuple(layer.feedback.shape))
    return report
