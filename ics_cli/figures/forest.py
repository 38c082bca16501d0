"""The forest plot of a predictor analysis (`ics meta`), drawn from its verdicts.csv only, and the output
set that holds it: predictors.csv, verdicts.csv, predictor_runs.csv and one figure per outcome.

One row per candidate (measures, then confounders, then controls). Left panel: the granulated Kendall τ
across norms at fixed model and lr on the subset the verdict is decided on, with its seed-bootstrap
interval, the 0 line and the ±TAU_MIN band the verdict reads. Right panel: the mean and the upper
quartile of the noise-filtered sign error over environments, against the 0.5 coin-flip line. Colour and marker say the role; each row's label holds its verdict.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ..analyse import predictors
from ..store import files, staging
from .style import new_figure, save_figure, suptitle

ROLE_STYLE = {predictors.MEASURE: ("#1f77b4", "o"), predictors.CONFOUNDER: ("#ff7f0e", "s"),
              predictors.CONTROL: ("#2ca02c", "D")}
OUTCOME_LABEL = {"final_acc": "final test accuracy (diverged = chance)",
                 "steps_to_target": "steps to the target accuracy", "diverged": "divergence"}
TABLES = ("predictors", "verdicts", "predictor_runs")


def name(outcome: str) -> str:
    return f"forest_{outcome}"


def draw(verdicts: pd.DataFrame, folder: Path, fmt: str = "png") -> list[Path]:
    """One forest plot per outcome that some candidate was recorded for; the paths written."""
    paths = []
    for outcome, rows in verdicts.groupby("outcome", sort=False):
        recorded = pd.to_numeric(rows["n_runs"], errors="coerce") > 0
        if not recorded.any():
            continue
        absent = ", ".join(rows.loc[~recorded, "measure"].astype(str))
        paths.append(_forest(rows[recorded].reset_index(drop=True), str(outcome), absent, folder, fmt))
    return paths


def _forest(rows: pd.DataFrame, outcome: str, absent: str, folder: Path, fmt: str) -> Path:
    n = len(rows)
    fig = new_figure(11, 1.6 + 0.34 * n)
    left, right = fig.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    y = np.arange(n)[::-1]
    num = lambda c: pd.to_numeric(rows[c], errors="coerce").to_numpy(float)   # noqa: E731
    tau, lo, hi = num("tau_norm"), num("tau_norm_ci_low"), num("tau_norm_ci_high")
    mean, worst = num("sign_error_mean"), num("sign_error_q75") if "sign_error_q75" in rows else num("sign_error_worst")
    for i, role in enumerate(rows["role"]):
        color, marker = ROLE_STYLE.get(role, ("0.4", "o"))
        if np.isfinite(lo[i]) and np.isfinite(hi[i]):
            left.plot([lo[i], hi[i]], [y[i], y[i]], color=color, lw=2)
        left.plot([tau[i]], [y[i]], marker=marker, color=color, ms=7, ls="none")
        right.plot([mean[i]], [y[i]], marker=marker, color=color, ms=7, ls="none")
        right.plot([worst[i]], [y[i]], marker=marker, mfc="none", mec=color, ms=11, ls="none")
    left.axvline(0, color="0.3", lw=1)
    left.axvspan(-predictors.TAU_MIN, predictors.TAU_MIN, color="0.9", zorder=0)
    left.set_xlim(-1.05, 1.05)
    subset = str(rows["subset"].iloc[0]) if "subset" in rows and isinstance(rows["subset"].iloc[0], str) else "all runs"
    left.set_xlabel(f"granulated Kendall τ across norms (at fixed model and lr; {subset})\nbar: 95% seed-bootstrap "
                    f"interval; grey: |τ| < {predictors.TAU_MIN}", fontsize="small")
    left.set_yticks(y, [f"{m}  [{v}]" for m, v in zip(rows["measure"], rows["unchecked_verdict"])],
                    fontsize="small")
    right.axvline(predictors.SIGN_ERROR_MAX, color="#d62728", lw=1, ls="--")
    right.set_xlim(-0.03, 1.03)
    right.set_xlabel("noise-filtered sign error over norm environments\nfilled: mean; ring: upper quartile; "
                     "dashed: 0.5, a coin flip", fontsize="small")
    handles = [Line2D([], [], color=c, marker=m, ls="none", label=role) for role, (c, m) in ROLE_STYLE.items()]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, frameon=False)
    window = float(rows["window"].iloc[0])
    failed = (rows["verdict"] == predictors.FAILED).any()
    suptitle(fig, f"Which early measure predicts {OUTCOME_LABEL.get(outcome, outcome)}?",
             f"measures from the first {window:.0%} of each run's steps; labels: the verdict"
             + (" before the controls' check, which FAILED: every verdict is 'machinery failed'" if failed else ""),
             *([f"not recorded: {absent}"] if absent else []), fontsize="medium")
    return save_figure(fig, folder, name(outcome), fmt)


def owns(file_name: str) -> bool:
    """Whether a file of an `ics meta` folder belongs to its output set (a rerun replaces it)."""
    stem, _, _ = file_name.rpartition(".")
    return "/" not in file_name and (stem in TABLES or stem.startswith("forest_"))


def save(result: predictors.Result, dest: Path, fmt: str = "png") -> list[Path]:
    """predictors.csv, verdicts.csv, predictor_runs.csv and the forest plots, written into `dest` as one
    output set (staged beside it, moved into place whole); the figures are drawn from verdicts.csv."""
    tables = {"predictors": result.stats, "verdicts": result.verdicts, "predictor_runs": result.runs}
    with staging.staged(dest, owns) as stage:
        paths = files.write_tables(tables, stage)
        paths += draw(files.read_csv(stage / "verdicts.csv"), stage, fmt)
        names = [p.name for p in paths]
    return [Path(dest) / n for n in names]
