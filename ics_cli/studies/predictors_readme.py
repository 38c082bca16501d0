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
    Change(("grid",), "d53c4c7", "2000 → 500 steps; deep and residual MLPs depth 20 → 10; CNN width 32 → 8; "
           "lrs 0.001 … 31.6 (10 half decades) → 0.01 … 31.6 (8); pilot lrs 5 decades → the grid's two ends and "
           "its middle; second view every 10/10/20 steps with 20 Lanczos products → every 5/5/10 with 10; "
           "seeds sized by the pilot against the budget; noisy batch norm compared inside its (model, lr) cell "
           "(`norm_variant`), not in a cell of its own",
           "the first protocol needed about 5 hours for the deciding grid alone against the issue's 60 minutes "
           "for the whole study; changed before any run of the protocol", False),
    Change(("verdict rules", "controls"), "560b1c8",
           "sign errors: only (model, lr) cells with at least 6 pairs outside seed noise count (MIN_PAIRS, as for "
           "intervals); \"predicts\" needs the mean sign error below 0.5 and, without qualification, the worst "
           "cell's too, else \"predicts on average, not in every environment\" (new verdict); a positive control "
           "must rank its outcome in the expected direction (early training loss: τ across norms wholly below "
           "−0.2, mean sign error < 0.5; initial sharpness × lr: raw τ over all runs wholly above 0.2), no longer "
           "\"predict\" it beyond the confounders; grid_check told apart the two MLPs (both `mlp`)",
           "the pilot (which decides nothing) showed the machinery could not pass by construction: the positive "
           "control early training loss ranked final accuracy (τ −0.32 [−0.41, −0.26]) but had a worst-case sign "
           "error of 1.0 in a cell of 3 pairs, and had to beat early test accuracy, a stronger confounder (|τ| "
           "0.59); every measure fails in some environment (Dziugaite et al. 2020); Lewkowycz et al.'s "
           "divergence criterion crosses lrs (pilot: raw τ 0.61, across norms 0.15). Changed after the pilot's "
           "data, before the deciding grid was analysed (its runs were training)", True),
    Change(("verdict rules", "controls", "candidates"), "1ec3248",
           "accuracy and steps to target decided on the configurations below the edge of stability in every "
           "seed with no seed diverged (divergence: on all runs), the all-runs verdict beside them; \"beyond the confounders\": the "
           "partial τ across norms given early training loss and early test accuracy, its interval on τ's side "
           "of 0 (was: CMI given the lr above its null); robustness: the upper quartile of the cells' sign "
           "errors below 0.5 (was: the worst cell); the shuffled control must not rank any outcome, \"proxy\" "
           "included; `sharpness_lr` dropped as a candidate (at a fixed lr it ranks norms exactly as "
           "`sharpness`; it remains the edge column)",
           "the red-team review of the deciding grid (below): the on-average associations came from divergence "
           "and the edge of stability (|τ| ≤ 0.13 below the edge), the CMI given the lr let every candidate "
           "pass \"beyond the confounders\", and the worst-cell rule separated nothing (the shuffled control's "
           "worst cell 1.00). Changed after the deciding grid's data; frozen (committed) before the replication "
           "grid was analysed, so the replication seeds test the revised rules: a verdict counts where it held "
           "there. Found while applying them to the deciding grid (before the replication was analysed): a "
           "seed mean of a constant differs from it in the last bit, which gave log lr a τ across norms of "
           "−0.82 (now values equal to 9 significant digits tie, `ranks.snap`); a split by run took seeds from configurations "
           "and left every interval undecidable (now by configuration); below the edge one run of 224 diverged, "
           "so divergence stays decided on all runs", True),
    Change(("grid", "seeds", "verdict rules", "controls", "candidates", "outcomes"), "ae426e0",
           "third protocol, fixed before any of its runs, on fresh seeds (deciding 20…, replication 30…): models "
           "sigmoid MLP, CNN, residual MLP (the deep plain ReLU MLP dropped); lrs 0.0316 … 31.6 (0.01 dropped); "
           "activations every 10 steps (was 5), no batch-statistics test pass; the budget counts the analyses. "
           "Accuracy and steps to target decided on the configurations with no seed diverged at every lr (was: "
           "below the edge of stability), divergence on the configurations still finite at the window's end in "
           "every seed (was: all runs); new confounders `batch_stats` (the norm family) and `edge` (sharpness × "
           "lr), both also given in the partial τ; \"ranks\" also needs the norm-label permutation p < 0.05; "
           "\"predicts\" also needs no model whose own τ is 0.2 or more the other way; a second negative control, "
           "`shuffled_config` (one value per configuration); steps to target against 0.9 × the best configuration "
           "of the same model (was: of the whole grid)",
           "the second protocol's replication and its second red-team review: its deciding subset (below the edge) "
           "was chosen by sharpness, dropped the lr at which 29 of 37 (model, norm) pairs train best and capped "
           "`sharpness` by construction; eval-mode drift encoded the norm family (a batch-statistics label ranked "
           "accuracy as well); gradient ICS ranked the norms with opposite signs by architecture; the seed "
           "bootstrap cannot catch a measure fixed per configuration; 98% of diverged runs blew up inside the "
           "window; steps to target was 58% censored (CNN cells never reached the sigmoid MLP's target). The "
           "grid: the second protocol took 132 minutes from empty folders against 60. Changed after the second "
           "protocol's data; its seeds decide nothing here", True),
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


