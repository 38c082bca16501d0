"""What a study is made of, and the one rule that turns a measurement into a verdict.

A `Claim` is data: what is claimed, where it comes from, how it is measured and what value would
support it. Its `measure` function reads the study's runs (or builds modules directly, for exact
claims) and returns a `Measurement`: a number, its 95% interval over seeds when there is one, a
verdict and one sentence saying what was seen.

Verdicts (the same for every claim):

* PASS: the whole 95% t-interval over seeds lies on the side the claim predicts;
* FAIL: the whole interval lies on the other side;
* INCONCLUSIVE: the interval straddles the threshold, or there is no interval (fewer than two
  seeds, e.g. in quick mode), or the data the claim needs is missing.

Exact claims (a property of one module on one batch, no seeds) compare a deviation with a tolerance:
PASS within it, FAIL outside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from ..compare import mean_ci

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"


@dataclass
class Measurement:
    value: float
    ci_low: float | None
    ci_high: float | None
    verdict: str                      # PASS, FAIL or INCONCLUSIVE
    seen: str                         # one sentence: what the measurement says


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str                    # the claim in plain words
    source: str                       # paper and section, or "course note"
    metric: str                       # what `measure` computes, in words
    expected: str                     # the direction or threshold that would support the claim
    paper_value: str | None
    measure: Callable[..., Measurement]


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    description: str                  # one line, for `ics reproduce --list`
    protocol: str                     # markdown: every protocol value and the reason for it
    run: Callable                     # (out, quick, jobs, on_outcome) -> Context
    claims: list[Claim] = field(default_factory=list)
    figures: Callable | None = None   # (context, folder) -> [(path, caption)]


class MissingData(Exception):
    """A claim's data is absent (runs failed, a target never reached): the verdict is INCONCLUSIVE."""


# --------------------------------------------------------------------------- statistics


def interval(values) -> tuple[float, float | None, float | None, int]:
    """(mean, ci_low, ci_high, n) over the finite values; bounds None with fewer than two."""
    mean, lo, hi, n = mean_ci(list(values))
    if n == 0:
        raise MissingData("no finite values")
    return mean, (lo if n > 1 else None), (hi if n > 1 else None), n


def paired(a: dict, b: dict) -> tuple[float, float | None, float | None, int]:
    """Mean and 95% t-interval of a[seed] - b[seed] over the seeds both have (a paired comparison).

    Runs with the same seed share their batch order and probe batch, so differences by seed remove
    that part of the noise.
    """
    seeds = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in seeds if math.isfinite(a[s]) and math.isfinite(b[s])]
    if not diffs:
        raise MissingData("no seed with both values")
    return interval(diffs)


# --------------------------------------------------------------------------- verdicts


def directional(lo: float | None, hi: float | None, op: str, threshold: float) -> str:
    """The verdict for `value op threshold` (op one of <, <=, >, >=) from a 95% interval."""
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
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


def either(*verdicts: str) -> str:
    """One part of a claim suffices: any PASS passes it, all FAIL fail it, else it stays open."""
    if PASS in verdicts:
        return PASS
    return FAIL if verdicts and all(v == FAIL for v in verdicts) else INCONCLUSIVE


def decide(parts: dict[str, tuple], rule: Callable[..., str] = combine) -> tuple[str, str, tuple]:
    """A claim made of parts, each (interval, verdict): (verdict, deciding part's name, its interval).

    The deciding part is the first whose own verdict equals the claim's, so the number reported as
    `measured` is the one the verdict rests on.
    """
    verdict = rule(*(v for _, v in parts.values()))
    name = next(n for n, (_, v) in parts.items() if v == verdict)
    return verdict, name, parts[name][0]


def within(deviation: float, tolerance: float) -> str:
    """Exact claims: PASS when the deviation is at most the tolerance."""
    return PASS if math.isfinite(deviation) and deviation <= tolerance else FAIL


def fmt_ci(mean: float, lo: float | None, hi: float | None, digits: int = 3) -> str:
    """'0.123 [0.100, 0.146]' or '0.123 (one seed, no interval)'."""
    if lo is None or hi is None:
        return f"{mean:.{digits}g} (no interval: one seed)"
    return f"{mean:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"
