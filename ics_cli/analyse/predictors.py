"""Which measure of internal covariate shift, if any, predicts how well a normalization variant trains?

From a set of runs, one row per run (`run_table`): its key (model, norm, lr, seed, batch size and any
other key column that varies), its OUTCOMES, and CANDIDATE MEASURES taken only in an early window (the
first `window` of the run's planned steps), all scale-free; then, per measure and outcome, rank
statistics (analyse/ranks.py) and a pre-registered verdict (`verdicts`). Every column and formula is in
docs/metrics.md, "Predictors of training (ics meta)".

Outcomes: `final_acc` (final test accuracy; a diverged run counts at chance, 1 / CLASSES; a regression
run its final loss drop, 0 if diverged), `steps_to_target` (first evaluated step whose test accuracy
reaches TARGET_FRACTION × the best configuration's mean final accuracy; a run that never does is
censored at CENSOR_FACTOR × its planned steps, so it ranks last), `diverged` (1 or 0).

Measures, confounders and controls: MEASURES below (role `measure`, `confounder`, `control`). Early
training loss is both the positive control for accuracy and a confounder every measure must beat.

Pre-registered thresholds (fixed before any run of the protocol, studies/predictors.py; one source):

* TAU_MIN = 0.2. A measure "ranks" an outcome when the 95% seed-bootstrap interval of its granulated
  τ across norms (at fixed model and lr) lies wholly beyond ±TAU_MIN. τ = 0.2 means the measure orders
  (1 + τ)/2 = 60% of the untied pairs of norms as the outcome does: below that it would not help a reader
  choose a norm. Inside ±TAU_MIN wholly: it does not rank the outcome; straddling: undecided.
* MIN_SEEDS = 3 and MIN_PAIRS = 6: an interval decides only when every configuration behind it has at
  least 3 seeds (a bootstrap of 2 seeds has 3 distinct resamples and is no interval) and its cells hold at
  least 6 pairs of configurations (τ moves in steps of 2 / pairs: with fewer, one flipped pair moves it
  by more than 1.5 × TAU_MIN). Otherwise the verdict is "inconclusive" and the reason says why.
* Beyond its confounders: |τ across norms| above every confounder's |τ across norms| (point values), or
  a conditional mutual information given the lr (and model) above its permutation null: CMI − null
  mean > 0 with permutation p < CMI_ALPHA = 0.05 (the usual 5% test size).
* SIGN_ERROR_MAX = 0.5: the mean over environments of the noise-filtered sign error must be below a
  coin flip for "predicts"; the worst environment's too for "predicts" without qualification (Dziugaite
  et al. 2020: a measure that orders some environment's runs no better than chance does not predict
  robustly), else "predicts on average, not in every environment". The environments are the norm cells
  (fixed model and lr: the question is which norm trains better) with at least MIN_PAIRS pairs outside
  seed noise (a rate over fewer pairs moves in steps of a third or more); the lr cells' sign errors are
  reported beside them. The direction a sign error reads is the sign of τ across norms (of the raw τ
  where that has none). Noise filter: ranks.NOISE_Z = 2 seed standard errors.
* Windows: WINDOW = 0.1 of the run decides; SENSITIVITY_WINDOWS 0.02 and 0.2 are reported beside it
  and decide nothing (a verdict that flips between them is fragile, and the table says so): their
  verdicts before the controls' check, in the `sensitivity` column.
* EDGE = 2: runs whose early sharpness × lr (mean over the window) is ≥ 2 are "at the edge of
  stability" (plain SGD's stability bound for a quadratic), the others "below"; where sharpness is
  recorded the τ and sign errors are also given within each subset, otherwise the output says the
  split could not be made.

Verdicts, per measure and outcome (`decide`), in this order:

1. "not recorded": no run has a finite value of the measure in the window.
2. "predicts": τ across norms ranks the outcome, beyond every confounder (or CMI given lr above its null),
   and both the mean and the worst-case sign error < SIGN_ERROR_MAX; "predicts on average, not in every
   environment" when the mean is below it and the worst is not.
3. "does not predict": τ ranks the outcome but the mean sign error is ≥ SIGN_ERROR_MAX.
4. "proxy of a confounder only": τ across norms ranks the outcome but not beyond the confounders and
   CMI given lr is not above its null; or τ across norms does not rank it while the raw τ (all runs
   pooled, the lr free to vary) does.
5. "does not predict": τ across norms lies wholly inside ±TAU_MIN.
6. "inconclusive": the interval straddles ±TAU_MIN, there is none, or the outcome never varies.

Controls (`machinery`): each positive control must *rank* its outcome in the expected direction, which
shows the machinery can see an association that is there (it need not beat the confounders, of which
early training loss is one): early training loss, final accuracy: τ across norms wholly below
−TAU_MIN with mean sign error < SIGN_ERROR_MAX; initial sharpness × lr, divergence (where sharpness is
recorded and some run diverged): the raw τ, all runs pooled, wholly above +TAU_MIN (Lewkowycz et al.
2020's criterion, sharpness × lr against 2, is an lr-crossing one). The shuffled control (a measure
permuted across runs, SHUFFLE_SEED) must not "predict" any outcome, on average or robustly.
(Until the pilot of the predictors study, the positive controls had to "predict" and "predicts" needed
the worst environment below a coin with no minimum of pairs: on the pilot the positive control failed
that in a cell of 3 pairs, as every measure fails in some environment (Dziugaite et al. 2020); changed
before any deciding run was analysed, studies/predictors_readme.py HISTORY.)
If any of these fails, or the positive control is not recorded, every verdict becomes "machinery
failed" and the reason says which control failed (the verdict it would have had is kept beside it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import IcsError
from ..store.runs import Run, run_config
from ..store.schema import FINISHED
from . import ranks
from .base import final_value, loss_drop, scored_by
from .keys import key_columns, rank_by, NORM_ORDER
from .quantities import grad_ics_table
from .stats import finite

WINDOW = 0.1
SENSITIVITY_WINDOWS = (0.02, 0.2)
TAU_MIN = 0.2
CMI_ALPHA = 0.05
SIGN_ERROR_MAX = 0.5
EDGE = 2.0
TARGET_FRACTION = 0.9
CENSOR_FACTOR = 2.0
CLASSES = 10                 # every classification dataset of net/data.py has 10 classes
SHUFFLE_SEED = 12345
MIN_NORMS = MIN_LRS = 2
MIN_SEEDS = 3
MIN_PAIRS = 6

PREDICTS, PROXY, NO, INCONCLUSIVE = "predicts", "proxy of a confounder only", "does not predict", "inconclusive"
ON_AVERAGE = "predicts on average, not in every environment"
NOT_RECORDED, FAILED = "not recorded", "machinery failed"
VERDICTS = (PREDICTS, ON_AVERAGE, PROXY, NO, INCONCLUSIVE, NOT_RECORDED, FAILED)

OUTCOMES = ("final_acc", "steps_to_target", "diverged")
MEASURE, CONFOUNDER, CONTROL = "measure", "confounder", "control"


@dataclass(frozen=True)
class Candidate:
    name: str
    role: str
    what: str


MEASURES = (
    Candidate("drift_mean_linear", MEASURE, "drift_mean_scaled_init at `linear` at the window's last log step, mean over hidden layers"),
    Candidate("drift_var_linear", MEASURE, "drift_var_init (|Δ ln σ²| from init) at `linear`, as above"),
    Candidate("drift_mean_norm_eval", MEASURE, "drift_mean_scaled_init at `norm_eval`, as above"),
    Candidate("drift_var_norm_eval", MEASURE, "drift_var_init at `norm_eval`, as above"),
    Candidate("grad_ics_rel", MEASURE, "ics_rel = ‖G − G′‖/‖G‖, mean over hidden2… and the window's steps"),
    Candidate("grad_ics_cos", MEASURE, "1 − ics_cos, mean over hidden2… and the window's steps"),
    Candidate("loss_band_rel", MEASURE, "(max − min over η of L(θ − ηg)) / L(θ), mean over the window's steps"),
    Candidate("grad_pred_rel", MEASURE, "max over η of ‖∇L(θ) − ∇L(θ − ηg)‖ / ‖∇L(θ)‖, mean over the window's steps"),
    Candidate("beta_eff_lr", MEASURE, "max over η of beta, × lr, mean over the window's steps"),
    Candidate("sharpness", MEASURE, "top Hessian eigenvalue, mean over the window's steps"),
    Candidate("sharpness_lr", MEASURE, "sharpness × lr, mean over the window's steps"),
    Candidate("grad_jitter", MEASURE, "grad_norm_jitter over the window's updates, mean over layers"),
    Candidate("log_lr", CONFOUNDER, "log10 lr"),
    Candidate("effective_step", CONFOUNDER, "update_ratio ‖ΔW‖/‖W‖ at the window's log steps, mean over layers"),
    Candidate("early_grad_norm", CONFOUNDER, "grad_norm over the window's updates, mean over layers"),
    Candidate("early_test_acc", CONFOUNDER, "test_acc at the window's last evaluation after step 0"),
    Candidate("early_train_loss", CONTROL, "train_loss over the window's updates (positive control for final_acc; also a confounder)"),
    Candidate("initial_sharpness_lr", CONTROL, "sharpness × lr at the first recorded step (positive control for diverged)"),
    Candidate("shuffled", CONTROL, "a measure permuted across runs with SHUFFLE_SEED (negative control)"),
)
ROLE = {c.name: c.role for c in MEASURES}
CONFOUNDERS = ("log_lr", "effective_step", "early_grad_norm", "early_test_acc", "early_train_loss")
POSITIVE = {"early_train_loss": "final_acc", "initial_sharpness_lr": "diverged"}
SHUFFLED_FROM = ("early_train_loss", "drift_mean_linear")     # the first one recorded is shuffled
# Config fields that make a norm variant the norm axis cannot name: folded into `norm` (norm_variant), so
# that noisy batch norm is compared with the other norms at the same (model, lr), not in a cell of its own.
VARIANT_KEYS = ("noise",)


def check_grid(runs: list[Run]) -> list[Run]:
    """The finished runs; an IcsError (one line) when they hold fewer than two norms or two lrs."""
    done = [r for r in runs if r.status in FINISHED]
    norms = sorted({str(run_config(r)["norm"]) for r in done})
    lrs = sorted({float(run_config(r)["lr"]) for r in done})
    for what, values, least in (("norms", norms, MIN_NORMS), ("learning rates", lrs, MIN_LRS)):
        if len(values) < least:
            seen = ", ".join(f"{v:g}" if isinstance(v, float) else v for v in values) or "none"
            raise IcsError(f"ics meta compares runs across norms and across learning rates: the {len(done)} "
                           f"finished runs have {len(values)} {what} ({seen}); at least {least} are needed")
    return done


# --------------------------------------------------------------------------- one run


def _hidden(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["layer"].astype(str).str.fullmatch(r"hidden\d+")]


def _num(values) -> np.ndarray:
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)


def _mean(values) -> float:
    x = _num(values)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def _max(values) -> float:
    x = _num(values)
    x = x[np.isfinite(x)]
    return float(x.max()) if x.size else math.nan


def jitter(norms: np.ndarray) -> float:
    """grad_norm_jitter's formula (docs/metrics.md, gradient_stability.csv), over the given updates."""
    norms = norms[np.isfinite(norms) & (norms > 0)]
    if norms.size < 2:
        return math.nan
    logs = pd.Series(np.log(norms))
    return float((logs - logs.rolling(5, center=True, min_periods=1).median()).std(ddof=0))


