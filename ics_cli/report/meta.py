"""What `ics meta` prints: the verdict of every candidate measure for final accuracy, one row each, and a
line saying how the controls came out (Rich; built from the verdict table the analysis returns)."""

from __future__ import annotations

import math

import pandas as pd
from rich.markup import escape

from ..analyse import predictors
from .terminal import Fitted

STYLE = {predictors.PREDICTS: "bold green", predictors.ON_AVERAGE: "green", predictors.PROXY: "yellow", predictors.NO: "red",
         predictors.INCONCLUSIVE: "dim", predictors.NOT_RECORDED: "dim", predictors.FAILED: "bold red"}


def _num(v, digits: int = 2) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return ""
    return "" if not math.isfinite(v) else f"{v:.{digits}f}"


def verdict_table(verdicts: pd.DataFrame, outcome: str = "final_acc") -> Fitted:
    """One row per candidate for `outcome`: role, τ across norms [interval], upper-quartile sign error, verdict
    (and, when the controls failed, the verdict it would have had), and the sensitivity windows."""
    rows = verdicts[verdicts["outcome"] == outcome]
    window = float(rows["window"].iloc[0]) if len(rows) else predictors.WINDOW
    subset = str(rows["subset"].iloc[0]) if "subset" in rows and len(rows) else "all runs"
    table = Fitted(title=f"Predictors of {outcome}: measures from the first {window:.0%} of each run, "
                         f"decided on {subset}")
    for col, numeric in (("measure", False), ("role", False), ("tau across norms", True),
                         ("sign error q75", True), ("verdict", False), ("other windows", False)):
        table.add_column(col, numeric=numeric)
    for r in rows.to_dict("records"):
        tau = _num(r["tau_norm"])
        if tau and _num(r["tau_norm_ci_low"]):
            tau += f" [{_num(r['tau_norm_ci_low'])}, {_num(r['tau_norm_ci_high'])}]"
        v, raw = str(r["verdict"]), str(r["unchecked_verdict"])
        shown = f"[{STYLE.get(v, '')}]{escape(v)}[/]" + (f" (else: {escape(raw)})" if v != raw else "")
        table.add_row(escape(str(r["measure"])), str(r["role"]), tau, _num(r.get("sign_error_q75", r.get("sign_error_worst"))), shown,
                      escape(str(r["sensitivity"]) if isinstance(r["sensitivity"], str) else ""))
    return table


def controls_line(result: predictors.Result) -> str:
    """One sentence: the controls came out as expected, or which did not (every verdict then failed)."""
    if result.machinery:
        return f"controls: machinery failed ({result.machinery}); every verdict is '{predictors.FAILED}'"
    return "controls: as expected (the positive control predicts, the shuffled control does not)"
