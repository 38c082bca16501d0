"""Run identity across versions: options added later, left at their default, keep every run's hash.

A run folder is found again by its config hash (resume, skip, `make reproduce` reusing finished
runs). config.HASHED_UNLESS lists the fields added after runs were first recorded, each with the value
that computes what runs did before the field existed; these tests hold the committed results to it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from ics_cli import config
from ics_cli.sweep import run as sweep
from ics_cli.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("grid", ["default-mlp", "default-cnn"])
def test_committed_default_runs_keep_their_hash(grid):
    """results/default/runs.csv was recorded before the batch options existed: the grid in configs/
    still names exactly those runs."""
    toml = sweep.load_toml(ROOT / "configs" / f"{grid}.toml")
    hashes = {cfg.hash() for cfg in sweep.make_sweep({}, {}, toml).configs()}
    recorded = set(pd.read_csv(ROOT / "results" / "default" / "runs.csv", dtype=str)["hash"])
    assert hashes and hashes <= recorded


def test_every_later_field_exists_with_its_default():
    """Resolved (a dataset's default split named, inert options at their old value), the defaults compute
    what runs did before each field existed."""
    defaults = RunConfig().resolved()
    for name, value in config.HASHED_UNLESS.items():
        assert getattr(defaults, name) == value, name


def test_a_new_default_reads_old_records_with_their_old_value():
    """Sharpness is Lanczos now; a config.json written before the field existed measured by power iteration."""
    assert RunConfig(sharpness_every=10).resolved().sharpness_method == "lanczos"
    old = {k: v for k, v in RunConfig(sharpness_every=10, steps=100).to_dict().items() if k != "sharpness_method"}
    assert RunConfig.from_record(old).sharpness_method == "power"
    assert RunConfig.from_dict(old).sharpness_method == "lanczos"
    assert RunConfig.from_record(old).hash() != RunConfig.from_dict(old).hash()


# One value other than the default for each later field, valid together with --norm batch.
OTHER = {"ghost_size": 2, "renorm_rmax": 2.0, "renorm_dmax": 1.0, "renorm_warmup": 10, "renorm_rmax_at": 50,
         "renorm_dmax_at": 30, "bn_eval": "precise", "precise_samples": 600, "freeze_bn_at": 0.8,
         "micro_batch": 20, "batch_sampler": "paired", "lr_scaling": "linear", "lr_base_batch": 32,
         "lr_schedule": "cosine", "lr_warmup": 0.1, "lr_milestones": "0.3,0.6", "lr_decay": 0.5,
         "split": "heldout", "second_view_until": 0.1, "sharpness_method": "power",
         "regress_loss": "sum"}


# A later field that acts only under another option (config.INERT_UNLESS) is hashed where it acts.
WHERE = {"ghost_size": {"norm": "ghost-batch"}, "precise_samples": {"bn_eval": "precise"},
         "lr_base_batch": {"lr_scaling": "linear"}, "lr_milestones": {"lr_schedule": "step"},
         "lr_decay": {"lr_schedule": "step"}, "second_view_until": {"ics_every": 10},
         "sharpness_method": {"sharpness_every": 10}, "split": {"dataset": "mnist"},
         "regress_loss": {"dataset": "gaussian-linear", "model": "dln", "activation": "identity"},
         **{f: {"norm": "batch-renorm"} for f in ("renorm_rmax", "renorm_dmax", "renorm_warmup",
                                                    "renorm_rmax_at", "renorm_dmax_at")}}


@pytest.mark.parametrize("name", sorted(config.HASHED_UNLESS))
def test_any_other_value_is_hashed(name):
    base = replace(RunConfig(norm="batch", steps=100), **WHERE.get(name, {}))
    assert name not in config.INERT_UNLESS or config.INERT_UNLESS[name](base)
    assert replace(base, **{name: OTHER[name]}).hash() != base.hash()


@pytest.mark.parametrize("name", sorted(config.INERT_UNLESS))
def test_a_value_where_the_field_does_nothing_is_not_hashed(name):
    base = RunConfig(norm="batch", steps=100)
    assert not config.INERT_UNLESS[name](base)
    assert replace(base, **{name: OTHER[name]}).hash() == base.hash()
