"""The `ics` command: parse, validate, call the library, print with Rich. No science here.

Every user-caused error (bad option value, missing dataset, unwritable folder) ends as one line on
stderr and exit code 2; Ctrl-C ends with 130 after the run has recorded what it had.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import typing
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from . import config as config_mod
from . import norms, store
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
    return rv if isinstance(rv, int) else 0
