"""Output sets with figures: every figure of a compare folder, and the tables and figures written as one set.

Each figure family (plots.py: the first view; quantities.py: the second view; batch.py: the batch axis)
declares its FIGURES and CAPTIONS; this module draws them all (`draw_all`) and names a figure file's
caption (`caption`). `save` is the figure half of the compare output set (analyse/outputs.py owns the
tables): the tables written, then the figures drawn from the CSVs just written, as `ics plot` redraws
them, so the same bytes either way, in one staged set.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analyse import outputs
from ..errors import IcsError
from ..store import staging
from . import batch as batch_plots, plots, quantities as second_plots
from .style import FORMATS, check_format

FIGURES = plots.FIGURES + second_plots.FIGURES + batch_plots.FIGURES
CAPTIONS = {**plots.CAPTIONS, **second_plots.CAPTIONS, **batch_plots.CAPTIONS}


def kind_of(path: Path | str) -> str:
    """The figure kind (a CAPTIONS key) of a figure file: `drift_heatmap_cnn.png` -> drift_heatmap."""
    stem = Path(path).stem
    for kind in sorted(CAPTIONS, key=len, reverse=True):
        if stem == kind or stem.startswith(f"{kind}_"):
            return kind
    raise KeyError(f"no caption for figure '{Path(path).name}'")


def caption(path: Path | str) -> str:
    """The CAPTIONS entry of a figure file written by draw_all (`drift_heatmap_cnn.png` -> drift_heatmap)."""
    return CAPTIONS[kind_of(path)]


def draw_all(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Every figure (one file per figure and model) into `out_dir`; return the paths written.

    The figures are one output set (staging.staged): drawn in a staging folder beside `out_dir` and
    moved in at the end; figures of this format already in `out_dir` that the new set lacks are
    removed. A kill leaves the previous figures, never half of a new set. A figure with nothing to
    show (no data recorded, or lr_tolerance with one lr) is not drawn; its caption is `caption(path)`.
    A figure whose source table (plots.SOURCES) is absent from `tables` is neither drawn nor removed:
    a folder whose large per-step tables were left out (results/) keeps the figures drawn from them.
    """
    check_format(fmt)
    if "summary" not in tables:
        raise IcsError("the compare tables have no summary.csv; run `ics compare` first")
    out_dir = Path(out_dir)

    absent = {kind for kind, table in plots.SOURCES.items() if table not in tables}

    def owned(name: str) -> bool:   # a figure of this format, or a temporary file a kill left
        if name.startswith(".") and ".tmp" in name:
            return True
        return name.endswith(f".{fmt}") and is_figure(name) and kind_of(name) not in absent

    with staging.staged(out_dir, owned) as stage:
        names = [path.name for figure in FIGURES for path in figure(tables, stage, fmt)]
    return [out_dir / name for name in names]


def is_figure(name: str) -> bool:
    try:
        caption(name)
    except KeyError:
        return False
    return True



def owns(name: str) -> bool:
    """Whether a file called `name` in a compare folder belongs to its output set: what the tables' set
    owns (outputs.owns: tables, `long/`, temporary files a kill left), and every figure."""
    if outputs.owns(name):
        return True
    stem, _, ext = name.rpartition(".")
    return "/" not in name and ext in FORMATS and is_figure(name)


def save(tables: dict[str, pd.DataFrame], dest: Path, fmt: str = "png") -> list[Path]:
    """The tables and every figure drawn from them, written into `dest` as one output set.

    `tables`: what `compare.build` returns; the long tables in its `.long` go to `dest/long/`. Staged
    beside `dest` and moved into place at the end (staging.staged), so `dest` holds the previous
    complete set or this one, never a mix; files of an earlier set that this one lacks are removed.
    Figures are drawn from the CSVs written, as `ics plot` redraws them: the same bytes either way.
    Returns the paths in `dest`: wide tables, long tables, figures.
    """
    with staging.staged(dest, owns) as stage:
        paths = outputs.write_set(tables, stage)
        paths += draw_all(outputs.read(stage), stage, fmt=fmt)
        names = [p.relative_to(stage) for p in paths]
    return [Path(dest) / name for name in names]