def _drifts(layers: pd.DataFrame, end: float) -> dict:
    layers = _hidden(layers)
    steps = pd.to_numeric(layers["step"])
    logged = steps[(steps > 0) & (steps <= end)]
    out = {}
    for site in ("linear", "norm_eval"):
        at = layers[(steps == logged.max()) & (layers["site"] == site)] if len(logged) else layers.iloc[:0]
        out[f"drift_mean_{site}"] = _mean(at["drift_mean_scaled_init"])
        out[f"drift_var_{site}"] = _mean(at["drift_var_init"])
    return out


def _grads(grads: pd.DataFrame, end: float) -> dict:
    grads = grads[(pd.to_numeric(grads["step"]) >= 1) & (pd.to_numeric(grads["step"]) <= end)]
    by_layer = grads.sort_values("step").groupby("layer", sort=False)
    return {"early_grad_norm": _mean(by_layer["grad_norm"].apply(_mean)),
            "effective_step": _mean(by_layer["update_ratio"].apply(_mean)),
            "grad_jitter": _mean(by_layer["grad_norm"].apply(
                lambda g: jitter(finite(g).to_numpy(float))))}


def _second_view(run: Run, end: float) -> dict:
    out = {}
    ics = grad_ics_table(run.table("grad_ics"))
    ics = ics[(pd.to_numeric(ics["step"]) <= end) & (ics["layer"].astype(str) != "hidden1")] if len(ics) else ics
    out["grad_ics_rel"] = _mean(ics["ics_rel"]) if len(ics) else math.nan
    out["grad_ics_cos"] = 1 - _mean(ics["ics_cos"]) if len(ics) else math.nan
    land = run.table("landscape")
    land = land[pd.to_numeric(land["step"]) <= end] if len(land) else land
    per_step = []
    for _, s in land.groupby("step"):
        loss = _num(s["loss"])
        loss = loss[np.isfinite(loss)]
        loss0, g = _num(s["loss0"])[0], _num(s["grad_norm"])[0]
        lr = (_num(s["eta"]) / _num(s["eta_mult"]))[0]
        loss0 = loss0 if math.isfinite(loss0) else math.nan
        band = (loss.max() - loss.min()) / loss0 if loss.size and loss0 and loss0 == loss0 else math.nan
        per_step.append((band, _max(s["grad_diff"]) / g if g and math.isfinite(g) else math.nan,
                         _max(s["beta"]) * lr if math.isfinite(lr) else math.nan))
    for i, name in enumerate(("loss_band_rel", "grad_pred_rel", "beta_eff_lr")):
        out[name] = _mean([p[i] for p in per_step])
    sharp = run.table("sharpness").sort_values("step")
    first = sharp.iloc[:1]
    sharp = sharp[pd.to_numeric(sharp["step"]) <= end] if len(sharp) else sharp
    out["sharpness"] = _mean(sharp["sharpness"]) if len(sharp) else math.nan
    out["sharpness_lr"] = _mean(sharp["sharpness_lr"]) if len(sharp) else math.nan
    out["initial_sharpness_lr"] = _mean(first["sharpness_lr"]) if len(first) else math.nan
    return out


