r"""Uncertainty for stochastic claims: Wilson intervals for proportions, percentile-bootstrap intervals for means and
quantiles, and least-squares slopes with Student-t intervals (for scaling laws such as O(eps sqrt k)).

Every function is deterministic: the bootstrap draws from its own seeded generator, so a rerun reports the same
interval bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .._checks import invalid


@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided confidence interval ``[low, high]`` at ``level`` from ``n`` observations."""

    estimate: float
    low: float
    high: float
    level: float
    n: int
    method: str

    def as_dict(self) -> dict[str, float | int | str]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "level": self.level, "n": self.n,
                "method": self.method}


def _check_level(level: float) -> None:
    if not (0.0 < level < 1.0):
        raise invalid("level", level, "a confidence level in (0, 1)")


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Interval:
    r"""Wilson score interval for a binomial proportion ``successes / n``:

    .. math:: \frac{\hat p + z^2/2n \pm z\sqrt{\hat p(1-\hat p)/n + z^2/4n^2}}{1 + z^2/n}

    (Wilson 1927). Unlike the normal interval it stays inside [0, 1] and is informative at 0 and n successes.

    >>> iv = wilson_interval(20, 20)
    >>> round(iv.low, 4), iv.high
    (0.8389, 1.0)
    """
    _check_level(level)
    if n < 1 or not (0 <= successes <= n):
        raise invalid("successes/n", f"{successes}/{n}", "0 <= successes <= n and n >= 1")
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p, low, high, level, n, "wilson")


def bootstrap_interval(values: Sequence[float] | np.ndarray, statistic: str | float = "mean", level: float = 0.95,
                       resamples: int = 4000, seed: int = 0) -> Interval:
    """Percentile-bootstrap interval of the mean (``statistic='mean'``) or of the ``q``-quantile (a float ``q``) of
    ``values``. With one observation the interval is the point itself and ``n = 1`` says so.

    >>> iv = bootstrap_interval([1.0, 2.0, 3.0, 4.0])
    >>> iv.estimate, iv.low <= 2.5 <= iv.high
    (2.5, True)
    """
    _check_level(level)
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0 or not np.isfinite(x).all():
        raise invalid("values", f"{x.size} values, {int((~np.isfinite(x)).sum())} non-finite", "finite values",
                      quote=False)

    def stat(a: np.ndarray, axis: int | None = None) -> np.ndarray:
        if statistic == "mean":
            return np.mean(a, axis=axis)
        return np.quantile(a, float(statistic), axis=axis)

    if isinstance(statistic, str) and statistic != "mean":
        raise invalid("statistic", statistic, "'mean' or a quantile in [0, 1]")
    est = float(stat(x))
    if x.size == 1:
        return Interval(est, est, est, level, 1, "bootstrap")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(resamples, x.size))
    boot = stat(x[idx], axis=1)
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return Interval(est, float(low), float(high), level, int(x.size), "bootstrap")


def fitted_slope(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *, loglog: bool = True,
                 level: float = 0.95) -> Interval:
    r"""Least-squares slope ``s`` of ``y = a + s x`` (of ``log y = a + s log x`` when ``loglog``) with the Student-t
    interval ``s +- t_{n-2} SE(s)``.

    >>> iv = fitted_slope([1, 2, 4, 8], [3, 6, 12, 24])
    >>> round(iv.estimate, 12), round(iv.high - iv.low, 12)
    (1.0, 0.0)
    """
    _check_level(level)
    xa, ya = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if xa.size != ya.size or xa.size < 3:
        raise invalid("points", f"{xa.size} x, {ya.size} y", "as many x as y, at least 3", quote=False)
    if loglog:
        if (xa <= 0).any() or (ya <= 0).any():
            raise invalid("points", "non-positive values", "positive x and y for a log-log fit", quote=False)
        xa, ya = np.log(xa), np.log(ya)
    fit = stats.linregress(xa, ya)
    t = float(stats.t.ppf(0.5 + level / 2, xa.size - 2))
    half = t * float(fit.stderr)
    return Interval(float(fit.slope), float(fit.slope) - half, float(fit.slope) + half, level, int(xa.size),
                    "ols-t (log-log)" if loglog else "ols-t")
