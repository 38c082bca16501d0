"""ics: a lab for what normalization layers do to a network (internal covariate shift and more).

Notebook entry points: `ics_cli.train.train(RunConfig(...))`, `ics_cli.store.runs.find_runs(path)`.
"""

__version__ = "0.1.0"
