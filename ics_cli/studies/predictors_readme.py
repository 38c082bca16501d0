"""results/predictors/README.md, generated from the study's tables (no number typed by hand): the protocol,
the pilot and the seeds it chose, every verdict with its statistics and its replication, the controls,
the forest plots, the threshold history, the red-team review and a plain-words finding."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..analyse import predictors as rules
from . import predictors as protocol
from .claims import Change
from .reviews import REVIEWS

HISTORY = (
    Change(("grid",), "4e55f98", "2000 → 500 steps; deep and residual MLPs depth 20 → 10; CNN width 32 → 8; "
           "lrs 0.001 … 31.6 (10 half decades) → 0.01 … 31.6 (8); pilot lrs 5 decades → the grid's two ends and "
           "its middle; second view every 10/10/20 steps with 20 Lanczos products → every 5/5/10 with 10; "
           "seeds sized by the pilot against the budget; noisy batch norm compared inside its (model, lr) cell "
           "(`norm_variant`), not in a cell of its own",
           "the first protocol needed about 5 hours for the deciding grid alone against the issue's 60 minutes "
           "for the whole study; changed before any run of the protocol", False),
)


def _num(v, digits: int = 2) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "–"
    return "–" if not math.isfinite(v) else f"{v:.{digits}f}"


def _cell(text) -> str:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return "–"
    return str(text).replace("|", "\\|").replace("\n", " ")


def _interval(r: dict, name: str) -> str:
    point = _num(r.get(name))
    lo, hi = _num(r.get(f"{name}_ci_low")), _num(r.get(f"{name}_ci_high"))
    return point if lo == "–" else f"{point} [{lo}, {hi}]"


def _minutes(seconds) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f} min"


def verdict_rows(verdicts: pd.DataFrame, outcome: str) -> list[str]:
    rows = verdicts[verdicts["outcome"] == outcome]
    lines = ["| measure | role | τ across norms [95%] | strongest confounder (|τ|) | CMI − null (p) | "
             "sign error mean / worst | verdict | replication |", "|---|---|---|---|---|---|---|---|"]
    for r in rows.to_dict("records"):
        rival = f"{r['rival']} ({_num(r['rival_tau'])})" if isinstance(r.get("rival"), str) and r["rival"] else "–"
        cmi = f"{_num(r['cmi_excess'], 3)} ({_num(r['cmi_p'], 3)})"
        sign = f"{_num(r['sign_error_mean'])} / {_num(r['sign_error_worst'])}"
        again = r.get("replicated", "")
        again = "–" if not isinstance(again, str) or not again else (
            "held" if again == r["verdict"] else f"**{again}**")
        lines.append(f"| `{r['measure']}` | {r['role']} | {_interval(r, 'tau_norm')} | {_cell(rival)} | {cmi} | "
                     f"{sign} | {r['verdict']} | {again} |")
    return lines


def finding(verdicts: pd.DataFrame, machinery: str | None) -> str:
    """The plain-words answer for the primary outcome, derived from the verdict table."""
    rows = verdicts[verdicts["outcome"] == "final_acc"]
    if machinery:
        return (f"The controls did not come out as expected ({machinery}): the machinery failed, so this "
                "grid says nothing about the measures.")
    measures = rows[rows["role"] == rules.MEASURE]
    by = {v: list(measures.loc[measures["verdict"] == v, "measure"]) for v in rules.VERDICTS}
    held = rows["held"] if "held" in rows else pd.Series(True, index=rows.index)
    parts = []
    if by[rules.PREDICTS]:
        names = ", ".join(f"`{m}`" for m in by[rules.PREDICTS])
        parts.append(f"Early {names} predicted which norm trains better at a fixed lr, beyond the lr and the "
                     "plain early signals")
    else:
        parts.append("No measure of internal covariate shift taken in the first 10% of training predicted which "
                     "norm reaches the better final accuracy at a fixed lr beyond the lr and the plain early "
                     "signals (early loss and accuracy, step size, gradient norm)")
    for verdict, words in ((rules.PROXY, "ranked it only as a proxy of a confounder"),
                           (rules.NO, "did not predict it"),
                           (rules.INCONCLUSIVE, "were inconclusive (intervals too wide at these seeds)"),
                           (rules.NOT_RECORDED, "were not recorded")):
        if by[verdict]:
            parts.append(f"{', '.join(f'`{m}`' for m in by[verdict])} {words}")
    controls = rows[rows["role"] == rules.CONTROL].set_index("measure")["verdict"]
    positive = controls.get("early_train_loss", "–")
    text = "; ".join(parts) + (f". The positive control (early training loss) came out \"{positive}\" and the "
                               f"shuffled control \"{controls.get('shuffled', '–')}\".")
    if "held" in rows:
        changed = rows.loc[~held.astype(bool), "measure"].tolist()
        text += (" Every final-accuracy verdict held on the replication seeds." if not changed else
                 f" On the replication seeds {len(changed)} final-accuracy verdict(s) changed "
                 f"({', '.join(f'`{m}`' for m in changed)}): those are not replicated.")
    return text


def render(out: Path, result: rules.Result, verdicts: pd.DataFrame, meta: dict, check: pd.DataFrame | None) -> str:
    phases, sizing = meta.get("phases", {}), meta.get("sizing") or {}
    seeds = meta.get("seeds") or []
    n_runs = len(result.runs)
    lines = [f"# {protocol.NAME}: which measure of internal covariate shift predicts training?", "",
             "Generated by `ics reproduce predictors` (studies/predictors.py, studies/predictors_run.py); every "
             "number below is read from the tables in this folder. The analysis is `ics meta` "
             "(docs/metrics.md, Part 3): rerun it on `runs/` with `ics meta results/predictors/runs`.", "",
             "## Answer", "", finding(verdicts, result.machinery), "",
             "## What ran", "",
             "| phase | seeds | wall time (2 processes) |", "|---|---|---|",
             f"| pilot | {', '.join(map(str, protocol.plan(pilot=True)['sigmoid-mlp'].seeds))} | "
             f"{_minutes(phases.get('pilot_s'))} |",
             f"| deciding grid ({n_runs} finished runs) | {', '.join(map(str, seeds))} | "
             f"{_minutes(phases.get('deciding_s'))} |",
             f"| replication | {', '.join(str(protocol.REPLICATION_SEEDS[0] + i) for i in range(len(seeds)))} | "
             f"{_minutes(phases.get('replication_s'))} |",
             f"| whole study from empty folders | | {_minutes(meta.get('from_empty_s'))} "
             f"(budget {protocol.BUDGET_S // 60} min, {meta.get('cpus')} CPUs) |", "",
             "Dataset: mnist-5k (the embedded 4,000 training and 1,000 test digits), plain SGD, batch 60.", ""]
    if sizing:
        lines += ["## Pilot: the seeds it chose", "",
                  f"Median width of the {sizing['measures']} candidate measures' τ-across-norms intervals at the "
                  f"pilot's three seeds: {_num(sizing['median_width'])} (decidable: ≤ {_num(sizing['target_width'])}). "
                  f"Seeds wanted {sizing['wanted']}, affordable {sizing['affordable']} "
                  f"({_num(sizing['seconds_per_seed'] / 60, 1)} min per seed of the deciding grid): "
                  f"{sizing['seeds']} deciding seeds. {_cell(sizing['why'])}.", ""]
    if check is not None and len(check):
        bad = check[~(check["low_end_ok"] & check["high_end_ok"])]
        lines += ["Grid ends (pilot, `pilot/grid_check.csv`): "
                  + ("every model and norm trains worse at the lowest lr than at its best and diverges or trains "
                     "worse at the highest." if bad.empty else
                     "the grid does not reach an end for " + "; ".join(
                         f"{r['model']} {r['norm']} ({'low end trains best' if not r['low_end_ok'] else ''}"
                         f"{' and ' if not r['low_end_ok'] and not r['high_end_ok'] else ''}"
                         f"{'high end trains best' if not r['high_end_ok'] else ''})" for r in bad.to_dict("records"))
                     + ": their lr confounder does not span its whole effect (not extended within this budget)."),
                  ""]
    lines += ["## Verdicts: final test accuracy (primary)", "",
              "τ across norms: granulated Kendall τ between the measure and the outcome over the norms of each "
              "(model, lr) cell, averaged over cells, with its 95% seed-bootstrap interval. A sign error is the "
              "share of a cell's distinguishable pairs the measure orders the wrong way (0.5: a coin). "
              "Replication: the verdict on the replication seeds (**bold** where it differs).", "",
              *verdict_rows(verdicts, "final_acc"), "",
              f"Controls: {'machinery failed: ' + result.machinery if result.machinery else 'as expected'}. "
              f"Edge of stability: {_cell(verdicts['edge_split'].iloc[0]) if len(verdicts) else '–'}.", "",
              "![forest plot, final accuracy](forest_final_acc.png)", ""]
    for outcome in rules.OUTCOMES[1:]:
        lines += [f"## Verdicts: {outcome} (secondary)", "", *verdict_rows(verdicts, outcome), "",
                  f"![forest plot, {outcome}](forest_{outcome}.png)", ""]
    lines += ["## Protocol (fixed before the runs)", "", protocol.PROTOCOL, "",
              "## Threshold history", "",
              "| what | commit | what changed | why | after data? |", "|---|---|---|---|---|",
              *[f"| {', '.join(c.claims)} | {c.commit} | {_cell(c.what)} | {_cell(c.why)} | "
                f"{'yes' if c.after_data else 'no'} |" for c in HISTORY], ""]
    review = REVIEWS.get(protocol.NAME)
    lines += ["## Red-team review", "", review.strip() if review else
              "Not yet reviewed: no verdict of this folder has been through the red team.", ""]
    lines += ["## Files", "",
              "`verdicts.csv` (one row per candidate and outcome; `replicated`, `held`), `predictors.csv` (every "
              "statistic, per window, subset and environment), `predictor_runs.csv` (one row per run: outcomes "
              "and measures), `forest_<outcome>.png`; `pilot/` and `replication/` hold the same for their seeds "
              "(`pilot/grid_check.csv`: accuracy per lr per model and norm). The run folders (`runs/`, "
              "`pilot/runs/`, `replication/runs/`) are not committed: `make reproduce` writes them.", ""]
    return "\n".join(lines)
