"""The statistics of a predictor analysis (analyse/predictors.py): does a per-run number rank the runs as
their outcome does, within the cells where only one hyperparameter moves?

Every function here takes the per-run table (one row per run: the cell columns, `seed`, a measure
column and an outcome column) and returns plain numbers; nothing reads a run folder.

* `tau_b`: Kendall's τ_b (scipy.stats.kendalltau's variant: ties in either variable shrink the
  denominator), vectorized over bootstrap replicates. Equal to scipy's on every input (tested): scipy is
  called once per vector, and a 1000-replicate bootstrap of every cell would call it 10⁵ times per measure.
* `granulated`: Jiang et al. 2020's granulated τ. Runs are grouped into *cells* (every key column
  fixed but one axis: the norm, or the lr); in each cell the seed-mean measure and seed-mean outcome of
  its configurations give one τ_b; Ψ is the mean of the cells' τ. Interval: a percentile bootstrap that
  resamples seeds within each cell (the same seeds for every configuration of the cell, since runs
  sharing a seed share their init and batch order), `BOOTSTRAP` replicates from a fixed seed.
* `partial`: the granulated Kendall partial τ of measure and outcome given control columns (early
  training loss and accuracy): per cell, τ_xy·z = (τ_xy − τ_xz τ_yz) / sqrt((1 − τ_xz²)(1 − τ_yz²)) on the
  configurations' seed means, applied recursively for several controls (Kendall 1942); 0 where a control
  orders the measure or the outcome perfectly (|τ| = 1: nothing is left to add); mean over cells and
  the same seed bootstrap as `granulated`.
* `label_null`: the permutation p-value of Ψ across configurations: each cell's seed-mean measures
  permuted among its configurations (a norm's value given to another norm), `PERMUTATIONS` times.
* `cmi`: conditional mutual information I(M; Y | S) in nats, S the strata (every key column but the
  norm: the lr and the model), M and Y binned into at most `BINS` quantile bins within each stratum;
  a permutation null permutes M within strata (`PERMUTATIONS` times, fixed seed), since the plug-in
  estimate on small strata is biased upwards.
* `sign_errors`: Dziugaite et al. 2020's noise-filtered sign error per environment (a cell): over the
  pairs of configurations in it, the fraction the measure orders opposite to the outcome (a tie in the
  measure counts one half), ignoring pairs whose outcome means differ by no more than `NOISE_Z`
  standard errors of seed noise.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import weakref

import numpy as np
import pandas as pd

BOOTSTRAP = 1000        # bootstrap replicates of a granulated τ
PERMUTATIONS = 500      # permutations of the CMI null
BINS = 3                # quantile bins per variable within a stratum (terciles)
NOISE_Z = 2.0           # a pair counts when |Δ outcome mean| > NOISE_Z · seed standard error of Δ
CONFIDENCE = 0.95
SEED = 20250125         # the fixed seed of every resampling here


TIE = 9                     # significant digits kept before values are compared (`snap`)


def snap(x) -> np.ndarray:
    """x rounded to TIE significant digits: a seed mean of a constant (log lr over 2 and over 3 seeds)
    differs from it in the last bit, which is not an order; after rounding it is a tie."""
    x = np.asarray(x, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        digits = np.floor(np.log10(np.abs(x)))
        unit = 10.0 ** (np.where(np.isfinite(digits), digits, 0.0) - (TIE - 1))
        return np.where(np.isfinite(x) & (x != 0), np.round(x / unit) * unit, x)


def order(a, b):
    """sign(a − b) after `snap`: 0 for values equal to TIE significant digits."""
    with np.errstate(invalid="ignore"):
        return np.sign(snap(a) - snap(b))


def tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's τ_b between x and y along the last axis (leading axes: replicates).

    Pairs where either value is not finite are left out; NaN where fewer than two points remain or
    either variable is constant over them; values equal to TIE significant digits are tied (`snap`). Σ sign(Δx)·sign(Δy) / sqrt(Σ sign(Δx)² · Σ sign(Δy)²) over
    the pairs i < j: scipy's τ_b, (P − Q) / sqrt((P + Q + T_y)(P + Q + T_x)).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    first, second = np.triu_indices(x.shape[-1], 1)            # the pairs i < j
    ok = np.isfinite(x) & np.isfinite(y)
    valid = ok[..., first] & ok[..., second]
    x, y = snap(x), snap(y)
    with np.errstate(invalid="ignore"):
        dx = np.where(valid, np.sign(x[..., first] - x[..., second]), 0.0)
        dy = np.where(valid, np.sign(y[..., first] - y[..., second]), 0.0)
    num = (dx * dy).sum(axis=-1)
    den = np.sqrt((dx * dx).sum(axis=-1) * (dy * dy).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


@dataclass
class Cell:
    """One cell: its name, the configurations' labels and the [configuration, seed] matrices."""
    name: str
    configs: list
    m: np.ndarray           # measure, [config, seed], NaN where absent
    y: np.ndarray           # outcome


