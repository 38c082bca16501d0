"""Figures of the second view, drawn from the tables of analyse/quantities.py (never from run folders).

One figure per measurement family, each in the conventions of plots.py (whose helpers draw them):
the norm's colour, mean over seeds with its 95% t band, log axes where values span decades, one file
per model. Unlike the side-by-side figures of plots.py, which show every norm at one matched lr, these
draw one line per configuration that recorded the quantity (colour: the norm; line style: the other
key values, named in the legend), because the second view is usually recorded on a few chosen
configurations, such as the two learning rates of Santurkar's deep linear network.
A figure whose table is absent is not drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ..analyse import compare
from .style import BAND_ALPHA, BAND_NOTE, all_layers, check_format, new_figure, line_label, figure_legend, log_y, model_names, rows_of, save_figure, draw_series, suptitle, finite_values, varying_keys, wants_log, norm_color
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


def _table(tables: dict[str, pd.DataFrame], name: str, model: str) -> pd.DataFrame:
    table = tables.get(name)
    if table is None or table.empty:
        return pd.DataFrame()
    return table[table["model"].astype(str) == model]


def _per_model(tables: dict[str, pd.DataFrame], name: str):
    """(model, file suffix, the model's rows of table `name`, its lines) for each model that has rows."""
    for model, suffix in model_names(tables):
        mine = _table(tables, name, model)
        if not mine.empty:
            yield model, suffix, mine, _lines(mine, model)


def _draw(ax, lines, frames, x: str, name: str, *, log: bool | None = None) -> None:
    """`name` (mean and band) against `x` for every configuration; log y when `log`, or, when None,
    when its values are positive and span decades."""
    if log is None:
        log = wants_log(finite_values([(df, f"{name}_mean") for df in frames]))
    for (_, norm, label, style), df in zip(lines, frames):
        draw_series(ax, df, x, name, color=norm_color(norm), label=label, log=log, linestyle=style)
    if log:
        log_y(ax)
    ax.grid(alpha=0.3, which="both" if log else "major")


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
        layers = all_layers(mine)
        layers = _spread(layers[1:] if len(layers) > 1 else layers)
        fig = new_figure(max(7.0, 3.4 * len(layers) + 1.0), 7.4)
        axes = fig.subplots(2, len(layers), squeeze=False)
        for j, layer in enumerate(layers):
            frames = [rows_of(mine, key, layer=layer) for key, *_ in lines]
            _draw(axes[0, j], lines, frames, "step", "ics_l2")
            _draw(axes[1, j], lines, frames, "step", "ics_cos", log=False)
            axes[1, j].axhline(1.0, color="0.5", lw=0.8, ls=":")
            axes[1, j].set_ylim(-1.05, 1.05)
            axes[0, j].set_title(layer)
            axes[1, j].set_xlabel("step (updates)")
        axes[0, 0].set_ylabel("gradient ICS ‖G − G′‖₂\n(gradient units)")
        axes[1, 0].set_ylabel("cos(G, G′)\n(1: the update left the layer's gradient unchanged)")
        suptitle(fig, f"{model}: gradient-based internal covariate shift (Santurkar et al. 2018, Fig. 3): "
                  "G the layer's weight gradient, G′ the same after the earlier layers' update",
                  f"{LINES_NOTE}; {BAND_NOTE}")
        figure_legend(fig, axes[0, 0])
        paths.append(save_figure(fig, out_dir, f"grad_ics{suffix}", fmt))
    return paths


def landscape(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Santurkar et al. 2018, Fig. 4: the loss band along the gradient (shaded between the mean min and
    max over η), gradient predictiveness and effective β-smoothness over steps."""
    check_format(fmt)
    paths = []
    for model, suffix, mine, lines in _per_model(tables, "landscape_curves"):
        frames = [rows_of(mine, key) for key, *_ in lines]
        fig = new_figure(14.0, 4.8)
        band_ax, pred_ax, beta_ax = fig.subplots(1, 3)
        log = wants_log(finite_values([(df, c) for df in frames
                                  for c in ("loss_band_min_mean", "loss_band_max_mean")]))
        for (_, norm, label, style), df in zip(lines, frames):
            if df.empty:
                continue
            steps = pd.to_numeric(df["step"]).to_numpy(float)
            low, high = (pd.to_numeric(df[f"loss_band_{s}_mean"], errors="coerce").to_numpy(float)
                         for s in ("min", "max"))
            if log:
                low, high = np.where(low > 0, low, np.nan), np.where(high > 0, high, np.nan)
            color = norm_color(norm)
            band_ax.fill_between(steps, low, high, color=color, alpha=BAND_ALPHA, lw=0)
            band_ax.plot(steps, low, color=color, lw=1.2, ls=style, label=label)
            band_ax.plot(steps, high, color=color, lw=1.2, ls=style)
        if log:
            log_y(band_ax)
        band_ax.grid(alpha=0.3, which="both" if log else "major")
        band_ax.set(title="loss band along the gradient\n(shaded: min to max over η of L(θ − ηg))",
                    ylabel="training loss on the step's batch")
        _draw(pred_ax, lines, frames, "step", "grad_pred")
        pred_ax.set(title="gradient predictiveness\nmax over η of ‖∇L(θ) − ∇L(θ − ηg)‖₂",
                    ylabel="gradient change (gradient units)")
        _draw(beta_ax, lines, frames, "step", "beta_eff")
        beta_ax.set(title="effective β-smoothness\nmax over η of ‖∇L(θ) − ∇L(θ − ηg)‖₂ / ‖ηg‖₂",
                    ylabel="β_eff (gradient change per unit of parameter change)")
        for ax in (band_ax, pred_ax, beta_ax):
            ax.set_xlabel("step (updates)")
        suptitle(fig, f"{model}: the loss landscape along the gradient (Santurkar et al. 2018, Fig. 4), "
                  "η over the --landscape-etas grid",
                  f"{LINES_NOTE}; loss band: mean over seeds of each end; {BAND_NOTE}")
        figure_legend(fig, band_ax)
        paths.append(save_figure(fig, out_dir, f"landscape{suffix}", fmt))
    return paths


def relative_loss(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Bjorck et al. 2018, Fig. 2: relative loss L(θ − α∇L)/L(θ) against α, log-log, a panel per
    recorded step (step 0 first; at most MAX_PANELS). Lines: geometric mean over seeds (10 ** the mean
    of log10), bands: 10 ** its t interval; the blow-up threshold dashed."""
    check_format(fmt)
    paths = []
    for model, suffix, mine, lines in _per_model(tables, "relative_loss_curves"):
        steps = _spread(sorted(set(pd.to_numeric(mine["step"]).astype(int))))
        fig = new_figure(4.6 * len(steps) + 1.0, 5.0)
        axes = fig.subplots(1, len(steps), squeeze=False)[0]
        for ax, step in zip(axes, steps):
            frames = [_pow10(rows_of(mine, key, step=step).sort_values("alpha"), "log10_rel_loss", "rel")
                      for key, *_ in lines]
            _draw(ax, lines, frames, "alpha", "rel", log=True)
            ax.axhline(BLOWUP, color="0.3", lw=1.0, ls="--", label=f"blow-up threshold {BLOWUP:g}")
            ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
            _decades_around(ax, finite_values([(df, "rel_mean") for df in frames]), 1.0, BLOWUP)
            ax.set_xscale("log")
            ax.set(title="initialization (step 0)" if step == 0 else f"step {step}",
                   xlabel="step size α along −∇L (log scale)")
        axes[0].set_ylabel("relative loss L(θ − α∇L) / L(θ)\n(log scale)")
        suptitle(fig, f"{model}: loss after one gradient step of size α, relative to the loss before "
                  "(Bjorck et al. 2018, Fig. 2), same batch",
                  f"{LINES_NOTE}; lines: geometric mean over seeds; bands: 95% t-interval of log10 over "
                  "seeds; a seed whose loss is not finite is left out at that α")
        figure_legend(fig, axes[0])
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
        mine = _table(tables, "depth_profile", model)
        mine = mine[pd.to_numeric(mine["step"]) == 0] if len(mine) else mine
        sites = [s for s in DEPTH_SITES if len(mine) and (mine["site"].astype(str) == s).any()]
        if not sites:
            continue
        lines = _lines(mine, model)
        fig = new_figure(5.2 * len(sites) + 1.0, 7.6)
        axes = fig.subplots(2, len(sites), squeeze=False)
        for j, site in enumerate(sites):
            frames = [rows_of(mine, key, site=site).sort_values("layer_index") for key, *_ in lines]
            _draw(axes[0, j], lines, frames, "layer_index", "mean", log=False)
            _draw(axes[1, j], lines, frames, "layer_index", "std")
            axes[0, j].axhline(0.0, color="0.5", lw=0.8, ls=":")
            axes[0, j].set_title(DEPTH_SITES[site])
            axes[1, j].set_xlabel("depth (hidden layer index)")
            for ax in axes[:, j]:
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0, 0].set_ylabel("mean of the activations\n(activation units)")
        axes[1, 0].set_ylabel("standard deviation of the activations\n(activation units)")
        suptitle(fig, f"{model}: activations against depth at initialization (Bjorck et al. 2018, "
                  "Fig. 3), over all units and probe examples", f"{LINES_NOTE}; {BAND_NOTE}")
        figure_legend(fig, axes[0, 0])
        paths.append(save_figure(fig, out_dir, f"depth_profile{suffix}", fmt))
    return paths


def sharpness(tables: dict[str, pd.DataFrame], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Sharpness (the top Hessian eigenvalue) and sharpness × lr over steps, with the edge of
    stability, sharpness × lr = 2, dashed."""
    check_format(fmt)
    paths = []
    for model, suffix, mine, lines in _per_model(tables, "sharpness_curves"):
        frames = [rows_of(mine, key) for key, *_ in lines]
        fig = new_figure(11.0, 4.8)
        raw_ax, lr_ax = fig.subplots(1, 2)
        _draw(raw_ax, lines, frames, "step", "sharpness")
        log = wants_log(np.append(finite_values([(df, "sharpness_lr_mean") for df in frames]), EDGE))
        _draw(lr_ax, lines, frames, "step", "sharpness_lr", log=log)
        lr_ax.axhline(EDGE, color="0.3", lw=1.0, ls="--", label="2: edge of stability (GD)")
        raw_ax.set(title="sharpness λ_max of the loss Hessian", ylabel="λ_max (loss per parameter²)")
        lr_ax.set(title="sharpness × learning rate", ylabel="λ_max × lr (dimensionless)")
        for ax in (raw_ax, lr_ax):
            ax.set_xlabel("step (updates)")
        suptitle(fig, f"{model}: sharpness, the top Hessian eigenvalue from Hessian-vector products; gradient "
                  "descent is unstable along the top eigenvector above λ_max × lr = 2",
                  f"{LINES_NOTE}; {BAND_NOTE}")
        figure_legend(fig, lr_ax)
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