def subset_rows(stats: pd.DataFrame, window: float, outcome: str = "final_acc") -> list[str]:
    """τ across norms per candidate in every subset: all runs, not diverged, below and at the edge of
    stability (predictors.csv)."""
    rows = stats[(stats["outcome"] == outcome) & (stats["statistic"] == "tau_norm")
                 & (pd.to_numeric(stats["window"]) == window)]
    if rows.empty:
        return []
    table = rows.pivot_table(index="measure", columns="subset", values="value", aggfunc="first", sort=False)
    counts = stats[(stats["outcome"] == outcome) & (stats["statistic"] == "n_runs")
                   & (pd.to_numeric(stats["window"]) == window)].groupby("subset")["value"].max()
    subsets = [s_ for s_ in (rules.ALL, rules.CALM, rules.BELOW, rules.STABLE, rules.AT) if s_ in table.columns]
    head = " | ".join(f"{s_} ({int(counts.get(s_, 0))} runs)" for s_ in subsets)
    lines = [f"| measure | {head} |", "|---" * (len(subsets) + 1) + "|"]
    for measure, r in table.iterrows():
        lines.append(f"| `{measure}` | " + " | ".join(_num(r.get(s_)) for s_ in subsets) + " |")
    return lines


def architecture(cell: str) -> str:
    """The architecture of a (model, lr) cell's name: its key without the lr, shortened to the model and
    the settings that tell the models apart."""
    parts = [p for p in str(cell).split(", ") if not p.startswith(("lr=", "batch_size=", "init="))]
    return " ".join(p.split("=", 1)[1] for p in parts)


def architecture_rows(stats: pd.DataFrame, window: float, subset: str, outcome: str = "final_acc") -> list[str]:
    """τ across norms per architecture: the mean of the per-cell τ (predictors.csv `tau_norm_cell`) over
    each architecture's (model, lr) cells in `subset`, with the number of cells; descriptive, it decides
    nothing (a measure whose sign differs by architecture has no direction the grid can name)."""
    rows = stats[(stats["outcome"] == outcome) & (stats["statistic"] == "tau_norm_cell")
                 & (pd.to_numeric(stats["window"]) == window) & (stats["subset"] == subset)]
    if rows.empty:
        return []
    rows = rows.assign(arch=rows["environment"].map(architecture), value=pd.to_numeric(rows["value"]))
    table = rows.groupby(["measure", "arch"], sort=False)["value"].agg(["mean", "count"])
    archs = list(dict.fromkeys(rows["arch"]))
    cells = rows.groupby("arch")["environment"].nunique()
    lines = ["| measure | " + " | ".join(f"{a} ({cells.get(a, 0)} cells)" for a in archs) + " |",
             "|---" * (len(archs) + 1) + "|"]
    for measure in dict.fromkeys(rows["measure"]):
        vals = [_num(table["mean"].get((measure, a))) for a in archs]
        lines.append(f"| `{measure}` | " + " | ".join(vals) + " |")
    return lines


