"""Timings of law discovery (issue 15, "Benchmark"): structured vs dense brute force on small networks, and the
largest D handled within a time budget on one core.

``falab.laws.bench_laws()`` returns the figures as a flat dict; it is not wired into ``falab bench`` (another
module's file), which can call it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ..models import MLP
from ..rules import FeedbackAlignment
from ._discover import discover, span_distance

LADDER = ((3, 4, 2), (4, 6, 3), (5, 8, 4), (6, 6, 6, 2), (8, 8, 8, 2), (10, 10, 10, 2), (12, 12, 12, 2))


def bench_laws(*, budget: float = 60.0, activation: str = "relu",
               echo: Callable[[str], None] = lambda s: None) -> dict[str, float]:
    """Time ``discover`` (discovery + certificate, no flow check) for FA on a ladder of MLPs until one exceeds
    ``budget`` seconds, and compare the structured and dense routes on the smallest net (spans must agree)."""
    torch.set_num_threads(1)
    discover(MLP((2, 2, 1), "identity"), FeedbackAlignment(), verify_flow=False)  # one-time torch.func warm-up
    out: dict[str, float] = {}
    for act in ("identity", activation):
        model = MLP(LADDER[0], act)
        t = time.perf_counter()
        s = discover(model, FeedbackAlignment(), verify_flow=False, readable=False)
        ts = time.perf_counter() - t
        t = time.perf_counter()
        d = discover(model, FeedbackAlignment(), structured=False, verify_flow=False, readable=False)
        td = time.perf_counter() - t
        dist = span_distance(s.basis, d.basis)
        out.update({f"laws_{act}_D{s.D}_structured_seconds": ts, f"laws_{act}_D{s.D}_dense_seconds": td,
                    f"laws_{act}_D{s.D}_span_distance": dist})
        echo(f"FA {act} {LADDER[0]} D={s.D}: structured {ts:.2f} s, dense {td:.2f} s, span distance {dist:.1e}")
    largest = 0
    for widths in LADDER:
        t = time.perf_counter()
        r = discover(MLP(widths, activation), FeedbackAlignment(), verify_flow=False, readable=False)
        sec = time.perf_counter() - t
        echo(f"FA {activation} {widths} D={r.D}: {sec:.1f} s, {r.n_laws} laws, {r.certificate.summary()}")
        out[f"laws_{activation}_D{r.D}_seconds"] = sec
        if sec > budget:
            break
        largest = r.D
    out[f"laws_{activation}_largest_D_within_{budget:g}s"] = float(largest)
    return out