def cells(table: pd.DataFrame, by: list[str], axis: str, measure: str, outcome: str) -> list[Cell]:
    """The cells of `table` grouped by `by` (an empty `by`: one cell of everything), configurations
    told apart by `axis` (a column, or a list of columns), seeds by `seed`."""
    axis_cols = [axis] if isinstance(axis, str) else list(axis)
    m_all, y_all = table[measure].to_numpy(float), table[outcome].to_numpy(float)
    out = []
    for name, configs, rows, ci, si, shape in _layout(table, tuple(by), tuple(axis_cols)):
        m = np.full(shape, np.nan)
        y = np.full(shape, np.nan)
        m[ci, si], y[ci, si] = m_all[rows], y_all[rows]
        out.append(Cell(name, configs, m, y))
    return out


_LAYOUTS: dict = {}


def _layout(table: pd.DataFrame, by: tuple, axis_cols: tuple) -> list:
    """Where each row of `table` sits: per cell (name, configurations, row positions, configuration and
    seed indices, [config, seed] shape). Computed once per table, grouping and axis (the analysis asks
    for the same cells for every measure and outcome); forgotten when the table is."""
    key = (id(table), by, axis_cols)
    if key not in _LAYOUTS:
        if not any(k[0] == id(table) for k in _LAYOUTS):
            weakref.finalize(table, _forget, id(table))
        layout = []
        # Groups in order of first appearance, as iterating a groupby(sort=False) gives them.
        codes = (table.groupby(list(by), sort=False, dropna=False).ngroup().to_numpy() if by
                 else np.zeros(len(table), int))
        labels = list(map(tuple, table[list(axis_cols)].to_numpy().tolist()))
        seed_col = table["seed"].to_numpy()
        keys = table[list(by)].to_numpy().tolist() if by else [[]] * len(table)
        for g in range(int(codes.max()) + 1 if len(codes) else 0):
            rows = np.flatnonzero(codes == g)
            key_ = tuple(keys[rows[0]])
            name = ", ".join(f"{c}={_short(v)}" for c, v in zip(by, key_)) or "all runs"
            part_labels = [labels[i] for i in rows]
            configs = list(dict.fromkeys(part_labels))
            if len(configs) < 2:
                continue
            seeds = sorted(set(seed_col[rows].tolist()))
            where = {c: i for i, c in enumerate(configs)}
            col = {s_: j for j, s_ in enumerate(seeds)}
            ci = np.array([where[c] for c in part_labels])
            si = np.array([col[s_] for s_ in seed_col[rows].tolist()])
            layout.append((name, configs, rows, ci, si, (len(configs), len(seeds))))
        _LAYOUTS[key] = layout
    return _LAYOUTS[key]


def _forget(table_id: int) -> None:
    for k in [k for k in _LAYOUTS if k[0] == table_id]:
        del _LAYOUTS[k]


def _short(v) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


