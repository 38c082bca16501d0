"""Santurkar et al. 2018's figures, redrawn from the study's saved group tables (Fig. 2, 3 and 4), and the
lean set of tables they and the claims read (`LeanContext`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..store import files
from . import figures as fig
from .claims import MissingData
from .context import Context, table_folder
from .santurkar2018_dln import DLN_GROUP, DLN_LRS, EDGE, LITERAL_GROUP, LITERAL_LRS, MLP_GROUP, NOISY_GROUP, NORMS, PAPER

MOMENT_SITE = "act"     # S2: what the next layer receives (after the norm, the noise and the ReLU)
# The group tables the figures read (runs and summary: what every saved table set holds); of
# layer_curves only Fig. 2's rows. The rest is in <out>/compare/.
KEEP = ("runs", "summary", "curves", "layer_curves", "grad_ics_curves", "sharpness_curves", "landscape_curves")
LABEL = {"none": "standard", "batch": "BN"}
VARIANT = {("none", "none"): "standard", ("batch", "none"): "BN", ("batch", "santurkar"): "noisy BN",
           ("none", "santurkar"): "standard + noise"}


def lean(name: str, table: pd.DataFrame) -> pd.DataFrame:
    if name == "layer_curves" and {"site", "layer"} <= set(table.columns):
        return table[(table["site"] == MOMENT_SITE) & (table["layer"] == "hidden2")]
    return table


@dataclass
class LeanContext(Context):
    """A Context whose saved group tables are only those the study's figures read (KEEP)."""

    def save_tables(self) -> list[Path]:
        written = []
        for group, group_runs in self.groups.items():
            if group_runs:
                tables = self.tables(group)
                written += files.write_tables({k: lean(k, v) for k, v in tables.items() if k in KEEP},
                                              self.out / "tables" / table_folder(group, None))
        return written


def _lr_rows(table: pd.DataFrame, lr: float | None) -> pd.DataFrame:
    if lr is None or "lr" not in table:
        return table
    return table[np.isclose(pd.to_numeric(table["lr"], errors="coerce"), lr, rtol=1e-6, atol=0)]


def _rows(ctx: Context):
    """(name, tables, lr, layers) of each network setting drawn in Fig. 3 and 4."""
    mlp, dln = ctx.tables(MLP_GROUP), ctx.tables(DLN_GROUP)
    out = [("MLP", mlp, None, ("hidden2", "hidden3", "hidden4"))]
    out += [(f"DLN lr {lr:g}, project (= literal {lr / 10:g})", dln, lr, ("hidden2", "hidden12", "hidden24"))
            for lr in DLN_LRS]
    try:
        literal = ctx.tables(LITERAL_GROUP)
        out += [(f"DLN lr {lr:g}, literal", literal, lr, ("hidden2", "hidden12", "hidden24")) for lr in LITERAL_LRS]
    except MissingData:        # a study folder from before the literal group: draw what there is
        pass
    return out


