"""Grids of step sizes, as a person writes them on the command line.

Two forms: a comma list ("0.5,1,2,4") or LOW:HIGH:N, N log-spaced values from LOW to HIGH inclusive
("1e-5:1:11" is 1e-5, 3.16e-5, ..., 1). Every value finite and > 0, distinct as written to a CSV
(9 significant digits: a value names its row), at most `LIMIT` of them.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError

LIMIT = 64
FORMS = "a comma list of numbers > 0 (e.g. 0.5,1,2,4) or LOW:HIGH:N for N log-spaced values from LOW to HIGH"


def parse(text: str) -> list[float]:
    """The grid `text` describes; a ValueError saying what is wrong when it describes none."""
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError("LOW:HIGH:N has three parts")
        low, high = _number(parts[0]), _number(parts[1])
        try:
            n = int(parts[2])
        except ValueError:
            raise ValueError(f"N must be a whole number, got {parts[2].strip()!r}") from None
        if not 2 <= n <= LIMIT:
            raise ValueError(f"N must be in [2, {LIMIT}], got {n}")
        if not low < high:
            raise ValueError(f"LOW must be below HIGH, got {parts[0].strip()} and {parts[1].strip()}")
        # geomspace keeps both ends exact (LOW and HIGH as given).
        values = [float(v) for v in np.geomspace(low, high, n)]
    else:
        values = [_number(part) for part in text.split(",")]
    if len(values) > LIMIT:
        raise ValueError(f"at most {LIMIT} values, got {len(values)}")
    written = [format(v, ".9g") for v in values]
    if len(set(written)) < len(written):
        repeated = next(w for w in written if written.count(w) > 1)
        raise ValueError(f"{repeated} is given twice")
    return values


def _number(part: str) -> float:
    part = part.strip()
    try:
        value = float(part)
    except ValueError:
        raise ValueError(f"{part!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"each value must be finite and > 0, got {part}")
    return value


def check(option: str, text: str) -> list[float]:
    """The grid of `option`, or a one-line ConfigError naming the option, the value and the forms."""
    try:
        return parse(text)
    except ValueError as e:
        raise ConfigError(f"{option} {text!r}: {e}; give {FORMS}") from None
