"""Which measure of internal covariate shift, if any, predicts how well a normalization variant trains?

From a set of runs, the run table (analyse/predictor_table.py: one row per run, its key, OUTCOMES and
candidate MEASURES taken only in an early window, all scale-free); then, per measure and outcome, rank
statistics (analyse/ranks.py) and a pre-registered verdict (`decide`). Every column and formula is in
docs/metrics.md, "Predictors of training (ics meta)".

Pre-registered thresholds (one source; the history of every change is studies/predictors_readme.py
HISTORY):

* TAU_MIN = 0.2. A measure "ranks" an outcome when the 95% seed-bootstrap interval of its granulated
  τ across norms (at fixed model and lr) lies wholly beyond ±TAU_MIN *and* its norm-label permutation
  p-value (ranks.label_null: each cell's seed-mean measures handed to other norms of the cell) is below
  LABEL_ALPHA = 0.05. The bootstrap holds the configurations fixed, so a value fixed per configuration
  (a norm-family label) could order a cell's few norms with a narrow interval by luck; the permutation
  null asks whether the measure orders the norms better than an arbitrary assignment of its values. τ = 0.2 means the measure orders
  (1 + τ)/2 = 60% of the untied pairs of norms as the outcome does: below that it would not help a reader
  choose a norm. Inside ±TAU_MIN wholly: it does not rank the outcome; straddling: undecided.
* MIN_SEEDS = 3 and MIN_PAIRS = 6: an interval decides only when every configuration behind it has at
  least 3 seeds (a bootstrap of 2 seeds has 3 distinct resamples and is no interval) and its cells hold at
  least 6 pairs of configurations (τ moves in steps of 2 / pairs: with fewer, one flipped pair moves it
  by more than 1.5 × TAU_MIN). Otherwise the verdict is "inconclusive" and the reason says why.
* Beyond its confounders: |τ across norms| above every confounder's |τ across norms| (point values), or
  the granulated partial τ across norms given PARTIAL_GIVEN (early training loss, early test accuracy,
  the norm family `batch_stats` and the edge of stability `edge`; the lr is fixed in every cell) with its
  interval wholly on τ's side of 0: the measure orders the norms in a way the early loss and accuracy,
  the family and sharpness × lr do not. A confounder that orders runs exactly as the measure does at a
  fixed lr (SAME_ORDER: `edge` for `sharpness`) is neither its rival nor given. (The CMI given the lr, with its permutation
  null, CMI_ALPHA = 0.05, is reported and decides only the raw-τ proxy below.)
* Across architectures: "predicts" (and "on average") also needs no model whose own granulated τ across
  norms (its cells only, from MIN_PAIRS pairs) is at least TAU_MIN the other way: a measure whose direction
  flips with the architecture "does not predict", whatever the pooled τ.
* SIGN_ERROR_MAX = 0.5: the mean over environments of the noise-filtered sign error must be below a
  coin flip for "predicts"; its upper quartile (75th percentile over environments) too for "predicts"
  without qualification, else "predicts on average, not in every environment": a measure that orders a
  quarter or more of the environments no better than chance does not predict robustly (Dziugaite et al.
  2020). A shuffled measure has a median environment at the coin flip, so its upper quartile is at or
  above it. The environments are the norm cells (fixed model and lr: the question is which norm trains
  better) with at least MIN_PAIRS pairs outside seed noise; the lr cells' sign errors are reported beside
  them. The direction a sign error reads is the sign of τ across norms (of the raw τ where that has
  none). Noise filter: ranks.NOISE_Z = 2 seed standard errors.
* Windows: WINDOW = 0.1 of the run decides; SENSITIVITY_WINDOWS 0.02 and 0.2 are reported beside it
  and decide nothing (a verdict that flips between them is fragile, and the table says so): their
  verdicts before the controls' check, in the `sensitivity` column.
* The deciding subset (DECIDED_ON), chosen without sharpness: final accuracy and steps to target on the
  configurations with no seed diverged (CALM: divergence, scored at chance, cannot carry a measure's
  signal), at every lr; divergence on the configurations whose every seed was still finite at the
  window's end (LIVE: a blow-up inside the window is read by the measure, not predicted). The edge of
  stability is a confounder (`edge`, above), not a subset. Subsets are whole configurations (every seed
  in or out), so that no interval loses seeds to the split. Reported beside, deciding nothing: all runs
  (`verdict_all_runs`), and τ across norms and the sign errors below the edge (every seed's early
  sharpness × lr < EDGE = 2, plain SGD's stability bound for a quadratic), below it with no seed
  diverged (the previous protocol's deciding subset) and at it (every seed ≥ EDGE; predictors.csv,
  `subset`).

Verdicts, per measure and outcome (`decide`, on the deciding subset), in this order:

1. "not recorded": no run has a finite value of the measure in the window.
2. "predicts": τ across norms ranks the outcome, beyond every confounder (or with a partial τ given the
   early loss and accuracy, the family and the edge on its side of 0), with mean and upper-quartile sign
   error < SIGN_ERROR_MAX and no architecture the other way; "predicts on average, not in every
   environment" when the mean is below it and the upper quartile not.
3. "does not predict": τ ranks the outcome but the mean sign error is ≥ SIGN_ERROR_MAX, or a model's
   own τ is TAU_MIN or more the other way.
4. "proxy of a confounder only": τ across norms ranks the outcome but not beyond the confounders and
   its partial τ given the confounders includes 0; or τ across norms does not rank it while
   the raw τ (all runs pooled, the lr free to vary) does and the CMI given the lr is not above its null.
5. "does not predict": τ across norms lies wholly inside ±TAU_MIN.
6. "inconclusive": the interval straddles ±TAU_MIN, there is none, or the outcome never varies.

Controls (`machinery`): each positive control must *rank* its outcome in the expected direction, which
shows the machinery can see an association that is there (it need not beat the confounders, of which
early training loss is one): early training loss, final accuracy, on its deciding subset: τ across norms
wholly below −TAU_MIN with mean sign error < SIGN_ERROR_MAX; initial sharpness × lr, divergence, on all
runs (where sharpness is recorded and some run diverged): the raw τ wholly above +TAU_MIN (Lewkowycz et
al. 2020's criterion, sharpness × lr against 2, crosses the edge by definition). The shuffled controls
must not rank any outcome (no "predicts", "predicts on average" or "proxy"): `shuffled`, a measure
permuted across runs, and `shuffled_config`, one value per configuration permuted across
configurations (a false positive from a measure fixed per configuration, as a family label is, shows
there). If any of these fails, or the positive control is not recorded, every verdict
becomes "machinery failed" and the reason says which control failed (the verdict it would have had is
kept beside it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import IcsError
from ..store.runs import Run
from . import ranks
from .predictor_table import (CLASSES, CONFOUNDER, CONTROL, MEASURE, MEASURES, MIN_LRS, MIN_NORMS, OUTCOMES, ROLE,
                              SHUFFLE_SEED, VARIANT_KEYS, Candidate, check_grid, norm_variant, run_table)

WINDOW = 0.1
SENSITIVITY_WINDOWS = (0.02, 0.2)
TAU_MIN = 0.2
CMI_ALPHA = 0.05
SIGN_ERROR_MAX = 0.5
EDGE = 2.0
MIN_SEEDS = 3
MIN_PAIRS = 6
LABEL_ALPHA = 0.05
PARTIAL_GIVEN = ("early_train_loss", "early_test_acc", "batch_stats", "edge")
# A confounder that orders the runs of a cell (fixed lr) exactly as the measure does: no rival, not given.
SAME_ORDER = {"sharpness": ("edge",)}

PREDICTS, PROXY, NO, INCONCLUSIVE = "predicts", "proxy of a confounder only", "does not predict", "inconclusive"
ON_AVERAGE = "predicts on average, not in every environment"
NOT_RECORDED, FAILED = "not recorded", "machinery failed"
VERDICTS = (PREDICTS, ON_AVERAGE, PROXY, NO, INCONCLUSIVE, NOT_RECORDED, FAILED)
CONFOUNDERS = ("log_lr", "effective_step", "early_grad_norm", "early_test_acc", "early_train_loss", "batch_stats",
               "edge")
NEGATIVE = ("shuffled", "shuffled_config")
POSITIVE = {"early_train_loss": "final_acc", "initial_sharpness_lr": "diverged"}


# --------------------------------------------------------------------------- statistics and verdicts


@dataclass
class Stats:
    """Everything a verdict reads about one measure and outcome."""
    n_runs: int
    tau_norm: ranks.Granulated
    tau_lr: ranks.Granulated
    tau_raw: ranks.Granulated
    cmi: ranks.Cmi
    direction: float
    sign: list                      # [SignError] of the norm environments (fixed model, lr): the verdict's
    outcome_varies: bool
    sign_lr: list                   # [SignError] of the lr environments (fixed model, norm): reported only
    partial: ranks.Granulated | None = None     # τ across norms given PARTIAL_GIVEN (None: not computed)
    label_p: float = math.nan       # τ across norms' norm-label permutation p-value (ranks.label_null)
    by_model: list = None           # [(model, τ across norms in its cells, pairs)]

    @property
    def against(self) -> list:
        """The models (from MIN_PAIRS pairs) whose own τ across norms is TAU_MIN or more against the
        direction."""
        return [(m, t, k) for m, t, k in (self.by_model or [])
                if k >= MIN_PAIRS and math.isfinite(t) and self.direction * t <= -TAU_MIN]

    @property
    def counted(self) -> list:
        """The norm environments whose sign error counts: MIN_PAIRS pairs or more outside seed noise."""
        return [s for s in self.sign if math.isfinite(s.value) and s.pairs >= MIN_PAIRS]

    @property
    def sign_mean(self) -> float:
        v = [s.value for s in self.counted]
        return float(np.mean(v)) if v else math.nan

    @property
    def worst(self) -> ranks.SignError | None:
        return max(self.counted, key=lambda s: s.value) if self.counted else None

    @property
    def upper_quartile(self) -> float:
        """The 75th percentile of the counted environments' sign errors (numpy's linear interpolation)."""
        v = [s.value for s in self.counted]
        return float(np.percentile(v, 75)) if v else math.nan


def measure_stats(table: pd.DataFrame, context: list[str], measure: str, outcome: str,
                  replicates: int = ranks.BOOTSTRAP, permutations: int = ranks.PERMUTATIONS,
                  full: bool = True) -> Stats:
    """The statistics of one measure and outcome over `table`; `full` False (a subset that is only
    reported): τ across norms and the sign errors only."""
    both = table[np.isfinite(table[measure].to_numpy(float)) & np.isfinite(table[outcome].to_numpy(float))]
    norm_cells, lr_cells = context + ["lr"], context + ["norm"]
    tau_norm = ranks.granulated(both, norm_cells, "norm", measure, outcome, replicates)
    none = ranks.Granulated(math.nan, math.nan, math.nan, 0, [])
    tau_lr = ranks.granulated(both, lr_cells, "lr", measure, outcome, replicates) if full else none
    tau_raw = ranks.granulated(both, [], context + ["norm", "lr"], measure, outcome, replicates) if full else none
    info = (ranks.cmi(both, norm_cells, measure, outcome, permutations) if full else
            ranks.Cmi(math.nan, math.nan, math.nan, math.nan, math.nan, len(both)))
    given = [c for c in PARTIAL_GIVEN if c != measure and c not in SAME_ORDER.get(measure, ()) and c in both
             and np.isfinite(both[c].to_numpy(float)).any()]
    partial = ranks.partial(both, norm_cells, "norm", measure, outcome, given, replicates) if full and given else None
    label_p = ranks.label_null(both, norm_cells, "norm", measure, outcome, permutations) if full else math.nan
    by_model = []
    if full and context:
        for model, part in both.groupby(context, sort=False, dropna=False):
            g = ranks.granulated(part, norm_cells, "norm", measure, outcome, replicates=1)
            name = ", ".join(map(str, model if isinstance(model, tuple) else (model,)))
            by_model.append((name, g.value, g.pairs))
    lead = tau_norm.value if math.isfinite(tau_norm.value) else tau_raw.value
    direction = -1.0 if math.isfinite(lead) and lead < 0 else 1.0
    noise = ranks.seed_sd(both, context + ["norm", "lr"], outcome)
    sign = ranks.sign_errors(both, norm_cells, "norm", measure, outcome, direction, noise)
    sign_lr = ranks.sign_errors(both, lr_cells, "lr", measure, outcome, direction, noise)
    varies = both[outcome].nunique() > 1
    return Stats(len(both), tau_norm, tau_lr, tau_raw, info, direction, sign, varies, sign_lr, partial, label_p,
                 by_model)


def interval_ranks(g: ranks.Granulated, label_p: float = math.nan) -> str:
    """'yes' (interval wholly beyond ±TAU_MIN and, where given, the norm-label permutation p below
    LABEL_ALPHA), 'no' (wholly inside), 'open' (straddles, or beyond it but not beyond a relabelling of the
    norms, or none, or too few seeds or pairs behind it to decide)."""
    lo, hi = g.ci_low, g.ci_high
    if not (math.isfinite(lo) and math.isfinite(hi)) or g.seeds < MIN_SEEDS or g.pairs < MIN_PAIRS:
        return "open"
    if lo > TAU_MIN or hi < -TAU_MIN:
        return "open" if math.isfinite(label_p) and label_p >= LABEL_ALPHA else "yes"
    if lo > -TAU_MIN and hi < TAU_MIN:
        return "no"
    return "open"


def adds(s: Stats) -> bool:
    """Whether the partial τ given PARTIAL_GIVEN lies wholly on τ across norms' side of 0 (from cells
    enough to decide, as `_ranks` asks of τ)."""
    g = s.partial
    if g is None or not (math.isfinite(g.ci_low) and math.isfinite(g.ci_high)):
        return False
    if g.seeds < MIN_SEEDS or g.pairs < MIN_PAIRS:
        return False
    return g.ci_low > 0 if s.tau_norm.value > 0 else g.ci_high < 0


def decide(s: Stats | None, rivals: dict[str, float]) -> tuple[str, str]:
    """(verdict, reason) of one measure and outcome; `rivals`: each confounder's |τ across norms|."""
    if s is None or s.n_runs == 0:
        return NOT_RECORDED, "no run has a finite value in the window"
    if not s.outcome_varies:
        return INCONCLUSIVE, "the outcome is the same in every run"
    tau = s.tau_norm
    rival, rival_tau = max(rivals.items(), key=lambda kv: kv[1], default=(None, math.nan))
    beats = not math.isfinite(rival_tau) or abs(tau.value) > rival_tau
    informative = math.isfinite(s.cmi.excess) and s.cmi.excess > 0 and s.cmi.p < CMI_ALPHA
    quartile = s.upper_quartile
    robust = math.isfinite(quartile) and quartile < SIGN_ERROR_MAX
    better = math.isfinite(s.sign_mean) and s.sign_mean < SIGN_ERROR_MAX
    ci = f"τ across norms {tau.value:.2f} [{tau.ci_low:.2f}, {tau.ci_high:.2f}]"
    g = s.partial
    given = (f"partial τ given the confounders {g.value:.2f} [{g.ci_low:.2f}, {g.ci_high:.2f}]"
             if g is not None and math.isfinite(g.value) else "no partial τ given the confounders")
    ranked = interval_ranks(tau, s.label_p)
    if ranked == "yes" and (beats or adds(s)):
        why = f"beats {rival} (|τ| {rival_tau:.2f})" if beats and rival else given
        errors = f"sign error mean {s.sign_mean:.2f}, upper quartile {quartile:.2f}"
        if s.against:
            flips = "; ".join(f"{m} {t:+.2f}" for m, t, _ in s.against)
            return NO, f"{ci}; {why}; but the other way in {flips}: no direction holds across architectures"
        if robust and better:
            return PREDICTS, f"{ci}; {why}; {errors}"
        if better:
            return ON_AVERAGE, f"{ci}; {why}; {errors} (worst {s.worst.value:.2f} in {s.worst.environment})"
        where = (f"mean sign error {s.sign_mean:.2f}" if math.isfinite(s.sign_mean) else
                 f"no environment with {MIN_PAIRS} pairs outside seed noise")
        return NO, f"{ci}, but {where}"
    if ranked == "yes":
        return PROXY, f"{ci}, not beyond {rival} (|τ| {rival_tau:.2f}) and {given} includes 0"
    if interval_ranks(tau) == "yes" and ranked != "yes":
        return INCONCLUSIVE, (f"{ci}, but the norm-label permutation p is {s.label_p:.3f} (≥ {LABEL_ALPHA}): the "
                              f"values, handed to the norms at random, order them as well")
    if ranked != "yes" and interval_ranks(s.tau_raw) == "yes" and not informative:
        return PROXY, (f"raw τ {s.tau_raw.value:.2f} [{s.tau_raw.ci_low:.2f}, {s.tau_raw.ci_high:.2f}] over all "
                       f"runs, but {ci} at fixed lr and CMI given lr not above null")
    if ranked == "no":
        return NO, f"{ci} lies inside ±{TAU_MIN}"
    if not math.isfinite(tau.value):
        return INCONCLUSIVE, "no cell with two norms that both have a value"
    if tau.seeds < MIN_SEEDS or tau.pairs < MIN_PAIRS:
        return INCONCLUSIVE, (f"{ci} rests on {tau.pairs} pairs of norms with as few as {tau.seeds} seeds "
                              f"(at least {MIN_PAIRS} pairs and {MIN_SEEDS} seeds decide)")
    return INCONCLUSIVE, f"{ci} straddles ±{TAU_MIN}"


