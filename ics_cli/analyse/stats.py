"""Statistics over seeds: the t interval of a mean (scipy's t), and per-group means and intervals.

`<x>_mean, <x>_ci_low, <x>_ci_high`: mean over seeds and the 95% t interval mean ± t(0.975, n-1)·s/√n
(s with ddof=1). Blank bounds when n = 1; non-finite values are left out of the column they are in.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats


CONFIDENCE = 0.95


def t_crit(n: int, confidence: float = CONFIDENCE) -> float:
    """t((1 + confidence)/2, n − 1), the half-width factor of a t interval over n values; NaN for n < 2."""
    if n < 2:
        return math.nan
    return float(stats.t.ppf(0.5 + confidence / 2.0, int(n) - 1))


def t_crits(n: pd.Series, confidence: float = CONFIDENCE) -> np.ndarray:
    """t_crit of every count in `n` at once (NaN where n < 2)."""
    n = np.asarray(n, dtype=float)
    return stats.t.ppf(0.5 + confidence / 2.0, np.where(n >= 2, n - 1, np.nan))


def mean_ci(values, confidence: float = CONFIDENCE) -> tuple[float, float, float, int]:
    """(mean, ci_low, ci_high, n) over the finite values: mean ± t((1+c)/2, n-1)·s/√n, s with ddof=1.

    n = 0 gives all-NaN; n = 1 gives the value with NaN bounds.
    """
    x = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, math.nan, 1
    half = t_crit(n, confidence) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def finite(frame: pd.DataFrame | pd.Series):
    """Numeric copy with every non-finite value (inf, -inf, blank) turned into NaN."""
    num = frame.apply(pd.to_numeric, errors="coerce") if isinstance(frame, pd.DataFrame) \
        else pd.to_numeric(frame, errors="coerce")
    return num.astype(float).where(np.isfinite(num.astype(float)))


def aggregate(long: pd.DataFrame, by: list[str], values, *, ci: bool = True) -> pd.DataFrame:
    """Group `long` (one row per run and group) by `by`; mean (and CI) of each value over the rows.

    `n_seeds` is the number of rows (runs) in the group; each value column uses only its finite values.
    """
    values = list(values)
    if long.empty:
        cols = by + ["n_seeds"] + [f"{v}_{s}" for v in values
                                   for s in (("mean", "ci_low", "ci_high") if ci else ("mean",))]
        return pd.DataFrame(columns=cols)
    x = finite(long[values])
    x = pd.concat([long[by].reset_index(drop=True), x.reset_index(drop=True)], axis=1)
    g = x.groupby(by, dropna=False, sort=False)
    out = g.size().rename("n_seeds").to_frame()
    mean, std, n = g[values].mean(), g[values].std(ddof=1), g[values].count()
    for v in values:
        out[f"{v}_mean"] = mean[v]
        if ci:
            half = t_crits(n[v]) * std[v] / np.sqrt(n[v])
            out[f"{v}_ci_low"] = mean[v] - half
            out[f"{v}_ci_high"] = mean[v] + half
    return out.reset_index()
