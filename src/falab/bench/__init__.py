"""Benchmarks (``falab bench``): ratios measured in one run; performance is never asserted in tests.

The peer library BioTorch 0.0.16 is never installed by falab and never imported into falab's process: its only
artefact is an sdist whose ``setup.py`` runs at install time, and its pinned dependencies would replace this torch.
``--with-biotorch`` needs a separate virtual environment made with :func:`biotorch_setup_command` (``python -I -m pip``
with ``--require-hashes`` against ``biotorch-requirements.txt``, so the version and the sdist's sha256 are checked);
:func:`run_peer` runs ``_peer.py`` with that environment's interpreter in a subprocess and refuses any other version.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from .._checks import invalid
from ._core import run_core

BIOTORCH = "biotorch==0.0.16"
BIOTORCH_VERSION = "0.0.16"
BIOTORCH_SHA256 = "03d6764c8f39110327439e14027155d10c188849cbccc429f0d4a73441dbfccd"  # the sdist on PyPI
REQUIREMENTS = Path(__file__).with_name("biotorch-requirements.txt")
PEER_SCRIPT = Path(__file__).with_name("_peer.py")
PEER_TIMEOUT = 1800.0


def biotorch_setup_command(venv: str = ".venv-biotorch") -> str:
    """The exact shell command that makes a separate venv with torch and the pinned, hash-checked BioTorch."""
    import torch

    torch_pin = torch.__version__.split("+", 1)[0]
    py = f"{venv}/bin/python"
    return (f"python3 -m venv {venv} && {py} -I -m pip install torch=={torch_pin} && "
            f"{py} -I -m pip install --no-deps --require-hashes -r {REQUIREMENTS}")


def check_peer_python(python: str | Path, name: str = "--biotorch-python") -> Path:
    """An executable interpreter path (checked before any benchmark runs)."""
    p = Path(python)
    if str(python).strip() == "" or not p.is_file() or not os.access(p, os.X_OK):
        raise invalid(name, str(python), "the python executable of a separate venv with the pinned BioTorch (make "
                      f"it with: {biotorch_setup_command()})")
    return p


def peer_version(python: Path, name: str = "--biotorch-python") -> str:
    """The BioTorch version importable by ``python`` (isolated mode: no user site, no working directory on the path);
    refuses a missing or different version."""
    code = "import importlib.metadata as m; print(m.version('biotorch'))"
    try:
        proc = subprocess.run([str(python), "-I", "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise invalid(name, str(python), f"a working python interpreter ({exc})") from None
    version = proc.stdout.strip()
    if proc.returncode != 0 or not version:
        raise invalid(name, str(python), f"an environment with {BIOTORCH} installed (make it with: "
                      f"{biotorch_setup_command()})")
    if version != BIOTORCH_VERSION:
        raise invalid(f"biotorch version in {python}", version, f"{BIOTORCH_VERSION}, the pinned peer (another "
                      "version is not compared)")
    return version


def run_peer(python: Path, *, quick: bool = False, echo: Callable[[str], None] = print) -> dict[str, float]:
    """Time BioTorch's FA/DFA layers against native BP in the peer's own process; the ratios it reports."""
    options = json.dumps({"repeats": 10 if quick else 40, "threads": 1})
    try:
        proc = subprocess.run([str(python), "-I", str(PEER_SCRIPT), options], capture_output=True, text=True,
                              timeout=PEER_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        echo(f"biotorch peer did not run: {exc}")
        return {}
    lines = proc.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        data = {}
    if proc.returncode != 0 or "error" in data or not data:
        tail = data.get("error") or (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        echo(f"biotorch peer failed: {tail}")
        return {}
    ratios = {k: float(v) for k, v in data.items() if isinstance(v, (int, float))}
    echo("biotorch peer (separate venv): " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(ratios.items())))
    return ratios


BENCHES = ("core", "nn", "laws", "flows", "sweep")


def check_only(only: str | None) -> tuple[str, ...]:
    """The benchmark groups named by ``--only`` (comma-separated), every group when ``None``."""
    if only is None:
        return BENCHES
    names = tuple(s.strip() for s in only.split(","))
    if not names or any(s not in BENCHES for s in names):
        raise invalid("--only", only, "a comma-separated list of " + ", ".join(repr(b) for b in BENCHES))
    return names


def run_all(quick: bool = False, skip_nn: bool = False, echo: Callable[[str], None] = print,
            with_biotorch: bool = False, biotorch_python: str | Path | None = None,
            only: str | None = None) -> dict[str, float]:
    """Core-engine figures, the torch.nn layer figures, the conservation-law discovery times, the exact flows, the
    sweep throughput (:mod:`._sweep`), then BioTorch's from its own venv (``with_biotorch``); ``only`` selects groups.

    The peer's interpreter and version and ``only`` are checked before anything is timed.
    """
    groups = check_only(only)
    peer = None
    if with_biotorch and not skip_nn:
        if biotorch_python is None:
            raise invalid("--with-biotorch", "no --biotorch-python", "the python of a separate venv with the pinned "
                          f"peer; make it with: {biotorch_setup_command()}", quote=False)
        peer = check_peer_python(biotorch_python)
        peer_version(peer)
    results: dict[str, float] = run_core(quick=quick, echo=echo) if "core" in groups else {}
    if not skip_nn and "nn" in groups:
        try:
            from ._nn import run_nn_bench
        except ImportError as exc:
            echo(f"nn benchmarks unavailable: {exc}")
        else:
            results.update(run_nn_bench(quick=quick, echo=echo))
    if "laws" in groups:
        from ..laws import bench_laws  # conservation-law discovery: largest D within the budget, dense vs structured

        results.update(bench_laws(budget=10.0 if quick else 60.0, echo=echo))
    if "flows" in groups:
        from ._flows import run_flow_bench  # exact flows: ReLU events vs RK4, Jacobian route vs DOP853, ensembles

        results.update(run_flow_bench(quick=quick, echo=echo))
    if "sweep" in groups:
        from ._sweep import run_sweep_bench  # cells/s: falab sweep vs falab run processes vs in-process, batching

        results.update(run_sweep_bench(quick=quick, echo=echo))
    if peer is not None:
        results.update(run_peer(peer, quick=quick, echo=echo))
    return results


__all__ = ["BENCHES", "BIOTORCH", "BIOTORCH_SHA256", "biotorch_setup_command", "check_only", "check_peer_python", "peer_version", "run_all",
           "run_core", "run_peer"]
