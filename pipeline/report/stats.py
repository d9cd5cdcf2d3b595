"""Mean, sample standard deviation and Student-t 95% confidence interval over seeds (no scipy)."""

from __future__ import annotations

import math
from dataclasses import dataclass

# t(0.975, df) for df = 1..30 (two-sided 95%), to 4 decimals.
T_975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
         2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)
Z_975 = 1.959963984540054  # the normal quantile, the limit for df -> infinity


def t_quantile(df: int) -> float:
    """t(0.975, df): the table for df <= 30, the Cornish-Fisher expansion in 1/df beyond (error < 1e-4).

    Args:
        df: degrees of freedom, at least 1.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T_975):
        return T_975[df - 1]
    z = Z_975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


@dataclass(frozen=True)
class Summary:
    """A metric over seeds; std and ci95 are None for a single seed (no spread can be estimated)."""

    mean: float
    std: float | None  # sample standard deviation (ddof=1)
    ci95: float | None  # half-width of the 95% Student-t interval: t(0.975, n-1) * std / sqrt(n)
    n: int  # number of seeds

    @property
    def interval(self) -> tuple[float, float] | None:
        """(low, high) of the 95% confidence interval of the mean."""
        return None if self.ci95 is None else (self.mean - self.ci95, self.mean + self.ci95)


def summarise(values: list[float]) -> Summary:
    """Mean, sample std and 95% CI half-width of `values` (one per seed).

    Args:
        values: at least one number.
    """
    n = len(values)
    if n == 0:
        raise ValueError("cannot summarise no values")
    mean = math.fsum(values) / n
    if n == 1:
        return Summary(mean, None, None, 1)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return Summary(mean, std, t_quantile(n - 1) * std / math.sqrt(n), n)