def draw(ctx: Context, folder: Path, fmt: str = "png") -> list[tuple[Path, str]]:
    folder = Path(folder)
    mlp, noisy = ctx.tables(MLP_GROUP), ctx.tables(NOISY_GROUP)
    out = []

    # Fig. 2: training accuracy (noise off, eval mode) of the four MLP variants, and the per-step change of the unit means.
    f = fig.figure(11, 4.2)
    left, right = f.subplots(1, 2)
    for tables, noise, style in ((mlp, "none", "-"), (noisy, "santurkar", "--")):
        curves, lay = tables["curves"], tables["layer_curves"]
        for norm in NORMS:
            name = VARIANT[(norm, noise)]
            c = curves[curves["norm"] == norm].sort_values("step")
            c = c[pd.to_numeric(c["step"]) > 0]
            fig.band(left, c, "step", "train_acc", color=fig.norm_color(norm), label=name, ls=style)
            d = lay[(lay["norm"] == norm) & (lay["site"] == MOMENT_SITE) & (lay["layer"] == "hidden2")]
            d = d[pd.to_numeric(d["step"]) > 0].sort_values("step")
            right.plot(pd.to_numeric(d["step"]), pd.to_numeric(d["drift_mean_mean"], errors="coerce")
                       .rolling(10, min_periods=1).mean(), color=fig.norm_color(norm), ls=style, lw=1.4,
                       label=name)
    left.set(xlabel="step (updates)", ylabel="training accuracy (window mean, training pass, noise on)",
             title=f"Training accuracy, MLP (cf. {PAPER}, Fig. 2)\n{fig.BAND_NOTE}")
    right.set(xlabel="step (updates)", ylabel="mean |Δ unit mean| from the previous step", yscale="log",
              title=f"Per-step change of hidden2's `{MOMENT_SITE}` unit means\n(seed mean, 10-step running mean)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    out.append((fig.save(f, folder / f"fig2_noisy_bn.{fmt}"),
                "Fig. 2 (S1–S3): training accuracy of the standard net, BN, noisy BN and the noise without BN, as "
                "the training pass sees it (noise on; S1 decides on the eval-mode accuracy with the noise off, "
                "in verdicts.csv) (left), and how much hidden2's unit means move from one step to the next (right)."))

    rows = _rows(ctx)
    # Fig. 3: gradient ICS (relative) per layer and sharpness × lr, MLP and each DLN setting.
    f = fig.figure(14, 3.2 * len(rows))
    axes = f.subplots(len(rows), 3, squeeze=False)
    styles = ("-", "--", ":")
    for (name, tables, lr, layers), (ax_rel, ax_cos, ax_sh) in zip(rows, axes):
        ics = _lr_rows(tables.get("grad_ics_curves", pd.DataFrame()), lr)
        for norm in NORMS:
            for layer, ls in zip(layers, styles):
                d = ics[(ics["norm"] == norm) & (ics["layer"] == layer)].sort_values("step") if len(ics) else ics
                label = f"{LABEL[norm]} {layer}"
                column = "ics_rel" if "ics_rel_mean" in ics else "ics_l2"
                fig.band(ax_rel, d, "step", column, color=fig.norm_color(norm), label=label, ls=ls)
                fig.band(ax_cos, d, "step", "ics_cos", color=fig.norm_color(norm), label=label, ls=ls)
        ax_rel.set(yscale="log", ylabel="‖G − G′‖₂ / ‖G‖₂", title=f"{name}\ngradient ICS, relative")
        ax_cos.set(ylabel="cos(G, G′)", title=f"{name}\ngradient ICS, cosine", ylim=(-1.05, 1.05))
        sharp = _lr_rows(tables.get("sharpness_curves", pd.DataFrame()), lr)
        for norm in NORMS:
            if len(sharp):
                fig.band(ax_sh, sharp[sharp["norm"] == norm].sort_values("step"), "step", "sharpness_lr",
                         color=fig.norm_color(norm), label=LABEL[norm])
        ax_sh.axhline(EDGE, color="black", lw=0.8, ls=":", label=f"{EDGE:g} (edge of stability)")
        ax_sh.set(yscale="log", ylabel="sharpness × lr", title=f"{name}\nsharpness × lr")
        for ax in (ax_rel, ax_cos, ax_sh):
            ax.set_xlabel("step (updates)")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="best", fontsize="x-small")
    f.suptitle(f"Gradient-based ICS per layer (cf. {PAPER}, Fig. 3); {fig.BAND_NOTE}", fontsize="medium")
    out.append((fig.save(f, folder / f"fig3_grad_ics.{fmt}"),
                "Fig. 3 (S4, S5): ‖G − G′‖₂ / ‖G‖₂ and cos(G, G′) over steps for three layers, standard (grey) vs BN, "
                "MLP and the DLN under each loss convention; the right column shows sharpness × lr: near 2 a net "
                "is at the edge of stability and its gradient flips between steps whatever its normalization."))

    # Fig. 4: loss band, gradient predictiveness and β over steps.
    f = fig.figure(14, 3.2 * len(rows))
    axes = f.subplots(len(rows), 3, squeeze=False)
    for (name, tables, lr, _), (ax_band, ax_pred, ax_beta) in zip(rows, axes):
        land = _lr_rows(tables.get("landscape_curves", pd.DataFrame()), lr)
        for norm in NORMS:
            d = land[land["norm"] == norm].sort_values("step") if len(land) else land
            if len(d):
                xs = pd.to_numeric(d["step"])
                ax_band.fill_between(xs, pd.to_numeric(d["loss_band_min_mean"], errors="coerce"),
                                     pd.to_numeric(d["loss_band_max_mean"], errors="coerce"),
                                     color=fig.norm_color(norm), alpha=0.35, lw=0, label=LABEL[norm])
            fig.band(ax_pred, d, "step", "grad_pred", color=fig.norm_color(norm), label=LABEL[norm])
            fig.band(ax_beta, d, "step", "beta_eff", color=fig.norm_color(norm), label=LABEL[norm])
        ax_band.set(yscale="log", ylabel="L(θ − ηg) over the η grid", title=f"{name}\nloss band")
        ax_pred.set(yscale="log", ylabel="max_η ‖∇L(θ) − ∇L(θ − ηg)‖₂", title=f"{name}\ngradient predictiveness")
        ax_beta.set(yscale="log", ylabel="max_η ‖Δ∇L‖₂ / ‖ηg‖₂", title=f"{name}\neffective β-smoothness")
        for ax in (ax_band, ax_pred, ax_beta):
            ax.set_xlabel("step (updates)")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="best", fontsize="small")
    f.suptitle(f"The loss landscape along the gradient (cf. {PAPER}, Fig. 4); band: seed means of the "
               "lowest and highest loss over η", fontsize="medium")
    out.append((fig.save(f, folder / f"fig4_landscape.{fmt}"),
                "Fig. 4 (S6–S8): the range of the loss along the gradient, how much the gradient changes along it "
                "and the effective β-smoothness, standard (grey) vs BN, MLP and the DLN under each loss convention "
                "(log scales; the literal convention's losses are 10× the project's)."))
    return out
