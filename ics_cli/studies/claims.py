"""What a study is made of, and the rules that turn measurements into a verdict.

A `Claim` is data: what is claimed, where it comes from, how it is measured, what value would
support it and how many seeds it rests on. Its `measure` function reads the study's runs (or builds
modules directly, for exact claims) and returns a `Measurement`: a number, its interval, a verdict
and one sentence saying what was seen. Metric, threshold and seed count are fixed in the study's
protocol before its runs, and are the same for every norm.

Verdicts (the same for every claim):

* PASS: the whole interval lies on the side the claim predicts;
* FAIL: the whole interval lies on the other side (a finding about the claim, not a bug);
* INCONCLUSIVE: the interval straddles the threshold, or there is no interval (fewer than two
  seeds, e.g. in quick mode), or the data the claim needs is missing.

Intervals (all from scipy):

* a difference between two norms, paired by seed: `scipy.stats.ttest_rel(...).confidence_interval`;
* a ratio of positive quantities: a t-interval of the mean log ratio, mapped back with exp (so it
  never reaches below 0: a geometric-mean ratio);
* a quantity measured on a grid (a learning rate, a step count at the log cadence): each seed gives
  a bracket [lower, upper] that surely holds the true value, and the interval runs from the t lower
  bound of the lower ends to the t upper bound of the upper ends. A bootstrap would be the usual
  answer to "t is wrong here", but with five seeds a percentile bootstrap cannot be wider than the
  sample's range and undercovers; the bracket carries the grid's resolution instead.

A claim made of k parts (several layers of a statement, or several variants) must hold in every
part; each part's interval is then a Bonferroni interval at confidence 1 − 0.05/k, so the claim as a
whole keeps a 5% error rate. Exact claims (a property of one module on one batch, no seeds) compare
a deviation with a tolerance: PASS within it, FAIL outside.

Two verdicts say that the data cannot decide the claim, and neither counts in a study's tally:

* DESIGN CHECK: the outcome is fixed by construction or by the protocol (a quantity that moves
  because the protocol makes it move; an arm that cannot meet its own floor). The measurement is
  still reported, with the reason (`Claim.design`).
* UNDERPOWERED: seeds sized before the runs could not detect the claim's margin. A pilot on seeds
  that never decide (`PILOT_SEEDS`) gives the seed SD of the claim's metric; the minimum detectable
  effect at the protocol's n seeds is MDE = (t(1 − a/2, n − 1) + t(0.8, n − 1)) · SD / sqrt(n), with
  a = 1 − the claim's interval confidence (Bonferroni included): the true distance from the threshold
  that the interval would clear with 80% power. A claim whose MDE exceeds its margin (`Claim.margin`,
  the smallest distance from the threshold that matters) is UNDERPOWERED and is not read: its
  `measured` and interval are blank, whatever its runs show. Where a study declares which runs each
  claim reads (`Study.plan`, `Claim.runs`), the runs that only underpowered claims read are not made.
  Ratios are analysed as logs: their SD, MDE and margin are on the log scale and reported as factors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from ..analyse.stats import CONFIDENCE, finite

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
DESIGN_CHECK, UNDERPOWERED = "DESIGN CHECK", "UNDERPOWERED"
# Every verdict and what it means: the one list that READMEs, the report and the terminal read.
VERDICTS = {
    PASS: "the interval over seeds lies wholly on the side the claim predicts",
    FAIL: "the interval lies wholly on the other side (a finding about the claim, not a bug)",
    INCONCLUSIVE: "the interval straddles the threshold, or the data is missing",
    UNDERPOWERED: "the pilot's seed SD gives a minimum detectable effect larger than the claim's margin at "
                  "the protocol's seeds: not decided, and its deciding seeds are not read (no value is shown; the pilot's "
                  "is in the pilot table); where the study says which runs each claim reads, runs that only such "
                  "claims read are not made",
    DESIGN_CHECK: "the outcome is fixed by construction or by the protocol: a check of the design, not a test",
}
TESTS = (PASS, FAIL, INCONCLUSIVE)           # the verdicts a study's tally counts
PILOT_SEEDS = (100, 101, 102)                # seeds that size a study's seeds and never decide a verdict
POWER = 0.8                                   # the power at which the MDE is stated


@dataclass
class Measurement:
    value: float
    ci_low: float | None
    ci_high: float | None
    verdict: str                      # PASS, FAIL or INCONCLUSIVE (the study sets the other two)
    seen: str                         # one sentence: what the measurement says
    n_seeds: int | None = None        # seeds the interval rests on (None: exact claim)
    sd: float | None = None           # SD over seeds of what the interval is of (log scale for ratios)
    confidence: float = 0.95          # the interval's confidence (Bonferroni included)
    log: bool = False                 # the interval is exp of an interval of logs (a ratio)


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str                    # the claim in plain words
    source: str                       # paper and section, or "course note"
    metric: str                       # what `measure` computes, in words
    expected: str                     # the direction or threshold that would support the claim
    paper_value: str | None
    measure: Callable[..., Measurement]
    revised: str | None = None        # how and why the test changed from the previous release
    margin: float | None = None       # smallest distance from the threshold that matters (a factor for ratios)
    design: str | None = None         # why the outcome is fixed by construction: a DESIGN CHECK
    runs: tuple[str, ...] = ()        # the run groups of Study.plan its measurement reads (() = not declared)


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    description: str                  # one line, for `ics reproduce --list`
    protocol: str                     # markdown: every protocol value and the reason for it
    run: Callable                     # (out, quick, jobs, on_outcome, seeds) -> Context
    claims: list[Claim] = field(default_factory=list)
    figures: Callable | None = None   # (context, folder) -> [(path, caption)]
    previous: dict[str, str] = field(default_factory=dict)   # claim id -> verdict of the last release
    previous_commit: str = "00aaf02"  # the commit whose results `previous` holds
    history: list["Change"] = field(default_factory=list)    # changes after data was seen
    dataset: str = "mnist-5k"         # what its runs train on, in words for the README
    budget: str = ""                  # the compute budget its seeds were sized within
    review: str = ""                  # markdown: what the red-team review of the verdicts found, and what was done
    # (quick, seeds) -> {group: Plan or Sweep}, the runs `run` makes. With it, and every claim's `runs`
    # declared, the deciding runs that only underpowered claims read are not made (studies/__init__.py).
    plan: Callable | None = None


@dataclass(frozen=True)
class Change:
    """One change to a claim's metric, threshold, seeds or grid, for the study's threshold history."""

    claims: str                       # claim ids, comma-separated
    commit: str                       # the commit (or release) whose data had been seen
    what: str
    why: str
    after_data: bool = True           # made after that claim's data was seen

    def ids(self) -> set[str]:
        return {c.strip() for c in self.claims.split(",")}


class MissingData(Exception):
    """A claim's data is absent (runs failed, a target never reached): the verdict is INCONCLUSIVE."""


