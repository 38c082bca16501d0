"""What the terminal shows: Rich progress bars and tables, built from what runs wrote to disk.

Progress bars, spinners and per-run status lines go to stderr (a `status_console()`); tables go to the
console the caller passes (stdout in the CLI), so `ics ... > file` or `| cat` receives data only.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager

import pandas as pd
from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.markup import escape
from rich.text import Text
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from ..net import norms
from ..store import runs as store


def status_console() -> Console:
    """Where progress and status lines go: stderr, so stdout carries only tables and JSON."""
    return Console(stderr=True)


class Fitted:
    """A table that keeps every number whole at any terminal width.

    Built like a Rich Table (`add_column(name, numeric=...)`, `add_row(*cells)`), it is laid out when
    printed: as one table when every numeric column fits at its widest cell beside the text columns
    (which fold, never cut); else as several tables, each repeating the leading key columns (the text
    columns before the first number) with as many of the others as fit; else (keys alone too wide) as
    one block of `column: value` lines per row. Rich alone shortens cells with "…" once a table is
    wider than the terminal, and 3.163e-05 would read 3.163.
    """

    TEXT_MIN = 12       # the narrowest a folding text column may get in the table layout

    def __init__(self, title: str | None = None, caption: str | None = None):
        self.title, self.caption = title, caption
        self.columns: list[tuple[str, bool, str]] = []     # (header, numeric, justify)
        self.rows: list[list[str]] = []

    def add_column(self, header: str, *, numeric: bool = False, justify: str | None = None) -> None:
        self.columns.append((header, numeric, justify or ("right" if numeric else "left")))

    def add_row(self, *cells: str) -> None:
        self.rows.append([str(c) for c in cells])

    def _widths(self) -> list[int]:
        return [max([Text.from_markup(r[i]).cell_len for r in self.rows] + [len(h) if numeric else 0], default=0)
                for i, (h, numeric, _) in enumerate(self.columns)]

    def needs(self, picked: list[int] | None = None) -> int:
        """The narrowest terminal in which a table of the `picked` columns (all) keeps every number whole."""
        widths = self._widths()
        picked = range(len(self.columns)) if picked is None else picked
        cells = sum(widths[i] if self.columns[i][1] else min(widths[i], self.TEXT_MIN) for i in picked)
        return cells + 3 * len(picked) + 1

    def table(self, picked: list[int] | None = None, title: str | None = None, caption: str | None = None) -> Table:
        picked = list(range(len(self.columns))) if picked is None else picked
        widths = self._widths()
        table = Table(title=title, caption=caption)
        for i in picked:
            header, numeric, justify = self.columns[i]
            if numeric:
                table.add_column(header, justify=justify, no_wrap=True, min_width=widths[i], overflow="fold")
            else:
                table.add_column(header, justify=justify, overflow="fold")
        for row in self.rows:
            table.add_row(*[row[i] for i in picked])
        return table

    def split(self, width: int) -> list[list[int]] | None:
        """Column groups, each the key columns plus what fits in `width`; None if the keys alone don't."""
        keys = []
        for i, (_, numeric, _) in enumerate(self.columns):
            if numeric:
                break
            keys.append(i)
        keys = keys[:2]
        groups: list[list[int]] = []
        for i in range(len(keys), len(self.columns)):
            if groups and self.needs(keys + groups[-1] + [i]) <= width:
                groups[-1].append(i)
            elif self.needs(keys + [i]) <= width:
                groups.append([i])
            else:
                return None
        return [keys + g for g in groups]

    def narrow(self) -> Group:
        parts = [Text(self.title, style="italic")] if self.title else []
        for row in self.rows:
            block = Table(box=box.SIMPLE_HEAD, show_header=False, pad_edge=False)
            block.add_column(style="bold", no_wrap=True)
            block.add_column(overflow="fold")
            for (header, _, _), cell in zip(self.columns, row):
                block.add_row(escape(header), cell)
            parts.append(block)
        if self.caption:
            parts.append(Text(self.caption, style="dim"))
        return Group(*parts)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        if self.needs() <= width:
            yield self.table(title=self.title, caption=self.caption)
            return
        groups = self.split(width)
        if groups is None:
            yield self.narrow()
            return
        for k, picked in enumerate(groups):
            yield self.table(picked, title=f"{self.title} ({k + 1}/{len(groups)})" if self.title else None,
                             caption=self.caption if k == len(groups) - 1 else None)