def run_row(run: Run, window: float) -> dict:
    """One run's key, outcomes (but steps_to_target, which needs the target) and candidate measures."""
    cfg = run_config(run)
    end = window * float(cfg["steps"])
    metrics = run.table("metrics")
    diverged = run.status == "diverged"
    regression = scored_by(metrics) == "final_loss_drop"
    if regression:
        drop = finite(loss_drop(metrics)).dropna()
        final = 0.0 if diverged else (float(drop.iloc[-1]) if len(drop) else math.nan)
    else:
        final = 1.0 / CLASSES if diverged else final_value(run, metrics, "test_acc")
    steps = pd.to_numeric(metrics["step"])
    early = metrics[(steps > 0) & (steps <= end)]
    acc = finite(early["test_acc"]).dropna()
    row = {"seed": int(cfg["seed"]), "final_acc": final, "diverged": float(diverged),
           "log_lr": math.log10(float(cfg["lr"])), "early_train_loss": _mean(early["train_loss"]),
           "early_test_acc": float(acc.iloc[-1]) if len(acc) else math.nan}
    row.update(_drifts(run.table("layers"), end))
    row.update(_grads(run.table("grads"), end))
    row.update(_second_view(run, end))
    return row


def _reached(run: Run, target: float) -> float:
    metrics = run.table("metrics")
    hit = metrics["step"][finite(metrics["test_acc"]) >= target]
    if len(hit):
        return float(hit.iloc[0])
    return CENSOR_FACTOR * float(run_config(run)["steps"])


