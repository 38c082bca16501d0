"""Generated README pages: `results/README.md` from the comparison tables and the study verdicts.

Nothing here computes a number: every value comes from a CSV that `ics compare` or a study wrote.
Every input is checked before anything is written: the comparison folder must lie inside ROOT (the
page links to it by relative path) and be a complete, readable output set (outputs.load), and each
sweep folder must hold a readable sweep.json.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..analyse import compare
from ..analyse import outputs
from ..store import runs as store
from ..store import files
from ..errors import IcsError


def md_cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


def md_table(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (no tabulate dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _resolved(common: dict) -> dict:
    """A sweep's common config with the model's defaults filled in (depth, width, activation), so no
    'None' reaches the README for a value the model chooses."""
    from ..config import RunConfig

    return RunConfig.from_record(common).resolved().to_dict()


def _grid_lines(sweeps: list[Path]) -> list[str]:
    """One line per sweep folder, from its sweep.json; an IcsError naming the folder when it has none
    or it cannot be read."""
    lines = []
    for folder in map(Path, sweeps):
        path = folder / "sweep.json"
        if not path.is_file() and not path.is_symlink():
            raise IcsError(f"--sweep '{folder}' has no sweep.json; give a folder made by `ics sweep` "
                           "(a study's runs folder has none)")
        try:
            spec = json.loads(files.read_text(path, kind="JSON file"))
            if isinstance(spec, dict) and "groups" in spec and "common" not in spec:
                raise IcsError(f"--sweep '{folder}' is a study's runs folder (its sweep.json lists groups, "
                               "not one grid); give the folders made by `ics sweep`")
            grid = spec["grid"]
            common = _resolved(spec["common"])
            width = common["width"]
            lines.append(
                f"- **{common['model']}** ({common['depth']} hidden layers of {width}, "
                f"{common['activation']}, {common['init']} init, {common['optimizer']}, "
                f"{common['steps']} steps, log every {common['log_every']}, dataset {common['dataset']}): "
                f"norms {', '.join(grid['norms'])}; lr {', '.join(f'{x:g}' for x in grid['lrs'])}; "
                f"batch size {', '.join(map(str, grid['batch_sizes']))}; seeds "
                f"{', '.join(map(str, grid['seeds']))} ({len(spec['runs'])} runs)")
        except store.DamagedFile as e:
            raise IcsError(f"--sweep '{folder}': {e.reason}") from None
        except json.JSONDecodeError as e:
            raise IcsError(f"--sweep '{folder}': sweep.json is not valid JSON ({e.msg} at line {e.lineno} "
                           f"column {e.colno})") from None
        except KeyError as e:
            raise IcsError(f"--sweep '{folder}': sweep.json is not one written by `ics sweep` (no {e} "
                           "entry)") from None
        except (ValueError, TypeError, AttributeError) as e:
            raise IcsError(f"--sweep '{folder}': sweep.json is not one written by `ics sweep` "
                           f"({' '.join(str(e).split())})") from None
    return lines


def _best_lr(tables: dict) -> list[str]:
    """The best-lr view, labelled as such: each norm at its own lr, chosen on the other seeds."""
    best = tables.get("best_lr")
    if best is None or best.empty:
        return []
    return ["### Each norm at its own best learning rate (a different question)", "",
            "For each seed, the lr is chosen on the *other* seeds (leave-one-seed-out), and the seed's "
            "final test accuracy at that lr is what is reported, so no lr is chosen on the seeds that "
            "score it. `lrs_chosen`: the lr chosen for each held-out seed, in seed order.", "",
            md_table(best[[c for c in best.columns if not c.endswith(("_ci_low", "_ci_high"))]]), ""]


def _verdict_line(study_dir: Path, root: Path) -> str | None:
    path = study_dir / "verdicts.csv"
    if not path.exists():
        return None
    v = files.read_csv(path)
    from ..studies import tally as study_tally

    rel = study_dir.relative_to(root).as_posix()
    if "claim_id" not in v:           # the predictors study: one verdict per measure and outcome
        rows = v[(v["outcome"] == "final_acc") & (v["role"] == "measure")]
        counts = rows["verdict"].value_counts()
        return (f"- [{study_dir.name}]({rel}/README.md): the candidate measures for final accuracy: "
                + ", ".join(f"{n} {verdict}" for verdict, n in counts.items()))
    tally = study_tally(v["verdict"])
    ids = " ".join(f"{r.claim_id}:{r.verdict}" for r in v.itertuples())
    return f"- [{study_dir.name}]({rel}/README.md): {tally} ({ids})"


def _changes(root: Path) -> list[str]:
    """Per claim of every study under root: the previous release's verdict, this one, and why."""
    from ..studies import REGISTRY

    lines = []
    for name, study in REGISTRY.items():
        path = root / name / "verdicts.csv"
        if not path.is_file() or not study.previous:
            continue
        v = files.read_csv(path, keep_default_na=False, dtype=str)
        revised = {c.id: c.revised for c in study.claims}
        for _, r in v.iterrows():
            before = study.previous.get(r["claim_id"], "–")
            why = revised.get(r["claim_id"]) or (
                "same test, new runs" if before != r["verdict"] else "same test")
            lines.append(f"| [{r['claim_id']}]({name}/README.md) | {before} | **{r['verdict']}** | "
                         f"{md_cell(why)} |")
    if not lines:
        return []
    commits = sorted({study.previous_commit for study in REGISTRY.values() if study.previous})
    return ["## What changed from the previous release", "",
            f"Previous verdicts: commit {', '.join(commits)}. Every change to a claim's metric, threshold, "
            "seeds or grid made after data was seen is in its study README's threshold history.", "",
            "| claim | previous | now | why |", "|---|---|---|---|", *lines, ""]


