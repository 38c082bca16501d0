"""Drawing helpers for the studies' own figures, in the conventions of ics_cli/figures/plots.py.

Figures are drawn from compare tables (never from live models), with the norm colours of plots.py,
and written under a temporary name, then renamed into place.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..figures.style import BAND_NOTE, DPI, norm_color, savefig

__all__ = ["BAND_NOTE", "band", "figure", "norm_color", "save"]


def figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def band(ax, df: pd.DataFrame, x: str, name: str, *, color: str, label: str | None, **style) -> None:
    """The line `<name>_mean` over `x`, shaded between `<name>_ci_low` and `_ci_high` where finite."""
    if df.empty:
        return
    xs = pd.to_numeric(df[x]).to_numpy(float)
    mean = pd.to_numeric(df[f"{name}_mean"], errors="coerce").to_numpy(float)
    ax.plot(xs, mean, color=color, label=label, lw=1.8, **style)
    if f"{name}_ci_low" in df:
        lo = pd.to_numeric(df[f"{name}_ci_low"], errors="coerce").to_numpy(float)
        hi = pd.to_numeric(df[f"{name}_ci_high"], errors="coerce").to_numpy(float)
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            ax.fill_between(xs, np.where(ok, lo, np.nan), np.where(ok, hi, np.nan), color=color,
                            alpha=0.2, lw=0)


def save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    savefig(fig, path, path.suffix.lstrip("."), dpi=DPI)
    fig.clear()
    return path
