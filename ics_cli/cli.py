"""The `ics` command: parse, validate, call the library, print with Rich. No science here.

Every user-caused error (bad option value, missing dataset, unwritable folder) ends as one line on
stderr and exit code 2; Ctrl-C ends with 130 after the run has recorded what it had.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import config as config_mod
from . import norms
from .config import RunConfig
from .data import DATASETS
from .errors import IcsError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="A lab for what normalization layers do to a network: train, sweep, compare, reproduce.")
out = Console()
err = Console(stderr=True)

HELP = {
    "dataset": f"Dataset: {', '.join(DATASETS)}.",
    "data_dir": "Folder with torchvision dataset files (mnist, fashion-mnist, cifar10).",
    "download": "Download a torchvision dataset into --data-dir if it is missing.",
    "binarize": "Threshold pixels at 0.5 to {0, 1} instead of standardizing (Ioffe & Szegedy's binary MNIST).",
    "model": f"Network: {', '.join(config_mod.MODELS)}.",
    "depth": "Number of hidden layers (Linear/Conv -> Norm -> Activation).",
    "width": "Units per hidden layer (mlp, default 100) or channels (cnn, default 32).",
    "activation": f"Nonlinearity: {', '.join(config_mod.ACTIVATIONS)}.",
    "init": f"Weight init: {', '.join(config_mod.INITS)} (xavier = Glorot uniform; gaussian uses --init-std).",
    "init_std": "Standard deviation of the gaussian init.",
    "norm": f"Normalization: {', '.join(norms.REGISTRY)} (see `ics norms`).",
    "groups": "Groups for --norm group (must divide the width).",
    "eps": "Epsilon added to the variance inside every norm.",
    "bn_momentum": "Running-statistics momentum of batch norm (torch convention).",
    "optimizer": f"Optimizer: {', '.join(config_mod.OPTIMIZERS)}.",
    "lr": "Learning rate (> 0).",
    "momentum": "SGD momentum in [0, 1).",
    "weight_decay": "L2 weight decay.",
    "batch_size": "Mini-batch size.",
    "steps": "Number of updates (default 2000 unless --epochs is given).",
    "epochs": "Run length in passes over the training set (instead of --steps).",
    "log_every": "Record statistics every N steps (and at step 0 and the last step).",
    "probe_size": "Training examples in the fixed probe batch the statistics are measured on.",
    "track_units": "Units per layer whose p15/p50/p85 percentiles are recorded.",
    "eval_batchstats": "Also measure test accuracy with batch statistics (batch-norm variants).",
    "diverge_factor": "A loss above this many times the first loss ends the run as diverged.",
    "diverge_smooth": "A smoothed loss (EMA, alpha 0.1) above this many times the first loss ends the run as diverged.",
    "seed": "Random seed (init, batch order and probe choice).",
    "device": f"Device: {', '.join(config_mod.DEVICES)}.",
    "out": "Folder that receives one folder per run.",
}


def with_run_options(*, exclude: tuple[str, ...] = ()):
    """Give a command one option per RunConfig field: defaults and types come from RunConfig."""
    hints = typing.get_type_hints(RunConfig)

    def decorate(f):
        sig = inspect.signature(f)
        params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        for field in dataclasses.fields(RunConfig):
            if field.name in exclude:
                continue
            params.append(inspect.Parameter(
                field.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[field.name],
                default=typer.Option(field.default, help=HELP[field.name], rich_help_panel="Run options")))
            f.__annotations__[field.name] = hints[field.name]
        f.__signature__ = sig.replace(parameters=params)
        return f

    return decorate


# --------------------------------------------------------------------------- train


@app.command()
@with_run_options()
def train(
    json_out: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or tables."),
    force: bool = typer.Option(False, "--force", help="Rerun even if an identical finished run exists."),
    **options,
):
    """Train one network and record how its layers' statistics and gradients move."""
    from . import report
    from .train import prepare, train as run_train

    cfg = RunConfig(**options)
    prepare(cfg)   # every bad input fails here, before a progress bar or a folder appears
    show = not (quiet or json_out)
    with report.run_progress(cfg, enabled=show) as (on_log, on_step):
        result = run_train(cfg, force=force, on_log=on_log, on_step=on_step)
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
    from . import report

    report.print_norms(out)


# --------------------------------------------------------------------------- sweep, compare, plot