def replication(root: Path, replicated: list[Path]) -> list[str]:
    """Write root/replication.csv from replication folders (`ics reproduce NAME --seeds …`, each with
    study.json and verdicts.csv) and return the README section: which committed verdicts held."""
    from ..studies import REGISTRY, held_table

    if not replicated:
        return []
    table = held_table(root, replicated)
    store.write_atomic(root / "replication.csv", files.to_csv(table))
    decided = table[table["committed"].isin(["PASS", "FAIL"])]
    flipped = decided[decided["replicated"].isin(["PASS", "FAIL"]) & ~decided["held"].astype(bool)]
    undecided = decided[~decided["replicated"].isin(["PASS", "FAIL"])]
    studies_in = sorted(set(table["study"]))
    lines = ["## Replication on fresh seeds", "",
             f"`ics reproduce NAME --seeds {table['seeds'].iloc[0] if len(table) else ''}` (`make replicate`): the "
             f"protocol of {', '.join(studies_in)} rerun on seeds that never decided a committed verdict. "
             f"{int(decided['held'].sum())} of {len(decided)} committed PASS/FAIL verdicts held, {len(flipped)} "
             f"turned into the opposite verdict and {len(undecided)} were not decided on the fresh seeds (a claim "
             "whose protocol needs more seeds than the replication has is UNDERPOWERED there, not contradicted); "
             f"{int(table['held'].sum())} of {len(table)} verdicts in all (`replication.csv`).", ""]
    for name in sorted(n for n in REGISTRY if n not in studies_in and (root / n / "verdicts.csv").is_file()):
        mine = files.read_csv(root / name / "verdicts.csv")
        decided_here = mine["verdict"].isin(["PASS", "FAIL"]).any() if "verdict" in mine else False
        lines += [f"Not rerun: {name}" + ("." if decided_here else
                  f" (none of its {len(mine)} claims is PASS or FAIL at its own seed count, so fewer fresh seeds "
                  "cannot test one)."), ""]
    lines += ["| study | claim | committed | on fresh seeds | held |", "|---|---|---|---|---|"]
    lines += [f"| {r.study} | {r.claim_id} | {r.committed} | {r.replicated} | {'yes' if r.held else '**no**'} |"
              for r in table.itertuples()]
    return lines + [""]


