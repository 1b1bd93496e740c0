"""Benchmarks (``falab bench``): ratios measured in one run; performance is never asserted in tests."""

from __future__ import annotations

from collections.abc import Callable

from ._core import run_core


def run_all(quick: bool = False, skip_nn: bool = False, echo: Callable[[str], None] = print) -> dict[str, float]:
    """Core-engine figures, then the torch.nn layer figures when available."""
    results = run_core(quick=quick, echo=echo)
    if not skip_nn:
        try:
            from ._nn import run_nn_bench
        except ImportError as exc:
            echo(f"nn benchmarks unavailable: {exc}")
        else:
            results.update(run_nn_bench(quick=quick, echo=echo))
    return results


__all__ = ["run_all", "run_core"]
