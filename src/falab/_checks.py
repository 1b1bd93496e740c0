"""Validators with one message format: ``Invalid <name>: <value> (expected ...)``.

Every user-facing check in falab goes through these helpers so that the CLI can print the message as one line and
exit with code 2 without a traceback.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, get_args

import torch
from pydantic import AfterValidator, BaseModel


class FalabInputError(ValueError):
    """A user mistake: bad config, bad argument or bad data. The message is one line and names the field."""


def invalid(name: str, value: Any, expected: str, *, quote: bool = True) -> FalabInputError:
    """Build the uniform error ``Invalid <name>: <value> (expected <expected>)``; string values are quoted unless
    ``quote=False`` (for descriptions such as ``'3 non-finite entries'``)."""
    shown = short_repr(value) if (quote or not isinstance(value, str)) else str(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return FalabInputError(f"Invalid {name}: {shown} (expected {expected})")


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 3, 4, 6, 6, 6
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 78, 40, 60


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters without building the full repr (safe for alias-expanded YAML,
    huge lists and self-referencing containers); control characters are escaped so the message stays one line."""
    try:
        text = _REPR.repr(value)
    except Exception:  # a hostile __repr__
        text = f"<{type(value).__name__}>"
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------------------------------------- seeds

SEED_LIMIT = 2**63
SEED_EXPECTED = "an integer with 0 <= seed < 2**63"


def check_seed(name: str, value: Any) -> int:
    """The one seed validator of every entry point: an integer (not a bool) in ``[0, 2**63)``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or not 0 <= value < SEED_LIMIT:
        raise invalid(name, value, SEED_EXPECTED)
    return int(value)


def _pydantic_seed(value: int) -> int:
    if not 0 <= value < SEED_LIMIT:
        raise config_rule_error("", SEED_EXPECTED, value)
    return value


#: A seed field in a pydantic config (strict int, then :func:`check_seed`'s bounds with its message).
Seed = Annotated[int, AfterValidator(_pydantic_seed)]


# --------------------------------------------------------------------------------------------- resource bounds


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable`` of /proc/meminfo, else free physical pages)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return 8 * 2**30


def _gb(n: float) -> str:
    return f"{n / 2**30:,.1f} GB" if n >= 2**27 else f"{n / 2**20:,.1f} MB"


def check_memory(name: str, estimate: float, detail: str, *, allow_large: bool = False,
                 override: str = "--allow-large") -> None:
    """Refuse a job whose estimated memory exceeds what is available, before anything is allocated."""
    limit = available_memory()
    if estimate > limit and not allow_large:
        raise invalid(name, f"about {_gb(estimate)}", f"at most the {_gb(limit)} of available memory; {detail}; "
                      f"{override} overrides", quote=False)


def memory_warning(estimate: float, fraction: float = 0.25) -> str | None:
    """A one-line warning when a job that fits still needs more than ``fraction`` of the available memory (so a
    long-grinding run is announced, not silent)."""
    limit = available_memory()
    if estimate > fraction * limit:
        return f"warning: this job needs about {_gb(estimate)} of the {_gb(limit)} of available memory"
    return None


def machine_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def clamp_threads(name: str, value: Any, warn: Callable[[str], None] | None = None) -> int:
    """A thread count >= 1 (an int, or a string of digits from an environment variable), clamped to the machine's
    CPUs with a warning."""
    if isinstance(value, str):
        if not re.fullmatch(r"\s*[0-9]{1,9}\s*", value):
            raise invalid(name, value, "a positive integer")
        value = int(value)
    n = check_positive_int(name, value)
    cpus = machine_cpus()
    if n > cpus:
        if warn is not None:
            warn(f"warning: {name} = {n} exceeds the {cpus} CPU(s) of this machine; using {cpus}")
        n = cpus
    return n


# Field validators inside pydantic models raise ValueError("<field><SEP><expected><SEP><repr(value)>") so that the
# formatter below can name the field even when the check spans several fields (model validators).
VALIDATION_SEP = "\x1f"


def config_rule_error(field: str, expected: str, got: Any = VALIDATION_SEP) -> ValueError:
    """A ValueError for a pydantic validator that :func:`format_validation_error` turns into an ``Invalid`` line."""
    return ValueError(VALIDATION_SEP.join([field, expected, "" if got is VALIDATION_SEP else repr(got)]))


_LABELS = {"str", "int", "float", "bool", "list", "dict", "none", "bytes"}


def _is_label(part: Any, union_kinds: Iterable[str]) -> bool:
    """pydantic's internal location parts (union members such as ``constrained-float`` or ``list[str]``, tagged-union
    tags), which are not the user's field names."""
    if not isinstance(part, str):
        return False
    return part in _LABELS or "[" in part or "-" in part or part in union_kinds