def short_models(by_model: str) -> str:
    """verdicts.csv's `by_model` ("cnn, 60, 3, 8, relu, kaiming -0.07 (253 pairs); mlp, 60, …") with each
    model named by the fewest leading key values that still tell the models apart ("cnn -0.07 (253 pairs)")."""
    parts = [p.rsplit(" ", 3) for p in str(by_model).split("; ") if p]
    if not parts or any(len(p) != 4 for p in parts):
        return str(by_model)
    names = [p[0].split(", ") for p in parts]
    k = next((k for k in range(1, max(map(len, names)) + 1) if len({tuple(n[:k]) for n in names}) == len(names)),
             max(map(len, names)))
    return "; ".join(f"{' '.join(n[:k])} {' '.join(p[1:])}" for n, p in zip(names, parts))


def verdict_rows(verdicts: pd.DataFrame, outcome: str) -> list[str]:
    rows = verdicts[verdicts["outcome"] == outcome]
    lines = ["| measure | role | τ across norms [95%] | norm-label p | strongest confounder (|τ|) | partial τ given "
             "the confounders [95%] | τ by model | sign error mean / upper quartile | verdict | on all runs | "
             "replication |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows.to_dict("records"):
        rival = f"{r['rival']} ({_num(r['rival_tau'])})" if isinstance(r.get("rival"), str) and r["rival"] else "–"
        sign = f"{_num(r['sign_error_mean'])} / {_num(r.get('sign_error_q75'))}"
        again = r.get("replicated", "")
        again = "–" if not isinstance(again, str) or not again else (
            "held" if again == r["verdict"] else f"**{again}**")
        everywhere = r.get("verdict_all_runs")
        everywhere = "–" if not isinstance(everywhere, str) else ("same" if everywhere == r["verdict"] else everywhere)
        label_p = _num(r.get("label_p"), 3)
        by_model = (_cell(short_models(r["by_model"])) if isinstance(r.get("by_model"), str) and r["by_model"]
                    else "–")
        lines.append(f"| `{r['measure']}` | {r['role']} | {_interval(r, 'tau_norm')} | {label_p} | {_cell(rival)} | "
                     f"{_interval(r, 'partial_tau')} | {by_model} | {sign} | {r['verdict']} | {everywhere} | {again} |")
    return lines


def finding(verdicts: pd.DataFrame, machinery: str | None) -> str:
    """The plain-words answer for the primary outcome, derived from the verdict table."""
    rows = verdicts[verdicts["outcome"] == "final_acc"]
    if machinery:
        return (f"The controls did not come out as expected ({machinery}): the machinery failed, so this "
                "grid says nothing about the measures.")
    measures = rows[rows["role"] == rules.MEASURE]
    by = {v: measures[measures["verdict"] == v] for v in rules.VERDICTS}
    names = lambda part: ", ".join(f"`{m}`" for m in part["measure"])      # noqa: E731
    taus = lambda part: (f"τ across norms {_num(part['tau_norm'].min())} to {_num(part['tau_norm'].max())}"
                         if len(part) > 1 else f"τ across norms {_num(part['tau_norm'].iloc[0])}")   # noqa: E731
    parts = []
    if len(by[rules.PREDICTS]):
        parts.append(f"Early {names(by[rules.PREDICTS])} predicted which norm trains better at a fixed lr, in "
                     f"three quarters of the (model, lr) cells or more, in every architecture and beyond the "
                     f"confounders ({taus(by[rules.PREDICTS])})")
    else:
        parts.append("No measure of internal covariate shift taken in the first 10% of training predicted which "
                     "norm reaches the better final accuracy, robustly, in every architecture and beyond the "
                     "early loss and accuracy, the norm family and the edge of stability")
    subset = str(rows["subset"].iloc[0]) if "subset" in rows and len(rows) else rules.ALL
    used = pd.to_numeric(rows["n_runs"], errors="coerce").max() if "n_runs" in rows else float("nan")
    scope = f"the {used:.0f} runs " if used == used else "the runs "
    parts[-1] += f" (decided on {scope}{subset})" if subset != rules.ALL else ""
    avg = by[rules.ON_AVERAGE]
    if len(avg):
        beaten = [(r["measure"], r["rival"], r["rival_tau"]) for r in avg.to_dict("records")
                  if isinstance(r.get("rival"), str) and abs(float(r["tau_norm"])) <= float(r["rival_tau"])]
        text = (f"{names(avg)} ranked the norms at a fixed lr on average ({taus(avg)}) beyond the confounders, "
                "but ordered the norms of a quarter or more of the cells the wrong way")
        if beaten and len(beaten) == len(avg):
            rival, value = beaten[0][1], max(b[2] for b in beaten)
            text += (f", and none ranked them as well as a plain early signal ({rival}, |τ| {_num(value)}): what "
                     "they add beyond the other confounders is not shown")
        parts.append(text)
    same = [(m, c) for m in list(by[rules.PREDICTS]["measure"]) + list(avg["measure"])
            for c in rules.SAME_ORDER.get(m, ())]
    if same:
        parts.append("; ".join(f"at a fixed lr `{m}` orders the runs exactly as the confounder `{c}` does, so its "
                               f"verdict is `{c}`'s association, not a separate one" for m, c in same))
    for verdict, words in ((rules.PROXY, "ranked it only as a proxy of a confounder"),
                           (rules.NO, "did not predict it"),
                           (rules.INCONCLUSIVE, "were inconclusive (intervals straddling the ±0.2 line)"),
                           (rules.NOT_RECORDED, "were not recorded")):
        if len(by[verdict]):
            parts.append(f"{names(by[verdict])} {words}")
    controls = rows[rows["role"] == rules.CONTROL].set_index("measure")["verdict"]
    text = "; ".join(parts) + (f". The positive control (early training loss) came out \"{controls.get('early_train_loss', '–')}\" "
                               f"and the shuffled controls \"{controls.get('shuffled', '–')}\" (across runs) and "
                               f"\"{controls.get('shuffled_config', '–')}\" (across configurations).")
    if "held" in rows and rows["replicated"].astype(str).str.len().gt(0).any():
        held = rows["held"].astype(bool)
        kept = rows[held & (rows["role"] == rules.MEASURE)]
        changed = rows.loc[~held, "measure"].tolist()
        text += (" Every final-accuracy verdict held on the replication seeds." if not changed else
                 f" On the replication seeds {len(kept)} of {len(measures)} candidate measures kept their verdict"
                 + (f" ({', '.join(f'`{m}`: {v}' for m, v in zip(kept['measure'], kept['verdict']))})" if len(kept) else "")
                 + f"; {len(changed)} final-accuracy verdict(s) changed "
                 f"({', '.join(f'`{m}`' for m in changed)}): those are not replicated.")
    else:
        text += " Not yet replicated on fresh seeds."
    if any(c.after_data for c in HISTORY):
        text += (" This is the study's third protocol: its rules were written after the second protocol's data "
                 "and red-team reviews (threshold history) and fixed before any of its own runs, on fresh seeds; "
                 "a verdict is confirmed only where it held on the replication seeds.")
    if REVIEWS.get(protocol.NAME):
        text += " Read every verdict with the red-team review in the study's README."
    return text


def machinery_of(verdicts: pd.DataFrame) -> str | None:
    """What went wrong with the controls, as verdicts.csv records it (None: they came out as expected)."""
    failed = verdicts[verdicts["verdict"] == rules.FAILED]
    return str(failed["reason"].iloc[0]).removeprefix("machinery failed: ") if len(failed) else None


def earlier_rows(verdicts: pd.DataFrame, earlier: pd.DataFrame, outcome: str = "final_acc") -> list[str]:
    """The second protocol's final-accuracy verdicts (and their replication) beside this protocol's."""
    now = verdicts[verdicts["outcome"] == outcome].set_index("measure")
    rows = earlier[earlier["outcome"] == outcome]
    lines = ["| measure | second protocol | its replication | this protocol | its replication |",
             "|---|---|---|---|---|"]
    for r in rows.to_dict("records"):
        m = r["measure"]
        mine = now.loc[m] if m in now.index else None
        cell = lambda v: v if isinstance(v, str) and v else "–"      # noqa: E731
        lines.append(f"| `{m}` | {cell(r.get('verdict'))} | {cell(r.get('replicated'))} | "
                     f"{cell(mine['verdict']) if mine is not None else 'not a candidate'} | "
                     f"{cell(mine.get('replicated')) if mine is not None else '–'} |")
    for m in now.index.difference(rows["measure"]):
        lines.append(f"| `{m}` | not a candidate | – | {now.loc[m, 'verdict']} | {now.loc[m].get('replicated', '–')} |")
    return lines


def render(verdicts: pd.DataFrame, meta: dict, check: pd.DataFrame | None, n_runs: int,
                 stats: pd.DataFrame | None = None, earlier: pd.DataFrame | None = None) -> str:
    """The README from the saved tables alone (verdicts.csv, study.json, pilot/grid_check.csv and the
    number of runs analysed), so that it can be rewritten without rerunning the analysis."""
    phases, sizing = meta.get("phases", {}), meta.get("sizing") or {}
    seeds = meta.get("seeds") or []
    machinery = machinery_of(verdicts)
    lines = [f"# {protocol.NAME}: which measure of internal covariate shift predicts training?", "",
             "Generated by `ics reproduce predictors` (studies/predictors.py, studies/predictors_run.py); every "
             "number below is read from the tables in this folder. The analysis is `ics meta` "
             "(docs/metrics.md, Part 3): rerun it on `runs/` with `ics meta results/predictors/runs`.", "",
             "## Answer", "", finding(verdicts, machinery), "",
             "## What ran", "",
             "| phase | seeds | wall time (2 processes) |", "|---|---|---|",
             f"| pilot | {', '.join(map(str, protocol.plan(pilot=True)['sigmoid-mlp'].seeds))} | "
             f"{_minutes(phases.get('pilot_s'))} |",
             f"| deciding grid ({n_runs} finished runs) | {', '.join(map(str, seeds))} | "
             f"{_minutes(phases.get('deciding_s'))} |",
             f"| replication | {', '.join(str(protocol.REPLICATION_SEEDS[0] + i) for i in range(len(seeds)))} | "
             f"{_minutes(phases.get('replication_s'))} |",
             *([f"| the pilot's analysis (`ics meta`, which sized the seeds) | | "
                f"{_minutes(phases.get('pilot_analysis_s'))} |"] if "pilot_analysis_s" in phases else []),
             f"| the analyses (`ics meta`{'; which grids: study.json `note`' if meta.get('note') else ' of the deciding and replication grids'}) | | "
             f"{_minutes(phases.get('analysis_s'))} |",
             f"| whole study from empty folders | | {_minutes(meta.get('from_empty_s'))} "
             f"(budget {protocol.BUDGET_S // 60} min, {meta.get('cpus')} CPUs) |", "",
             "Dataset: mnist-5k (the embedded 4,000 training and 1,000 test digits), plain SGD, batch 60.", ""]
    if meta.get("note"):
        lines += [f"How the times were taken: {_cell(meta['note'])}.", ""]
    if "replication_s" not in phases:
        lines += ["**Replication not run yet**: the verdicts below rest on the deciding seeds alone; "
                  "`ics reproduce predictors` resumes the study and runs the replication grid (its runs are "
                  "not part of this folder until then).", ""]
    budget = protocol.BUDGET_S
    total = meta.get("from_empty_s")
    if total and total > budget:
        lines += [f"**Over budget**: {_minutes(total)} against the protocol's {budget // 60} minutes "
                  f"(sizing: {_cell(sizing.get('why', '–'))}).", ""]
    if sizing:
        lines += ["## Pilot: the seeds it chose", "",
                  f"Median width of the {sizing['measures']} candidate measures' τ-across-norms intervals at the "
                  f"pilot's three seeds: {_num(sizing['median_width'])} (decidable: ≤ {_num(sizing['target_width'])}). "
                  f"Seeds wanted {sizing['wanted']}, affordable {sizing['affordable']} "
                  f"({_num(sizing['seconds_per_seed'] / 60, 1)} min per seed of the deciding grid): "
                  f"{sizing['seeds']} deciding seeds ({_cell(sizing['why'])}).", ""]
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
              "share of a cell's distinguishable pairs the measure orders the wrong way (0.5: a coin). Every "
              "statistic is taken on the subset the verdict is decided on "
              f"({_cell(verdicts['subset'].iloc[0]) if 'subset' in verdicts and len(verdicts) else rules.ALL}); "
              "\"on all runs\": the verdict the same rules give on every run. "
              "Norm-label p: the permutation p-value of τ across norms when each cell's values are handed to "
              "its norms at random. τ by model: each architecture's own τ across norms. "
              "Replication: the verdict on the replication seeds (**bold** where it differs).", "",
              *verdict_rows(verdicts, "final_acc"), "",
              f"Controls: {'machinery failed: ' + machinery if machinery else 'as expected'}. "
              f"Edge of stability: {_cell(verdicts['edge_split'].iloc[0]) if len(verdicts) else '–'}.", "",
              "![forest plot, final accuracy](forest_final_acc.png)", ""]
    split = subset_rows(stats, float(verdicts["window"].iloc[0])) if stats is not None and len(verdicts) else []
    if split:
        lines += ["### τ across norms by subset: all runs, not diverged, below and at the edge of stability", "",
                  "The same statistic on every run, on the configurations with no seed diverged (the subset "
                  "accuracy is decided on), within the runs whose early sharpness × lr is below 2, within those of "
                  "them that did not diverge (the second protocol's deciding subset), and within those at or above "
                  "it (`predictors.csv`, `subset`); these decide nothing. A measure whose sign changes between the "
                  "subsets ranks norms through divergence or the edge of stability, not through what it measures.",
                  "", *split, ""]
    deciding = str(verdicts["subset"].iloc[0]) if "subset" in verdicts and len(verdicts) else rules.ALL
    by_arch = (architecture_rows(stats, float(verdicts["window"].iloc[0]), deciding)
               if stats is not None and len(verdicts) else [])
    if by_arch:
        lines += [f"### τ across norms by architecture ({deciding})", "",
                  "The mean of the per-cell τ across norms over each architecture's (model, lr) cells in the subset "
                  "the verdicts read (`predictors.csv`, `tau_norm_cell`); descriptive, it decides nothing. A measure "
                  "whose sign differs between architectures has no direction this grid can name.", "", *by_arch, ""]
    for outcome in rules.OUTCOMES[1:]:
        lines += [f"## Verdicts: {outcome} (secondary)", ""]
        rows = verdicts[verdicts["outcome"] == outcome]
        if len(rows) and (rows["reason"].astype(str) == "the outcome is the same in every run").all():
            lines += [f"Every verdict is \"inconclusive\": on the subset {outcome} is decided on "
                      f"({_cell(rows['subset'].iloc[0])}, {_num(rows['n_runs'].max(), 0)} runs) it never varies"
                      + (": no configuration whose every seed was still finite at the window's end diverged "
                         "later, so every divergence in this grid began inside the measuring window and no early "
                         "measure can predict it here (a limit of this grid's design, not a finding about the "
                         "measures; the all-runs verdicts beside read the blow-up itself)" if outcome == "diverged"
                         else "") + ".", ""]
        lines += [*verdict_rows(verdicts, outcome), "", f"![forest plot, {outcome}](forest_{outcome}.png)", ""]
    if earlier is not None and len(earlier):
        lines += ["## Before and after: the second protocol's verdicts", "",
                  "Final accuracy, the second protocol (seeds 0–2, replicated on 10–12; its tables at "
                  "`protocol2/verdicts.csv`, its review below) beside this one. The two grids differ (threshold "
                  "history), so a changed verdict is a different question asked better, not a failed replication.",
                  "", *earlier_rows(verdicts, earlier), ""]
    lines += ["## Protocol (fixed before the runs)", "", protocol.PROTOCOL, "",
              "## Threshold history", "",
              "| what | commit | what changed | why | after data? |", "|---|---|---|---|---|",
              *[f"| {', '.join(c.claims)} | {c.commit} | {_cell(c.what)} | {_cell(c.why)} | "
                f"{'yes' if c.after_data else 'no'} |" for c in HISTORY], ""]
    review = REVIEWS.get(protocol.NAME)
    lines += ["## Red-team review", "", review.strip() if review else
              "Not yet reviewed: no verdict of this folder has been through the red team.", ""]
    earlier = REVIEWS.get(f"{protocol.NAME}-protocol2")
    if earlier:
        lines += ["### The second protocol's review (what this protocol answers)", "", earlier.strip(), ""]
    lines += ["## Files", "",
              "`verdicts.csv` (one row per candidate and outcome"
              + ("; `replicated`, `held`" if "held" in verdicts else "") + "), `predictors.csv` (every "
              "statistic, per window, subset and environment), `predictor_runs.csv` (one row per run: outcomes "
              "and measures), `forest_<outcome>.png`; `pilot/` holds the same for the pilot's seeds "
              "(`pilot/grid_check.csv`: accuracy per lr per model and norm)"
              + (", `replication/` for the replication's" if "held" in verdicts else "")
              + ". The run folders (`runs/`, `pilot/runs/`, `replication/runs/`) and `predictors.csv` (here, in "
              "`pilot/` and in `replication/`: 17 MB) are not committed: `make reproduce` writes them; "
              "`tau_by_subset.csv` keeps what this README reads of it (τ across norms and per cell, deciding "
              "window).", ""]
    return "\n".join(lines)
