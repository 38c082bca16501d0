"""The `ics` command: parse, validate, call the library, print with Rich. No science here.

Every user-caused error (bad option value, missing dataset, unwritable folder) ends as one line on
stderr and exit code 2; Ctrl-C ends with 130 after the run has recorded what it had. Tables and
--json go to stdout; progress bars and status lines to stderr (report.py).
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import os
import typing
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import __version__
from . import config as config_mod
from .net import norms
from .config import RunConfig
from .net.data import DATASETS
from .errors import IcsError
from .store.runs import refuse_over_runs
from .store.schema import TABLES
from .report.options import BACKEND_HELP, HELP, PANEL_OF, epilog, listed

app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False)
out = Console()                  # data: tables and JSON
err = Console(stderr=True)       # errors and status lines (progress bars go to stderr in report.py)
INTERRUPTED = "ics: interrupted; what was recorded is kept. Rerun the same command to resume."
PIPED_WIDTH = 10_000             # stdout width when piped: whole cells, no wrapping at 80 columns


def choices(name: str, values) -> type[enum.Enum]:
    """An Enum of `values`: anything else is refused and the shell completes them; the library gets .value."""
    return enum.Enum(name, {v: v for v in values}, type=str)


Dataset = choices("Dataset", DATASETS)
Model = choices("Model", config_mod.MODELS)
Activation = choices("Activation", config_mod.ACTIVATIONS)
Init = choices("Init", config_mod.INITS)
Norm = choices("Norm", norms.REGISTRY)
Optimizer = choices("Optimizer", config_mod.OPTIMIZERS)
Device = choices("Device", config_mod.DEVICES)
Probe = choices("Probe", config_mod.PROBES)
Noise = choices("Noise", config_mod.NOISES)
BnEval = choices("BnEval", config_mod.BN_EVALS)
BatchSampler = choices("BatchSampler", config_mod.BATCH_SAMPLERS)
LrScaling = choices("LrScaling", config_mod.LR_SCALINGS)
LrSchedule = choices("LrSchedule", config_mod.LR_SCHEDULES)
Split = choices("Split", config_mod.SPLITS)
SharpnessMethod = choices("SharpnessMethod", config_mod.SHARPNESS_METHODS)
RegressLoss = choices("RegressLoss", config_mod.REGRESS_LOSSES)
Format = choices("Format", ("png", "svg", "pdf"))
Backend = choices("Backend", ("local", "ray"))      # sweep.BACKENDS
CHOICES = {"dataset": Dataset, "model": Model, "activation": Activation, "init": Init, "norm": Norm,
           "optimizer": Optimizer, "device": Device, "probe": Probe, "noise": Noise, "bn_eval": BnEval,
           "batch_sampler": BatchSampler, "lr_scaling": LrScaling, "lr_schedule": LrSchedule, "split": Split,
           "sharpness_method": SharpnessMethod, "regress_loss": RegressLoss}


def flag(default: bool, *decls: str, **kwargs):
    """A boolean option shown as a bare flag (typer would print a `<bool>` value column after it)."""
    return typer.Option(default, *decls, metavar="", **kwargs)


def plain(options: dict) -> dict:
    """Option values as the library takes them: Enum members become their string values."""
    return {k: v.value if isinstance(v, enum.Enum) else v for k, v in options.items()}


def backend_options(f):
    """Give a command --backend, --ray-address and --ray-retries (sweep, reproduce)."""
    sig = inspect.signature(f)
    panel = {"rich_help_panel": "Where runs go"}
    added = [("backend", Backend, typer.Option(Backend.local, "--backend", metavar="<name>",
                                               help=BACKEND_HELP["backend"], **panel)),
             ("ray_address", Optional[str], typer.Option(None, "--ray-address", metavar="ADDR",
                                                         help=BACKEND_HELP["ray_address"], **panel)),
             ("ray_retries", int, typer.Option(3, "--ray-retries", metavar="N",
                                               help=BACKEND_HELP["ray_retries"], **panel))]
    params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    for name, annotation, option in added:
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                        default=option))
        f.__annotations__[name] = annotation
    f.__signature__ = sig.replace(parameters=params)
    return f


def run_option(name: str, annotation, default):
    """The option for RunConfig field `name`: an Enum for a choice, a bare flag for a bool."""
    opt = "--" + name.replace("_", "-")
    common = {"help": HELP[name], "rich_help_panel": PANEL_OF[name]}
    if name in CHOICES:      # a few values show as `<a|b>`; a longer list is in the help text only
        value = None if default is None else CHOICES[name](default)     # None: the model's default
        short = len("|".join(c.value for c in CHOICES[name])) <= 24
        return Optional[CHOICES[name]], typer.Option(value, opt, **({} if short else {"metavar": "<name>"}), **common)
    if annotation is bool:   # off by default: `--download`; on by default: `--eval-batchstats/--no-...`
        return bool, flag(default, f"{opt}/--no-{opt[2:]}" if default else opt, **common)
    return annotation, typer.Option(default, opt, **common)


def with_run_options(*, exclude: tuple[str, ...] = ()):
    """Give a command one option per RunConfig field: defaults and types come from RunConfig."""
    hints = typing.get_type_hints(RunConfig)

    def decorate(f):
        sig = inspect.signature(f)
        params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        for field in dataclasses.fields(RunConfig):
            if field.name in exclude:
                continue
            annotation, option = run_option(field.name, hints[field.name], field.default)
            params.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY,
                                            annotation=annotation, default=option))
            f.__annotations__[field.name] = annotation
        f.__signature__ = sig.replace(parameters=params)
        return f

    return decorate


# --------------------------------------------------------------------------- the app itself


def _print_version(value: bool) -> None:
    if value:
        out.print(f"ics {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def ics(version: bool = flag(False, "--version", callback=_print_version, is_eager=True,
                             help="Print the version of ics and exit.")):
    """A lab for what normalization layers do to a network: train, sweep, compare, reproduce."""


# --------------------------------------------------------------------------- train


@app.command(epilog=epilog("train"))
@with_run_options()
def train(
    json_out: bool = flag(False, "--json", help="Print the run summary as JSON on stdout."),
    quiet: bool = flag(False, "--quiet", "-q", help="No progress bar or tables."),
    force: bool = flag(False, "--force", help="Rerun even if an identical finished run exists."),
    **options,
):
    """Train one network and record how its layers' statistics and gradients move."""
    from .report import terminal as report

    cfg = RunConfig(**plain(options))
    config_mod.validate(cfg)     # an option refused before torch is imported
    from .train import prepare, train as run_train

    resolved = prepare(cfg)[0]   # every bad input fails here, before a progress bar or a folder appears
    show = not (quiet or json_out)
    with report.run_progress(resolved, enabled=show) as (on_log, on_step, on_resume):
        result = run_train(cfg, force=force, on_log=on_log, on_step=on_step, on_resume=None if quiet else on_resume)
    if json_out:
        out.print_json(json.dumps({"path": str(result.path), **result.summary}))
        return
    if show:
        report.print_run(out, result)
    elif not quiet:
        out.print(str(result.path))