def control_ranks(control: str, s: Stats | None) -> tuple[bool, str]:
    """Whether a positive control ranks its outcome as the module doc requires, and what it showed."""
    if s is None:
        return False, NOT_RECORDED
    if control == "early_train_loss":
        g = s.tau_norm
        ok = (interval_ranks(g, s.label_p) == "yes" and g.ci_high < -TAU_MIN and math.isfinite(s.sign_mean)
              and s.sign_mean < SIGN_ERROR_MAX)
        return ok, f"τ across norms {g.value:.2f} [{g.ci_low:.2f}, {g.ci_high:.2f}], mean sign error {s.sign_mean:.2f}"
    g = s.tau_raw
    return (interval_ranks(g) == "yes" and g.ci_low > TAU_MIN), f"raw τ {g.value:.2f} [{g.ci_low:.2f}, {g.ci_high:.2f}]"


def machinery(verdicts: pd.DataFrame, table: pd.DataFrame, found: dict | None = None) -> str | None:
    """What is wrong with the controls (module doc), or None when they came out as expected. `found`:
    (measure, outcome) → Stats of the analysis."""
    problems = []
    found = found or {}
    for control, outcome in POSITIVE.items():
        s = found.get((control, outcome))
        optional = control != "early_train_loss"
        if optional and (s is None or table[outcome].nunique() < 2):
            continue
        ok, shown = control_ranks(control, s)
        if not ok:
            problems.append(f"positive control {control} → {outcome} does not rank it ({shown})")
    shuffled = verdicts[verdicts["measure"].isin(NEGATIVE) & verdicts["verdict"].isin([PREDICTS, ON_AVERAGE, PROXY])]
    problems += [f"negative control {m} ranks {o} ({v})"
                 for m, o, v in zip(shuffled["measure"], shuffled["outcome"], shuffled["verdict"])]
    return "; ".join(problems) or None