def results_readme(root: Path, compare_dir: Path, sweeps: list[Path], replicated: list[Path] = ()) -> Path:
    """Write root/README.md: findings, what was run, the headline tables, figures, the studies' verdicts."""
    from ..figures.plots import CAPTIONS
    from ..studies.findings import sentences

    root, compare_dir = Path(root), Path(compare_dir)
    try:
        rel = compare_dir.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        raise IcsError(f"--compare '{compare_dir}' is not inside ROOT '{root}'; the README links to its "
                       "tables and figures by relative path, so give a comparison folder under ROOT") from None
    grid_lines = _grid_lines(sweeps)
    tables = outputs.load(compare_dir)
    head = compare.headline(tables)
    keep = [c for c in head.columns if not c.endswith(("_ci_low", "_ci_high"))]
    head = head.assign(final_test_acc_mean=[
        f"{m:.3f} [{lo:.3f}, {hi:.3f}]" if pd.notna(lo) else f"{m:.3f}"
        for m, lo, hi in zip(head["final_test_acc_mean"], head["final_test_acc_ci_low"],
                             head["final_test_acc_ci_high"])]) if len(head) else head
    found = sentences(root)
    tol = tables["lr_tolerance"]
    tol_cols = [c for c in ("model", "norm", "best_acc", "best_lr", "max_stable_lr", "good_range_decades",
                            "stable_lr_vs_none", "acc_by_lr") if c in tol.columns]
    lines = [
        "# Results",
        "",
        f"Generated by `make reproduce` ({datetime.now(timezone.utc):%Y-%m-%d}); do not edit by hand. "
        "Every number below is read from the CSVs beside this file; definitions are in "
        "[docs/metrics.md](../docs/metrics.md).",
        "",
        "## Findings",
        "",
        found[0],
        "",
        *[f"- {t}" for t in found[1:]],
        "",
        *_changes(root),
        "## The default comparison",
        "",
        "The same networks trained on the embedded MNIST subset (mnist-5k: 4000 train / 1000 test) with "
        "each normalization, over a learning-rate grid, 3 seeds each:",
        "",
        *grid_lines,
        "",
        f"Tables: [{rel}/]({rel}/) (`summary.csv`, `drift.csv`, `gradient_stability.csv`, `lr_tolerance.csv`, "
        "and the per-step tables the figures are drawn from).",
        "",
        "### Headline: every norm at the same learning rate",
        "",
        "Per model, all norms at one matched lr (`lr_rule` says how it was chosen); final test accuracy "
        "as mean [95% t-interval] over seeds. `max_stable_lr`: largest lr whose mean final accuracy is "
        "at least 90% of the norm's best with no seed diverged. `drift_linear_scaled` and "
        "`drift_norm_eval_scaled`: scale-free drift of the unit means (in units of each unit's standard "
        "deviation, summed over log steps, mean over hidden layers) of the input each norm receives and "
        "of the norm's output at test time. `grad_norm_cv` and the detrended `grad_norm_jitter`: "
        "gradient stability over every update, mean over layers. Formulas: docs/metrics.md.",
        "",
        md_table(head[keep]),
        "",
        *_best_lr(tables),
        "### Learning-rate tolerance",
        "",
        md_table(tol[tol_cols]),
        "",
        "### Figures",
        "",
    ]
    for png in sorted(compare_dir.glob("*.png")):
        kind = next((k for k in sorted(CAPTIONS, key=len, reverse=True) if png.stem.startswith(k)), None)
        caption = CAPTIONS.get(kind, png.stem)
        lines += [f"![{caption}]({rel}/{png.name})", "", f"*{png.stem}: {caption}*", ""]
    studies = [line for d in sorted(p for p in root.iterdir() if p.is_dir())
               if (line := _verdict_line(d, root))]
    if studies:
        lines += ["## Studies: claims checked against measurements", "", *studies, ""]
    lines += replication(root, list(replicated))
    lines += ["## What is not committed", "",
              "To keep this folder under 50 MB, these are left to `make reproduce` (which writes them from the run "
              "folders, themselves never committed): the per-seed long tables (`default/long/`, "
              "`*/compare/long/`), the per-step comparison tables the figures are drawn from (`layer_curves.csv`, "
              "`percentiles.csv`, `grad_curves.csv`), each study's generic `compare/` figures (`ics plot` on the "
              "study folder draws them), and the predictors study's per-environment statistics (`predictors.csv` of "
              "`predictors/`, its `pilot/` and `replication/`; `predictors/tau_by_subset.csv` keeps what its README "
              "reads). Every table a finding or verdict reads is here.", ""]
    out = root / "README.md"
    store.write_atomic(out, "\n".join(lines) + "\n")
    return out
