"""What every figure shares: formats, colours, the band and log-axis rules, titles, legends and saving.

One colour per norm everywhere (NORM_COLORS, then a fixed fallback palette keyed by the name); lines are
means over seeds, shaded bands the 95% t-interval over seeds; a y axis is logarithmic when its values
are positive and span more than LOG_SPAN, and there a band is drawn only where its lower bound is
positive (the title then says so: band_note); a curve of one point is a marker; a panel with nothing to
draw is left out, never drawn empty; files are written under a temporary name and renamed into place.
The figure families (plots.py, quantities.py, batch.py) draw with these helpers.
"""

from __future__ import annotations

import math
import os
import textwrap
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window; set before anything imports pyplot

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ..analyse import compare
from ..analyse.keys import match_rows
from ..errors import IcsError
from ..net import norms

FORMATS = ("png", "svg", "pdf")

DPI = 150

LOG_SPAN = 30.0

BAND_ALPHA = 0.2

DIVERGED_COLOR = "#d62728"

NORM_COLORS = {name: norm.color for name, norm in norms.REGISTRY.items()}    # one per registry entry


# Fallback for norms added later: stable across runs and processes (crc32, not hash()).
FALLBACK_COLORS = ("#8c564b", "#e377c2", "#bcbd22", "#7f7f7f", "#aec7e8", "#98df8a", "#c5b0d5", "#c49c94")

BAND_NOTE = "lines: mean over seeds; bands: 95% t-interval over seeds"
# Said in a figure's title only where draw_series left a band out (band_note).
BAND_CUT_NOTE = "on log axes the band is omitted where its lower bound is ≤ 0"

MARKER_SIZE = 5         # the marker of a curve with one point (one evaluation, a very short run)


def norm_color(norm: str) -> str:
    """The colour of `norm` in every figure."""
    if norm in NORM_COLORS:
        return NORM_COLORS[norm]
    return FALLBACK_COLORS[zlib.crc32(str(norm).encode()) % len(FALLBACK_COLORS)]


def model_names(tables: dict[str, pd.DataFrame]) -> list[tuple[str, str]]:
    """[(model, file-name suffix)]: no suffix when there is one model."""
    models = list(dict.fromkeys(tables["summary"]["model"].astype(str)))
    return [(m, f"_{m}" if len(models) > 1 else "") for m in models]


def line_label(row: pd.Series, varying: list[str], *, lr: bool = True) -> str:
    parts = ([f"lr={float(row['lr']):g}"] if lr else []) + [f"{c}={short_value(row[c])}" for c in varying]
    return f"{row['norm']} ({', '.join(parts)})" if parts else str(row["norm"])


def short_value(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:g}"
    return str(value)


def varying_keys(table: pd.DataFrame, key_cols: list[str]) -> list[str]:
    """Key columns besides model, norm and lr whose value differs between the rows of `table`."""
    return [c for c in key_cols if c not in ("model", "norm", "lr")
            and table[c].astype(str).nunique(dropna=False) > 1]


def matched_picks(tables: dict[str, pd.DataFrame], model: str) -> tuple[list[tuple[str, dict, str]], str]:
    """([(norm, key, legend label)], note): every norm of `model` at the headline's matched lr.

    The lr is `compare.headline_lrs` (one per combination of the other key values), so norms are
    compared on equal terms, never each at an lr picked for it alone. `note` says which lr, for titles.
    """
    summary = tables["summary"]
    summary = summary[summary["model"].astype(str) == model]
    live = summary[summary["n_seeds"] > 0]
    key_cols = compare.table_key(summary)
    varying = varying_keys(summary, key_cols)
    chosen = compare.headline_lrs(summary)
    lrs = sorted(set(chosen["lr"].astype(float)))
    picks = []
    for _, c in chosen.iterrows():
        group = {col: c[col] for col in chosen.columns if col not in ("lr", "lr_rule")}
        for _, r in match_rows(live, {**group, "lr": c["lr"]}).iterrows():
            picks.append((str(r["norm"]), {k: r[k] for k in key_cols}, line_label(r, varying, lr=len(lrs) > 1)))
    if len(lrs) == 1:
        note = f"all norms at lr {lrs[0]:g} ({chosen['lr_rule'].iloc[0]})"
    else:
        note = "norms compared at one matched lr per configuration (lr in the legend)"
    return picks, note


def of_model(table: pd.DataFrame | None, model: str) -> pd.DataFrame:
    """The rows of `table` for `model` (its layers only, not every model's), empty when there is none."""
    if table is None or table.empty:
        return pd.DataFrame()
    return table[table["model"].astype(str) == model]


def rows_of(table: pd.DataFrame | None, key: dict, **where) -> pd.DataFrame:
    if table is None or table.empty:
        return pd.DataFrame()
    rows = match_rows(table, key)
    for col, value in where.items():
        rows = rows[rows[col].astype(str) == str(value)]
    return rows.sort_values("step") if "step" in rows.columns else rows


def hidden_layers(table: pd.DataFrame) -> list[str]:
    layers = [str(x) for x in dict.fromkeys(table["layer"])] if len(table) else []
    return sorted((x for x in layers if x.startswith("hidden")), key=lambda x: int(x[6:] or 0))


def all_layers(table: pd.DataFrame) -> list[str]:
    layers = hidden_layers(table)
    return layers + (["output"] if len(table) and (table["layer"] == "output").any() else [])