def norm_variant(cfg: dict) -> str:
    """The run's norm as the analysis compares it: the registry's name, with each VARIANT_KEYS setting
    that is not 'none' appended (`batch+santurkar`: batch norm with Santurkar's noise)."""
    extra = [str(cfg.get(k)) for k in VARIANT_KEYS if cfg.get(k) not in (None, "none", "")]
    return "+".join([str(cfg["norm"]), *extra])


def run_table(runs: list[Run], window: float = WINDOW) -> pd.DataFrame:
    """One row per finished run: key columns, seed, outcomes, measures (MEASURES order), hash, path,
    and `edge` (the window's mean sharpness × lr, for the edge-of-stability split)."""
    done = [r for r in runs if r.status in FINISHED]
    key = [k for k in key_columns(done) if k not in VARIANT_KEYS]
    rows = []
    for run in done:
        cfg = run_config(run)
        rows.append({**{k: cfg.get(k) for k in key}, **run_row(run, window), "hash": run.hash,
                     "path": str(run.path)})
        rows[-1]["norm"] = norm_variant(cfg)
    table = pd.DataFrame(rows)
    config = [k for k in key]
    best = table.groupby(config, dropna=False)["final_acc"].mean().max()
    target = TARGET_FRACTION * best
    table["steps_to_target"] = [_reached(r, target) for r in done]
    shuffled_from = next((m for m in SHUFFLED_FROM if table[m].notna().any()), SHUFFLED_FROM[0])
    rng = np.random.default_rng(SHUFFLE_SEED)
    table["shuffled"] = table[shuffled_from].to_numpy()[rng.permutation(len(table))]
    table["edge"] = table["sharpness_lr"]
    table.attrs.update(target=target, shuffled_from=shuffled_from, window=window, key=key)
    order = key + ["seed", *OUTCOMES, *(c.name for c in MEASURES), "edge", "hash", "path"]
    table = table[order]
    table = table.assign(_norm=rank_by(table["norm"], NORM_ORDER)).sort_values(
        ["_norm", *[k for k in key if k != "norm"], "seed"], kind="stable").drop(columns="_norm")
    return table.reset_index(drop=True)


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


