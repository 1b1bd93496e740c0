"""Benchmarks (``falab bench``): ratios measured in one run; performance is never asserted in tests."""

from __future__ import annotations

from collections.abc import Callable

from ._core import run_core

BIOTORCH = "biotorch==0.0.16"


def install_biotorch(echo: Callable[[str], None] = print) -> bool:
    """Install the peer library BioTorch 0.0.16 with ``--no-deps`` (its pinned dependencies would replace this torch;
    it imports with torch alone) so that its FA/DFA layers are timed side by side. True when it can be imported."""
    import importlib
    import subprocess
    import sys

    try:
        importlib.import_module("biotorch")
        return True
    except ImportError:
        pass
    echo(f"installing {BIOTORCH} --no-deps for the side-by-side comparison")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", BIOTORCH],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        echo(f"could not install {BIOTORCH}: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
        return False
    importlib.invalidate_caches()
    return True


def run_all(quick: bool = False, skip_nn: bool = False, echo: Callable[[str], None] = print,
            with_biotorch: bool = False) -> dict[str, float]:
    """Core-engine figures, then the torch.nn layer figures (with BioTorch's when ``with_biotorch``)."""
    if with_biotorch and not skip_nn:
        install_biotorch(echo)
    results = run_core(quick=quick, echo=echo)
    if not skip_nn:
        try:
            from ._nn import run_nn_bench
        except ImportError as exc:
            echo(f"nn benchmarks unavailable: {exc}")
        else:
            results.update(run_nn_bench(quick=quick, echo=echo))
    return results


__all__ = ["install_biotorch", "run_all", "run_core"]
