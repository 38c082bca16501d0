"""What the terminal shows: Rich progress bars and tables, built from what runs wrote to disk.

Progress bars, spinners and per-run status lines go to stderr (a `status_console()`); tables go to the
console the caller passes (stdout in the CLI), so `ics ... > file` or `| cat` receives data only.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..net import norms
from ..store import runs as store


def status_console() -> Console:
    """Where progress and status lines go: stderr, so stdout carries only tables and JSON."""
    return Console(stderr=True)


def _num(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


@contextmanager
def run_progress(cfg, enabled: bool = True, console: Console | None = None):
    """A progress bar for one run (on stderr); yields the (on_log, on_step) callbacks train() takes."""
    if not enabled:
        yield None, None
        return
    steps = cfg.resolved().steps if cfg.epochs is None else None
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), transient=False,
                        console=console or status_console())
    task = progress.add_task(f"{cfg.model}/{cfg.norm}", total=steps, stats="")

    def shown() -> Progress:
        # Shown once the run trains: an error before (a damaged checkpoint) is the one line on stderr.
        if not progress.live.is_started:
            progress.start()
        return progress

    def on_log(step: int, row: dict) -> None:
        shown().update(task, completed=step, stats=(
            f"loss {_num(row['train_loss'], 3)}  " + (
                f"test loss {_num(row['test_loss'], 3)}" if pd.isna(row["test_acc"])    # regression
                else f"acc {_num(row['train_acc'], 3)}  test {_num(row['test_acc'], 3)}")))

    def on_step(step: int) -> None:
        if step % 10 == 0:
            shown().update(task, completed=step)

    try:
        yield on_log, on_step
    finally:
        if progress.live.is_started:
            progress.stop()


def layer_table(run: store.Run, site: str = "norm") -> pd.DataFrame:
    """Per hidden layer: mean/var at `site` at the first and last log, total drift, last grad norm."""
    layers = run.table("layers")
    grads = run.table("grads")
    rows = []
    for layer, g in layers[layers.site == site].groupby("layer", sort=False):
        first, last = g.iloc[0], g.iloc[-1]
        gl = grads[grads.layer == layer]
        rows.append({"layer": layer, "mean first": first["mean"], "var first": first["var"],
                     "mean last": last["mean"], "var last": last["var"],
                     "drift_mean total": g["drift_mean"].sum(), "drift_var total": g["drift_var"].sum(),
                     "grad_norm last": gl["grad_norm"].iloc[-1] if len(gl) else math.nan})
    return pd.DataFrame(rows)


def frame_table(df: pd.DataFrame, title: str) -> Table:
    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col), justify="left" if df[col].dtype == object else "right")
    for _, row in df.iterrows():
        table.add_row(*[_num(v) if not isinstance(v, str) else v for v in row])
    return table


def print_run(console: Console, result) -> None:
    run = store.read_run(result.path)
    s = result.summary
    if result.skipped:
        console.print("[yellow]An identical finished run already exists; showing it (use --force to rerun).")
    console.print(frame_table(layer_table(run), f"Layers at the norm site (input to the nonlinearity), "
                                                f"step {run.table('layers').step.iloc[0]} -> {s['final_step']}"))
    status = {"completed": "green", "diverged": "red", "interrupted": "yellow"}[s["status"]]
    extra = f" at step {s['diverged_at_step']}" if s["diverged_at_step"] is not None else ""
    console.print(f"[{status}]{s['status']}{extra}[/]: {s['steps_done']} steps, "
                  + ("" if s["final"]["test_acc"] is None else f"test acc {_num(s['final']['test_acc'])}, ")
                  + f"test loss {_num(s['final']['test_loss'])}, "
                  f"{_num(s['steps_per_s'])} steps/s")
    info = store.read_json(result.path / "config.json").get("data") or {}
    if info.get("files"):       # read from files: which split, and where its test numbers come from
        console.print(f"data: {info['name']}, split {info['split']}: {info['train_size']:,} training images, "
                      f"{info['test_size']:,} test images ({info['test_source']})", markup=False, highlight=False)
    console.print(f"run folder: {result.path}")


def print_norms(console: Console) -> None:
    table = Table(title="Normalization variants: (x - E[x]) / sqrt(Var[x] + eps), then gamma * x + beta")
    rows = norms.table()
    for col in rows[0]:
        table.add_column(col)
    for row in rows:
        table.add_row(*row.values())
    console.print(table)


STATUS_STYLE = {"completed": "green", "diverged": "red", "skipped": "dim", "failed": "bold red", "busy": "yellow",
                "interrupted": "yellow"}


def retried(outcome) -> str:
    """' (retried: 2 attempts)' for a run whose Ray worker died under it, else ''."""
    attempts = getattr(outcome, "attempts", 1)
    return f" (retried: {attempts} attempts)" if attempts > 1 else ""


def run_sweep(plan, out_dir, *, jobs=None, enabled: bool = True, console: Console | None = None):
    """sweep.run with a Rich progress bar (on stderr): one tick per finished run, a line per outcome, an ETA."""
    from ..sweep import run as sweep

    if not enabled:
        return sweep.run(plan, out_dir, jobs=jobs)
    progress = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[counts]}"), TimeRemainingColumn(),
                        console=console or status_console())
    counts: dict[str, int] = {}
    task = progress.add_task("sweep", total=None, counts="")
    try:
        def on_start(total: int, done: int) -> None:
            # Shown only now: an error before (--out, the Ray cluster) is the one line on stderr.
            progress.update(task, total=total)
            progress.start()

        def on_outcome(o) -> None:
            counts[o.status] = counts.get(o.status, 0) + 1
            if o.status != "skipped":
                extra = f" ({o.error})" if o.error else ""
                extra += retried(o)
                progress.console.print(f"[{STATUS_STYLE.get(o.status, '')}]{o.status:>11}[/] {o.name}{extra}")
            progress.update(task, advance=1, counts="  ".join(f"{k} {v}" for k, v in sorted(counts.items())))

        return sweep.run(plan, out_dir, jobs=jobs, on_start=on_start, on_outcome=on_outcome)
    finally:
        if progress.live.is_started:     # stopping a display never shown would print an empty line
            progress.stop()


def print_outcomes(console: Console, outcomes, out_dir) -> None:
    table = Table(title=f"Sweep outcomes ({len(outcomes)} runs) in {out_dir}")
    for col in ("run", "status", "steps", "final test acc"):
        table.add_column(col, justify="left" if col in ("run", "status") else "right")
    for o in sorted(outcomes, key=lambda o: o.name):
        s = o.summary or {}
        status = o.status if o.status != "skipped" else f"{s.get('status', '?')} (earlier)"
        status += retried(o)
        table.add_row(o.name, f"[{STATUS_STYLE.get(o.status, '')}]{status}[/]", _num(s.get("steps_done")),
                      _num((s.get("final") or {}).get("test_acc")))
    console.print(table)


def headline_table(head: pd.DataFrame, title: str) -> Table:
    """The headline comparison, one row per norm (and model): final accuracy with its interval, then
    every other column of compare.headline in its order, so a new measurement shows up by itself."""
    acc = ("final_test_acc_mean", "final_test_acc_ci_low", "final_test_acc_ci_high")
    cols = [c for c in head.columns if c not in acc[1:]]
    table = Table(title=title)
    for col in cols:
        table.add_column(HEADLINE_LABELS.get(col, col.replace("_", " ")),
                         justify="right" if pd.api.types.is_numeric_dtype(head[col]) else "left")
    for r in head.to_dict("records"):
        lo, hi = r.get("final_test_acc_ci_low"), r.get("final_test_acc_ci_high")
        ci = f" [{_num(lo, 3)}, {_num(hi, 3)}]" if lo is not None and not pd.isna(lo) else ""
        table.add_row(*[f"{_num(r[c], 3)}{ci}" if c == acc[0] else
                        escape(r[c]) if isinstance(r[c], str) else _num(r[c]) for c in cols])
    return table


HEADLINE_LABELS = {"n_seeds": "seeds", "n_diverged": "diverged", "final_test_acc_mean": "final test acc [95% CI]",
                   "final_loss_drop_mean": "final loss drop",
                   "max_stable_lr": "max stable lr", "grad_norm_cv": "grad-norm CV"}


VERDICT_STYLE = {"PASS": "green", "FAIL": "red", "INCONCLUSIVE": "yellow", "UNDERPOWERED": "magenta",
                 "DESIGN CHECK": "cyan"}


def print_studies(console: Console, registry) -> None:
    table = Table(title="Studies (ics reproduce NAME)")
    table.add_column("name")
    table.add_column("description")
    for name, study in registry.items():
        table.add_row(name, study.description)
    console.print(table)


def run_study(name: str, out_dir, *, quick: bool, seeds=None, jobs, console: Console | None = None):
    """studies.run_study with a spinner and a line per finished run (on stderr)."""
    from .. import studies

    console = console or status_console()

    def on_outcome(o) -> None:
        if o.status != "skipped":
            console.print(f"[{STATUS_STYLE.get(o.status, '')}]{o.status:>11}[/] {o.name}{retried(o)}")

    with console.status(f"study {name}: running"):
        return studies.run_study(name, out_dir, quick=quick, seeds=seeds, jobs=jobs, on_outcome=on_outcome)


def verdict_table(verdicts: pd.DataFrame, title: str) -> Table:
    """One row per claim: the claim, what was measured (and on how many seeds), the verdict."""
    table = Table(title=title)
    cols = ["claim_id", "claim", "measured", *(["n_seeds"] if "n_seeds" in verdicts else []), "expected",
            "verdict"]
    for col in cols:
        table.add_column(col, justify="right" if col in ("measured", "n_seeds") else "left")
    for r in verdicts.to_dict("records"):
        v = r["verdict"]
        cells = {"claim_id": str(r["claim_id"]), "claim": escape(str(r["claim"])),
                 "measured": _num(r["measured"]), "n_seeds": _num(r.get("n_seeds")),
                 "expected": escape(str(r["expected"])),
                 "verdict": f"[{VERDICT_STYLE.get(v, '')}]{v}[/]"}
        table.add_row(*[cells[c] for c in cols])
    return table


def held_table(held: pd.DataFrame, title: str) -> Table:
    """studies.held: per claim, the committed verdict, the fresh-seed verdict and whether it held."""
    n = int(held["held"].sum())
    table = Table(title=title, caption=f"{n} of {len(held)} verdicts held")
    for col in ("claim_id", "committed verdict", "fresh-seed verdict", "held"):
        table.add_column(col)
    for r in held.to_dict("records"):
        ref, v = str(r["reference_verdict"]), str(r["verdict"])
        table.add_row(str(r["claim_id"]), f"[{VERDICT_STYLE.get(ref, '')}]{ref}[/]",
                      f"[{VERDICT_STYLE.get(v, '')}]{v}[/]", "[green]yes[/]" if r["held"] else "[red]no[/]")
    return table
