"""Figures drawn from the tables that compare.py writes (never from live training objects).

Every figure takes the dict that `compare.load` returns, so it can be remade from CSVs without
training. Conventions shared by all figures:

* one colour per norm everywhere (NORM_COLORS, then a fixed fallback palette keyed by the name);
* lines are means over seeds, shaded bands the 95% t-interval over seeds (see compare.py);
* figures that put norms side by side (per step or per layer) draw every norm at one matched lr,
  the headline's (`compare.headline_lrs`), and say which in the title ("all norms at lr 0.5"); no norm
  is shown at an lr picked for it alone (each norm at its own best lr is compare's `best_lr` table);
* drift figures show the scale-free drift (|Δμ|/σ) at the `linear` site, the input each norm
  receives, and at `norm_eval`; a figure with nothing to show is not drawn (no file);
* CAPTIONS holds one sentence per figure kind saying what to look at;
* a y axis is logarithmic when its values are positive and span more than LOG_SPAN;
* several models give one file per model, suffixed `_<model>`;
* files are written under a temporary name and renamed into place, and `draw_all` writes its figures
  as one set (store.staged): drawn beside the folder, then moved in, figures of the same format that
  the new set lacks removed, so every figure of that format in the folder is from these tables.
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
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ..analyse import compare
from ..store import runs as store
from ..errors import IcsError

FORMATS = ("png", "svg", "pdf")
DPI = 150
LOG_SPAN = 30.0
BAND_ALPHA = 0.2
DIVERGED_COLOR = "#d62728"
NORM_COLORS = {
    "none": "#404040",
    "batch": "#1f77b4",
    "batch-nograd": "#17becf",
    "layer": "#2ca02c",
    "instance": "#9467bd",
    "group": "#ff7f0e",
}
# Fallback for norms added later: stable across runs and processes (crc32, not hash()).
_FALLBACK = ("#8c564b", "#e377c2", "#bcbd22", "#7f7f7f", "#aec7e8", "#98df8a", "#c5b0d5", "#c49c94")
BAND_NOTE = "lines: mean over seeds; bands: 95% t-interval over seeds"


def norm_color(norm: str) -> str:
    """The colour of `norm` in every figure."""
    if norm in NORM_COLORS:
        return NORM_COLORS[norm]
    return _FALLBACK[zlib.crc32(str(norm).encode()) % len(_FALLBACK)]


# --------------------------------------------------------------------------- selection


def _models(tables: dict[str, pd.DataFrame]) -> list[tuple[str, str]]:
    """[(model, file-name suffix)]: no suffix when there is one model."""
    models = list(dict.fromkeys(tables["summary"]["model"].astype(str)))
    return [(m, f"_{m}" if len(models) > 1 else "") for m in models]


def _label(row: pd.Series, varying: list[str], *, lr: bool = True) -> str:
    parts = ([f"lr={float(row['lr']):g}"] if lr else []) + [f"{c}={_short(row[c])}" for c in varying]
    return f"{row['norm']} ({', '.join(parts)})" if parts else str(row["norm"])


def _short(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:g}"
    return str(value)


def _varying(table: pd.DataFrame, key_cols: list[str]) -> list[str]:
    """Key columns besides model, norm and lr whose value differs between the rows of `table`."""
    return [c for c in key_cols if c not in ("model", "norm", "lr")
            and table[c].astype(str).nunique(dropna=False) > 1]


def _picks(tables: dict[str, pd.DataFrame], model: str) -> tuple[list[tuple[str, dict, str]], str]:
    """([(norm, key, legend label)], note): every norm of `model` at the headline's matched lr.

    The lr is `compare.headline_lrs` (one per combination of the other key values), so norms are
    compared on equal terms, never each at an lr picked for it alone. `note` says which lr, for titles.
    """
    summary = tables["summary"]
    summary = summary[summary["model"].astype(str) == model]
    live = summary[summary["n_seeds"] > 0]
    key_cols = compare.table_key(summary)
    varying = _varying(summary, key_cols)
    chosen = compare.headline_lrs(summary)
    lrs = sorted(set(chosen["lr"].astype(float)))
    picks = []
    for _, c in chosen.iterrows():
        group = {col: c[col] for col in chosen.columns if col not in ("lr", "lr_rule")}
        for _, r in compare._match(live, {**group, "lr": c["lr"]}).iterrows():
            picks.append((str(r["norm"]), {k: r[k] for k in key_cols}, _label(r, varying, lr=len(lrs) > 1)))
    if len(lrs) == 1:
        note = f"all norms at lr {lrs[0]:g} ({chosen['lr_rule'].iloc[0]})"
    else:
        note = "norms compared at one matched lr per configuration (lr in the legend)"
    return picks, note


def _rows(table: pd.DataFrame | None, key: dict, **where) -> pd.DataFrame:
    if table is None or table.empty:
        return pd.DataFrame()
    rows = compare._match(table, key)
    for col, value in where.items():
        rows = rows[rows[col].astype(str) == str(value)]
    return rows.sort_values("step") if "step" in rows.columns else rows


def _hidden_layers(table: pd.DataFrame) -> list[str]:
    layers = [str(x) for x in dict.fromkeys(table["layer"])] if len(table) else []
    return sorted((x for x in layers if x.startswith("hidden")), key=lambda x: int(x[6:] or 0))


def _all_layers(table: pd.DataFrame) -> list[str]:
    layers = _hidden_layers(table)
    return layers + (["output"] if len(table) and (table["layer"] == "output").any() else [])


# --------------------------------------------------------------------------- drawing helpers


def _values(frames: list[tuple[pd.DataFrame, str]]) -> np.ndarray:
    parts = [pd.to_numeric(df[c], errors="coerce").to_numpy(float) for df, c in frames
             if len(df) and c in df.columns]
    x = np.concatenate(parts) if parts else np.array([])
    return x[np.isfinite(x)]


def _wants_log(values: np.ndarray) -> bool:
    return bool(values.size) and bool((values > 0).all()) and values.max() / values.min() > LOG_SPAN


def _series(ax, df: pd.DataFrame, x: str, name: str, *, color: str, label: str | None,
            band: bool = True, log: bool = False, **style) -> None:
    """Mean line of `name_mean` over `x`, with its CI band where both bounds are finite."""
    if df.empty or f"{name}_mean" not in df.columns:
        return
    xs = pd.to_numeric(df[x]).to_numpy(float)
    mean = pd.to_numeric(df[f"{name}_mean"], errors="coerce").to_numpy(float)
    ok = np.isfinite(mean) & (mean > 0 if log else True)
    ax.plot(xs[ok], mean[ok], color=color, label=label, lw=1.8, **style)
    low_col, high_col = f"{name}_ci_low", f"{name}_ci_high"
    if band and low_col in df.columns:
        low = pd.to_numeric(df[low_col], errors="coerce").to_numpy(float)
        high = pd.to_numeric(df[high_col], errors="coerce").to_numpy(float)
        if log:
            # A t-interval may reach below zero; on a log axis the band stops at the mean instead.
            low = np.where(low > 0, low, mean)
        has = ok & np.isfinite(low) & np.isfinite(high)
        if has.any():
            ax.fill_between(xs, np.where(has, low, np.nan), np.where(has, high, np.nan),
                            color=color, alpha=BAND_ALPHA, lw=0)


def _plain(value: float, _pos=None) -> str:
    return f"{value:g}"


def _log_y(ax) -> None:
    """Log y axis with plain tick labels (0.5, 2, 10), not 5×10⁻¹; minor labels only on short ranges."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(_plain))

    def minor(value, _pos=None):
        low, high = ax.get_ylim()
        mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
        return _plain(value) if high / low < 100 and mantissa in (2, 5) else ""
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def _clamp_fraction(ax) -> None:
    """Accuracy lives in [0, 1]: a wide t-interval from few seeds may not stretch the axis past it."""
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, -0.02), min(high, 1.02))


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _suptitle(fig: Figure, *lines: str, fontsize: str = "large") -> None:
    """The figure's title, each line wrapped to the figure's width so that none runs off the edge."""
    chars_per_inch = 11.5 if fontsize == "medium" else 9.5
    width = max(40, int(fig.get_figwidth() * chars_per_inch))
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in lines), fontsize=fontsize)


