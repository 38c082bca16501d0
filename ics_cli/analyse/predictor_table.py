"""The predictors analysis's run table: one row per run, its outcomes and its candidate measures.

`run_table` reads each finished run's tables and gives one row per run: its key (model, norm, lr, seed,
batch size and any other key column that varies), its OUTCOMES, and the MEASURES taken only in an early
window (the first `window` of the run's planned steps), all scale-free. analyse/predictors.py holds the
statistics and the pre-registered verdicts; docs/metrics.md, "Predictors of training (ics meta)", every
column and formula.

Outcomes: `final_acc` (final test accuracy; a diverged run counts at chance, 1 / CLASSES; a regression
run its final loss drop, 0 if diverged), `steps_to_target` (first evaluated step whose test accuracy
reaches TARGET_FRACTION × the best mean final accuracy of a configuration *of the same model*, so that a
model that learns slowly is not censored wholesale by a faster one's target; a run that never does is
censored at CENSOR_FACTOR × its planned steps, so it ranks last), `diverged` (1 or 0).

Beside them: `edge` (the window's mean sharpness × lr, a confounder), `alive` (1 when the run had not
diverged by the window's end: divergence is an outcome only for runs whose measures were taken before it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import IcsError
from ..net import norms as norm_registry
from ..store.runs import Run, run_config
from ..store.schema import FINISHED
from .base import final_value, loss_drop, scored_by
from .keys import key_columns, rank_by, NORM_ORDER
from .quantities import grad_ics_table
from .stats import finite

TARGET_FRACTION = 0.9
CENSOR_FACTOR = 2.0
CLASSES = 10                 # every classification dataset of net/data.py has 10 classes
SHUFFLE_SEED = 12345
MIN_NORMS = MIN_LRS = 2

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
    # (sharpness × lr, its scale by the lr, ranks norms at a fixed lr exactly as sharpness does: it is the
    # `edge` column, not a candidate of its own.)
    Candidate("sharpness", MEASURE, "top Hessian eigenvalue, mean over the window's steps"),
    Candidate("grad_jitter", MEASURE, "grad_norm_jitter over the window's updates, mean over layers"),
    Candidate("log_lr", CONFOUNDER, "log10 lr"),
    Candidate("effective_step", CONFOUNDER, "update_ratio ‖ΔW‖/‖W‖ at the window's log steps, mean over layers"),
    Candidate("early_grad_norm", CONFOUNDER, "grad_norm over the window's updates, mean over layers"),
    Candidate("early_test_acc", CONFOUNDER, "test_acc at the window's last evaluation after step 0"),
    Candidate("batch_stats", CONFOUNDER, "1 when the norm takes its statistics from the mini-batch in training "
              "(the registry's batch_stats: batch, batch-nograd, batch-renorm, ghost-batch, noisy batch), else 0: the norm family"),
    Candidate("edge", CONFOUNDER, "sharpness × lr, mean over the window's steps (the edge of stability at 2); at a fixed lr it "
              "orders runs as `sharpness` does, so it is no rival of `sharpness`"),
    Candidate("early_train_loss", CONTROL, "train_loss over the window's updates (positive control for final_acc; also a confounder)"),
    Candidate("initial_sharpness_lr", CONTROL, "sharpness × lr at the first recorded step (positive control for diverged)"),
    Candidate("shuffled", CONTROL, "a measure permuted across runs with SHUFFLE_SEED (negative control)"),
    Candidate("shuffled_config", CONTROL, "one value per configuration: the configurations' seed means of the shuffled "
              "source, permuted across configurations with SHUFFLE_SEED (negative control for a measure fixed per "
              "configuration, as a norm-family label is)"),
)
ROLE = {c.name: c.role for c in MEASURES}
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
    at = (run.summary or {}).get("diverged_at_step")
    alive = float(not diverged or at is None or float(at) > end)
    row = {"seed": int(cfg["seed"]), "final_acc": final, "diverged": float(diverged), "alive": alive,
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


def batch_stats(norm: str) -> float:
    """1.0 when the norm (a norm_variant name) takes its statistics from the mini-batch, 0.0 when not, NaN
    for a name the registry does not hold."""
    spec = norm_registry.REGISTRY.get(norm.split("+")[0])
    return math.nan if spec is None else float(spec.batch_stats)


def norm_variant(cfg: dict) -> str:
    """The run's norm as the analysis compares it: the registry's name, with each VARIANT_KEYS setting
    that is not 'none' appended (`batch+santurkar`: batch norm with Santurkar's noise)."""
    extra = [str(cfg.get(k)) for k in VARIANT_KEYS if cfg.get(k) not in (None, "none", "")]
    return "+".join([str(cfg["norm"]), *extra])


def run_table(runs: list[Run], window: float) -> pd.DataFrame:
    """One row per finished run: key columns, seed, outcomes, measures (MEASURES order), `alive`, hash and
    path."""
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
    model = [k for k in key if k not in ("norm", "lr")]
    # Each run's target: TARGET_FRACTION × the best configuration mean of its model.
    config_mean = table.groupby(config, sort=False, dropna=False)["final_acc"].transform("mean")
    best = (config_mean.groupby([table[k] for k in model], sort=False, dropna=False).transform("max")
            if model else pd.Series(config_mean.max(), index=table.index))
    target = TARGET_FRACTION * best.to_numpy(float)
    table["steps_to_target"] = [_reached(r, t) for r, t in zip(done, target)]
    shuffled_from = next((m for m in SHUFFLED_FROM if table[m].notna().any()), SHUFFLED_FROM[0])
    rng = np.random.default_rng(SHUFFLE_SEED)
    table["shuffled"] = table[shuffled_from].to_numpy()[rng.permutation(len(table))]
    means = table.groupby(config, sort=False, dropna=False)[shuffled_from].transform("mean")
    codes = table.groupby(config, sort=False, dropna=False).ngroup().to_numpy()
    per_config = means.groupby(codes).first().to_numpy()
    table["shuffled_config"] = per_config[rng.permutation(len(per_config))][codes]
    table["batch_stats"] = [batch_stats(n) for n in table["norm"]]
    table["edge"] = table["sharpness_lr"]
    table.attrs.update(targets=sorted(set(np.round(target, 6).tolist())), shuffled_from=shuffled_from,
                       window=window, key=key)
    order = key + ["seed", *OUTCOMES, *(c.name for c in MEASURES), "alive", "hash", "path"]
    table = table[order]
    table = table.assign(_norm=rank_by(table["norm"], NORM_ORDER)).sort_values(
        ["_norm", *[k for k in key if k != "norm"], "seed"], kind="stable").drop(columns="_norm")
    return table.reset_index(drop=True)
