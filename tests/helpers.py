"""Helpers the tests share for real runs: train one, and read its CSVs back.

`run` trains one configuration into a folder (the tiny `synthetic` dataset unless told otherwise);
`runner(**defaults)` is `run` with more defaults, for a module whose runs share them (a call's own
fields win).
`csv_lines` reads a CSV's lines, gunzipped if needed; `strip_elapsed` drops each line's last column
(metrics.csv's elapsed_s, the only wall-clock column), so two runs' metrics compare byte for byte.
"""

from __future__ import annotations

import gzip
from functools import partial
from pathlib import Path

from ics_cli.config import RunConfig
from ics_cli.train import train


def run(out, on_step=None, on_resume=None, **kw):
    """Train RunConfig(**kw) (dataset "synthetic" unless kw names one) into `out`; the RunResult."""
    return train(RunConfig(**{"dataset": "synthetic", **kw}, out=str(out)), on_step=on_step, on_resume=on_resume)


def runner(**defaults):
    """`run` with these config fields as defaults; a call's own fields win."""
    return partial(run, **defaults)


def csv_lines(path: Path) -> list[str]:
    """A CSV's lines (header first), gunzipped if needed."""
    raw = Path(path).read_bytes()
    if Path(path).suffix == ".gz":
        raw = gzip.decompress(raw)
    return raw.decode().splitlines()


def strip_elapsed(path: Path) -> list[str]:
    """The CSV's lines without their last column (metrics.csv's elapsed_s)."""
    return [ln.rsplit(",", 1)[0] for ln in csv_lines(path)]