class Interval(NamedTuple):
    mean: float
    lo: float | None
    hi: float | None
    n: int
    sd: float | None = None           # SD of the per-seed values the interval is of
    confidence: float = CONFIDENCE
    log: bool = False                 # exp of an interval of logs


def _sd(x: np.ndarray) -> float | None:
    return float(np.std(x, ddof=1)) if x.size >= 2 else None


def mde(sd: float | None, n: int | None, confidence: float, power: float = POWER) -> float | None:
    """Minimum detectable effect of a t-interval at `confidence` over n seeds with seed SD `sd`:
    the true distance from a threshold that the interval clears with probability `power`."""
    if sd is None or n is None or n < 2 or not math.isfinite(sd):
        return None
    alpha = 1 - confidence
    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n))


def seeds_needed(sd: float | None, confidence: float, margin: float, most: int = 100) -> int | None:
    """The fewest seeds (2..most) whose MDE is at most `margin`; None if even `most` are not enough."""
    if sd is None or not math.isfinite(sd) or margin <= 0:
        return None
    return next((n for n in range(2, most + 1) if mde(sd, n, confidence) <= margin), None)


# --------------------------------------------------------------------------- statistics


def family(parts: int) -> float:
    """Bonferroni: the confidence of each of `parts` intervals that must all hold."""
    return 1 - (1 - CONFIDENCE) / max(parts, 1)


def _constant(x: np.ndarray) -> bool:
    """No spread beyond rounding: scipy's t would divide by a zero (or rounding-sized) deviation."""
    return bool(np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())))