def _legend(fig: Figure, ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 4),
                   frameon=False)


def _no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} recorded", ha="center", va="center", transform=ax.transAxes,
            color="0.4")


def _save(fig: Figure, out_dir: Path, name: str, fmt: str) -> Path:
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


def _check(fmt: str) -> None:
    if fmt not in FORMATS:
        raise IcsError(f"figure format '{fmt}' is not one of: {', '.join(FORMATS)}")


# --------------------------------------------------------------------------- figures


def accuracy_loss(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Test accuracy and training loss vs step, one line per norm (two panels), all at the matched lr.

    A regression (accuracy blank at every step) shows its test loss in the first panel instead.
    """
    _check(fmt)
    paths = []
    curves = tables.get("curves")
    for model, suffix in _models(tables):
        picks, note = _picks(tables, model)
        rows = [(_rows(curves, key), norm, label) for norm, key, label in picks]
        regress = not _values([(df, "test_acc_mean") for df, _, _ in rows]).size
        first = "test_loss" if regress else "test_acc"
        if not _values([(df, f"{first}_mean") for df, _, _ in rows]).size:
            continue
        fig = _figure(11, 4.6)
        acc_ax, loss_ax = fig.subplots(1, 2)
        log = _wants_log(_values([(df, "train_loss_mean") for df, _, _ in rows]))
        log_first = regress and _wants_log(_values([(df, "test_loss_mean") for df, _, _ in rows]))
        for df, norm, label in rows:
            _series(acc_ax, df, "step", first, color=norm_color(norm), label=label, log=log_first)
            _series(loss_ax, df, "step", "train_loss", color=norm_color(norm), label=None, log=log)
        if log:
            _log_y(loss_ax)
        unit = "squared error, mean over outputs" if regress else "cross-entropy, nats"
        if regress:
            if log_first:
                _log_y(acc_ax)
            acc_ax.set(title="Test loss", xlabel="step (updates)", ylabel=f"test loss per sample ({unit})")
        else:
            _clamp_fraction(acc_ax)
            acc_ax.set(title="Test accuracy", xlabel="step (updates)",
                       ylabel="test accuracy (fraction correct)")
        loss_ax.set(title="Training loss", xlabel="step (updates)",
                    ylabel=f"training loss per sample ({unit})")
        for ax in (acc_ax, loss_ax):
            ax.grid(alpha=0.3)
        _suptitle(fig, f"{model}: accuracy and loss during training, {note}", BAND_NOTE)
        _legend(fig, acc_ax)
        paths.append(_save(fig, out_dir, f"accuracy_loss{suffix}", fmt))
    return paths


def distribution_shift(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Per layer one column: activation mean and variance at the norm and act sites vs step."""
    _check(fmt)
    panels = [("norm", "mean", "mean at norm output"), ("norm", "var", "variance at norm output"),
              ("act", "mean", "mean after activation"), ("act", "var", "variance after activation")]
    paths = []
    lc = tables.get("layer_curves")
    for model, suffix in _models(tables):
        picks, note = _picks(tables, model)
        layers = _hidden_layers(lc) if lc is not None else []
        data = {(layer, site): [(_rows(lc, key, layer=layer, site=site), norm, label)
                                for norm, key, label in picks]
                for layer in layers for site in ("norm", "act")}
        if not _values([(df, "mean_mean") for rows in data.values() for df, _, _ in rows]).size:
            continue
        fig = _figure(3.3 * len(layers) + 1.0, 9.5)
        axes = np.atleast_2d(fig.subplots(len(panels), len(layers), squeeze=False))
        for j, layer in enumerate(layers):
            for i, (site, stat, ylabel) in enumerate(panels):
                ax = axes[i, j]
                rows = data[layer, site]
                log = stat == "var" and _wants_log(_values([(df, "var_mean") for df, _, _ in rows]))
                for df, norm, label in rows:
                    _series(ax, df, "step", stat, color=norm_color(norm), label=label, log=log)
                if log:
                    _log_y(ax)
                ax.grid(alpha=0.3)
                if i == 0:
                    ax.set_title(layer)
                if i == len(panels) - 1:
                    ax.set_xlabel("step (updates)")
                if j == 0:
                    ax.set_ylabel(f"{ylabel}\n(activation units)" if stat == "mean"
                                  else f"{ylabel}\n(activation units²)")
        _suptitle(fig, f"{model}: distribution of each layer's activations on the probe batch "
                  f"(averaged over units), {note}", BAND_NOTE)
        _legend(fig, axes[0, 0])
        paths.append(_save(fig, out_dir, f"distribution_shift{suffix}", fmt))
    return paths


# The sites whose scale-free drift the drift figures show, and what each one is.
DRIFT_SITES = {"linear": "linear site: the input each norm receives",
               "norm_eval": "norm_eval site: the norm's output in eval mode"}
SCALED_NOTE = ("scale-free drift: mean over units of |Δμ| / σ, μ and σ² a unit's mean and variance "
               "on the probe")


def drift(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Scale-free drift of the unit means (drift_mean_scaled) vs step, one column per layer, one line
    per norm: a row for the linear site (the input each norm receives) and, where recorded, one for
    norm_eval."""
    _check(fmt)
    paths = []
    lc = tables.get("layer_curves")
    for model, suffix in _models(tables):
        picks, note = _picks(tables, model)
        layers = _hidden_layers(lc) if lc is not None else []
        data = {(layer, site): [(_later(_rows(lc, key, layer=layer, site=site)), norm, label)
                                for norm, key, label in picks]
                for layer in layers for site in DRIFT_SITES}
        sites = [s for s in DRIFT_SITES if _values([(df, "drift_mean_scaled_mean")
                                                    for layer in layers for df, _, _ in data[layer, s]]).size]
        if not sites:
            continue
        fig = _figure(3.3 * len(layers) + 1.0, 3.2 * len(sites) + 1.6)
        axes = np.atleast_2d(fig.subplots(len(sites), len(layers), squeeze=False))
        for i, site in enumerate(sites):
            for j, layer in enumerate(layers):
                ax = axes[i, j]
                rows = data[layer, site]
                log = _wants_log(_values([(df, "drift_mean_scaled_mean") for df, _, _ in rows]))
                for df, norm, label in rows:
                    _series(ax, df, "step", "drift_mean_scaled", color=norm_color(norm), label=label, log=log)
                if log:
                    _log_y(ax)
                ax.grid(alpha=0.3)
                ax.set_title(f"{layer}, {site} site")
                if i == len(sites) - 1:
                    ax.set_xlabel("step (updates)")
                if j == 0:
                    ax.set_ylabel(f"drift at the {site} site\n(mean |Δμ|/σ per log interval)")
        where = "; ".join(DRIFT_SITES[s] for s in sites)
        _suptitle(fig, f"{model}: how far each layer's unit means move between log steps, {note}",
                  SCALED_NOTE, where, BAND_NOTE)
        _legend(fig, axes[0, 0])
        paths.append(_save(fig, out_dir, f"drift{suffix}", fmt))
    return paths


def _later(df: pd.DataFrame) -> pd.DataFrame:
    """Rows after step 0: drift since the previous log step is blank there."""
    return df[df["step"] > 0] if len(df) else df


def percentiles(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """p15/p50/p85 of tracked unit 0 of the last hidden layer at the norm site, one panel per norm.

    One seed per norm, the smallest: unit 0 of one seed and unit 0 of another are different units
    (different initial weights), so their percentiles are never averaged. The panels share the y axis.
    """
    _check(fmt)
    paths = []
    pct = tables.get("percentiles")
    for model, suffix in _models(tables):
        picks, note = _picks(tables, model)
        panels, layer = [], ""
        for norm, key, label in picks:
            mine = _rows(pct, key)
            layers = _hidden_layers(mine)
            layer = layers[-1] if layers else layer
            df = _rows(mine, {}, layer=layer, site="norm", unit=0) if layers else mine
            if "seed" not in df.columns:  # a table from before percentiles were kept per seed
                df = pd.DataFrame()
            seed = int(df["seed"].min()) if len(df) else None
            panels.append((norm, label, seed, df[df["seed"] == seed] if len(df) else df))
        if all(df.empty for *_, df in panels):
            continue
        fig = _figure(3.6 * len(panels) + 0.6, 4.4)
        axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False, sharey=True)[0])
        for ax, (norm, label, seed, df) in zip(axes, panels):
            color = norm_color(norm)
            if df.empty:
                _no_data(ax, "tracked units")
                ax.set(title=label, xlabel="step (updates)")
            else:
                steps = df["step"].to_numpy(float)
                ax.fill_between(steps, df["p15"].to_numpy(float), df["p85"].to_numpy(float),
                                color=color, alpha=0.25, lw=0, label="15th–85th percentile")
                ax.plot(steps, df["p50"].to_numpy(float), color=color, lw=1.8, label="median")
                ax.legend(loc="best", fontsize="small")
                ax.set(title=f"{label}, seed {seed}", xlabel="step (updates)")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("input to the activation (activation units)")
        seeds = sorted({seed for *_, seed, df in panels if seed is not None})
        which = f"seed {seeds[0]}" if len(seeds) == 1 else "each norm's smallest seed"
        _suptitle(fig, f"{model}: {layer or 'last hidden layer'}, unit 0, at the norm site "
                  f"(input to the nonlinearity), {note}",
                  f"percentiles over the probe batch of one run ({which}): units of different seeds "
                  "are different units, so they are not averaged (cf. Ioffe & Szegedy 2015, Fig. 1b,c)",
                  fontsize="medium")
        paths.append(_save(fig, out_dir, f"percentiles{suffix}", fmt))
    return paths


def grad_norms(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Gradient norm of each layer's weights vs step (log y), one line per norm, all at the matched lr."""
    _check(fmt)
    paths = []
    gc = tables.get("grad_curves")
    for model, suffix in _models(tables):
        picks, note = _picks(tables, model)
        layers = _all_layers(gc) if gc is not None else []
        data = {layer: [(_rows(gc, key, layer=layer), norm, label) for norm, key, label in picks]
                for layer in layers}
        if not _values([(df, "grad_norm_mean") for rows in data.values() for df, _, _ in rows]).size:
            continue
        fig = _figure(3.3 * len(layers) + 1.0, 4.6)
        axes = np.atleast_1d(fig.subplots(1, len(layers), squeeze=False)[0])
        for ax, layer in zip(axes, layers):
            rows = data[layer]
            log = bool((_values([(df, "grad_norm_mean") for df, _, _ in rows]) > 0).all())
            for df, norm, label in rows:
                _series(ax, df, "step", "grad_norm", color=norm_color(norm), label=label, log=log)
            if log:
                _log_y(ax)
            ax.set(title=layer, xlabel="step (updates)")
            ax.grid(alpha=0.3, which="both")
        axes[0].set_ylabel("gradient norm ‖∂L/∂W‖₂ (log scale)")
        _suptitle(fig, f"{model}: per-layer gradient norm at the logged steps, {note}", BAND_NOTE)
        _legend(fig, axes[0])
        paths.append(_save(fig, out_dir, f"grad_norms{suffix}", fmt))
    return paths


def lr_tolerance(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Final test accuracy vs learning rate (log x), one line per norm; diverged runs marked.
    A regression (accuracy blank) shows its score instead: the final loss drop (docs/metrics.md).

    A model swept at one lr only has no curve to show: no file.
    """
    _check(fmt)
    paths = []
    curve = tables.get("lr_curve")
    for model, suffix in _models(tables):
        mine = curve[curve["model"].astype(str) == model] if curve is not None else pd.DataFrame()
        mine = mine[mine["n_seeds"] > 0] if len(mine) else mine
        if not len(mine) or mine["lr"].nunique() < 2:
            continue
        regress = not _finite_any(mine["final_test_acc_mean"]) and "final_loss_drop_mean" in mine
        score = "final_loss_drop" if regress else "final_test_acc"
        fig = _figure(7.5, 5.0)
        ax = fig.subplots()
        key_cols = compare.table_key(mine)
        others = [c for c in key_cols if c != "lr"]
        varying = _varying(mine, key_cols)
        marked = False
        for _, d in mine.groupby(others, dropna=False, sort=False):
            d = d.sort_values("lr")
            norm = str(d["norm"].iloc[0])
            label = norm + "".join(f", {c}={_short(d[c].iloc[0])}" for c in varying)
            lr = d["lr"].to_numpy(float)
            mean = d[f"{score}_mean"].to_numpy(float)
            low = np.nan_to_num(mean - d[f"{score}_ci_low"].to_numpy(float))
            high = np.nan_to_num(d[f"{score}_ci_high"].to_numpy(float) - mean)
            # Where a seed diverged the interval mixes a stuck run with trained ones: mark, no bar.
            div = d["n_diverged"].to_numpy() > 0
            low[div], high[div] = 0.0, 0.0
            ax.errorbar(lr, mean, yerr=[low, high], color=norm_color(norm), marker="o", ms=5,
                        capsize=3, lw=1.8, label=label)
            if div.any():
                ax.scatter(lr[div], mean[div], marker="x", s=90, color=DIVERGED_COLOR, zorder=5,
                           linewidths=2.2, label=None if marked else "≥ 1 seed diverged")
                marked = True
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(_plain))
        if regress:
            ax.set_ylim(top=1.0)
        else:
            _clamp_fraction(ax)
        ax.set(title=f"{model}: learning-rate tolerance", xlabel="learning rate (log scale)",
               ylabel="final loss drop (1 − final / initial test loss)" if regress
               else "final test accuracy (fraction correct)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="best", title="error bars: 95% t-interval over seeds", title_fontsize="small")
        paths.append(_save(fig, out_dir, f"lr_tolerance{suffix}", fmt))
    return paths


def _finite_any(values: pd.Series) -> bool:
    return bool(np.isfinite(pd.to_numeric(values, errors="coerce").to_numpy(float)).any())


def drift_heatmap(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Total scale-free drift of the unit means (drift_mean_scaled_total), layer × norm, annotated:
    one panel for the linear site and, where recorded, one for norm_eval, on one colour scale."""
    _check(fmt)
    paths = []
    dr = tables.get("drift")
    value = "drift_mean_scaled_total_mean"
    for model, suffix in _models(tables):
        picks, note = _picks(tables, model)
        layers = _hidden_layers(dr) if dr is not None else []
        grids = {}
        for site in DRIFT_SITES:
            grid = np.full((len(layers), len(picks)), np.nan)
            for j, (_, key, _) in enumerate(picks):
                rows = _rows(dr, key, site=site)
                for i, layer in enumerate(layers):
                    hit = rows[rows["layer"].astype(str) == layer] if len(rows) else rows
                    if len(hit) and value in hit.columns:
                        grid[i, j] = float(hit[value].iloc[0])
            if np.isfinite(grid).any():
                grids[site] = grid
        if not grids:
            continue
        fig = _figure(1.9 * len(picks) * len(grids) + 2.0 * len(grids) + 1.2,
                      0.7 * len(layers) + 2.8)
        axes = np.atleast_1d(fig.subplots(1, len(grids), squeeze=False)[0])
        finite = np.concatenate([g[np.isfinite(g)] for g in grids.values()])
        positive = finite[finite > 0]
        use_log = positive.size == finite.size and _wants_log(positive)
        scale = (LogNorm(positive.min(), positive.max()) if use_log
                 else Normalize(min(0.0, finite.min()), finite.max() or 1.0))
        for ax, (site, grid) in zip(axes, grids.items()):
            image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", norm=scale, aspect="auto")
            for i in range(grid.shape[0]):
                for j in range(grid.shape[1]):
                    v = grid[i, j]
                    if not math.isfinite(v):
                        ax.text(j, i, "–", ha="center", va="center", color="0.3")
                        continue
                    r, g, b, _ = image.cmap(image.norm(v))
                    light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
                    ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize="medium",
                            color="black" if light else "white")
            ax.set_xticks(range(len(picks)), [label for _, _, label in picks], rotation=20, ha="right")
            ax.set_yticks(range(len(layers)), layers)
            ax.set(xlabel="normalization", title=DRIFT_SITES[site].replace(": ", ":\n"))
        axes[0].set_ylabel("layer")
        cbar = fig.colorbar(image, ax=list(axes))
        cbar.set_label("total scale-free drift of unit means\n(Σ over log steps of mean |Δμ|/σ)"
                       + (", log scale" if use_log else ""))
        _suptitle(fig, f"{model}: total scale-free drift, mean over seeds, {note}")
        paths.append(_save(fig, out_dir, f"drift_heatmap{suffix}", fmt))
    return paths


FIGURES = (accuracy_loss, distribution_shift, drift, percentiles, grad_norms, lr_tolerance, drift_heatmap)

# One sentence per figure kind (the function's name, the file's stem before any _<model>): what to look at.
CAPTIONS = {
    "accuracy_loss": "Test accuracy and training loss during training, every norm at the same learning "
                     "rate: a curve that rises (accuracy) or falls (loss) earlier means faster training.",
    "distribution_shift": "Mean and variance of each layer's activations on the fixed probe batch, at the "
                          "norm's output and after the nonlinearity: flatter lines mean the distribution "
                          "each layer passes on changes less during training.",
    "drift": "Scale-free drift per log step: lower lines mean the input each layer's norm receives "
             "(linear site), and the norm's eval-mode output (norm_eval), moves less between log steps, "
             "in units of its own standard deviation.",
    "percentiles": "15th, 50th and 85th percentile of one unit's input to the nonlinearity in one run: "
                   "a band that stays level means that unit's input distribution is stable "
                   "(as in Ioffe & Szegedy 2015, Figure 1b and 1c).",
    "grad_norms": "Gradient norm of each layer's weights at the logged steps, every norm at the same "
                  "learning rate: smoother lines mean steadier gradients, and lines close together "
                  "across layers mean gradients of similar size in every layer.",
    "lr_tolerance": "Final test accuracy against learning rate, one line per norm: a line that stays high "
                    "over a wider range of learning rates means a norm more tolerant of the learning "
                    "rate; red crosses mark learning rates where a seed diverged.",
    "drift_heatmap": "drift: lower numbers mean the input each layer receives moves less over training, "
                     "summed over log steps in units of its own standard deviation, every norm at the "
                     "same learning rate.",
}


def caption(path: Path | str) -> str:
    """The CAPTIONS entry of a figure file written by draw_all (`drift_heatmap_cnn.png` -> drift_heatmap)."""
    from . import batch as batch_plots, quantities as second_plots  # the views' figures (drawn with the helpers here), captions

    stem = Path(path).stem
    captions = {**CAPTIONS, **second_plots.CAPTIONS, **batch_plots.CAPTIONS}
    for kind in sorted(captions, key=len, reverse=True):
        if stem == kind or stem.startswith(f"{kind}_"):
            return captions[kind]
    raise KeyError(f"no caption for figure '{Path(path).name}'")


def draw_all(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Every figure (one file per figure and model) into `out_dir`; return the paths written.

    The figures are one output set (store.staged): drawn in a staging folder beside `out_dir` and
    moved in at the end; figures of this format already in `out_dir` that the new set lacks are
    removed. A kill leaves the previous figures, never half of a new set. A figure with nothing to
    show (no data recorded, or lr_tolerance with one lr) is not drawn; its caption is `caption(path)`.
    """
    _check(fmt)
    if "summary" not in tables:
        raise IcsError("the compare tables have no summary.csv; run `ics compare` first")
    out_dir = Path(out_dir)

    def owned(name: str) -> bool:   # a figure of this format, or a temporary file a kill left
        return (name.startswith(".") and ".tmp" in name) or (name.endswith(f".{fmt}") and _is_figure(name))

    from . import batch as batch_plots, quantities as second_plots  # their figures: drawn only where their tables were written

    figures = FIGURES + second_plots.FIGURES + batch_plots.FIGURES
    with store.staged(out_dir, owned) as stage:
        names = [path.name for figure in figures for path in figure(tables, stage, fmt)]
    return [out_dir / name for name in names]


def _is_figure(name: str) -> bool:
    try:
        caption(name)
    except KeyError:
        return False
    return True
