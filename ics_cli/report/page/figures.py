"""The report's figures, redrawn from the saved CSVs (as `ics plot` does), in memory.

A compare folder's figures come from figures/draw.draw_all over outputs.load; a study's own figures from its
`figures` function over the tables it saved. Both are drawn into a temporary folder and read back, so
nothing is written beside the inputs.

Format `svg` (the default) is vector where that is sensible: a figure whose SVG is over SVG_LIMIT
bytes (thousands of points: the per-layer distribution and drift panels of a long run) and larger
than its PNG is embedded as the PNG instead. `png` embeds every figure as PNG. `draw_all` draws the
sets of several folders in parallel processes; the result does not depend on how many.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ...analyse import outputs
from ...figures import draw
from ...errors import IcsError

FORMATS = ("svg", "png")
SVG_LIMIT = 200_000


@dataclass(frozen=True)
class Drawn:
    name: str          # the file stem, e.g. drift_mlp
    data: bytes
    fmt: str
    caption: str       # what to look at


def of(what: str, folder: Path, fmt: str = "svg") -> list[Drawn]:
    """The figures of a folder, `what` = compare or study, each in `fmt` or, where SVG is too large,
    in PNG (see the module doc)."""
    draw = {"compare": _of_compare, "study": _of_study}[what]
    drawn = draw(Path(folder), fmt)
    if fmt == "svg" and any(len(d.data) > SVG_LIMIT for d in drawn):
        png = {d.name: d for d in draw(Path(folder), "png")}
        drawn = [png[d.name] if len(d.data) > SVG_LIMIT and len(png[d.name].data) < len(d.data) else d
                 for d in drawn]
    return drawn


def draw_all(jobs: list[tuple[str, Path]], fmt: str = "svg", workers: int | None = None) -> dict:
    """{(what, folder): figures} for every job, drawn in up to `workers` processes."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    if workers == 1:
        return {job: of(*job, fmt) for job in jobs}
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = {job: pool.submit(of, *job, fmt) for job in jobs}
        return {job: f.result() for job, f in futures.items()}


def _of_compare(folder: Path, fmt: str) -> list[Drawn]:
    """Every figure of a compare folder, in draw_all's order."""
    tables = outputs.load(folder)
    with tempfile.TemporaryDirectory(prefix="ics-report-") as tmp:
        paths = draw.draw_all(tables, Path(tmp), fmt=fmt)
        return [Drawn(p.stem, p.read_bytes(), fmt, draw.caption(p)) for p in paths]


def _of_study(folder: Path, fmt: str) -> list[Drawn]:
    """A study folder's own figures (those its README shows), with their captions."""
    from ...studies import REGISTRY, MissingData, figure_folder
    from ...studies.context import Context
    from ...store.files import read_json

    meta = read_json(Path(folder) / "study.json")
    study = REGISTRY.get(meta.get("study"))
    if study is None or not study.figures:
        return []
    with tempfile.TemporaryDirectory(prefix="ics-report-") as tmp:
        try:
            drawn = study.figures(Context(out=figure_folder(folder), quick=bool(meta.get("quick"))), Path(tmp),
                                  fmt=fmt)
        except MissingData as e:
            raise IcsError(f"cannot draw the figures of '{folder}': {e}; rerun `ics reproduce`") from None
        return [Drawn(Path(p).stem, Path(p).read_bytes(), fmt, caption) for p, caption in drawn]