def _t_bounds(x: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    if x.size < 2:
        return None, None
    if _constant(x):               # the interval is the point
        return float(x.mean()), float(x.mean())
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Mean and t-interval over the finite values; bounds None with fewer than two."""
    x = finite(pd.Series(list(values), dtype=float)).dropna().to_numpy()
    if x.size == 0:
        raise MissingData("no finite values")
    return Interval(float(x.mean()), *_t_bounds(x, confidence), int(x.size), _sd(x), confidence)


def _pairs(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray]:
    seeds = [s for s in sorted(set(a) & set(b)) if math.isfinite(a[s]) and math.isfinite(b[s])]
    if not seeds:
        raise MissingData("no seed with both values")
    return np.array([a[s] for s in seeds], float), np.array([b[s] for s in seeds], float)


def paired(a: dict, b: dict, confidence: float = CONFIDENCE) -> Interval:
    """Mean of a[seed] − b[seed] over the seeds both have, with scipy's paired t-interval.

    Runs with the same seed share their init stream, batch order and probe batch, so differences
    by seed remove that part of the noise.
    """
    x, y = _pairs(a, b)
    d = x - y
    if d.size < 2 or _constant(d):
        return Interval(float(d.mean()), *_t_bounds(d, confidence), int(d.size), _sd(d), confidence)
    ci = stats.ttest_rel(x, y).confidence_interval(confidence)
    return Interval(float(d.mean()), float(ci.low), float(ci.high), int(d.size), _sd(d), confidence)


def ratio(a: dict, b: dict, confidence: float = CONFIDENCE) -> Interval:
    """Geometric mean of a[seed] / b[seed] (positive values) with exp of the t-interval of the logs."""
    x, y = _pairs(a, b)
    keep = (x > 0) & (y > 0)
    if not keep.any():
        raise MissingData("no seed with two positive values")
    logs = np.log(x[keep] / y[keep])
    lo, hi = _t_bounds(logs, confidence)
    return Interval(float(np.exp(logs.mean())), None if lo is None else math.exp(lo),
                    None if hi is None else math.exp(hi), int(logs.size), _sd(logs), confidence, True)


def bracketed(point: dict, lower: dict, upper: dict, confidence: float = CONFIDENCE) -> Interval:
    """A grid-quantized quantity: per seed a point and a bracket [lower, upper] that holds the truth.

    Mean of the points; interval from the t lower bound of the lower ends to the t upper bound of
    the upper ends (an infinite end stays infinite: the truth is beyond the grid).
    """
    seeds = sorted(s for s in point if math.isfinite(point[s]))
    if not seeds:
        raise MissingData("no finite values")
    p = np.array([point[s] for s in seeds])
    lo_end = np.array([lower[s] for s in seeds], float)
    hi_end = np.array([upper[s] for s in seeds], float)
    if len(seeds) < 2:
        return Interval(float(p.mean()), None, None, len(seeds))
    lo = -math.inf if np.isneginf(lo_end).any() else _t_bounds(lo_end, confidence)[0]
    hi = math.inf if np.isposinf(hi_end).any() else _t_bounds(hi_end, confidence)[1]
    # The spread of the points plus the bracket's width: what the interval's width is made of.
    ends = np.concatenate([lo_end, hi_end])
    sd = _sd(ends) if np.isfinite(ends).all() else None
    return Interval(float(p.mean()), lo, hi, len(seeds), sd, confidence)


def exp_interval(iv: Interval) -> Interval:
    """An interval of logs mapped back with exp (geometric means and ratio bounds)."""
    f = lambda v: None if v is None else math.exp(v)    # noqa: E731
    return Interval(math.exp(iv.mean), f(iv.lo), f(iv.hi), iv.n, iv.sd, iv.confidence, True)


# --------------------------------------------------------------------------- verdicts


def directional(lo: float | None, hi: float | None, op: str, threshold: float) -> str:
    """The verdict for `value op threshold` (op one of <, <=, >, >=) from an interval."""
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return INCONCLUSIVE
    if op in ("<", "<="):
        supports = hi < threshold if op == "<" else hi <= threshold
        contradicts = lo >= threshold if op == "<" else lo > threshold
    elif op in (">", ">="):
        supports = lo > threshold if op == ">" else lo >= threshold
        contradicts = hi <= threshold if op == ">" else hi < threshold
    else:
        raise ValueError(f"op must be one of <, <=, >, >=; got {op}")
    return PASS if supports else FAIL if contradicts else INCONCLUSIVE


def combine(*verdicts: str) -> str:
    """All parts of a claim must hold: any FAIL fails it, else any INCONCLUSIVE leaves it open."""
    if FAIL in verdicts:
        return FAIL
    return INCONCLUSIVE if INCONCLUSIVE in verdicts else PASS


def decide(parts: dict[str, tuple[Interval, str]]) -> tuple[str, str, Interval]:
    """A claim made of parts, each (interval, verdict), all of which must hold.

    Returns (verdict, deciding part's name, its interval): the deciding part is the first whose own
    verdict equals the claim's, so the number reported as `measured` is the one the verdict rests on.
    """
    verdict = combine(*(v for _, v in parts.values()))
    name = next(n for n, (_, v) in parts.items() if v == verdict)
    return verdict, name, parts[name][0]


def within(deviation: float, tolerance: float) -> str:
    """Exact claims: PASS when the deviation is at most the tolerance."""
    return PASS if math.isfinite(deviation) and deviation <= tolerance else FAIL


def fmt_ci(mean: float, lo: float | None, hi: float | None, digits: int = 3) -> str:
    """'0.123 [0.100, 0.146]' or '0.123 (no interval: one seed)'."""
    if lo is None or hi is None:
        return f"{mean:.{digits}g} (no interval: one seed)"
    return f"{mean:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"


def measurement(iv: Interval, verdict: str, seen: str) -> Measurement:
    return Measurement(iv.mean, iv.lo, iv.hi, verdict, seen, iv.n, iv.sd, iv.confidence, iv.log)


def powered(claim: Claim, m: Measurement, pilot_sd: float | None) -> tuple[float | None, str]:
    """(MDE at the measurement's seeds from the pilot's SD, the verdict): UNDERPOWERED when the MDE
    exceeds the claim's margin, the measurement's own verdict otherwise. For a ratio the MDE is
    returned as a factor (exp of the log MDE) and compared with the margin as a factor."""
    d = mde(pilot_sd, m.n_seeds, m.confidence)
    if d is None:
        return None, m.verdict
    if m.log:
        d = math.exp(d)
    if claim.margin is not None and d > claim.margin:
        return d, UNDERPOWERED
    return d, m.verdict
