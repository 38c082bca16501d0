"""The HTML report's section for a predictors study folder (`ics reproduce predictors`, results/predictors/):
its answer, the verdict of every candidate measure for final accuracy, the forest plots (the PNGs the
study drew, embedded), and its protocol. Everything is read from the folder's tables and figures."""

from __future__ import annotations

from pathlib import Path

from ...store import files
from ...store.files import read_json
from ...studies import predictors as protocol
from ...studies.predictors_readme import finding, machinery_of
from .markup import esc, figure, inline, markdown, slug, table

COLUMNS = ["measure", "role", "subset", "tau_norm", "tau_norm_ci_low", "tau_norm_ci_high", "rival", "rival_tau",
           "partial_tau", "partial_tau_ci_low", "partial_tau_ci_high", "sign_error_mean", "sign_error_q75",
           "verdict", "verdict_all_runs", "replicated"]
TITLE = "Which measure of internal covariate shift predicts training?"


def is_predictors(folder: Path) -> bool:
    info = Path(folder) / "study.json"
    return info.is_file() and read_json(info).get("study") == protocol.NAME


def section(folder: Path, ident: str, *, rel: str = "", heading: int = 2):
    """(id, title, HTML, one-line brief, {relative path: anchor}) of a predictors folder."""
    folder = Path(folder)
    verdicts = files.read_csv(folder / "verdicts.csv", keep_default_na=False, na_values=[""])
    h, sub = f"h{heading}", f"h{min(heading + 1, 6)}"
    answer = finding(verdicts, machinery_of(verdicts))
    parts = [f'<{h} id="{ident}">{esc(TITLE)}</{h}>',
             f"<p><code>ics reproduce predictors</code>: {inline(answer)}</p>"]
    links = {f"{rel}README.md": ident, rel.rstrip("/") or ".": ident, f"{rel}verdicts.csv": slug(ident, "verdicts")}
    for outcome in ("final_acc", "steps_to_target", "diverged"):
        rows = verdicts[verdicts["outcome"] == outcome]
        shown = rows[[c for c in COLUMNS if c in rows.columns]]
        parts.append(table(shown, ident=slug(ident, "verdicts", outcome),
                           caption=f"<code>verdicts.csv</code>, outcome <code>{esc(outcome)}</code>: one row per "
                                   "candidate; τ across norms at fixed (model, lr) with its seed-bootstrap "
                                   "interval, on the subset the verdict is decided on (the verdict on all runs "
                                   f"beside it). <span class=muted>{esc(rel)}verdicts.csv</span>"))
        png = folder / f"forest_{outcome}.png"
        if png.is_file():
            fid = slug(ident, "fig", png.stem)
            parts.append(figure(png.read_bytes(), "png", ident=fid,
                                caption=f"<strong>{esc(png.stem)}</strong>: τ across norms (left) and sign "
                                        f"errors (right) per candidate. <span class=muted>{esc(rel)}{esc(png.name)}</span>",
                                alt=f"Forest plot of the candidate measures for {outcome}"))
            links[f"{rel}{png.name}"] = fid
    parts += [f'<{sub} id="{ident}-protocol">Protocol</{sub}>', markdown(protocol.PROTOCOL, level=min(heading + 2, 6))]
    measures = verdicts[(verdicts["outcome"] == "final_acc") & (verdicts["role"] == "measure")]
    counts = ", ".join(f"{n} {v}" for v, n in measures["verdict"].value_counts().items())
    brief = f'<a href="#{ident}">{esc(TITLE)}</a> (final accuracy: {esc(counts)})'
    return ident, TITLE, "\n".join(parts), brief, links