@app.command()
@with_run_options(exclude=("norm", "lr", "seed", "batch_size"))
def sweep(
    ctx: typer.Context,
    norms_: Optional[str] = typer.Option(None, "--norms", help="Comma list of norms (default: none,batch)."),
    lrs: Optional[str] = typer.Option(None, "--lrs", help="Comma list of learning rates (default: 0.5)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma list of seeds (default: 0)."),
    batch_sizes: Optional[str] = typer.Option(None, "--batch-sizes", help="Comma list of batch sizes (default: 60)."),
    grid_file: Optional[Path] = typer.Option(None, "--config", help="TOML file with [grid] and [common] tables."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Parallel processes (default: one per CPU core, one thread each)."),
    json_out: bool = typer.Option(False, "--json", help="Print the outcomes as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table."),
    **options,
):
    """Run a grid of configurations (norms x lrs x batch sizes x seeds); rerun to resume."""
    from . import report
    from . import sweep as sweep_mod

    given = {k: v for k, v in options.items()
             if ctx.get_parameter_source(k).name not in ("DEFAULT", "DEFAULT_MAP")}
    if jobs is not None and jobs < 1:
        raise IcsError(f"--jobs must be an integer >= 1, got {jobs}")
    toml = sweep_mod.load_toml(grid_file) if grid_file else None
    grid = {"norms": norms_, "lrs": lrs, "seeds": seeds, "batch_sizes": batch_sizes}
    plan = sweep_mod.make_sweep(given, grid, toml)
    outcomes = report.run_sweep(plan, Path(plan.common.out), jobs=jobs, enabled=not (quiet or json_out),
                                console=out)
    if json_out:
        out.print_json(json.dumps([dataclasses.asdict(o) for o in outcomes]))
    elif not quiet:
        report.print_outcomes(out, outcomes, Path(plan.common.out))
    if any(o.status == "failed" for o in outcomes):
        return 1
    return 0


def _existing(paths: list[Path]) -> list[Path]:
    for p in paths:
        if not p.exists():
            raise IcsError(f"no such folder: '{p}'; give sweep folders or run folders")
    return paths


@app.command()
def compare(
    paths: list[Path] = typer.Argument(..., help="Sweep folders or run folders."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Where tables and figures go (default: FIRST_PATH/compare)."),
    target: Optional[float] = typer.Option(None, "--target", help="Accuracy for steps-to-target (default: 90% of the best final accuracy)."),
    tolerance: float = typer.Option(0.9, "--tolerance", help="A run is good when its final accuracy >= tolerance x its norm's best."),
    fmt: str = typer.Option("png", "--format", help="Figure format: png, svg, pdf."),
    json_out: bool = typer.Option(False, "--json", help="Print the headline table as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
):
    """Tables (CSV) and figures comparing runs across norms, aggregated over seeds."""
    from . import compare as compare_mod
    from . import plots, report

    _check_format(fmt)
    if not 0 < tolerance <= 1:
        raise IcsError(f"--tolerance must be in (0, 1], got {tolerance}")
    if target is not None and not 0 < target <= 1:
        raise IcsError(f"--target must be an accuracy in (0, 1], got {target}")
    paths = _existing(paths)
    runs = compare_mod.runs_under(*paths)
    dest = out_dir or paths[0] / "compare"
    tables = compare_mod.build(runs, target=target, tolerance=tolerance)
    written = compare_mod.write(tables, dest) + plots.draw_all(tables, dest, fmt=fmt)
    head = compare_mod.headline(tables)
    if json_out:
        out.print_json(head.to_json(orient="records"))
    elif not quiet:
        out.print(report.headline_table(head, f"Headline comparison ({len(runs)} runs)"))
        out.print(f"{len(written)} files written to {dest}")


@app.command()
def plot(
    path: Path = typer.Argument(..., help="A compare folder, or a folder holding one (compare/)."),
    fmt: str = typer.Option("png", "--format", help="Figure format: png, svg, pdf."),
):
    """Redraw the figures from existing comparison CSVs, without recomputing anything."""
    from . import compare as compare_mod
    from . import plots

    _check_format(fmt)
    [path] = _existing([path])
    folder = path / "compare" if (path / "compare").is_dir() else path
    if not (folder / "summary.csv").exists():
        raise IcsError(f"no comparison tables in '{folder}'; run `ics compare {path}` first")
    files = plots.draw_all(compare_mod.load(folder), folder, fmt=fmt)
    out.print(f"{len(files)} figures written to {folder}")


@app.command()
def reproduce(
    name: Optional[str] = typer.Argument(None, help="A study name (see --list), or 'all'."),
    list_: bool = typer.Option(False, "--list", help="List the studies with a one-line description."),
    quick: bool = typer.Option(False, "--quick", help="A scaled-down protocol (about a minute); verdicts may be INCONCLUSIVE."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Study folder (default: results/NAME/; with 'all', the parent of the study folders)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Parallel processes for the study's runs (default: one per CPU core)."),
):
    """Run a study: the runs a paper's protocol needs, then each claim measured and given a verdict."""
    from . import report, studies

    if list_ or name is None:
        report.print_studies(out, studies.REGISTRY)
        return 0
    chosen = studies.select(name)
    if jobs is not None and jobs < 1:
        raise IcsError(f"--jobs must be an integer >= 1, got {jobs}")
    for study in chosen:
        folder = (out_dir / study if name == "all" else out_dir) if out_dir else None
        result = report.run_study(study, folder, quick=quick, jobs=jobs, console=out)
        out.print(report.verdict_table(result.verdicts, f"{study}: verdicts"))
        out.print(f"{study} took {result.seconds:.0f} s; report: {result.out / 'README.md'}")
    return 0


@app.command()
def summarize(
    root: Path = typer.Argument(..., help="The results folder whose README.md to write."),
    compare_dir: Path = typer.Option(..., "--compare", help="The comparison folder (tables and figures) inside ROOT."),
    sweeps: list[Path] = typer.Option([], "--sweep", help="Sweep folders behind the comparison (their sweep.json)."),
):
    """Write ROOT/README.md from the comparison tables and the studies' verdicts (make reproduce)."""
    from . import readme

    _existing([root, compare_dir])
    out.print(f"wrote {readme.results_readme(root, compare_dir, sweeps)}")


def _check_format(fmt: str) -> None:
    if fmt not in ("png", "svg", "pdf"):
        raise IcsError(f"--format '{fmt}' is not one of: png, svg, pdf")


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """The console script: returns the exit code (the `ics` wrapper passes it to sys.exit)."""
    from typer._click.exceptions import ClickException

    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="ics", standalone_mode=False)
    except ClickException as e:
        err.print(f"ics: error: {e.format_message()}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except IcsError as e:
        err.print(f"ics: error: {e}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except (KeyboardInterrupt, typer.Abort):
        err.print("ics: interrupted; what was recorded is kept. Rerun the same command to resume.",
                  markup=False, highlight=False)
        return 130
    if rv == 130:   # Typer turns Ctrl-C into exit code 130 itself
        err.print("ics: interrupted; what was recorded is kept. Rerun the same command to resume.",
                  markup=False, highlight=False)
    return rv if isinstance(rv, int) else 0