HEARTBEAT_S = 5.0      # a plain progress line this often when stderr is not a terminal


def clock(seconds: float) -> str:
    """Elapsed time as h:mm:ss."""
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Heartbeat:
    """A plain line on `console` every `every` seconds while a run or sweep goes on, when the console is
    not a terminal (a log file, CI): Rich's bar draws nothing there until the end. `text()` says where
    the work stands; the elapsed time is added. On a terminal it does nothing (the bar shows it)."""

    def __init__(self, console: Console, text, every: float | None = None):
        self.console, self.text, self.every = console, text, every or HEARTBEAT_S
        self.start = time.monotonic()
        self.stop = threading.Event()
        self.thread = None

    def __enter__(self) -> "Heartbeat":
        if not self.console.is_terminal:
            self.thread = threading.Thread(target=self._beat, daemon=True)
            self.thread.start()
        return self

    def _beat(self) -> None:
        while not self.stop.wait(self.every):
            line = self.text()
            if line:
                self.console.print(f"{line}  elapsed {clock(time.monotonic() - self.start)}", highlight=False,
                                   markup=False)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def _num(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


@contextmanager
def run_progress(cfg, enabled: bool = True, console: Console | None = None):
    """A progress bar for one run (on stderr); yields the (on_log, on_step, on_resume) callbacks train()
    takes. A resumed run says so, with its step, whether or not the bar is shown."""
    status = console or status_console()

    def on_resume(step: int) -> None:
        status.print(f"resuming from step {step:,} (the run's checkpoint)", highlight=False)

    if not enabled:
        yield None, None, on_resume
        return
    steps = cfg.resolved().steps if cfg.epochs is None else None
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        transient=False, console=console or status_console())
    task = progress.add_task(f"{cfg.model}/{cfg.norm}", total=steps, stats="")
    where = {"step": None, "stats": ""}

    def shown() -> Progress:
        # Shown once the run trains: an error before (a damaged checkpoint) is the one line on stderr.
        if not progress.live.is_started:
            progress.start()
        return progress

    def on_log(step: int, row: dict) -> None:
        where["stats"] = (f"loss {_num(row['train_loss'], 3)}  " + (
            f"test loss {_num(row['test_loss'], 3)}" if pd.isna(row["test_acc"])    # regression
            else f"acc {_num(row['train_acc'], 3)}  test {_num(row['test_acc'], 3)}"))
        where["step"] = step
        shown().update(task, completed=step, stats=where["stats"])

    def on_step(step: int) -> None:
        where["step"] = step
        if step % 10 == 0:
            shown().update(task, completed=step)

    def line() -> str:
        if where["step"] is None:
            return ""
        total = f"/{steps:,}" if steps else ""
        return f"{cfg.model}/{cfg.norm}: step {where['step']:,}{total}  {where['stats']}".rstrip()

    try:
        with Heartbeat(progress.console, line):
            yield on_log, on_step, on_resume
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


def frame_table(df: pd.DataFrame, title: str) -> Fitted:
    table = Fitted(title=title)
    for col in df.columns:
        table.add_column(str(col), numeric=df[col].dtype != object)
    for _, row in df.iterrows():
        table.add_row(*[_num(v) if not isinstance(v, str) else escape(v) for v in row])
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
                        TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console or status_console())
    counts: dict[str, int] = {}
    running = {"text": ""}
    task = progress.add_task("sweep", total=None, counts="")

    def shown_counts() -> str:
        return "  ".join([*(f"{k} {v}" for k, v in sorted(counts.items())), running["text"]]).strip()
    heartbeat = Heartbeat(progress.console, lambda: (
        f"sweep: {sum(counts.values())}/{progress.tasks[0].total} runs ended  {shown_counts()}"
        if progress.tasks[0].total else ""))
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
            progress.update(task, advance=1, counts=shown_counts())

        def on_running(steps: list[tuple[str, int, int]]) -> None:
            running["text"] = running_text(steps)
            progress.update(task, counts=shown_counts())

        with heartbeat:
            return sweep.run(plan, out_dir, jobs=jobs, on_start=on_start, on_outcome=on_outcome,
                             on_running=on_running)
    finally:
        if progress.live.is_started:     # stopping a display never shown would print an empty line
            progress.stop()


