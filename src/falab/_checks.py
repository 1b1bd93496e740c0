"""Validators with one message format: ``Invalid <name>: <value> (expected ...)``.

Every user-facing check in falab goes through these helpers so that the CLI can print the message as one line and
exit with code 2 without a traceback.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import torch


class FalabInputError(ValueError):
    """A user mistake: bad config, bad argument or bad data. The message is one line and names the field."""


def invalid(name: str, value: Any, expected: str, *, quote: bool = True) -> FalabInputError:
    """Build the uniform error ``Invalid <name>: <value> (expected <expected>)``; string values are quoted unless
    ``quote=False`` (for descriptions such as ``'3 non-finite entries'``)."""
    shown = repr(value) if (isinstance(value, str) and quote) else str(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return FalabInputError(f"Invalid {name}: {shown} (expected {expected})")


# Field validators inside pydantic models raise ValueError("<field><SEP><expected><SEP><repr(value)>") so that the
# formatter below can name the field even when the check spans several fields (model validators).
VALIDATION_SEP = "\x1f"


def config_rule_error(field: str, expected: str, got: Any = VALIDATION_SEP) -> ValueError:
    """A ValueError for a pydantic validator that :func:`format_validation_error` turns into an ``Invalid`` line."""
    return ValueError(VALIDATION_SEP.join([field, expected, "" if got is VALIDATION_SEP else repr(got)]))


def format_validation_error(err: dict[str, Any], *, union_kinds: Iterable[str] = ()) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) as ``Invalid <field>: <value> (expected ...)``.

    ``union_kinds``: the accepted ``kind`` tags of a tagged union in the model, listed when the tag is bad or missing.
    """
    loc = ".".join(str(p) for p in err.get("loc", ()) if not str(p).startswith(("function-", "tagged-union")))
    loc = loc or "config"
    msg = err.get("msg", "")
    kind = err.get("type", "")
    value = err.get("input")
    kinds = ", ".join(repr(k) for k in union_kinds)
    if kind == "missing":
        return f"Invalid {loc}: missing (expected this required field)"
    if kind == "extra_forbidden":
        return f"Invalid {loc}: {value!r} (expected no such field; see the documented config fields)"
    if kind == "value_error" and VALIDATION_SEP in msg:
        field, expected, got = msg.removeprefix("Value error, ").split(VALIDATION_SEP)
        full = ".".join(p for p in (loc, field) if p and p != "config")
        return f"Invalid {full or 'config'}: {got or repr(value)} (expected {expected})"
    if kind == "union_tag_invalid":
        return f"Invalid {loc}.kind: {value.get('kind') if isinstance(value, dict) else value!r} (expected one of {kinds})"
    if kind == "union_tag_not_found":
        return f"Invalid {loc}.kind: missing (expected one of {kinds})"
    expected = msg.removeprefix("Input should be ").removeprefix("input should be ")
    shown = repr(value) if isinstance(value, str) else value
    if isinstance(value, float) and not math.isfinite(value):
        shown = value
    return f"Invalid {loc}: {shown} (expected {expected})"


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