def _user_path(loc: Sequence[Any], union_kinds: Iterable[str]) -> str:
    kinds = set(union_kinds)
    out = ""
    for part in loc:
        if _is_label(part, kinds):
            continue
        out += f".{part}" if out else str(part)  # list indices too: measures.1 (as pydantic and earlier messages)
    return out


def _submodels(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in get_args(annotation) for m in _submodels(a)]


def _model_at(model: type[BaseModel] | None, loc: Sequence[Any]) -> type[BaseModel] | None:
    """The config class at ``loc`` (walking fields, list indices and ``kind`` tags), or None."""
    if model is None:
        return None
    cands: list[type[BaseModel]] = [model]
    for part in loc:
        fields = [m for c in cands if isinstance(part, str) and part in c.model_fields
                  for m in _submodels(c.model_fields[part].annotation)]
        if fields:
            cands = fields
            continue
        tagged = [c for c in cands if "kind" in c.model_fields and part in get_args(c.model_fields["kind"].annotation)]
        cands = tagged or cands
    return cands[0] if len(cands) == 1 else None


_PLAIN = {"a valid dictionary": "a mapping", "a valid number": "a number", "a valid integer": "an integer",
          "a valid string": "a string", "a valid list": "a list", "a valid boolean": "true or false",
          "a finite number": "a finite number (no .inf or .nan)"}


def _expected(msg: str) -> str:
    for prefix in ("Input should be ", "input should be ", "Value error, "):
        msg = msg.removeprefix(prefix)
    msg = msg.split(", unable to parse", 1)[0].split(", got a number with a fractional part", 1)[0]
    m = re.fullmatch(r"(List|Dictionary|Value|String) should have at (least|most) (\d+) (items?|characters?).*", msg)
    if m:
        what = {"List": "a list", "Dictionary": "a mapping", "String": "a string"}.get(m.group(1), "a value")
        return f"{what} of at {m.group(2)} {m.group(3)} {m.group(4)}"
    return _PLAIN.get(msg, msg)