def _seed_means(cell: Cell, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seed-weighted means of measure and outcome per configuration, [replicate, config]; a run counts
    only where both are finite."""
    both = np.isfinite(cell.m) & np.isfinite(cell.y)
    mz, yz = np.where(both, cell.m, 0.0), np.where(both, cell.y, 0.0)
    count = weights @ both.T.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(count > 0, (weights @ mz.T) / count, np.nan),
                np.where(count > 0, (weights @ yz.T) / count, np.nan))


def cell_taus(cell: Cell, replicates: int, rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """(τ_b of the seed means, τ_b of `replicates` seed-bootstrap resamples)."""
    n_seeds = cell.m.shape[1]
    point = float(tau_b(*_seed_means(cell, np.ones((1, n_seeds))))[0])
    draws = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=replicates).astype(float)
    return point, tau_b(*_seed_means(cell, draws))


@dataclass
class Granulated:
    value: float            # Ψ: mean over cells of τ_b
    ci_low: float
    ci_high: float
    n: int                  # cells with a τ
    per_cell: list          # [(cell name, τ, configurations)]
    pairs: int = 0          # pairs of configurations within those cells
    seeds: int = 0          # the fewest seeds any of their configurations has


def _pooled(points: list, boots: list, per_cell: list, pairs: int, seeds: list) -> Granulated:
    """Ψ, the mean of the cells' τ, and its percentile interval over the replicates' means of the cells."""
    if not points:
        return Granulated(math.nan, math.nan, math.nan, 0, [])
    stack = np.vstack(boots)                                      # [cell, replicate]
    with warnings.catch_warnings():          # a replicate where every cell's τ is NaN: NaN, dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        psi = np.nanmean(stack, axis=0)
    psi = psi[np.isfinite(psi)]
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = (np.percentile(psi, [tail, 100 - tail]) if psi.size else (math.nan, math.nan))
    return Granulated(float(np.mean(points)), float(low), float(high), len(points), per_cell, pairs, min(seeds))


def granulated(table: pd.DataFrame, by: list[str], axis, measure: str, outcome: str,
               replicates: int = BOOTSTRAP, seed: int = SEED) -> Granulated:
    """Ψ = mean over the cells (grouped by `by`, configurations along `axis`) of τ_b(measure, outcome)
    of the configurations' seed means, with a percentile seed-bootstrap interval."""
    rng = np.random.default_rng(seed)
    points, boots, per_cell, pairs, seeds = [], [], [], 0, []
    for cell in cells(table, by, axis, measure, outcome):
        point, boot = cell_taus(cell, replicates, rng)
        if math.isfinite(point):
            points.append(point)
            boots.append(boot)
            per_cell.append((cell.name, point, len(cell.configs)))
            both = (np.isfinite(cell.m) & np.isfinite(cell.y)).sum(1)
            pairs += int((both > 0).sum() * ((both > 0).sum() - 1) // 2)
            seeds.append(int(both[both > 0].min()))
    return _pooled(points, boots, per_cell, pairs, seeds)


def label_null(table: pd.DataFrame, by: list[str], axis, measure: str, outcome: str,
               permutations: int = PERMUTATIONS, seed: int = SEED) -> float:
    """The permutation p-value of Ψ (`granulated`'s point value) against relabelling the configurations:
    in every cell the configurations' seed-mean measures are permuted among the configurations (a norm's
    value handed to another norm of the cell), `permutations` times from a fixed seed, and p = (1 + #{|Ψ*|
    ≥ |Ψ|}) / (1 + permutations). The seed bootstrap holds the configurations fixed and so cannot see a
    measure that is fixed per configuration (a norm-family label) and happens to order the cells' few
    configurations; this null can: it asks whether the measure orders the configurations better than an
    arbitrary assignment of the same values to them. NaN when no cell has a τ."""
    rng = np.random.default_rng(seed)
    points, nulls = [], []
    for cell in cells(table, by, axis, measure, outcome):
        mm, yy = _seed_means(cell, np.ones((1, cell.m.shape[1])))
        mm, yy = mm[0], yy[0]
        point = float(tau_b(mm, yy))
        if not math.isfinite(point):
            continue
        shuffled = mm[np.argsort(rng.random((permutations, mm.size)), axis=1)]
        points.append(point)
        nulls.append(tau_b(shuffled, np.broadcast_to(yy, shuffled.shape)))
    if not points:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        null = np.nanmean(np.vstack(nulls), axis=0)
    value = abs(float(np.mean(points)))
    return (1 + int(np.count_nonzero(np.abs(snap(null)) >= snap(value)))) / (1 + permutations)


def _partial(taus: dict, i: int, j: int, given: tuple) -> np.ndarray:
    """Kendall's partial τ of variables i and j given the variables `given` (recursive formula)."""
    if not given:
        return taus[min(i, j), max(i, j)]
    z, rest = given[-1], given[:-1]
    a, b, c = _partial(taus, i, j, rest), _partial(taus, i, z, rest), _partial(taus, j, z, rest)
    den = np.sqrt(np.clip((1 - b * b) * (1 - c * c), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-12, (a - b * c) / np.where(den > 1e-12, den, 1.0), np.where(np.isfinite(den), 0.0, np.nan))


def partial(table: pd.DataFrame, by: list[str], axis, measure: str, outcome: str, controls: list[str],
            replicates: int = BOOTSTRAP, seed: int = SEED) -> Granulated:
    """The granulated partial τ of measure and outcome given `controls` (module doc): per cell, the
    partial τ of the configurations' seed means (a run counts where every variable is finite); the mean
    over cells, with a percentile seed-bootstrap interval."""
    rng = np.random.default_rng(seed)
    names = [measure, outcome, *controls]
    per_var = [cells(table, by, axis, v, outcome) for v in names]
    points, boots, per_cell, pairs, seeds = [], [], [], 0, []
    for k, cell in enumerate(per_var[0]):
        mats = [c[k].m for c in per_var]
        ok = np.logical_and.reduce([np.isfinite(m) for m in mats])
        n_seeds = ok.shape[1]
        draws = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=replicates).astype(float)
        vals = []
        for weights in (np.ones((1, n_seeds)), draws):
            count = weights @ ok.T.astype(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = [np.where(count > 0, (weights @ np.where(ok, m, 0.0).T) / count, np.nan) for m in mats]
            taus = {(a, b): tau_b(means[a], means[b]) for a in range(len(names)) for b in range(a + 1, len(names))}
            vals.append(_partial(taus, 0, 1, tuple(range(2, len(names)))))
        point = float(vals[0][0])
        if math.isfinite(point):
            points.append(point)
            boots.append(vals[1])
            per_cell.append((cell.name, point, len(cell.configs)))
            used = (ok.sum(1) > 0).sum()
            pairs += int(used * (used - 1) // 2)
            seeds.append(int(ok.sum(1)[ok.sum(1) > 0].min()))
    return _pooled(points, boots, per_cell, pairs, seeds)


# --------------------------------------------------------------------------- conditional mutual information


def bins(values: np.ndarray, k: int = BINS) -> np.ndarray:
    """Quantile bins 0 … k−1 of `values` (ties share a bin; a constant gives one bin)."""
    k = max(1, min(k, values.size))
    edges = np.unique(np.quantile(values, np.linspace(0, 1, k + 1)[1:-1])) if k > 1 else np.array([])
    return np.searchsorted(edges, values, side="right")


def _mi(m: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Plug-in mutual information (nats) of binned m [replicate, n] and y [n], per replicate."""
    reps, n = m.shape
    codes = m * k + y[None, :] + (np.arange(reps) * k * k)[:, None]
    joint = np.bincount(codes.ravel(), minlength=reps * k * k).reshape(reps, k, k) / n
    pm, py = joint.sum(2, keepdims=True), joint.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / (pm * py)), 0.0)
    return terms.sum(axis=(1, 2))


@dataclass
class Cmi:
    value: float            # plug-in I(M; Y | S), nats
    null_mean: float        # mean of the permutation null
    null_low: float         # its 2.5% and 97.5% points
    null_high: float
    p: float                # (1 + #{null >= value}) / (1 + permutations)
    n: int                  # runs used

    @property
    def excess(self) -> float:
        return self.value - self.null_mean


def cmi(table: pd.DataFrame, strata: list[str], measure: str, outcome: str,
        permutations: int = PERMUTATIONS, seed: int = SEED) -> Cmi:
    """I(M; Y | strata) over the runs with both values finite, with a permutation null (M permuted
    within each stratum, which keeps M's distribution given the stratum and breaks only its link to Y)."""
    keep = np.isfinite(table[measure].to_numpy(float)) & np.isfinite(table[outcome].to_numpy(float))
    part = table[keep]
    total = len(part)
    if total < 4:
        return Cmi(math.nan, math.nan, math.nan, math.nan, math.nan, total)
    rng = np.random.default_rng(seed)
    value, null = 0.0, np.zeros(permutations)
    groups = part.groupby(strata, sort=False, dropna=False) if strata else [((), part)]
    for _, s in groups:
        n = len(s)
        if n < 2:
            continue
        m, y = bins(s[measure].to_numpy(float)), bins(s[outcome].to_numpy(float))
        k = int(max(m.max(), y.max())) + 1
        value += n / total * float(_mi(m[None, :], y, k)[0])
        shuffled = m[np.argsort(rng.random((permutations, n)), axis=1)]
        null += n / total * _mi(shuffled, y, k)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(null, [tail, 100 - tail])
    p = (1 + int(np.count_nonzero(null >= value - 1e-12))) / (1 + permutations)
    return Cmi(value, float(null.mean()), float(low), float(high), p, total)


# --------------------------------------------------------------------------- sign error


def seed_sd(table: pd.DataFrame, config: list[str], outcome: str) -> float:
    """The pooled within-configuration standard deviation of the outcome over seeds (ddof 1); NaN when
    no configuration has two seeds."""
    y = table[config + [outcome]].copy()
    y = y[np.isfinite(y[outcome].to_numpy(float))]
    g = y.groupby(config, sort=False, dropna=False)[outcome]
    dof = (g.count() - 1).clip(lower=0)
    if dof.sum() == 0:
        return math.nan
    return float(math.sqrt((g.var(ddof=1).fillna(0) * dof).sum() / dof.sum()))


@dataclass
class SignError:
    environment: str
    value: float            # fraction of counted pairs ordered opposite to the outcome
    pairs: int              # pairs counted (outside seed noise)


def sign_errors(table: pd.DataFrame, by: list[str], axis, measure: str, outcome: str, direction: float,
                noise_sd: float) -> list[SignError]:
    """Per environment (cell): pairs of configurations whose outcome means differ by more than
    NOISE_Z · noise_sd · sqrt(1/n_i + 1/n_j) (all pairs when noise_sd is NaN); the fraction where
    direction · sign(Δ measure) ≠ sign(Δ outcome), a tie in the measure counting one half."""
    out = []
    for cell in cells(table, by, axis, measure, outcome):
        both = np.isfinite(cell.m) & np.isfinite(cell.y)
        n = both.sum(1)
        mm, yy = _seed_means(cell, np.ones((1, cell.m.shape[1])))
        mm, yy = mm[0], yy[0]
        errors, counted = 0.0, 0
        for i in range(len(n)):
            for j in range(i + 1, len(n)):
                if not (n[i] and n[j]):
                    continue
                dy = yy[i] - yy[j]
                noise = NOISE_Z * noise_sd * math.sqrt(1 / n[i] + 1 / n[j]) if math.isfinite(noise_sd) else 0.0
                if abs(dy) <= noise or order(yy[i], yy[j]) == 0:
                    continue
                counted += 1
                dm = direction * order(mm[i], mm[j])
                errors += 0.5 if dm == 0 else float(dm != np.sign(dy))
        out.append(SignError(cell.name, errors / counted if counted else math.nan, counted))
    return out