def finite_values(frames: list[tuple[pd.DataFrame, str]]) -> np.ndarray:
    parts = [pd.to_numeric(df[c], errors="coerce").to_numpy(float) for df, c in frames
             if len(df) and c in df.columns]
    x = np.concatenate(parts) if parts else np.array([])
    return x[np.isfinite(x)]


def wants_log(values: np.ndarray) -> bool:
    return bool(values.size) and bool((values > 0).all()) and values.max() / values.min() > LOG_SPAN


def has_data(frames: list[pd.DataFrame], *columns: str) -> bool:
    """Whether any of `columns` has a finite value in any of `frames`: a panel without one is left out."""
    return bool(finite_values([(df, c) for df in frames for c in columns]).size)


def draw_series(ax, df: pd.DataFrame, x: str, name: str, *, color: str, label: str | None,
                band: bool = True, log: bool = False, **style) -> bool:
    """Mean line of `name_mean` over `x`, with its CI band where both bounds are finite.

    A curve of one point (one evaluation) is a marker with an error bar, since a line or band of one
    point draws nothing. On a log axis (`log`) the band is drawn only where its lower bound is positive:
    a t-interval over few seeds may reach below zero, and a band cut at the axis floor would show an
    interval that is not there. Returns True when a band was left out for that reason, so that the
    figure can say so (band_note).
    """
    if df.empty or f"{name}_mean" not in df.columns:
        return False
    xs = pd.to_numeric(df[x]).to_numpy(float)
    mean = pd.to_numeric(df[f"{name}_mean"], errors="coerce").to_numpy(float)
    ok = np.isfinite(mean) & (mean > 0 if log else True)
    one = ok.sum() == 1
    if one:
        style = {"marker": "o", "ms": MARKER_SIZE, **style}
    ax.plot(xs[ok], mean[ok], color=color, label=label, lw=1.8, **style)
    low_col, high_col = f"{name}_ci_low", f"{name}_ci_high"
    if not band or low_col not in df.columns:
        return False
    low = pd.to_numeric(df[low_col], errors="coerce").to_numpy(float)
    high = pd.to_numeric(df[high_col], errors="coerce").to_numpy(float)
    has = ok & np.isfinite(low) & np.isfinite(high)
    cut = bool(log and (has & (low <= 0)).any())
    if log:
        has &= low > 0
    if one and has.any():
        ax.errorbar(xs[has], mean[has], yerr=[np.clip(mean[has] - low[has], 0, None),
                                              np.clip(high[has] - mean[has], 0, None)],
                    color=color, ls="none", capsize=3, lw=1.2)
    elif has.any():
        ax.fill_between(xs, np.where(has, low, np.nan), np.where(has, high, np.nan),
                        color=color, alpha=BAND_ALPHA, lw=0)
    return cut


def band_note(cut: bool) -> str:
    """BAND_NOTE, with BAND_CUT_NOTE where draw_series left a band out (`cut`: any of its returns)."""
    return f"{BAND_NOTE}; {BAND_CUT_NOTE}" if cut else BAND_NOTE


def plain_number(value: float, _pos=None) -> str:
    return f"{value:g}"


def log_y(ax) -> None:
    """Log y axis with plain tick labels (0.5, 2, 10), not 5×10⁻¹; minor labels only on short ranges."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(plain_number))

    def minor(value, _pos=None):
        low, high = ax.get_ylim()
        mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
        return plain_number(value) if high / low < 100 and mantissa in (2, 5) else ""
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def clamp_fraction(ax) -> None:
    """Accuracy lives in [0, 1]: a wide t-interval from few seeds may not stretch the axis past it."""
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, -0.02), min(high, 1.02))


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def suptitle(fig: Figure, *lines: str, fontsize: str = "large") -> None:
    """The figure's title, each line wrapped to the figure's width so that none runs off the edge."""
    chars_per_inch = 11.5 if fontsize == "medium" else 9.5
    width = max(40, int(fig.get_figwidth() * chars_per_inch))
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in lines), fontsize=fontsize)


def figure_legend(fig: Figure, axes) -> None:
    """One legend below the panels, from the first of `axes` (an Axes or an array of them) with
    labelled lines."""
    for ax in np.ravel(axes):
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 4),
                       frameon=False)
            return


def hide_empty(axes) -> None:
    """Blank (no frame, ticks or grid) each panel of a grid in which nothing was drawn: a grid keeps
    only rows and columns with data, but one of their cells may still have none."""
    for ax in np.ravel(axes):
        if not ax.has_data():
            ax.set_axis_off()


def save_figure(fig: Figure, out_dir: Path, name: str, fmt: str) -> Path:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = Path(out_dir) / f"{name}.{fmt}"
    savefig(fig, path, fmt)
    fig.clear()
    return path


def savefig(fig: Figure, path: Path, fmt: str, dpi: int = DPI) -> None:
    """Write `fig` to `path` atomically, with the same bytes for the same figure in every format."""
    tmp = path.with_name(f".{path.stem}.tmp.{fmt}")
    # No timestamps in vector files and fixed SVG ids, so the same CSVs give the same bytes.
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt, {})
    try:
        with matplotlib.rc_context({"svg.hashsalt": "ics"}):
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:       # an error or Ctrl-C mid-save leaves no temporary file behind
        tmp.unlink(missing_ok=True)
        raise


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise IcsError(f"figure format '{fmt}' is not one of: {', '.join(FORMATS)}")