def measure_stats(table: pd.DataFrame, context: list[str], measure: str, outcome: str,
                  replicates: int = ranks.BOOTSTRAP, permutations: int = ranks.PERMUTATIONS) -> Stats:
    both = table[np.isfinite(table[measure].to_numpy(float)) & np.isfinite(table[outcome].to_numpy(float))]
    norm_cells, lr_cells = context + ["lr"], context + ["norm"]
    tau_norm = ranks.granulated(both, norm_cells, "norm", measure, outcome, replicates)
    tau_lr = ranks.granulated(both, lr_cells, "lr", measure, outcome, replicates)
    tau_raw = ranks.granulated(both, [], context + ["norm", "lr"], measure, outcome, replicates)
    info = ranks.cmi(both, norm_cells, measure, outcome, permutations)
    lead = tau_norm.value if math.isfinite(tau_norm.value) else tau_raw.value
    direction = -1.0 if math.isfinite(lead) and lead < 0 else 1.0
    noise = ranks.seed_sd(both, context + ["norm", "lr"], outcome)
    sign = ranks.sign_errors(both, norm_cells, "norm", measure, outcome, direction, noise)
    sign_lr = ranks.sign_errors(both, lr_cells, "lr", measure, outcome, direction, noise)
    varies = both[outcome].nunique() > 1
    return Stats(len(both), tau_norm, tau_lr, tau_raw, info, direction, sign, varies, sign_lr)


def _ranks(g: ranks.Granulated) -> str:
    """'yes' (interval wholly beyond ±TAU_MIN), 'no' (wholly inside), 'open' (straddles, or none, or too
    few seeds or pairs behind it to decide)."""
    lo, hi = g.ci_low, g.ci_high
    if not (math.isfinite(lo) and math.isfinite(hi)) or g.seeds < MIN_SEEDS or g.pairs < MIN_PAIRS:
        return "open"
    if lo > TAU_MIN or hi < -TAU_MIN:
        return "yes"
    if lo > -TAU_MIN and hi < TAU_MIN:
        return "no"
    return "open"


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
    worst = s.worst
    robust = worst is not None and worst.value < SIGN_ERROR_MAX
    better = math.isfinite(s.sign_mean) and s.sign_mean < SIGN_ERROR_MAX
    ci = f"τ across norms {tau.value:.2f} [{tau.ci_low:.2f}, {tau.ci_high:.2f}]"
    ranked = _ranks(tau)
    if ranked == "yes" and (beats or informative):
        why = f"beats {rival} (|τ| {rival_tau:.2f})" if beats and rival else "CMI given lr above null"
        if robust and better:
            return PREDICTS, f"{ci}; {why}; mean sign error {s.sign_mean:.2f}, worst {worst.value:.2f}"
        if better:
            return ON_AVERAGE, (f"{ci}; {why}; mean sign error {s.sign_mean:.2f}, but {worst.value:.2f} in "
                                f"{worst.environment}")
        where = (f"mean sign error {s.sign_mean:.2f}" if math.isfinite(s.sign_mean) else
                 f"no environment with {MIN_PAIRS} pairs outside seed noise")
        return NO, f"{ci}, but {where}"
    if ranked == "yes":
        return PROXY, f"{ci}, not beyond {rival} (|τ| {rival_tau:.2f}) and CMI given lr not above null (p {s.cmi.p:.2g})"
    if ranked != "yes" and _ranks(s.tau_raw) == "yes" and not informative:
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
        ok = (_ranks(g) == "yes" and g.ci_high < -TAU_MIN and math.isfinite(s.sign_mean)
              and s.sign_mean < SIGN_ERROR_MAX)
        return ok, f"τ across norms {g.value:.2f} [{g.ci_low:.2f}, {g.ci_high:.2f}], mean sign error {s.sign_mean:.2f}"
    g = s.tau_raw
    return (_ranks(g) == "yes" and g.ci_low > TAU_MIN), f"raw τ {g.value:.2f} [{g.ci_low:.2f}, {g.ci_high:.2f}]"


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
    shuffled = verdicts[(verdicts["measure"] == "shuffled") & verdicts["verdict"].isin([PREDICTS, ON_AVERAGE])]
    problems += [f"shuffled control predicts {o}" for o in shuffled["outcome"]]
    return "; ".join(problems) or None