def format_validation_error(err: dict[str, Any], *, union_kinds: Iterable[str] = (),
                            model: type[BaseModel] | None = None, also: Sequence[str] = ()) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) as ``Invalid <field>: <value> (expected ...)``.

    The field is the user's path (``dynamics.lr``, ``measures.1``), never pydantic's union labels; the value is cut
    to 80 characters. ``union_kinds``: the accepted ``kind`` tags of a tagged union in the model, listed when the tag
    is bad or missing. ``model``: the config class, to list the allowed fields for an unknown one. ``also``: further
    expectations of the same field (the other members of a union).
    """
    kinds_list = list(union_kinds)
    raw_loc = list(err.get("loc", ()))
    loc = _user_path(raw_loc, kinds_list) or "config"
    msg = err.get("msg", "")
    kind = err.get("type", "")
    value = err.get("input")
    kinds = ", ".join(repr(k) for k in kinds_list)
    shown = short_repr(value)
    if kind == "missing":
        return f"Invalid {loc}: missing (expected this required field)"
    if kind == "extra_forbidden":
        parent = _model_at(model, [p for p in raw_loc[:-1] if not (isinstance(p, str) and "[" in p)])
        allowed = f"one of the fields {', '.join(parent.model_fields)}" if parent is not None else \
            "no such field; see the documented config fields"
        key = raw_loc[-1] if raw_loc else "?"
        parent_path = _user_path(raw_loc[:-1], kinds_list)
        name = f"{parent_path}.{key}" if parent_path else str(key)
        if not isinstance(key, str) or not key.isprintable() or len(key) > 60:
            name = f"{parent_path or 'config'} key {short_repr(key, 40)}"
        return f"Invalid {name}: {shown} (expected {allowed})"
    if kind == "value_error" and VALIDATION_SEP in msg:
        field, expected, got = msg.removeprefix("Value error, ").split(VALIDATION_SEP)
        full = ".".join(p for p in (loc, field) if p and p != "config")
        return f"Invalid {full or 'config'}: {got or shown} (expected {expected})"
    if kind == "union_tag_invalid":
        tag = value.get("kind") if isinstance(value, dict) else value
        return f"Invalid {loc}.kind: {short_repr(tag)} (expected one of {kinds})"
    if kind == "union_tag_not_found":
        return f"Invalid {loc}.kind: missing (expected one of {kinds})"
    if kind == "invalid_key":
        return f"Invalid {_user_path(raw_loc[:-1], kinds_list) or 'config'} key: {shown} (expected field names as strings)"
    if kind == "model_type" or kind == "model_attributes_type":
        return f"Invalid {loc}: {shown} (expected a mapping of fields)"
    expected = [_expected(msg)] + [e for e in (_expected(a) for a in also) if e != _expected(msg)]
    return f"Invalid {loc}: {shown} (expected {' or '.join(dict.fromkeys(expected))})"


def format_validation_errors(errors: Sequence[dict[str, Any]], *, union_kinds: Iterable[str] = (),
                             model: type[BaseModel] | None = None) -> str:
    """The first error of ``ValidationError.errors()`` as one line (the deepest one when a union failed inside a
    member); the other members of a failed union (same user path and input) add their expectation (``a number or a
    mapping``)."""
    kinds = list(union_kinds)
    first = errors[0]
    path = _user_path(first.get("loc", ()), kinds)
    # a failed union reports one error per member: the deepest one under the same field is the most specific
    # (lr: {W1: -1} -> 'dynamics.lr.W1: -1 (expected greater than 0)', not 'dynamics.lr: {...} (expected a number)')
    deeper = [e for e in errors if _user_path(e.get("loc", ()), kinds).startswith(path + ".")]
    if deeper:
        first = max(deeper, key=lambda e: len(_user_path(e.get("loc", ()), kinds)))
        path = _user_path(first.get("loc", ()), kinds)
    also = [e.get("msg", "") for e in errors if e is not first
            and _user_path(e.get("loc", ()), kinds) == path and e.get("input") is first.get("input")
            and e.get("type") not in ("missing", "extra_forbidden")]
    return format_validation_error(first, union_kinds=kinds, model=model, also=also)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise invalid(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> float:
    # numbers.Real also admits numpy scalars (np.float32(0.1), np.int64(3)), which used to be rejected with a
    # self-contradictory message such as 'Invalid lr: 0.1 (expected a finite number > 0)'
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise invalid(name, value, "a finite number >= 0" if allow_zero else "a finite number > 0")
    return float(value)


def check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)  # numpy integers too (np.int64)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise invalid(name, value, "an integer >= 0" if allow_zero else "an integer >= 1")
    return int(value)


def check_finite(name: str, tensor: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(tensor):
        raise invalid(name, type(tensor).__name__, "a torch.Tensor")
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise invalid(name, f"{bad} non-finite entries", "finite values (no NaN or inf)", quote=False)
    return tensor


def check_shape(name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    if tuple(tensor.shape[-len(shape):]) != tuple(shape) if shape else False:
        raise invalid(name, f"shape {tuple(tensor.shape)}", f"trailing shape {tuple(shape)}")
    return tensor


# ------------------------------------------------------------------------------------------------------ shapes

#: ``name -> (trailing shape, meaning)``: the shapes a model expects of its parameters, e.g.
#: ``{'W1': ((30, 15), '(n_1, n_0)')}``. Leading dimensions (ensemble members) are free but common to all entries.
ShapeSpec = dict[str, tuple[tuple[int, ...], str]]


def _expected_shape(shape: tuple[int, ...], meaning: str, leading: bool) -> str:
    dims = ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 and not leading else "")
    text = f"(..., {dims})" if leading else f"({dims})"
    return f"{text}, i.e. {meaning}" if meaning else text


def check_tensor_shape(name: str, tensor: Any, shape: tuple[int, ...], meaning: str = "", *,
                       leading: bool = True) -> torch.Tensor:
    """A tensor whose trailing dimensions are ``shape`` (any leading dimensions if ``leading``), else
    ``Invalid <name> shape: (7, 15) (expected (30, 15), i.e. (n_1, n_0))``."""
    if not torch.is_tensor(tensor):
        raise invalid(name, type(tensor).__name__, f"a torch.Tensor of shape {_expected_shape(shape, meaning, leading)}",
                      quote=False)
    got = tuple(tensor.shape)
    ok = got[-len(shape):] == tuple(shape) and len(got) >= len(shape) if shape else True
    if not ok or (not leading and len(got) != len(shape)):
        raise invalid(f"{name} shape", got, _expected_shape(shape, meaning, leading and len(got) > len(shape)))
    return tensor


def check_params_shapes(params: Any, spec: ShapeSpec, *, what: str = "params",
                        optional: Iterable[str] = ()) -> tuple[int, ...]:
    """Parameters against a model's :data:`ShapeSpec`: exactly the spec's keys (those in ``optional`` may be
    missing), each tensor's trailing shape as specified, and the same leading (ensemble) dimensions for all.
    Returns the common leading shape."""
    if not isinstance(params, Mapping):
        raise invalid(what, type(params).__name__, "a mapping of parameter names to tensors", quote=False)
    opt = set(optional)
    missing = sorted(set(spec) - set(params) - opt)
    extra = sorted(set(params) - set(spec))
    if missing or extra:
        raise invalid(what, sorted(params), "exactly the keys " + ", ".join(sorted(spec)))
    lead: tuple[int, ...] | None = None
    first = ""
    for name, (shape, meaning) in spec.items():
        if name not in params:
            continue
        t = check_tensor_shape(name, params[name], shape, meaning)
        here = tuple(t.shape[: t.dim() - len(shape)])
        if lead is None:
            lead, first = here, name
        elif here != lead:
            raise invalid(f"{name} shape", tuple(t.shape),
                          f"the leading (ensemble) dimensions {lead} of {first}, then {_expected_shape(shape, meaning, False)}")
    return lead or ()


def check_rows(name: str, tensor: Any, width: int, symbol: str) -> torch.Tensor:
    """Data with samples in rows, ``(..., N, width)``: ``Invalid x shape: (15, 4) (expected (N, 15), i.e. (N, n_0):
    samples in rows)``."""
    ok = torch.is_tensor(tensor) and tensor.dim() >= 2 and tensor.shape[-1] == width
    if not ok:
        got = tuple(tensor.shape) if torch.is_tensor(tensor) else type(tensor).__name__
        lead = "..., " if torch.is_tensor(tensor) and tensor.dim() > 2 else ""
        raise invalid(f"{name} shape", got, f"({lead}N, {width}), i.e. ({lead}N, {symbol}): samples in rows")
    return tensor
