"""Sharpness × lr of a run, as a study reports it beside a comparison of two networks at one lr.

Near 2 a network trained by plain gradient steps sits at the edge of stability (Cohen et al. 2021):
its loss is then set by the step size's own dynamics, not by the normalization, so a comparison at
one lr says which regime each network was in.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def sharpness_lr(run) -> float:
    """Mean sharpness × lr over the run's probed steps in its second half (NaN if none recorded)."""
    t = run.table("sharpness")
    if t is None or not len(t) or "sharpness_lr" not in t:
        return math.nan
    step = pd.to_numeric(t["step"], errors="coerce")
    done = float((run.summary or {}).get("steps_done") or step.max())
    v = pd.to_numeric(t[step >= done / 2]["sharpness_lr"], errors="coerce")
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan


def mean_text(runs) -> str:
    """The seed mean of sharpness_lr over `runs`, for a sentence ('not recorded' without any)."""
    v = [x for x in (sharpness_lr(r) for r in runs) if math.isfinite(x)]
    return f"{np.mean(v):.3g}" if v else "not recorded"
