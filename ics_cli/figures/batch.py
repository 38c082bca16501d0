"""Figures of the batch view, drawn from the tables of analyse/batch.py (never from run folders).

In the conventions of plots.py (whose helpers draw them): the norm's colour, mean over seeds with its
95% t band, one file per model, a figure whose table is absent (or has no finite error) not drawn, a
panel with nothing to show (the paired difference without the batch statistics' error) left out.
The x axis is the normalization batch (micro_batch, else batch_size) on a log2 scale with a tick at
every size swept. A line is a configuration without its batch axis: the key columns but batch_size and
micro_batch, with lr, steps (then batch_size) kept only where dropping them would put two rows of a line
at one x (a sweep that sets the lr by hand per batch size, or runs each for the same --epochs, stays
one line per norm).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, NullLocator

from ..analyse import compare
from ..analyse.keys import match_rows
from .style import (BAND_ALPHA, BAND_NOTE, DIVERGED_COLOR, check_format, figure_legend, has_data, line_label,
                    model_names, new_figure, norm_color, plain_number, save_figure, suptitle, varying_keys)

X = "norm_batch"
STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
BATCH_AXIS = ("batch_size", "micro_batch")
# Key columns that change with the batch size in a sweep over it: the lr (set by hand per batch size),
# the run length (--epochs: smaller batches take more steps). A line keeps them only where needed.
ALONG = ("lr", "steps", "batch_size")
DIVERGED_NOTE = "red ×: at least one seed diverged"


def _line_columns(table: pd.DataFrame) -> list[str]:
    """The key columns that tell lines apart: every key column but the batch axis, lr and steps, then
    lr, steps and batch_size back (in that order) where two rows of one line would otherwise share an x."""
    key = compare.table_key(table)
    cols = [c for c in key if c not in (*BATCH_AXIS, *ALONG)]
    for extra in ALONG:
        if extra in key and table.duplicated(cols + [X]).any():
            cols.append(extra)
    return cols


def _lines(table: pd.DataFrame) -> list[tuple[str, str, int, pd.DataFrame]]:
    """[(norm, legend label, index of the line among its norm's, rows sorted by X)] in table order."""
    cols = _line_columns(table)
    configs = table[cols].drop_duplicates()
    varying = varying_keys(configs, cols)
    several_lrs = "lr" in cols and configs["lr"].astype(float).nunique() > 1
    lines, seen = [], {}
    for _, r in configs.iterrows():
        norm = str(r["norm"])
        seen[norm] = seen.get(norm, -1) + 1
        rows = match_rows(table, {c: r[c] for c in cols})
        lines.append((norm, line_label(r, varying, lr=several_lrs), seen[norm],
                      rows.sort_values(X, key=lambda x: pd.to_numeric(x))))
    return lines


def _percent(df: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, mean, ci_low, ci_high) of `column`, in percent."""
    get = lambda s: pd.to_numeric(df[f"{column}_{s}"], errors="coerce").to_numpy(float) * 100  # noqa: E731
    return pd.to_numeric(df[X]).to_numpy(float), get("mean"), get("ci_low"), get("ci_high")


def _draw(ax, df: pd.DataFrame, column: str, *, color: str, label: str | None, marker: str,
          linestyle: str = "-", hollow: bool = False, dodge: float = 0.0) -> bool:
    """Mean of `column` (percent) against X with markers and its 95% band; False when it has no finite
    mean. A line of one point gets an error bar instead, moved `dodge` octaves sideways so that the
    bars of several lines at one batch size stay apart."""
    x, mean, low, high = _percent(df, column)
    ok = np.isfinite(mean)
    if not ok.any():
        return False
    x = _placed(x, ok, dodge)
    ax.plot(x[ok], mean[ok], color=color, label=label, lw=1.8, ls=linestyle, marker=marker, ms=5,
            markerfacecolor="white" if hollow else color)
    has = ok & np.isfinite(low) & np.isfinite(high)
    if ok.sum() == 1 and has.any():
        ax.errorbar(x[has], mean[has], yerr=[mean[has] - low[has], high[has] - mean[has]], color=color,
                    ls="none", capsize=3, lw=1.2)
    elif has.any():
        ax.fill_between(x, np.where(has, low, np.nan), np.where(has, high, np.nan), color=color,
                        alpha=BAND_ALPHA, lw=0)
    return True


def _dodge(slot: int, slots: int, step: float = 0.06) -> float:
    """Sideways offset (octaves) of error bar `slot` of `slots` at one batch size, centred on it."""
    return step * (slot - (slots - 1) / 2)


def _placed(x: np.ndarray, ok: np.ndarray, dodge: float) -> np.ndarray:
    """`x`, moved `dodge` octaves sideways when the line has one finite point (`ok`)."""
    return x * 2.0 ** dodge if ok.sum() == 1 else x


def _mark_diverged(ax, df: pd.DataFrame, column: str, marked: bool, dodge: float = 0.0) -> bool:
    """A red × on the points of `column` where some seed diverged; True once one is drawn."""
    x, mean, _, _ = _percent(df, column)
    x = _placed(x, np.isfinite(mean), dodge)
    div = (pd.to_numeric(df["n_diverged"]).to_numpy() > 0) & np.isfinite(mean)
    if div.any():
        ax.scatter(x[div], mean[div], marker="x", s=90, color=DIVERGED_COLOR, zorder=5, linewidths=2.2,
                   label=None if marked else "≥ 1 seed diverged")
        return True
    return marked


def _batch_axis(ax, table: pd.DataFrame) -> None:
    """Log2 x axis with a tick at every normalization batch in `table`, labelled plainly (2, 8, 32)."""
    sizes = sorted(set(pd.to_numeric(table[X]).astype(int)))
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes)
    ax.xaxis.set_major_formatter(FuncFormatter(plain_number))
    ax.xaxis.set_minor_locator(NullLocator())
    if len(sizes) == 1:
        ax.set_xlim(sizes[0] / 2, sizes[0] * 2)
    same = (pd.to_numeric(table[X]) == pd.to_numeric(table["batch_size"])).all()
    ax.set_xlabel("batch size (log₂ scale)" if same else
                  "normalization batch: micro-batch, else batch size (log₂ scale)")


def _clamp_percent(ax) -> None:
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, -2.0), min(high, 102.0))


def _per_model(tables: dict[str, pd.DataFrame], name: str):
    """(model, file suffix, the model's rows of table `name`) for each model that has rows."""
    table = tables.get(name)
    if table is None or table.empty:
        return
    for model, suffix in model_names(tables):
        mine = table[table["model"].astype(str) == model]
        if len(mine):
            yield model, suffix, mine


# --------------------------------------------------------------------------- figures


def batch_size(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Wu & He 2018, Fig. 1: final test error (%) against the batch size (log2), one line per norm
    (or variant), each run evaluated with its own test-time statistics; diverged seeds marked."""
    check_format(fmt)
    paths = []
    for model, suffix, mine in _per_model(tables, "batch_size"):
        fig = new_figure(7.5, 5.2)
        ax = fig.subplots()
        drawn, marked = False, False
        lines = _lines(mine)
        for j, (norm, label, k, df) in enumerate(lines):
            dodge = _dodge(j, len(lines))
            if _draw(ax, df, "final_test_error", color=norm_color(norm), label=label,
                     marker=MARKERS[k % len(MARKERS)], linestyle=STYLES[k % len(STYLES)], dodge=dodge):
                drawn = True
                marked = _mark_diverged(ax, df, "final_test_error", marked, dodge)
        if not drawn:           # regression runs only: no error to show
            fig.clear()
            continue
        _batch_axis(ax, mine)
        _clamp_percent(ax)
        ax.set_ylabel("final test error (%)")
        ax.grid(alpha=0.3)
        suptitle(fig, f"{model}: test error against batch size (cf. Wu & He 2018, Fig. 1)",
                  "each run evaluated with its own test-time statistics (--bn-eval: running averages unless "
                  f"set); {BAND_NOTE}; {DIVERGED_NOTE}", fontsize="medium")
        figure_legend(fig, ax)
        paths.append(save_figure(fig, out_dir, f"batch_size{suffix}", fmt))
    return paths


def test_stats(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Wu & Johnson 2021: final test error (%) of the batch-statistics norms under the run's own
    test-time statistics (solid) and under the test batch's statistics (dashed) against the
    normalization batch (left), and their paired difference own − batch per seed (right)."""
    check_format(fmt)
    paths = []
    for model, suffix, mine in _per_model(tables, "test_stats"):
        lines = _lines(mine)
        if not has_data([df for *_, df in lines], "final_test_error_mean", "final_test_error_batchstats_mean"):
            continue
        # The paired difference needs both errors of a seed: without it, the first panel alone.
        paired = has_data([df for *_, df in lines], "error_own_minus_batchstats_mean")
        fig = new_figure(12.0 if paired else 7.5, 5.2)
        axes = fig.subplots(1, 2 if paired else 1, squeeze=False)[0]
        both_ax = axes[0]
        for j, (norm, label, k, df) in enumerate(lines):
            color, marker = norm_color(norm), MARKERS[k % len(MARKERS)]
            _draw(both_ax, df, "final_test_error", color=color, label=label, marker=marker,
                  dodge=_dodge(2 * j, 2 * len(lines)))
            _draw(both_ax, df, "final_test_error_batchstats", color=color, label=None,
                  marker=marker, linestyle="--", hollow=True, dodge=_dodge(2 * j + 1, 2 * len(lines)))
            if paired:
                _draw(axes[1], df, "error_own_minus_batchstats", color=color, label=None, marker=marker,
                      linestyle=STYLES[k % len(STYLES)], dodge=_dodge(j, len(lines)))
        both_ax.plot([], [], color="0.3", ls="-", marker="o",
                     label="solid, filled: own test-time statistics (bn_eval)")
        both_ax.plot([], [], color="0.3", ls="--", marker="o", markerfacecolor="white",
                     label="dashed, hollow: the test batch's statistics")
        for ax in axes:
            _batch_axis(ax, mine)
            ax.grid(alpha=0.3)
        _clamp_percent(both_ax)
        both_ax.set(title="test error under each kind of statistics", ylabel="final test error (%)")
        if paired:
            axes[1].axhline(0.0, color="0.5", lw=0.8, ls=":")
            axes[1].set(title="paired difference per seed: own − batch statistics",
                        ylabel="error difference (percentage points)\n(> 0: population statistics worse)")
        suptitle(fig, f"{model}: test-time statistics, the run's own (running averages, PreciseBN or the "
                  "test batch's, per --bn-eval) against the test batch's own statistics over chunks of "
                  "the normalization batch (cf. Wu & Johnson 2021)", BAND_NOTE, fontsize="medium")
        figure_legend(fig, both_ax)
        paths.append(save_figure(fig, out_dir, f"test_stats{suffix}", fmt))
    return paths


FIGURES = (batch_size, test_stats)

CAPTIONS = {
    "batch_size": "Final test error against the batch size, one line per norm: a line that rises as the "
                  "batch shrinks means a norm that needs large batches (batch norm in Wu & He 2018, "
                  "Fig. 1), a flat line one whose statistics do not depend on the batch (group norm).",
    "test_stats": "Final test error of the batch-statistics norms under their own test-time statistics "
                  "and under the test batch's statistics, against the normalization batch: a difference "
                  "above zero (right) means the population statistics do worse than the batch's own, as "
                  "Wu & Johnson 2021 find at small normalization batches.",
}
