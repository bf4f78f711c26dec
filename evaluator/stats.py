"""The statistics every "better than DPO" claim rests on: paired intervals and rank correlation.

- `paired`: the mean of per-seed paired differences (candidate minus DPO under the same seed and
  data) with a two-sided 95% Student-t interval and n. One seed gives a mean and no interval:
  nothing is significant on one seed.
- `spearman`: the rank correlation of two score lists (average ranks for ties) with a 95%
  interval from Fisher's z transform (standard error 1.03 / sqrt(n - 3), the Bonett-Wright value
  for Spearman's rho), used to show whether selection's proxy predicts held-out results.

The t quantiles are tabulated for small n (where they matter) and from the Cornish-Fisher series
beyond, so no SciPy is needed. This module knows nothing of stages, tasks or the archive.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Two-sided 95% quantiles t_{0.975, df} for df = 1..30.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959963984540054

# Per-seed differences are rounded to this many decimals: the metrics are means over a few hundred
# samples (resolution ~1e-3), so digits past 1e-6 are float noise, and noise must not make two
# bit-different runs of one loss "significantly" different.
RESOLUTION_DIGITS = 6


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975  # Cornish-Fisher expansion in 1/df; below 1e-4 off from df = 31 on
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


@dataclass(frozen=True)
class Paired:
    """Mean of paired differences with its 95% interval; `low`/`high` are None below 2 seeds."""

    mean: float | None
    low: float | None
    high: float | None
    n: int
    sd: float  # sample standard deviation of the differences (0 below 2)

    @property
    def above_zero(self) -> bool:
        """Significantly better than the yardstick (interval strictly above 0)."""
        return self.low is not None and self.low > 0

    @property
    def below_zero(self) -> bool:
        """Significantly worse (interval strictly below 0)."""
        return self.high is not None and self.high < 0

    @property
    def rank_key(self) -> tuple[int, float]:
        """What selection ranks by, best last: the interval's low end; below every candidate
        with an interval, one with a single seed by its mean (one seed is not evidence enough to
        beat an interval), then one with none."""
        if self.low is not None:
            return 2, self.low
        if self.mean is not None:
            return 1, self.mean
        return 0, 0.0


EMPTY = Paired(mean=None, low=None, high=None, n=0, sd=0.0)


def paired(differences: Sequence[float | None]) -> Paired:
    """The paired summary of per-seed differences (None and non-finite values are skipped)."""
    values = [
        round(v, RESOLUTION_DIGITS) for v in differences if v is not None and math.isfinite(v)
    ]
    if not values:
        return EMPTY
    mean = statistics.fmean(values)
    if len(values) == 1:
        return Paired(mean=mean, low=None, high=None, n=1, sd=0.0)
    sd = statistics.stdev(values)
    half = t975(len(values) - 1) * sd / math.sqrt(len(values))
    return Paired(mean=mean, low=mean - half, high=mean + half, n=len(values), sd=sd)


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho over n pairs with its 95% interval (None where n is too small)."""

    rho: float | None
    low: float | None
    high: float | None
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {"rho": self.rho, "low": self.low, "high": self.high, "n": self.n}


def spearman(xs: Sequence[float], ys: Sequence[float]) -> Correlation:
    """Spearman's rank correlation of paired lists; rho needs n >= 3 values that vary, the
    interval n >= 4."""
    if len(xs) != len(ys):
        raise ValueError(f"spearman needs paired lists; got {len(xs)} and {len(ys)} values")
    n = len(xs)
    if n < 3:
        return Correlation(rho=None, low=None, high=None, n=n)
    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:  # one list is constant: no ranking to correlate
        return Correlation(rho=None, low=None, high=None, n=n)
    rho = max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))
    if n < 4 or abs(rho) == 1.0:
        return Correlation(rho=rho, low=None if n < 4 else rho, high=None if n < 4 else rho, n=n)
    z, se = math.atanh(rho), 1.03 / math.sqrt(n - 3)
    return Correlation(rho=rho, low=math.tanh(z - _Z975 * se), high=math.tanh(z + _Z975 * se), n=n)
