"""Figures drawn from the tables that compare.py writes (never from live training objects).

Every figure takes the dict that `outputs.load` returns, so it can be remade from CSVs without
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
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window; set before anything imports pyplot

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm, Normalize
from matplotlib.ticker import FuncFormatter

from ..analyse import compare
from ..analyse.stats import finite
from .style import (DIVERGED_COLOR, MARKER_SIZE, all_layers, band_note, check_format, clamp_fraction,
                    draw_series, figure_legend, finite_values, has_data, hidden_layers, hide_empty, log_y,
                    matched_picks, model_names, new_figure, norm_color, of_model, plain_number, rows_of,
                    save_figure, short_value, suptitle, varying_keys, wants_log)


# --------------------------------------------------------------------------- selection


# --------------------------------------------------------------------------- drawing helpers


# --------------------------------------------------------------------------- figures


def accuracy_loss(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Test accuracy and training loss vs step, one line per norm (two panels), all at the matched lr.

    A regression (accuracy blank at every step) shows its test loss in the first panel instead; runs
    without a finite training loss get the first panel alone.
    """
    check_format(fmt)
    paths = []
    curves = tables.get("curves")
    for model, suffix in model_names(tables):
        picks, note = matched_picks(tables, model)
        rows = [(rows_of(curves, key), norm, label) for norm, key, label in picks]
        frames = [df for df, _, _ in rows]
        regress = not has_data(frames, "test_acc_mean")
        first = "test_loss" if regress else "test_acc"
        if not has_data(frames, f"{first}_mean"):
            continue
        loss = has_data(frames, "train_loss_mean")
        fig = new_figure(11 if loss else 6, 4.6)
        axes = fig.subplots(1, 2 if loss else 1, squeeze=False)[0]
        acc_ax = axes[0]
        log = loss and wants_log(finite_values([(df, "train_loss_mean") for df in frames]))
        log_first = regress and wants_log(finite_values([(df, "test_loss_mean") for df in frames]))
        cut = False
        for df, norm, label in rows:
            cut |= draw_series(acc_ax, df, "step", first, color=norm_color(norm), label=label, log=log_first)
            if loss:
                cut |= draw_series(axes[1], df, "step", "train_loss", color=norm_color(norm), label=None,
                                   log=log)
        unit = "squared error, mean over outputs" if regress else "cross-entropy, nats"
        if regress:
            if log_first:
                log_y(acc_ax)
            acc_ax.set(title="Test loss", xlabel="step (updates)", ylabel=f"test loss per sample ({unit})")
        else:
            clamp_fraction(acc_ax)
            acc_ax.set(title="Test accuracy", xlabel="step (updates)",
                       ylabel="test accuracy (fraction correct)")
        if loss:
            if log:
                log_y(axes[1])
            axes[1].set(title="Training loss", xlabel="step (updates)",
                        ylabel=f"training loss per sample ({unit})")
        for ax in axes:
            ax.grid(alpha=0.3)
        suptitle(fig, f"{model}: accuracy and loss during training, {note}", band_note(cut))
        figure_legend(fig, acc_ax)
        paths.append(save_figure(fig, out_dir, f"accuracy_loss{suffix}", fmt))
    return paths