# --------------------------------------------------------------------------- the analysis


STAT_COLUMNS = ["measure", "role", "outcome", "window", "subset", "environment", "statistic",
                "value", "ci_low", "ci_high", "n"]
VERDICT_COLUMNS = ["measure", "role", "outcome", "window", "verdict", "reason", "unchecked_verdict",
                   "direction", "tau_norm", "tau_norm_ci_low", "tau_norm_ci_high", "tau_lr", "tau_lr_ci_low",
                   "tau_lr_ci_high", "psi", "tau_raw", "tau_raw_ci_low", "tau_raw_ci_high", "rival", "rival_tau",
                   "cmi", "cmi_null_mean", "cmi_excess", "cmi_p", "sign_error_mean", "sign_error_worst",
                   "worst_environment", "n_runs", "edge_split", "sensitivity"]
ALL, BELOW, AT = "all runs", "below the edge of stability", "at the edge of stability"


@dataclass
class Result:
    runs: pd.DataFrame          # run_table at the deciding window
    stats: pd.DataFrame         # predictors.csv
    verdicts: pd.DataFrame      # verdicts.csv
    window: float
    machinery: str | None       # what went wrong with the controls, at the deciding window


def _stat_rows(name: str, outcome: str, window: float, subset: str, s: Stats) -> list[dict]:
    base = dict(measure=name, role=ROLE[name], outcome=outcome, window=window, subset=subset)
    nan = math.nan
    rows = [dict(base, environment="all", statistic="n_runs", value=s.n_runs, ci_low=nan, ci_high=nan, n=s.n_runs)]
    for stat, g, env in (("tau_norm", s.tau_norm, "across norms"), ("tau_lr", s.tau_lr, "across lrs"),
                         ("tau_raw", s.tau_raw, "all runs pooled")):
        rows.append(dict(base, environment=env, statistic=stat, value=g.value, ci_low=g.ci_low,
                         ci_high=g.ci_high, n=g.n))
        if stat != "tau_raw":
            rows += [dict(base, environment=cell, statistic=f"{stat}_cell", value=tau, ci_low=nan, ci_high=nan,
                          n=k) for cell, tau, k in g.per_cell]
    if subset == ALL:
        psi = np.nanmean([s.tau_norm.value, s.tau_lr.value]) if any(
            math.isfinite(t) for t in (s.tau_norm.value, s.tau_lr.value)) else nan
        rows.append(dict(base, environment="both axes", statistic="psi", value=psi, ci_low=nan, ci_high=nan,
                         n=s.tau_norm.n + s.tau_lr.n))
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
    rows += [dict(base, environment="mean over norm environments", statistic="sign_error_mean", value=s.sign_mean,
                  ci_low=nan, ci_high=nan, n=sum(math.isfinite(e.value) for e in s.sign)),
             dict(base, environment=worst.environment if worst else "none", statistic="sign_error_worst",
                  value=worst.value if worst else nan, ci_low=nan, ci_high=nan, n=worst.pairs if worst else 0)]
    return rows