# --------------------------------------------------------------------------- the analysis


STAT_COLUMNS = ["measure", "role", "outcome", "window", "subset", "environment", "statistic",
                "value", "ci_low", "ci_high", "n"]
VERDICT_COLUMNS = ["measure", "role", "outcome", "window", "subset", "verdict", "reason", "unchecked_verdict",
                   "verdict_all_runs", "reason_all_runs", "direction", "tau_norm", "tau_norm_ci_low",
                   "tau_norm_ci_high", "tau_lr", "tau_lr_ci_low", "tau_lr_ci_high", "psi", "tau_raw",
                   "tau_raw_ci_low", "tau_raw_ci_high", "rival", "rival_tau", "partial_tau", "partial_tau_ci_low",
                   "partial_tau_ci_high", "cmi", "cmi_null_mean", "cmi_excess", "cmi_p", "sign_error_mean",
                   "sign_error_q75", "sign_error_worst", "worst_environment", "label_p", "by_model", "n_runs",
                   "edge_split", "sensitivity"]
ALL, CALM, LIVE = "all runs", "not diverged", "finite at the window's end"
BELOW, STABLE, AT = "below the edge of stability", "below the edge, not diverged", "at the edge of stability"
# The subset each outcome is decided on (module doc), chosen without sharpness: accuracy and speed where
# divergence cannot carry the signal; divergence where the measures were taken before it.
DECIDED_ON = {"final_acc": CALM, "steps_to_target": CALM, "diverged": LIVE}


