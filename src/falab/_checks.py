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