def _verdict_row(name: str, outcome: str, window: float, s: Stats | None, verdict: str, reason: str,
                 rival: tuple) -> dict:
    row = dict(measure=name, role=ROLE[name], outcome=outcome, window=window, verdict=verdict, reason=reason,
               unchecked_verdict=verdict, rival=rival[0], rival_tau=rival[1])
    if s is None:
        return dict(row, n_runs=0)
    w = s.worst
    psi = [t for t in (s.tau_norm.value, s.tau_lr.value) if math.isfinite(t)]
    return dict(row, direction="higher measure, higher outcome" if s.direction > 0 else "higher measure, lower outcome",
                tau_norm=s.tau_norm.value, tau_norm_ci_low=s.tau_norm.ci_low, tau_norm_ci_high=s.tau_norm.ci_high,
                tau_lr=s.tau_lr.value, tau_lr_ci_low=s.tau_lr.ci_low, tau_lr_ci_high=s.tau_lr.ci_high,
                psi=float(np.mean(psi)) if psi else math.nan, tau_raw=s.tau_raw.value,
                tau_raw_ci_low=s.tau_raw.ci_low, tau_raw_ci_high=s.tau_raw.ci_high, cmi=s.cmi.value,
                cmi_null_mean=s.cmi.null_mean, cmi_excess=s.cmi.excess, cmi_p=s.cmi.p,
                sign_error_mean=s.sign_mean, sign_error_worst=w.value if w else math.nan,
                worst_environment=w.environment if w else "", n_runs=s.n_runs)


def analyse(table: pd.DataFrame, window: float, replicates: int = ranks.BOOTSTRAP,
            permutations: int = ranks.PERMUTATIONS) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """(statistic rows, verdict rows, machinery problem) of one window's run table."""
    context = [k for k in table.attrs.get("key", ["model", "norm", "lr", "batch_size"]) if k not in ("norm", "lr")]
    edge = table["edge"].to_numpy(float)
    split = np.isfinite(edge).any()
    stats_rows, found = [], {}
    for outcome in OUTCOMES:
        for c in MEASURES:
            recorded = np.isfinite(table[c.name].to_numpy(float)).any()
            found[c.name, outcome] = s = (measure_stats(table, context, c.name, outcome, replicates, permutations)
                                          if recorded else None)
            if s is None:
                stats_rows.append(dict(measure=c.name, role=c.role, outcome=outcome, window=window, subset=ALL,
                                       environment="all", statistic="n_runs", value=0, ci_low=math.nan,
                                       ci_high=math.nan, n=0))
                continue
            stats_rows += _stat_rows(c.name, outcome, window, ALL, s)
            if split:
                for subset, keep in ((BELOW, edge < EDGE), (AT, edge >= EDGE)):
                    part = table[keep]
                    if len(part) and np.isfinite(part[c.name].to_numpy(float)).any():
                        sub = measure_stats(part, context, c.name, outcome, replicates, permutations)
                        stats_rows += [r for r in _stat_rows(c.name, outcome, window, subset, sub)
                                       if r["statistic"] in ("n_runs", "tau_norm", "sign_error_mean",
                                                             "sign_error_worst")]
    verdict_rows = []
    for outcome in OUTCOMES:
        rivals = {k: abs(found[k, outcome].tau_norm.value) for k in CONFOUNDERS
                  if found[k, outcome] is not None and math.isfinite(found[k, outcome].tau_norm.value)}
        for c in MEASURES:
            s = found[c.name, outcome]
            own = {k: v for k, v in rivals.items() if k != c.name}
            verdict, reason = decide(s, own)
            best = max(own.items(), key=lambda kv: kv[1], default=("", math.nan))
            row = _verdict_row(c.name, outcome, window, s, verdict, reason, best)
            row["edge_split"] = (f"{int((edge < EDGE).sum())} runs below, {int((edge >= EDGE).sum())} at the edge "
                                 "(predictors.csv, subset)" if split else
                                 "could not be split: sharpness × lr not recorded")
            verdict_rows.append(row)
    verdicts = pd.DataFrame(verdict_rows).reindex(columns=VERDICT_COLUMNS)
    problem = machinery(verdicts, table, found)
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