@app.command("norms")
def norms_cmd():
    """The normalization variants and what each one normalizes over."""
    from .report import terminal as report

    report.print_norms(out)


# --------------------------------------------------------------------------- sweep, compare, plot


@app.command(epilog=epilog("sweep"))
@backend_options
@with_run_options(exclude=("norm", "lr", "seed", "batch_size"))
def sweep(
    ctx: typer.Context,
    norms_: Optional[str] = typer.Option(None, "--norms", help=f"Comma list of norms from {listed(Norm)} (default: none,batch)."),
    lrs: Optional[str] = typer.Option(None, "--lrs", help="Comma list of learning rates (default: 0.5)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma list of seeds (default: 0)."),
    batch_sizes: Optional[str] = typer.Option(None, "--batch-sizes", help="Comma list of batch sizes (default: 60)."),
    grid_file: Optional[Path] = typer.Option(None, "--config", help=r"TOML file with \[grid] and \[common] tables."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Parallel processes (default: one per CPU core, one thread each)."),
    json_out: bool = flag(False, "--json", help="Print the outcomes as JSON on stdout."),
    quiet: bool = flag(False, "--quiet", "-q", help="No progress bar or table."),
    **options,
):
    """Run a grid of configurations (norms x lrs x batch sizes x seeds); rerun to resume.

    The runs go to local processes (--backend local, the default) or to Ray (--backend ray), on this
    machine or on a cluster (--ray-address auto); the run folders under --out are the same.
    """
    from .report import terminal as report
    from .sweep import run as sweep_mod

    backend, ray_address, ray_retries = (options.pop(k) for k in ("backend", "ray_address", "ray_retries"))
    given = {k: v for k, v in plain(options).items()
             if ctx.get_parameter_source(k).name not in ("DEFAULT", "DEFAULT_MAP")}
    if jobs is not None and jobs < 1:
        raise IcsError(f"--jobs must be an integer >= 1, got {jobs}")
    sweep_mod.check_backend(backend.value, ray_address, ray_retries, jobs)
    toml = sweep_mod.load_toml(grid_file) if grid_file else None
    grid = {"norms": norms_, "lrs": lrs, "seeds": seeds, "batch_sizes": batch_sizes}
    plan = sweep_mod.make_sweep(given, grid, toml)
    plan.configs()     # every bad value fails here, before a progress bar or a folder appears
    with sweep_mod.backend(backend.value, ray_address, ray_retries):
        outcomes = report.run_sweep(plan, Path(plan.common.out), jobs=jobs, enabled=not (quiet or json_out))
    if json_out:
        out.print_json(json.dumps([dataclasses.asdict(o) for o in outcomes]))
    elif not quiet:
        report.print_outcomes(out, outcomes, Path(plan.common.out))
    if any(o.status == "failed" for o in outcomes):
        return 1
    return 0


def _existing(paths: list[Path], what: str = "give sweep folders or run folders") -> list[Path]:
    for p in paths:
        if not p.exists():
            raise IcsError(f"no such folder: '{p}'; {what}")
    return paths


def _skipping(path: Path, reason: str) -> None:
    """The one warning line for a damaged run folder that a comparison leaves out."""
    _note(" ".join(f"ics: warning: skipping {path}: {reason}".split()))


@app.command(epilog=epilog("compare"))
def compare(
    paths: list[Path] = typer.Argument(..., help="Sweep folders or run folders."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Where tables and figures go (default: FIRST_PATH/compare)."),
    target: Optional[float] = typer.Option(None, "--target", help="Accuracy for steps-to-target (default: 90% of the best); for regression runs, a loss drop 1 - loss/initial."),
    tolerance: float = typer.Option(0.9, "--tolerance", help="An lr is good when its final accuracy (regression: loss drop) >= tolerance x its norm's best."),
    fmt: Format = typer.Option(Format.png, "--format", metavar="<format>", help=f"Figure format: {listed(Format)}."),
    json_out: bool = flag(False, "--json", help="Print the headline table as JSON on stdout."),
    quiet: bool = flag(False, "--quiet", "-q", help="Print nothing but errors."),
):
    """Tables (CSV) and figures comparing runs across norms, aggregated over seeds."""
    from .analyse import compare as compare_mod
    from .figures import draw
    from .store.runs import runs_under
    from .report import terminal as report

    if not 0 < tolerance <= 1:
        raise IcsError(f"--tolerance must be in (0, 1], got {tolerance}")
    if target is not None and not 0 < target <= 1:
        raise IcsError(f"--target must be an accuracy in (0, 1], got {target}")
    paths = _existing(paths)
    dest = out_dir or paths[0] / "compare"
    config_mod.check_writable(dest, "--out", beside=True)     # before any work
    refuse_over_runs(dest, "--out")
    runs = runs_under(*paths, on_damaged=_skipping)
    tables = compare_mod.build(runs, target=target, tolerance=tolerance)
    # Tables and figures (drawn from the CSVs, as `ics plot` does) staged, then moved into dest.
    written = draw.save(tables, dest, fmt=fmt.value)
    head = compare_mod.headline(tables)
    if json_out:
        out.print_json(head.to_json(orient="records"))
    elif not quiet:
        out.print(report.headline_table(head, f"Headline comparison ({len(runs)} runs)"))
        out.print(f"{len(written)} files written to {dest}")


@app.command()
def meta(
    paths: list[Path] = typer.Argument(..., metavar="RUNS", help="Sweep folders or run folders."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Where predictors.csv, verdicts.csv and the forest plots go (default: FIRST_PATH/meta)."),
    window: float = typer.Option(0.1, "--window", help="The early window the measures are taken in, a fraction of each run's steps in (0, 1]; 0.02 and 0.2 are reported beside it."),
    fmt: Format = typer.Option(Format.png, "--format", metavar="<format>", help=f"Figure format: {listed(Format)}."),
):
    """Which early measure of internal covariate shift predicts how well a norm trains: rank statistics
    across norms and lrs, CMI given lr, sign errors, pre-registered verdicts (docs/metrics.md)."""
    from .analyse import predictors
    from .figures import forest
    from .store.runs import runs_under
    from .report import meta as report

    if not 0 < window <= 1:
        raise IcsError(f"--window must be a fraction of the run in (0, 1], got {window}")
    paths = _existing(paths)
    dest = out_dir or paths[0] / "meta"
    config_mod.check_writable(dest, "--out", beside=True)
    refuse_over_runs(dest, "--out")
    runs = predictors.check_grid(runs_under(*paths, on_damaged=_skipping))     # refuses before any work
    with err.status(f"ics meta: {len(runs)} runs: bootstraps and permutation nulls"):
        result = predictors.build(runs, window=window)
    written = forest.save(result, dest, fmt=fmt.value)
    out.print(report.verdict_table(result.verdicts))
    out.print(report.controls_line(result))
    out.print(f"{len(written)} files written to {dest}")


@app.command(epilog=epilog("plot"))
def plot(
    path: Path = typer.Argument(..., help="A compare folder, a folder holding one (compare/), or a study folder."),
    fmt: Format = typer.Option(Format.png, "--format", metavar="<format>", help=f"Figure format: {listed(Format)}."),
):
    """Redraw the figures from saved CSVs, without training: a study folder gets its own figures too."""
    from .analyse import outputs
    from .figures import draw
    from .store import staging
    from . import studies

    [path] = _existing([path], "give a compare folder, a folder holding one, or a study folder")
    folder = path / "compare" if (path / "compare").is_dir() else path
    if (path / "predictor_runs.csv").exists() and (path / "study.json").exists():   # the predictors study
        config_mod.check_writable(path, "PATH", beside=True)
        own = studies.redraw(path, fmt=fmt.value)
        out.print(f"{len(own)} figures and README.md written to {path}")
        return
    if not (folder / "summary.csv").exists():
        stopped = (" (an `ics compare` into it was stopped before it finished)"
                   if any(staging.is_incomplete(staging.staging_folder(f)) for f in (path / "compare", folder))
                   else "")
        raise IcsError(f"no comparison tables in '{folder}'{stopped}; run `ics compare {path}` first")
    config_mod.check_writable(folder, "PATH", beside=True)
    files = draw.draw_all(outputs.load(folder), folder, fmt=fmt.value)
    out.print(f"{len(files)} figures written to {folder}")
    if (path / "verdicts.csv").exists():        # a study folder: its own figures, from its own CSVs
        own = studies.redraw(path, fmt=fmt.value)
        out.print(f"{len(own)} study figures written to {path}")


@app.command(epilog=epilog("reproduce"))
@backend_options
def reproduce(
    name: Optional[str] = typer.Argument(None, help="A study name (see --list), 'studies' (every claim study) or 'all'."),
    list_: bool = flag(False, "--list", help="List the studies with a one-line description."),
    quick: bool = flag(False, "--quick", help="A scaled-down protocol (about a minute), into runs/quick/NAME; "
                                              "verdicts may be INCONCLUSIVE."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma list of fresh seeds (e.g. 10,11,12) instead of "
                                        "the study's own, into runs/replicate/NAME-s10-11-12; then a table says "
                                        "which committed verdicts held."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Study folder (default: results/NAME, or under runs/ "
                                           "with --quick or --seeds; with 'all' or 'studies', the parent of the study folders)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Parallel processes for the study's runs (default: one per CPU core)."),
    **options,
):
    """Run a study: the runs a paper's protocol needs, then each claim measured and given a verdict."""
    from .report import terminal as report
    from . import studies
    from .sweep import run as sweep_mod

    backend, ray_address, ray_retries = options["backend"].value, options["ray_address"], options["ray_retries"]

    if list_ or name is None:
        report.print_studies(out, studies.descriptions())
        return 0
    seed_list = sweep_mod.parse_seeds(seeds) if seeds is not None else None
    chosen = studies.select(name, seed_list)
    if jobs is not None and jobs < 1:
        raise IcsError(f"--jobs must be an integer >= 1, got {jobs}")
    sweep_mod.check_backend(backend, ray_address, ray_retries, jobs)
    for study in chosen:
        folder = (out_dir / study if name in ("all", "studies") else out_dir) if out_dir else None
        with sweep_mod.backend(backend, ray_address, ray_retries):     # the study's sweep.run calls
            result = report.run_study(study, folder, quick=quick, seeds=seed_list, jobs=jobs)
        if "claim_id" in result.verdicts:
            out.print(report.verdict_table(result.verdicts, f"{study}: verdicts"))
        else:                                  # the predictors study: one verdict per measure (ics meta's)
            from .report import meta as meta_report
            out.print(meta_report.verdict_table(result.verdicts))
        out.print(f"{study} took {result.seconds:.0f} s; report: {result.out / 'README.md'}")
        if seed_list is not None and "claim_id" in result.verdicts:
            reference = Path("results") / study / "verdicts.csv"
            if reference.exists():
                held = studies.held(result, reference)
                out.print(report.held_table(held, f"{study}: which verdicts held on fresh seeds "
                                                  f"{','.join(map(str, seed_list))}"))
            else:
                _note(f"{study}: no committed result to compare with ({reference} does not exist)")
    return 0


@app.command()
def summarize(
    root: Path = typer.Argument(..., help="The results folder whose README.md to write."),
    compare_dir: Path = typer.Option(..., "--compare", help="The comparison folder (tables and figures) inside ROOT."),
    sweeps: list[Path] = typer.Option([], "--sweep", help="Sweep folders behind the comparison (their sweep.json)."),
    replicated: list[Path] = typer.Option([], "--replicated", help="Replication folders (`ics reproduce NAME --seeds …`): "
                                          "ROOT/replication.csv and a README section say which verdicts held."),
):
    """Write ROOT/README.md from the comparison tables and the studies' verdicts (make reproduce)."""
    from .report import readme

    _existing([root], "give the results folder whose README.md to write")
    _existing([compare_dir], "give the comparison folder (`ics compare --out`) inside ROOT")
    _existing(sweeps, "give the sweep folders behind the comparison (each holds a sweep.json)")
    _existing(replicated, "give replication folders written by `ics reproduce NAME --seeds …`")
    out.print(f"wrote {readme.results_readme(root, compare_dir, sweeps, replicated)}")


FigureFormat = choices("FigureFormat", ("svg", "png"))     # page.FORMATS


@app.command("report", epilog=epilog("report"))
def report_cmd(
    paths: list[Path] = typer.Argument(..., help="Comparison, sweep, study or results folders."),
    dest: Optional[Path] = typer.Option(None, "--out", "-o", help="The HTML file to write (default: FIRST_PATH/report.html)."),
    title: Optional[str] = typer.Option(None, "--title", help="The page's title (default: ics report: PATHS)."),
    fmt: FigureFormat = typer.Option(FigureFormat.svg, "--format", metavar="<format>",
                                     help=f"Figures: {listed(FigureFormat)}; svg falls back to png for a figure too dense for SVG."),
    max_rows: int = typer.Option(100, "--max-rows", help="Rows shown of each table (the CSV has them all); figure data shows 12."),
    all_figures: bool = flag(False, "--all-figures", help="In a report of a results folder, also draw each study's compare/ figures (a much larger page)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Processes drawing figures (default: one per CPU core)."),
):
    """A self-contained HTML report of sweeps, comparisons, studies or results/.

    One file, no network, figures inside: findings first, then each table (sortable) and figure with
    a caption, each study's verdicts with every claim linked to its evidence, its protocol, and the
    provenance. Built from the CSVs only; the same inputs give the same bytes but for the line
    saying when it was made.
    """
    from .store import lock
    from .report import page

    if max_rows < 1:
        raise IcsError(f"--max-rows must be an integer >= 1, got {max_rows}")
    if jobs is not None and jobs < 1:
        raise IcsError(f"--jobs must be an integer >= 1, got {jobs}")
    paths = _existing(paths, "give comparison, sweep, study or results folders")
    target = dest if dest is not None else paths[0] / "report.html"
    folder = config_mod.check_output_file(target, "an HTML")
    refuse_over_runs(target, "--out", file=True)
    if os.path.lexists(target) and target.suffix.lower() not in (".html", ".htm"):
        raise IcsError(f"--out '{target}' exists and is not an HTML page; ics report replaces only its own pages")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise IcsError(f"--out '{target}' is not writable ('{folder}' is read-only); give a file you can write")
    # A full disk is one line naming the file (and no half-written page); a spinner on stderr meanwhile.
    with lock.writing(target), err.status(f"ics report: redrawing the figures and tables of {len(paths)} "
                                          f"folder{'s' if len(paths) > 1 else ''}"):
        written = page.write(paths, target, title=title, all_figures=all_figures,
                             opts=page.Options(fmt=fmt.value, max_rows=max_rows, jobs=jobs))
    out.print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB)")


Table = choices("Table", tuple(TABLES))        # a run folder's tables: the core ones, then each quantity's


class ExportGroup(typer.core.TyperGroup):
    """`ics export`: a first word that names no command is a run folder for `table`, so that
    `ics export RUN --table units` works as it did before `export` had commands."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names \
                and not ctx.resilient_parsing:       # completion lists the commands
            args = ["table", *args]
        return super().parse_args(ctx, args)


export_app = typer.Typer(cls=ExportGroup, no_args_is_help=True, add_completion=False,
                         short_help="A table of a run as CSV, or runs as TensorBoard event files.",
                         help="A table of a run as CSV (`ics export RUN --table units`: the command "
                              "`table`, the default), or runs as TensorBoard event files (`ics export "
                              "tensorboard RUNS --logdir DIR`).")
app.add_typer(export_app, name="export")


@export_app.command("table")
def export(
    run_dir: Path = typer.Argument(..., help="A run folder."),
    table: Table = typer.Option(Table.units, "--table", metavar="<table>", help=f"Which table: {listed(Table)}."),
    dest: Optional[Path] = typer.Option(None, "--out", help="File to write: CSV, or Parquet when it ends in .parquet "
                                        "(default: CSV on stdout)."),
):
    """One table of a run as CSV (units.parquet included): to a file, or to stdout. The default command:
    `ics export RUN` is `ics export table RUN`."""
    from .store import lock, runs as store

    [run_dir] = _existing([run_dir], "give a run folder")
    if dest is None:
        store.export_table(run_dir, table.value)
        return
    config_mod.check_output_file(dest, "a Parquet" if dest.suffix == ".parquet" else "a CSV")
    refuse_over_runs(dest, "--out", file=True)
    with lock.writing(dest):        # a full disk or a read-only file: one line naming it
        store.export_table(run_dir, table.value, dest)


@export_app.command("tensorboard")
def export_tensorboard(
    paths: list[Path] = typer.Argument(..., metavar="RUNS", help="Run folders or sweep folders."),
    logdir: Path = typer.Option(..., "--logdir", metavar="DIR", help="Folder that receives one folder of event files per run "
                                "(DIR/MODEL-NORM-lrLR-sSEED/, with the run's hash where two runs would share a name; "
                                "replaced when exported again); then `tensorboard --logdir DIR`."),
):
    """Runs as TensorBoard event files, from their tables: the tags `ics train --tensorboard` writes,
    without its sampled activations (needs the tensorboard package)."""
    from .store import lock, tensorboard

    tensorboard.require("ics export tensorboard")
    paths = _existing(paths)
    config_mod.check_writable(logdir, "--logdir", beside=True)
    refuse_over_runs(logdir, "--logdir")
    with lock.writing(logdir):
        written = tensorboard.export(paths, logdir, on_damaged=_skipping)
    out.print(f"{len(written)} runs written to {logdir}")


def _note(message: str) -> None:
    """One status line on stderr, printed as is."""
    err.print(message, markup=False, highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """The console script: returns the exit code (the `ics` wrapper passes it to sys.exit)."""
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    # Piped or redirected, tables keep whole cells instead of being cut to a terminal's 80 columns.
    out.width = None if out.is_terminal else PIPED_WIDTH
    command = typer.main.get_command(app)
    with warnings.catch_warnings():     # a warning (a damaged run folder skipped) is one line, as errors are
        warnings.showwarning = lambda message, *_: _note(f"ics: warning: {' '.join(str(message).split())}")
        try:
            rv = command.main(args=argv, prog_name="ics", standalone_mode=False)
        except NoArgsIsHelpError as e:   # bare `ics`: the help is the answer (typer has printed it already)
            if e.format_message():
                out.print(e.format_message(), markup=False, highlight=False)
            return 0
        except (ClickException, IcsError) as e:
            message = e.format_message() if isinstance(e, ClickException) else str(e)
            _note(f"ics: error: {' '.join(message.split())}")
            return 2
        except typer.Abort as e:
            if isinstance(e.__cause__, EOFError):   # click turns an EOFError (a truncated file) into Abort
                _note(f"ics: error: a file ended unexpectedly ({e.__cause__ or 'EOFError'}); it is truncated")
                return 2
            _note(INTERRUPTED)
            return 130
        except KeyboardInterrupt:
            _note(INTERRUPTED)
            return 130
    if rv == 130:   # Typer turns Ctrl-C into exit code 130 itself
        _note(INTERRUPTED)
    return rv if isinstance(rv, int) else 0
