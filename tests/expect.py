"""Assertions the tests share.

`error_line`: a command ended with one line `ics: error: ...` on stderr, exit 2, no traceback;
`refused`: `ics` refuses bad input with that one line and writes nothing. For compare tables
checked against numbers computed by hand: `one` finds the single row of a table with given key
values; `half` is the half-width of a 95% t interval (scipy's t quantile, s with ddof 1); `ci`
asserts that a row holds the mean and 95% t interval of given per-seed values.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ics_cli.cli import main


def one(table: pd.DataFrame, **where) -> pd.Series:
    mask = pd.Series(True, index=table.index)
    for col, value in where.items():
        mask &= table[col] == value
    hits = table[mask]
    assert len(hits) == 1, f"{len(hits)} rows for {where}"
    return hits.iloc[0]


def half(values) -> float:
    """Half-width of the 95% t interval of `values`."""
    x = np.asarray(values, float)
    return stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)


def ci(r: pd.Series, name: str, values) -> None:
    """Row `r` holds the mean and 95% t interval of `values` over seeds for `name` (blank bounds for
    a single value)."""
    mean = float(np.mean(values))
    assert r[f"{name}_mean"] == pytest.approx(mean, rel=1e-9, abs=1e-12)
    if len(values) < 2:
        assert math.isnan(r[f"{name}_ci_low"]) and math.isnan(r[f"{name}_ci_high"])
    else:
        h = half(values)
        assert (r[f"{name}_ci_low"], r[f"{name}_ci_high"]) == pytest.approx((mean - h, mean + h), abs=1e-9)


def error_line(rc: int, capsys, *needles: str, absent: tuple[str, ...] = ()) -> str:
    """Exit code `rc` is 2 and what was captured is one line `ics: error: ...` on stderr (newline
    ended) naming every one of `needles` and none of `absent`, with no traceback on stderr or stdout;
    return the line."""
    captured = capsys.readouterr()
    err = captured.err
    lines = err.splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and err == lines[0] + "\n", err
    assert lines[0].startswith("ics: error: "), err
    assert "Traceback" not in err + captured.out, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    for word in absent:
        assert word not in err, (word, err)
    return lines[0]


def refused(capsys, argv: list[str], out, *needles: str) -> str:
    """Run `ics argv --out out`; assert the one-line refusal (`error_line`) naming every one of
    `needles`, and that `out` is empty; return the line."""
    line = error_line(main([*argv, "--out", str(out)]), capsys, *needles)
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    return line


def run_doc_example(doc, heading: str, folder, name: str = "example.py"):
    """Run, in `folder`, the first ```python block after `heading` of the markdown file `doc`, as a user who
    pasted it into `name` would; assert it exits 0 and return the run folder it wrote (its summary.json's)."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    text = Path(doc).read_text()
    code = re.search(r"```python\n(.*?)```", text[text.index(heading):], re.S).group(1)
    (Path(folder) / name).write_text(code)
    done = subprocess.run([sys.executable, name], cwd=folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return next(Path(folder).rglob("summary.json")).parent