def distribution_shift(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Per layer one column: activation mean and variance at the norm and act sites vs step (a row or
    column with nothing recorded, such as the act site of a network without a nonlinearity, left out)."""
    check_format(fmt)
    panels = [("norm", "mean", "mean at norm output"), ("norm", "var", "variance at norm output"),
              ("act", "mean", "mean after activation"), ("act", "var", "variance after activation")]
    paths = []
    for model, suffix in model_names(tables):
        lc = of_model(tables.get("layer_curves"), model)
        picks, note = matched_picks(tables, model)
        data = {(layer, site): [(rows_of(lc, key, layer=layer, site=site), norm, label)
                                for norm, key, label in picks]
                for layer in hidden_layers(lc) for site in ("norm", "act")}

        def shown(layer, site, stat):
            return has_data([df for df, _, _ in data[layer, site]], f"{stat}_mean")
        layers = [x for x in hidden_layers(lc) if any(shown(x, site, stat) for site, stat, _ in panels)]
        panels_shown = [p for p in panels if any(shown(x, p[0], p[1]) for x in layers)]
        if not panels_shown:
            continue
        fig = new_figure(3.3 * len(layers) + 1.0, 2.2 * len(panels_shown) + 0.7)
        axes = fig.subplots(len(panels_shown), len(layers), squeeze=False)
        cut = False
        for j, layer in enumerate(layers):
            for i, (site, stat, ylabel) in enumerate(panels_shown):
                ax = axes[i, j]
                rows = data[layer, site]
                log = stat == "var" and wants_log(finite_values([(df, "var_mean") for df, _, _ in rows]))
                for df, norm, label in rows:
                    cut |= draw_series(ax, df, "step", stat, color=norm_color(norm), label=label, log=log)
                if log:
                    log_y(ax)
                ax.grid(alpha=0.3)
                if i == 0:
                    ax.set_title(layer)
                if i == len(panels_shown) - 1:
                    ax.set_xlabel("step (updates)")
                if j == 0:
                    ax.set_ylabel(f"{ylabel}\n(activation units)" if stat == "mean"
                                  else f"{ylabel}\n(activation units²)")
        hide_empty(axes)
        suptitle(fig, f"{model}: distribution of each layer's activations on the probe batch "
                  f"(averaged over units), {note}", band_note(cut))
        figure_legend(fig, axes)
        paths.append(save_figure(fig, out_dir, f"distribution_shift{suffix}", fmt))
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
    check_format(fmt)
    paths = []
    for model, suffix in model_names(tables):
        lc = of_model(tables.get("layer_curves"), model)
        picks, note = matched_picks(tables, model)
        data = {(layer, site): [(_later(rows_of(lc, key, layer=layer, site=site)), norm, label)
                                for norm, key, label in picks]
                for layer in hidden_layers(lc) for site in DRIFT_SITES}

        def shown(layer, site):
            return has_data([df for df, _, _ in data[layer, site]], "drift_mean_scaled_mean")
        layers = [x for x in hidden_layers(lc) if any(shown(x, s) for s in DRIFT_SITES)]
        sites = [s for s in DRIFT_SITES if any(shown(x, s) for x in layers)]
        if not sites:
            continue
        fig = new_figure(3.3 * len(layers) + 1.0, 3.2 * len(sites) + 1.6)
        axes = fig.subplots(len(sites), len(layers), squeeze=False)
        cut = False
        for i, site in enumerate(sites):
            for j, layer in enumerate(layers):
                ax = axes[i, j]
                rows = data[layer, site]
                log = wants_log(finite_values([(df, "drift_mean_scaled_mean") for df, _, _ in rows]))
                for df, norm, label in rows:
                    cut |= draw_series(ax, df, "step", "drift_mean_scaled", color=norm_color(norm),
                                       label=label, log=log)
                if log:
                    log_y(ax)
                ax.grid(alpha=0.3)
                ax.set_title(f"{layer}, {site} site")
                if i == len(sites) - 1:
                    ax.set_xlabel("step (updates)")
                if j == 0:
                    ax.set_ylabel(f"drift at the {site} site\n(mean |Δμ|/σ per log interval)")
        hide_empty(axes)
        where = "; ".join(DRIFT_SITES[s] for s in sites)
        suptitle(fig, f"{model}: how far each layer's unit means move between log steps, {note}",
                  SCALED_NOTE, where, band_note(cut))
        figure_legend(fig, axes)
        paths.append(save_figure(fig, out_dir, f"drift{suffix}", fmt))
    return paths


def _later(df: pd.DataFrame) -> pd.DataFrame:
    """Rows after step 0: drift since the previous log step is blank there."""
    return df[df["step"] > 0] if len(df) else df


def percentiles(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """p15/p50/p85 of tracked unit 0 of the last hidden layer at the norm site, one panel per norm.

    One seed per norm, the smallest: unit 0 of one seed and unit 0 of another are different units
    (different initial weights), so their percentiles are never averaged. The panels share the y axis.
    """
    check_format(fmt)
    paths = []
    pct = tables.get("percentiles")
    for model, suffix in model_names(tables):
        picks, note = matched_picks(tables, model)
        panels, layer = [], ""
        for norm, key, label in picks:
            mine = rows_of(pct, key)
            layers = hidden_layers(mine)
            layer = layers[-1] if layers else layer
            df = rows_of(mine, {}, layer=layer, site="norm", unit=0) if layers else mine
            if "seed" not in df.columns:  # a table from before percentiles were kept per seed
                df = pd.DataFrame()
            seed = int(df["seed"].min()) if len(df) else None
            panels.append((norm, label, seed, df[df["seed"] == seed] if len(df) else df))
        missing = [label for _, label, _, df in panels if df.empty]
        panels = [panel for panel in panels if not panel[-1].empty]     # no empty panels
        if not panels:
            continue
        fig = new_figure(3.6 * len(panels) + 0.6, 4.4)
        axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
        for ax, (norm, label, seed, df) in zip(axes, panels):
            color = norm_color(norm)
            steps = df["step"].to_numpy(float)
            if len(steps) == 1:     # one log step: a median marker and a 15th–85th bar
                p50 = df["p50"].to_numpy(float)
                ax.errorbar(steps, p50, yerr=[p50 - df["p15"].to_numpy(float), df["p85"].to_numpy(float) - p50],
                            color=color, marker="o", ms=MARKER_SIZE, capsize=3, ls="none",
                            label="median, 15th–85th percentile")
            else:
                ax.fill_between(steps, df["p15"].to_numpy(float), df["p85"].to_numpy(float),
                                color=color, alpha=0.25, lw=0, label="15th–85th percentile")
                ax.plot(steps, df["p50"].to_numpy(float), color=color, lw=1.8, label="median")
            ax.legend(loc="best", fontsize="small")
            ax.set(title=f"{label}, seed {seed}", xlabel="step (updates)")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("input to the activation (activation units)")
        seeds = sorted({seed for *_, seed, df in panels if seed is not None})
        which = f"seed {seeds[0]}" if len(seeds) == 1 else "each norm's smallest seed"
        suptitle(fig, f"{model}: {layer or 'last hidden layer'}, unit 0, at the norm site "
                  f"(input to the nonlinearity), {note}",
                  f"percentiles over the probe batch of one run ({which}): units of different seeds "
                  "are different units, so they are not averaged (cf. Ioffe & Szegedy 2015, Fig. 1b,c)",
                  *([f"no tracked units recorded: {', '.join(missing)}"] if missing else []),
                  fontsize="medium")
        paths.append(save_figure(fig, out_dir, f"percentiles{suffix}", fmt))
    return paths


def grad_norms(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Gradient norm of each layer's weights vs step (log y), one line per norm, all at the matched lr."""
    check_format(fmt)
    paths = []
    for model, suffix in model_names(tables):
        gc = of_model(tables.get("grad_curves"), model)
        picks, note = matched_picks(tables, model)
        data = {layer: [(rows_of(gc, key, layer=layer), norm, label) for norm, key, label in picks]
                for layer in all_layers(gc)}
        layers = [x for x, rows in data.items() if has_data([df for df, _, _ in rows], "grad_norm_mean")]
        if not layers:
            continue
        fig = new_figure(3.3 * len(layers) + 1.0, 4.6)
        axes = fig.subplots(1, len(layers), squeeze=False)[0]
        cut = False
        for ax, layer in zip(axes, layers):
            rows = data[layer]
            log = bool((finite_values([(df, "grad_norm_mean") for df, _, _ in rows]) > 0).all())
            for df, norm, label in rows:
                cut |= draw_series(ax, df, "step", "grad_norm", color=norm_color(norm), label=label, log=log)
            if log:
                log_y(ax)
            ax.set(title=layer, xlabel="step (updates)")
            ax.grid(alpha=0.3, which="both")
        axes[0].set_ylabel("gradient norm ‖∂L/∂W‖₂ (log scale)")
        suptitle(fig, f"{model}: per-layer gradient norm at the logged steps, {note}", band_note(cut))
        figure_legend(fig, axes)
        paths.append(save_figure(fig, out_dir, f"grad_norms{suffix}", fmt))
    return paths


def lr_tolerance(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Final test accuracy vs learning rate (log x), one line per norm; diverged runs marked.
    A regression (accuracy blank) shows its score instead: the final loss drop (docs/metrics.md).

    A model swept at one lr only has no curve to show: no file.
    """
    check_format(fmt)
    paths = []
    curve = tables.get("lr_curve")
    for model, suffix in model_names(tables):
        mine = curve[curve["model"].astype(str) == model] if curve is not None else pd.DataFrame()
        mine = mine[mine["n_seeds"] > 0] if len(mine) else mine
        if not len(mine) or mine["lr"].nunique() < 2:
            continue
        regress = not finite(mine["final_test_acc_mean"]).notna().any() and "final_loss_drop_mean" in mine
        score = "final_loss_drop" if regress else "final_test_acc"
        fig = new_figure(7.5, 5.0)
        ax = fig.subplots()
        key_cols = compare.table_key(mine)
        others = [c for c in key_cols if c != "lr"]
        varying = varying_keys(mine, key_cols)
        marked = False
        for _, d in mine.groupby(others, dropna=False, sort=False):
            d = d.sort_values("lr")
            norm = str(d["norm"].iloc[0])
            label = norm + "".join(f", {c}={short_value(d[c].iloc[0])}" for c in varying)
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
        ax.xaxis.set_major_formatter(FuncFormatter(plain_number))
        if regress:
            ax.set_ylim(top=1.0)
        else:
            clamp_fraction(ax)
        ax.set(title=f"{model}: learning-rate tolerance", xlabel="learning rate (log scale)",
               ylabel="final loss drop (1 − final / initial test loss)" if regress
               else "final test accuracy (fraction correct)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="best", title="error bars: 95% t-interval over seeds", title_fontsize="small")
        paths.append(save_figure(fig, out_dir, f"lr_tolerance{suffix}", fmt))
    return paths


HEAT_PT = 10            # heatmap tick labels and cell numbers, in points at the saved DPI
HEAT_CHARS = 50         # a configuration's label in a heatmap: lines of at most this many characters,
HEAT_LINES = 3          # at most this many lines, the rest shortened to "…"
CHAR_INCHES = 0.6 * HEAT_PT / 72    # about the width of one character at HEAT_PT


def heat_label(label: str) -> str:
    """A legend label (`line_label`) wrapped for a heatmap row: HEAT_CHARS per line, HEAT_LINES at most."""
    return textwrap.fill(label, HEAT_CHARS, max_lines=HEAT_LINES, placeholder=" …", break_on_hyphens=False)


def _heat_size(labels: list[str], numbers: list[np.ndarray]) -> tuple[float, float, float]:
    """(figure width, height, width of a panel's cells) in inches of a heatmap with a panel per grid of
    cell texts in `numbers` (rows: `labels`), so that every text at HEAT_PT fits its cell or margin."""
    rows, cols = numbers[0].shape
    lines = max(label.count("\n") + 1 for label in labels)
    label_width = max(len(line) for label in labels for line in label.split("\n")) * CHAR_INCHES
    row_height = max(0.42, lines * HEAT_PT * 1.35 / 72 + 0.12)
    widest = max(len(x) for grid in numbers for x in grid.ravel())
    cells_width = max(3.2, (widest * CHAR_INCHES + 0.2) * cols)
    return label_width + cells_width + 2.6, len(numbers) * (row_height * rows + 0.7) + 1.4, cells_width


def drift_heatmap(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Total scale-free drift of the unit means (drift_mean_scaled_total), norm × layer, annotated:
    one panel for the linear site and, where recorded, one below it for norm_eval, on one colour scale.

    The figure is sized to its cells, so that labels and numbers are HEAT_PT at the saved DPI however
    many norms and layers it has (long labels wrapped, heat_label); a norm or layer without a value at
    any site is left out.
    """
    check_format(fmt)
    paths = []
    value = "drift_mean_scaled_total_mean"
    for model, suffix in model_names(tables):
        dr = of_model(tables.get("drift"), model)
        picks, note = matched_picks(tables, model)
        layers = hidden_layers(dr)
        grids = {}
        for site in DRIFT_SITES:
            grid = np.full((len(picks), len(layers)), np.nan)
            for i, (_, key, _) in enumerate(picks):
                rows = rows_of(dr, key, site=site)
                for j, layer in enumerate(layers):
                    hit = rows[rows["layer"].astype(str) == layer] if len(rows) else rows
                    if len(hit) and value in hit.columns:
                        grid[i, j] = float(hit[value].iloc[0])
            if np.isfinite(grid).any():
                grids[site] = grid
        if not grids:
            continue
        filled = np.any([np.isfinite(g) for g in grids.values()], axis=0)
        rows_kept, cols_kept = filled.any(axis=1), filled.any(axis=0)
        grids = {site: g[rows_kept][:, cols_kept] for site, g in grids.items()}
        labels = [heat_label(label) for (_, _, label), kept in zip(picks, rows_kept) if kept]
        layers = [layer for layer, kept in zip(layers, cols_kept) if kept]
        numbers = {site: np.vectorize(lambda v: f"{v:.3g}" if math.isfinite(v) else "–", otypes=[str])(g)
                   for site, g in grids.items()}
        width, height, cells_width = _heat_size(labels, list(numbers.values()))
        fig = new_figure(width, height)
        axes = fig.subplots(len(grids), 1, squeeze=False, sharex=True)[:, 0]
        finite = np.concatenate([g[np.isfinite(g)] for g in grids.values()])
        positive = finite[finite > 0]
        use_log = positive.size == finite.size and wants_log(positive)
        scale = (LogNorm(positive.min(), positive.max()) if use_log
                 else Normalize(min(0.0, finite.min()), finite.max() or 1.0))
        for ax, (site, grid) in zip(axes, grids.items()):
            image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", norm=scale, aspect="auto")
            for i, j in np.ndindex(grid.shape):
                v = grid[i, j]
                r, g, b, _ = image.cmap(image.norm(v)) if math.isfinite(v) else (0.0, 0.0, 0.0, 0)
                light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
                ax.text(j, i, numbers[site][i, j], ha="center", va="center", fontsize=HEAT_PT,
                        color="0.3" if not math.isfinite(v) else "black" if light else "white")
            ax.set_yticks(range(len(labels)), labels)
            ax.set_xticks(range(len(layers)), [layer.removeprefix("hidden") for layer in layers])
            ax.tick_params(labelsize=HEAT_PT)
            title = DRIFT_SITES[site]
            if len(title) * CHAR_INCHES * 1.1 > cells_width:    # wider than the cells: on two lines
                title = title.replace(": ", ":\n")
            ax.set_title(title, fontsize=HEAT_PT + 1)
            ax.set_ylabel("normalization", fontsize=HEAT_PT)
        axes[-1].set_xlabel("hidden layer", fontsize=HEAT_PT)
        cbar = fig.colorbar(image, ax=list(axes))
        cbar.ax.tick_params(labelsize=HEAT_PT)
        cbar.set_label("total scale-free drift of unit means\n(Σ over log steps of mean |Δμ|/σ)"
                       + (", log scale" if use_log else ""), fontsize=HEAT_PT)
        suptitle(fig, f"{model}: total scale-free drift, mean over seeds, {note}")
        paths.append(save_figure(fig, out_dir, f"drift_heatmap{suffix}", fmt))
    return paths


FIGURES = (accuracy_loss, distribution_shift, drift, percentiles, grad_norms, lr_tolerance, drift_heatmap)
# The per-step table each figure kind is drawn from, where it is one that a committed results/ folder may
# leave out for its size (results/README.md): `ics plot` keeps such a figure when its table is absent.
SOURCES = {"distribution_shift": "layer_curves", "drift": "layer_curves", "percentiles": "percentiles",
           "grad_norms": "grad_curves"}

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


