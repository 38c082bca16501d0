"""ics: a lab for what normalization layers do to a network (internal covariate shift and more).

Notebook entry points: `ics_cli.train.train(RunConfig(...))`, `ics_cli.store.runs.find_runs(path)`,
and `ics_cli.watch(model, out=...)` to record your own model in your own loop (docs/watch.md), or
`ics_cli.IcsCallback(out=...)` in a PyTorch Lightning Trainer.
"""

import importlib

__version__ = "0.1.0"


def __getattr__(name: str):
    # `ics.watch` imports torch: only when asked for, so `import ics_cli` and `ics --help` stay without it.
    # The package is the top of the house (what a user imports), so the lookup is by name rather than an
    # import statement that would read as ics_cli -> user -> train -> ics_cli (`__version__`).
    if name in ("watch", "Watch", "IcsCallback"):
        value = globals()[name] = getattr(importlib.import_module(f"{__name__}.user"), name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
