"""Figures of the second view, drawn from the tables of analyse/quantities.py (never from run folders).

One figure per measurement family, each in the conventions of plots.py (whose helpers draw them):
the norm's colour, mean over seeds with its 95% t band, log axes where values span decades, one file
per model. Unlike the side-by-side figures of plots.py, which show every norm at one matched lr, these
draw one line per configuration that recorded the quantity (colour: the norm; line style: the other
key values, named in the legend), because the second view is usually recorded on a few chosen
configurations, such as the two learning rates of Santurkar's deep linear network.
A figure whose table is absent is not drawn, and a panel (a layer, a step, a measure) with no finite
value is left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..analyse import compare
from .style import (BAND_ALPHA, MARKER_SIZE, all_layers, band_note, check_format, draw_series, figure_legend,
                    finite_values, has_data, line_label, log_y, model_names, new_figure, norm_color, of_model,
                    rows_of, save_figure, suptitle, varying_keys, wants_log)
from ..analyse.quantities import BLOWUP

STYLES = ("-", "--", ":", "-.")
MAX_PANELS = 4          # layers (or steps) shown side by side: evenly spaced, the first and last among them
LINES_NOTE = "one line per configuration (colour: norm)"
EDGE = 2.0              # sharpness x lr at the edge of stability (Cohen et al. 2021)


def _lines(table: pd.DataFrame, model: str) -> list[tuple[dict, str, str, str]]:
    """[(key, norm, legend label, line style)]: every configuration of `model` in `table`, in the
    table's order; configurations of one norm get successive line styles."""
    mine = table[table["model"].astype(str) == model]
    key_cols = compare.table_key(mine)
    configs = mine[key_cols].drop_duplicates()
    varying = varying_keys(configs, key_cols)
    several_lrs = configs["lr"].astype(float).nunique() > 1
    lines, seen = [], {}
    for _, r in configs.iterrows():
        norm = str(r["norm"])
        seen[norm] = seen.get(norm, -1) + 1
        lines.append(({k: r[k] for k in key_cols}, norm, line_label(r, varying, lr=several_lrs),
                      STYLES[seen[norm] % len(STYLES)]))
    return lines


def _spread(items: list, n: int = MAX_PANELS) -> list:
    """At most `n` of `items`, evenly spaced, the first and the last among them."""
    if len(items) <= n:
        return list(items)
    return [items[i] for i in sorted({round(k * (len(items) - 1) / (n - 1)) for k in range(n)})]


def _per_model(tables: dict[str, pd.DataFrame], name: str):
    """(model, file suffix, the model's rows of table `name`, its lines) for each model that has rows."""
    for model, suffix in model_names(tables):
        mine = of_model(tables.get(name), model)
        if not mine.empty:
            yield model, suffix, mine, _lines(mine, model)


def _draw(ax, lines, frames, x: str, name: str, *, log: bool | None = None) -> bool:
    """`name` (mean and band) against `x` for every configuration; log y when `log`, or, when None,
    when its values are positive and span decades. True when a band was cut on the log axis
    (draw_series)."""
    if log is None:
        log = wants_log(finite_values([(df, f"{name}_mean") for df in frames]))
    cut = False
    for (_, norm, label, style), df in zip(lines, frames):
        cut |= draw_series(ax, df, x, name, color=norm_color(norm), label=label, log=log, linestyle=style)
    if log:
        log_y(ax)
    ax.grid(alpha=0.3, which="both" if log else "major")
    return cut


def _decades_around(ax, values: np.ndarray, *marks: float) -> None:
    """A log y range from a decade below the lowest to a decade above the highest of the means and
    `marks`: a t band over two or three seeds may span tens of decades and would flatten the lines."""
    x = np.append(values[values > 0], marks)
    ax.set_ylim(x.min() / 10, x.max() * 10)


def _pow10(df: pd.DataFrame, log_name: str, name: str) -> pd.DataFrame:
    """`df` with `name`_{mean,ci_low,ci_high} = 10 ** `log_name`_{...}: a geometric mean and its band."""
    if df.empty:
        return df
    df = df.copy()
    for s in ("mean", "ci_low", "ci_high"):
        df[f"{name}_{s}"] = 10.0 ** pd.to_numeric(df[f"{log_name}_{s}"], errors="coerce")
    return df


# --------------------------------------------------------------------------- figures