def running_text(steps: list[tuple[str, int, int]]) -> str:
    """'running: 120/500 80/500': the step each running run of a sweep has reached."""
    if not steps:
        return ""
    return "running: " + " ".join(f"{step:,}/{total:,}" if total else f"{step:,}" for _, step, total in steps)


def print_outcomes(console: Console, outcomes, out_dir) -> None:
    table = Fitted(title=f"Sweep outcomes ({len(outcomes)} runs) in {out_dir}")
    for col in ("run", "status", "steps", "final test acc"):
        table.add_column(col, numeric=col not in ("run", "status"))
    for o in sorted(outcomes, key=lambda o: o.name):
        s = o.summary or {}
        status = o.status if o.status != "skipped" else f"{s.get('status', '?')} (earlier)"
        status += retried(o)
        table.add_row(o.name, f"[{STATUS_STYLE.get(o.status, '')}]{status}[/]", _num(s.get("steps_done")),
                      _num((s.get("final") or {}).get("test_acc")))
    console.print(table)


def headline_table(head: pd.DataFrame, title: str) -> Fitted:
    """The headline comparison, one row per norm (and model): final accuracy with its interval, then
    every other column of compare.headline in its order, so a new measurement shows up by itself."""
    acc = ("final_test_acc_mean", "final_test_acc_ci_low", "final_test_acc_ci_high")
    cols = [c for c in head.columns if c not in acc[1:]]
    table = Fitted(title=title)
    for col in cols:
        table.add_column(HEADLINE_LABELS.get(col, col.replace("_", " ")),
                         numeric=pd.api.types.is_numeric_dtype(head[col]))
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


def print_studies(console: Console, descriptions: dict[str, str]) -> None:
    table = Table(title="Studies (ics reproduce NAME)")
    table.add_column("name")
    table.add_column("description")
    for name, description in descriptions.items():
        table.add_row(name, description)
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


def verdict_table(verdicts: pd.DataFrame, title: str) -> Fitted:
    """One row per claim: the claim, what was measured (and on how many seeds), the verdict."""
    table = Fitted(title=title)
    cols = ["claim_id", "claim", "measured", *(["n_seeds"] if "n_seeds" in verdicts else []), "expected",
            "verdict"]
    for col in cols:
        table.add_column(col, numeric=col in ("measured", "n_seeds"))
    for r in verdicts.to_dict("records"):
        v = r["verdict"]
        cells = {"claim_id": str(r["claim_id"]), "claim": escape(str(r["claim"])),
                 "measured": _num(r["measured"]), "n_seeds": _num(r.get("n_seeds")),
                 "expected": escape(str(r["expected"])),
                 "verdict": f"[{VERDICT_STYLE.get(v, '')}]{v}[/]"}
        table.add_row(*[cells[c] for c in cols])
    return table


def held_table(held: pd.DataFrame, title: str) -> Fitted:
    """studies.held: per claim, the committed verdict, the fresh-seed verdict and whether it held."""
    n = int(held["held"].sum())
    table = Fitted(title=title, caption=f"{n} of {len(held)} verdicts held")
    for col in ("claim_id", "committed verdict", "fresh-seed verdict", "held"):
        table.add_column(col)
    for r in held.to_dict("records"):
        ref, v = str(r["reference_verdict"]), str(r["verdict"])
        table.add_row(str(r["claim_id"]), f"[{VERDICT_STYLE.get(ref, '')}]{ref}[/]",
                      f"[{VERDICT_STYLE.get(v, '')}]{v}[/]", "[green]yes[/]" if r["held"] else "[red]no[/]")
    return table