@dataclass
class Result:
    runs: pd.DataFrame          # run_table at the deciding window
    stats: pd.DataFrame         # predictors.csv
    verdicts: pd.DataFrame      # verdicts.csv
    window: float
    machinery: str | None       # what went wrong with the controls, at the deciding window


def subsets(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """The run subsets (boolean masks), made of whole configurations (every seed of a configuration, so
    that no interval loses seeds to the split): all runs; no seed diverged (CALM); every seed finite at the
    window's end (LIVE); and where sharpness × lr was recorded, below the edge (every seed's early sharpness
    × lr < EDGE), below it with no seed diverged, at it (every seed ≥ EDGE; a configuration whose seeds
    straddle the edge is in neither)."""
    edge = table["edge"].to_numpy(float)
    config = [k for k in table.attrs.get("key", ["model", "norm", "lr", "batch_size"]) if k in table]
    everything = np.ones(len(table), bool)
    alive = table["alive"].to_numpy(float) if "alive" in table else np.ones(len(table))
    frame = pd.DataFrame({"calm": table["diverged"].to_numpy(float) == 0, "live": alive == 1,
                          "below": edge < EDGE, "at": edge >= EDGE}, index=table.index)
    whole = frame.groupby([table[k] for k in config], dropna=False).transform("all") if config else frame
    calm, live = whole["calm"].to_numpy(bool), whole["live"].to_numpy(bool)
    masks = {ALL: everything, CALM: calm, LIVE: live}
    if np.isfinite(edge).any():
        below = whole["below"].to_numpy(bool)
        masks.update({BELOW: below, STABLE: below & calm, AT: whole["at"].to_numpy(bool)})
    return masks


def _stat_rows(name: str, outcome: str, window: float, subset: str, s: Stats, full: bool) -> list[dict]:
    base = dict(measure=name, role=ROLE[name], outcome=outcome, window=window, subset=subset)
    nan = math.nan
    rows = [dict(base, environment="all", statistic="n_runs", value=s.n_runs, ci_low=nan, ci_high=nan, n=s.n_runs)]
    for stat, g, env in (("tau_norm", s.tau_norm, "across norms"), ("tau_lr", s.tau_lr, "across lrs"),
                         ("tau_raw", s.tau_raw, "all runs pooled")):
        if stat != "tau_norm" and not full:
            continue
        rows.append(dict(base, environment=env, statistic=stat, value=g.value, ci_low=g.ci_low,
                         ci_high=g.ci_high, n=g.n))
        if stat != "tau_raw" and full:
            rows += [dict(base, environment=cell, statistic=f"{stat}_cell", value=tau, ci_low=nan, ci_high=nan,
                          n=k) for cell, tau, k in g.per_cell]
    if full:
        psi = np.nanmean([s.tau_norm.value, s.tau_lr.value]) if any(
            math.isfinite(t) for t in (s.tau_norm.value, s.tau_lr.value)) else nan
        rows.append(dict(base, environment="both axes", statistic="psi", value=psi, ci_low=nan, ci_high=nan,
                         n=s.tau_norm.n + s.tau_lr.n))
        if s.partial is not None:
            g = s.partial
            rows.append(dict(base, environment=f"across norms, given {' and '.join(PARTIAL_GIVEN)}",
                             statistic="partial_tau", value=g.value, ci_low=g.ci_low, ci_high=g.ci_high, n=g.n))
        c = s.cmi
        rows += [dict(base, environment="given lr", statistic="cmi", value=c.value, ci_low=c.null_low,
                      ci_high=c.null_high, n=c.n),
                 dict(base, environment="given lr", statistic="cmi_null_mean", value=c.null_mean, ci_low=nan,
                      ci_high=nan, n=ranks.PERMUTATIONS),
                 dict(base, environment="given lr", statistic="cmi_excess", value=c.excess, ci_low=nan,
                      ci_high=nan, n=c.n),
                 dict(base, environment="given lr", statistic="cmi_p", value=c.p, ci_low=nan, ci_high=nan,
                      n=ranks.PERMUTATIONS)]
        rows += [dict(base, environment=e.environment, statistic="sign_error", value=e.value, ci_low=nan,
                      ci_high=nan, n=e.pairs) for e in s.sign + s.sign_lr]
    worst = s.worst
    counted = len(s.counted)
    if full and math.isfinite(s.label_p):
        rows.append(dict(base, environment="across norms, norm labels permuted", statistic="label_p", value=s.label_p,
                         ci_low=nan, ci_high=nan, n=ranks.PERMUTATIONS))
    if full:
        rows += [dict(base, environment=model, statistic="tau_norm_model", value=tau, ci_low=nan, ci_high=nan, n=k)
                 for model, tau, k in s.by_model or []]
    rows += [dict(base, environment="mean over norm environments", statistic="sign_error_mean", value=s.sign_mean,
                  ci_low=nan, ci_high=nan, n=counted),
             dict(base, environment="upper quartile over norm environments", statistic="sign_error_q75",
                  value=s.upper_quartile, ci_low=nan, ci_high=nan, n=counted),
             dict(base, environment=worst.environment if worst else "none", statistic="sign_error_worst",
                  value=worst.value if worst else nan, ci_low=nan, ci_high=nan, n=worst.pairs if worst else 0)]
    return rows


def _verdict_row(name: str, outcome: str, window: float, s: Stats | None, verdict: str, reason: str,
                 rival: tuple) -> dict:
    row = dict(measure=name, role=ROLE[name], outcome=outcome, window=window, verdict=verdict, reason=reason,
               unchecked_verdict=verdict, rival=rival[0], rival_tau=rival[1])
    if s is None:
        return dict(row, n_runs=0)
    w, g = s.worst, s.partial
    psi = [t for t in (s.tau_norm.value, s.tau_lr.value) if math.isfinite(t)]
    return dict(row, direction="higher measure, higher outcome" if s.direction > 0 else "higher measure, lower outcome",
                tau_norm=s.tau_norm.value, tau_norm_ci_low=s.tau_norm.ci_low, tau_norm_ci_high=s.tau_norm.ci_high,
                tau_lr=s.tau_lr.value, tau_lr_ci_low=s.tau_lr.ci_low, tau_lr_ci_high=s.tau_lr.ci_high,
                psi=float(np.mean(psi)) if psi else math.nan, tau_raw=s.tau_raw.value,
                tau_raw_ci_low=s.tau_raw.ci_low, tau_raw_ci_high=s.tau_raw.ci_high,
                partial_tau=g.value if g else math.nan, partial_tau_ci_low=g.ci_low if g else math.nan,
                partial_tau_ci_high=g.ci_high if g else math.nan, cmi=s.cmi.value,
                cmi_null_mean=s.cmi.null_mean, cmi_excess=s.cmi.excess, cmi_p=s.cmi.p,
                sign_error_mean=s.sign_mean, sign_error_q75=s.upper_quartile,
                sign_error_worst=w.value if w else math.nan, worst_environment=w.environment if w else "",
                label_p=s.label_p, by_model="; ".join(f"{m} {t:+.2f} ({k} pairs)" for m, t, k in s.by_model or []
                                                      if math.isfinite(t)), n_runs=s.n_runs)


def analyse(table: pd.DataFrame, window: float, replicates: int = ranks.BOOTSTRAP,
            permutations: int = ranks.PERMUTATIONS) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """(statistic rows, verdict rows, machinery problem) of one window's run table: every statistic on
    all runs and on each outcome's deciding subset (DECIDED_ON), τ across norms and sign errors on the
    other subsets; the verdict from the deciding subset, with the all-runs verdict beside it."""
    context = [k for k in table.attrs.get("key", ["model", "norm", "lr", "batch_size"]) if k not in ("norm", "lr")]
    masks = subsets(table)
    parts = {subset: table[keep] for subset, keep in masks.items()}
    deciding = {o: DECIDED_ON[o] if DECIDED_ON[o] in masks else ALL for o in OUTCOMES}
    stats_rows, found = [], {}          # found[measure, outcome, subset] = Stats (full subsets only)
    for outcome in OUTCOMES:
        for c in MEASURES:
            for subset, part in parts.items():
                full = subset in (ALL, deciding[outcome])
                if not np.isfinite(part[c.name].to_numpy(float)).any():
                    if full:
                        found[c.name, outcome, subset] = None
                        stats_rows.append(dict(measure=c.name, role=c.role, outcome=outcome, window=window,
                                               subset=subset, environment="all", statistic="n_runs", value=0,
                                               ci_low=math.nan, ci_high=math.nan, n=0))
                    continue
                st = measure_stats(part, context, c.name, outcome, replicates, permutations, full=full)
                if full:
                    found[c.name, outcome, subset] = st
                stats_rows += _stat_rows(c.name, outcome, window, subset, st, full)
    counts = {k: int(v.sum()) for k, v in masks.items()}
    edge_split = (f"{counts[BELOW]} runs in configurations below the edge in every seed ({counts[STABLE]} of them "
                  f"with no seed diverged), {counts[AT]} at it in every seed, "
                  f"{len(table) - counts[BELOW] - counts[AT]} in configurations whose seeds straddle it; "
                  f"{counts[CALM]} runs in configurations with no seed diverged, {counts[LIVE]} in configurations "
                  f"finite at the window's end in every seed"
                  if BELOW in masks else "could not be split: sharpness × lr not recorded (the edge of stability is "
                                         "not controlled: `edge` is no confounder here)")

    def decided(outcome: str, subset: str) -> dict:
        """measure → (verdict, reason, strongest other confounder) on one subset."""
        rivals = {k: abs(found[k, outcome, subset].tau_norm.value) for k in CONFOUNDERS
                  if found[k, outcome, subset] is not None and math.isfinite(found[k, outcome, subset].tau_norm.value)}
        out = {}
        for c in MEASURES:
            own = {k: v for k, v in rivals.items() if k != c.name and k not in SAME_ORDER.get(c.name, ())}
            out[c.name] = (*decide(found[c.name, outcome, subset], own),
                           max(own.items(), key=lambda kv: kv[1], default=("", math.nan)))
        return out

    verdict_rows = []
    for outcome in OUTCOMES:
        chosen, everywhere = decided(outcome, deciding[outcome]), decided(outcome, ALL)
        for c in MEASURES:
            verdict, reason, best = chosen[c.name]
            row = _verdict_row(c.name, outcome, window, found[c.name, outcome, deciding[outcome]], verdict, reason,
                               best)
            row.update(subset=deciding[outcome], edge_split=edge_split, verdict_all_runs=everywhere[c.name][0],
                       reason_all_runs=everywhere[c.name][1])
            verdict_rows.append(row)
    # The controls: early training loss where accuracy is decided; initial sharpness × lr on all runs
    # (its criterion, sharpness × lr against 2, crosses the edge by definition).
    checked = {(control, outcome): found[control, outcome, deciding[outcome] if control == "early_train_loss" else ALL]
               for control, outcome in POSITIVE.items()}
    verdicts = pd.DataFrame(verdict_rows).reindex(columns=VERDICT_COLUMNS)
    problem = machinery(verdicts, table, checked)
    if problem:
        verdicts["verdict"] = FAILED
        verdicts["reason"] = f"machinery failed: {problem}"
    return pd.DataFrame(stats_rows, columns=STAT_COLUMNS), verdicts, problem


def build(runs: list[Run], window: float = WINDOW, sensitivity=SENSITIVITY_WINDOWS,
          replicates: int = ranks.BOOTSTRAP, permutations: int = ranks.PERMUTATIONS) -> Result:
    """The whole analysis: the deciding window, then each sensitivity window (other than it)."""
    if not 0 < window <= 1:
        raise IcsError(f"--window must be a fraction of the run in (0, 1], got {window}")
    done = check_grid(runs)
    table = run_table(done, window)
    stats, verdicts, problem = analyse(table, window, replicates, permutations)
    notes = {k: [] for k in zip(verdicts["measure"], verdicts["outcome"])}
    for w in (w for w in sensitivity if not math.isclose(w, window)):
        more, v, _ = analyse(run_table(done, w), w, replicates, permutations)
        stats = pd.concat([stats, more], ignore_index=True)
        for m, o, verdict in zip(v["measure"], v["outcome"], v["unchecked_verdict"]):
            notes[m, o].append(f"{w:g}: {verdict}")
    verdicts["sensitivity"] = ["; ".join(notes[k]) for k in zip(verdicts["measure"], verdicts["outcome"])]
    return Result(table, stats, verdicts, window, problem)