def grad_ics(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Santurkar et al. 2018, Fig. 3: gradient ICS ‖G − G′‖₂ (top) and cos(G, G′) (bottom) over steps,
    a column per layer (at most MAX_PANELS, evenly spaced; hidden1, whose G′ = G by definition, only
    when it is the only layer)."""
    check_format(fmt)
    paths = []
    for model, suffix, mine, lines in _per_model(tables, "grad_ics_curves"):
        frames = {layer: [rows_of(mine, key, layer=layer) for key, *_ in lines] for layer in all_layers(mine)}
        layers = [x for x, f in frames.items() if has_data(f, "ics_l2_mean", "ics_cos_mean")]
        first = all_layers(mine)[:1]
        layers = _spread([x for x in layers if x not in first] or layers)
        if not layers:
            continue
        fig = new_figure(max(7.0, 3.4 * len(layers) + 1.0), 7.4)
        axes = fig.subplots(2, len(layers), squeeze=False)
        cut = False
        for j, layer in enumerate(layers):
            cut |= _draw(axes[0, j], lines, frames[layer], "step", "ics_l2")
            cut |= _draw(axes[1, j], lines, frames[layer], "step", "ics_cos", log=False)
            axes[1, j].axhline(1.0, color="0.5", lw=0.8, ls=":")
            axes[1, j].set_ylim(-1.05, 1.05)
            axes[0, j].set_title(layer)
            axes[1, j].set_xlabel("step (updates)")
        axes[0, 0].set_ylabel("gradient ICS ‖G − G′‖₂\n(gradient units)")
        axes[1, 0].set_ylabel("cos(G, G′)\n(1: the update left the layer's gradient unchanged)")
        suptitle(fig, f"{model}: gradient-based internal covariate shift (Santurkar et al. 2018, Fig. 3): "
                  "G the layer's weight gradient, G′ the same after the earlier layers' update",
                  f"{LINES_NOTE}; {band_note(cut)}")
        figure_legend(fig, axes)
        paths.append(save_figure(fig, out_dir, f"grad_ics{suffix}", fmt))
    return paths


def landscape(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Santurkar et al. 2018, Fig. 4: the loss band along the gradient (shaded between the mean min and
    max over η), gradient predictiveness and effective β-smoothness over steps; a panel whose measure
    has no finite value left out."""
    check_format(fmt)
    paths = []
    for model, suffix, mine, lines in _per_model(tables, "landscape_curves"):
        frames = [rows_of(mine, key) for key, *_ in lines]
        band = has_data(frames, "loss_band_min_mean", "loss_band_max_mean")
        measures = [m for m in ("grad_pred", "beta_eff") if has_data(frames, f"{m}_mean")]
        if not band and not measures:
            continue
        fig = new_figure(4.6 * (band + len(measures)) + 0.2, 4.8)
        axes = list(fig.subplots(1, band + len(measures), squeeze=False)[0])
        if band:
            _loss_band(axes[0], lines, frames)
        cut = False
        for ax, measure in zip(axes[band:], measures):
            cut |= _draw(ax, lines, frames, "step", measure)
            ax.set(**LANDSCAPE_PANELS[measure])
        for ax in axes:
            ax.set_xlabel("step (updates)")
        suptitle(fig, f"{model}: the loss landscape along the gradient (Santurkar et al. 2018, Fig. 4), "
                  "η over the --landscape-etas grid",
                  f"{LINES_NOTE}; loss band: mean over seeds of each end; {band_note(cut)}")
        figure_legend(fig, axes)
        paths.append(save_figure(fig, out_dir, f"landscape{suffix}", fmt))
    return paths


LANDSCAPE_PANELS = {
    "grad_pred": dict(title="gradient predictiveness\nmax over η of ‖∇L(θ) − ∇L(θ − ηg)‖₂",
                      ylabel="gradient change (gradient units)"),
    "beta_eff": dict(title="effective β-smoothness\nmax over η of ‖∇L(θ) − ∇L(θ − ηg)‖₂ / ‖ηg‖₂",
                     ylabel="β_eff (gradient change per unit of parameter change)"),
}


def _loss_band(ax, lines, frames) -> None:
    """The mean min and max over η of the loss along the gradient, shaded between; one step: markers."""
    log = wants_log(finite_values([(df, c) for df in frames for c in ("loss_band_min_mean", "loss_band_max_mean")]))
    for (_, norm, label, style), df in zip(lines, frames):
        if df.empty:
            continue
        steps = pd.to_numeric(df["step"]).to_numpy(float)
        low, high = (pd.to_numeric(df[f"loss_band_{s}_mean"], errors="coerce").to_numpy(float)
                     for s in ("min", "max"))
        if log:
            low, high = np.where(low > 0, low, np.nan), np.where(high > 0, high, np.nan)
        color = norm_color(norm)
        mark = {"marker": "_", "ms": 3 * MARKER_SIZE} if len(steps) == 1 else {}
        ax.fill_between(steps, low, high, color=color, alpha=BAND_ALPHA, lw=0)
        ax.plot(steps, low, color=color, lw=1.2, ls=style, label=label, **mark)
        ax.plot(steps, high, color=color, lw=1.2, ls=style, **mark)
        if len(steps) == 1:
            ax.vlines(steps, low, high, color=color, lw=1.2)
    if log:
        log_y(ax)
    ax.grid(alpha=0.3, which="both" if log else "major")
    ax.set(title="loss band along the gradient\n(shaded: min to max over η of L(θ − ηg))",
           ylabel="training loss on the step's batch")


def relative_loss(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Bjorck et al. 2018, Fig. 2: relative loss L(θ − α∇L)/L(θ) against α, log-log, a panel per
    recorded step (step 0 first; at most MAX_PANELS). Lines: geometric mean over seeds (10 ** the mean
    of log10), bands: 10 ** its t interval; the blow-up threshold dashed."""
    check_format(fmt)
    paths = []
    for model, suffix, mine, lines in _per_model(tables, "relative_loss_curves"):
        frames = {step: [_pow10(rows_of(mine, key, step=step).sort_values("alpha"), "log10_rel_loss", "rel")
                         for key, *_ in lines]
                  for step in sorted(set(pd.to_numeric(mine["step"]).astype(int)))}
        steps = _spread([step for step, f in frames.items() if has_data(f, "rel_mean")])
        if not steps:
            continue
        fig = new_figure(4.6 * len(steps) + 1.0, 5.0)
        axes = fig.subplots(1, len(steps), squeeze=False)[0]
        for ax, step in zip(axes, steps):
            _draw(ax, lines, frames[step], "alpha", "rel", log=True)
            ax.axhline(BLOWUP, color="0.3", lw=1.0, ls="--", label=f"blow-up threshold {BLOWUP:g}")
            ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
            _decades_around(ax, finite_values([(df, "rel_mean") for df in frames[step]]), 1.0, BLOWUP)
            ax.set_xscale("log")
            ax.set(title="initialization (step 0)" if step == 0 else f"step {step}",
                   xlabel="step size α along −∇L (log scale)")
        axes[0].set_ylabel("relative loss L(θ − α∇L) / L(θ)\n(log scale)")
        suptitle(fig, f"{model}: loss after one gradient step of size α, relative to the loss before "
                  "(Bjorck et al. 2018, Fig. 2), same batch",
                  f"{LINES_NOTE}; lines: geometric mean over seeds; bands: 95% t-interval of log10 over "
                  "seeds; a seed whose loss is not finite is left out at that α")
        figure_legend(fig, axes)
        paths.append(save_figure(fig, out_dir, f"relative_loss{suffix}", fmt))
    return paths


DEPTH_SITES = {"linear": "input to the norm (linear site)", "act": "after the activation (act site)"}


def depth_profile(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Bjorck et al. 2018, Fig. 3: mean and standard deviation of the activations against depth at
    initialization (step 0), a column per site (linear: what each norm receives; act: what each layer
    passes on)."""
    check_format(fmt)
    paths = []
    for model, suffix in model_names(tables):
        mine = of_model(tables.get("depth_profile"), model)
        mine = mine[pd.to_numeric(mine["step"]) == 0] if len(mine) else mine
        if mine.empty:
            continue
        lines = _lines(mine, model)
        frames = {site: [rows_of(mine, key, site=site).sort_values("layer_index") for key, *_ in lines]
                  for site in DEPTH_SITES}
        sites = [s for s in DEPTH_SITES if has_data(frames[s], "mean_mean", "std_mean")]
        stats = [(stat, text) for stat, text in DEPTH_STATS.items()
                 if any(has_data(frames[s], f"{stat}_mean") for s in sites)]
        if not sites:
            continue
        fig = new_figure(5.2 * len(sites) + 1.0, 3.8 * len(stats))
        axes = fig.subplots(len(stats), len(sites), squeeze=False)
        cut = False
        for j, site in enumerate(sites):
            for i, (stat, _) in enumerate(stats):
                cut |= _draw(axes[i, j], lines, frames[site], "layer_index", stat,
                             log=False if stat == "mean" else None)
                if stat == "mean":
                    axes[i, j].axhline(0.0, color="0.5", lw=0.8, ls=":")
                axes[i, j].xaxis.set_major_locator(MaxNLocator(integer=True))
            axes[0, j].set_title(DEPTH_SITES[site])
            axes[-1, j].set_xlabel("depth (hidden layer index)")
        for i, (_, text) in enumerate(stats):
            axes[i, 0].set_ylabel(text)
        suptitle(fig, f"{model}: activations against depth at initialization (Bjorck et al. 2018, "
                  "Fig. 3), over all units and probe examples", f"{LINES_NOTE}; {band_note(cut)}")
        figure_legend(fig, axes)
        paths.append(save_figure(fig, out_dir, f"depth_profile{suffix}", fmt))
    return paths


DEPTH_STATS = {"mean": "mean of the activations\n(activation units)",
               "std": "standard deviation of the activations\n(activation units)"}


def sharpness(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Sharpness (the top Hessian eigenvalue) and sharpness × lr over steps, with the edge of
    stability, sharpness × lr = 2, dashed; a panel with no finite value left out."""
    check_format(fmt)
    paths = []
    for model, suffix, mine, lines in _per_model(tables, "sharpness_curves"):
        frames = [rows_of(mine, key) for key, *_ in lines]
        shown = [m for m in ("sharpness", "sharpness_lr") if has_data(frames, f"{m}_mean")]
        if not shown:
            continue
        fig = new_figure(5.5 * len(shown), 4.8)
        axes = fig.subplots(1, len(shown), squeeze=False)[0]
        cut = False
        for ax, measure in zip(axes, shown):
            if measure == "sharpness":
                cut |= _draw(ax, lines, frames, "step", "sharpness")
                ax.set(title="sharpness λ_max of the loss Hessian", ylabel="λ_max (loss per parameter²)")
            else:
                log = wants_log(np.append(finite_values([(df, "sharpness_lr_mean") for df in frames]), EDGE))
                cut |= _draw(ax, lines, frames, "step", "sharpness_lr", log=log)
                ax.axhline(EDGE, color="0.3", lw=1.0, ls="--", label="2: edge of stability (GD)")
                ax.set(title="sharpness × learning rate", ylabel="λ_max × lr (dimensionless)")
            ax.set_xlabel("step (updates)")
        suptitle(fig, f"{model}: sharpness, the top Hessian eigenvalue from Hessian-vector products; gradient "
                  "descent is unstable along the top eigenvector above λ_max × lr = 2",
                  f"{LINES_NOTE}; {band_note(cut)}")
        figure_legend(fig, axes[-1])
        paths.append(save_figure(fig, out_dir, f"sharpness{suffix}", fmt))
    return paths


FIGURES = (grad_ics, landscape, relative_loss, depth_profile, sharpness)

CAPTIONS = {
    "grad_ics": "Gradient-based internal covariate shift: how far each layer's weight gradient moves when "
                "the earlier layers take their update (ℓ2, top) and whether it still points the same way "
                "(cosine, bottom); lower ℓ2 and a cosine near 1 mean less shift (Santurkar et al. 2018, "
                "Fig. 3), to be read beside the sharpness figure.",
    "landscape": "The loss along the gradient direction: a narrower loss band, smaller gradient "
                 "predictiveness and a lower, steadier effective β-smoothness mean a smoother, more "
                 "predictable landscape (Santurkar et al. 2018, Fig. 4).",
    "relative_loss": "Loss after one gradient step of size α relative to the loss before, at "
                     "initialization: a curve that crosses the dashed 10³ line at a smaller α means a "
                     "network that blows up at smaller steps (Bjorck et al. 2018, Fig. 2).",
    "depth_profile": "Mean and standard deviation of the activations against depth at initialization: "
                     "lines that grow with depth mean activations that explode through the network, flat "
                     "lines mean a scale kept in check (Bjorck et al. 2018, Fig. 3).",
    "sharpness": "Top Hessian eigenvalue and its product with the learning rate: a product that reaches "
                 "the dashed line at 2 means training at the edge of stability, where the loss and the "
                 "gradient ICS oscillate whatever the normalization.",
}
