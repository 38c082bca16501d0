"""`IcsCallback` (ics_cli/user/lightning.py): `ics.watch` inside a PyTorch Lightning Trainer.

Facts: a fit with the callback writes the run folder a hand-written `ics.watch` loop writes for the same
model, seed and batches, byte for byte (every table but metrics.csv's wall-clock column `elapsed_s`),
with or without a fixed probe, with the second view, and with gradient accumulation (one step per
optimizer step); a batch it cannot read is one IcsError line, and the crash keeps what was recorded;
DDP and unknown arguments are refused; docs/watch.md's Lightning example runs as written; importing
`ics_cli` or `ics_cli.user` does not import Lightning.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn import functional as F

pytest.importorskip("lightning", reason="the optional extra `lightning` is not installed (pip install -e '.[lightning]')")
import lightning.pytorch as pl  # noqa: E402

import ics_cli as ics  # noqa: E402
from ics_cli.errors import IcsError  # noqa: E402
from ics_cli.store import runs as store  # noqa: E402
from ics_cli.user.lightning import IcsCallback  # noqa: E402

from expect import run_doc_example  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STEPS, BATCH, LR = 7, 20, 0.1
TABLES = ("layers.csv", "grads.csv", "train.csv")


class Tiny(pl.LightningModule):
    """An MLP with batch norm on 8x8 images; batches are (x, y), or {"x": x, "y": y}."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(),
                                 nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, i):
        x, y = (batch["x"], batch["y"]) if isinstance(batch, dict) else batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=LR)


def data(n: int = STEPS * BATCH):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 8, 8, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def loader(batch: int = BATCH, as_dict: bool = False):
    x, y = data()
    rows = torch.utils.data.TensorDataset(x, y)
    collate = (lambda items: {"x": torch.stack([a for a, _ in items]), "y": torch.stack([b for _, b in items])}
               ) if as_dict else None
    return torch.utils.data.DataLoader(rows, batch_size=batch, collate_fn=collate)


def fit(out, steps: int = STEPS, batches=None, accumulate: int = 1, **kw) -> Path:
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accumulate_grad_batches=accumulate,
                         callbacks=[IcsCallback(out, **kw)])
    trainer.fit(Tiny(), batches or loader())
    return Path(out)


def by_hand(out, steps: int = STEPS, accumulate: int = 1, **kw) -> Path:
    """The same run as a plain loop under ics.watch: micro-batches of BATCH / accumulate, their losses
    divided by `accumulate` as Lightning backpropagates them, one w.step per update."""
    model = Tiny()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    micro = iter(loader(BATCH // accumulate))
    with ics.watch(model, out=out, optimizer=opt, steps=steps, **kw) as w:
        for _ in range(steps):
            opt.zero_grad()
            xs, ys, outs, losses = [], [], [], []
            for _ in range(accumulate):
                x, y = next(micro)
                logits = model(x)
                loss = F.cross_entropy(logits, y) / accumulate
                loss.backward()
                xs, ys, outs, losses = xs + [x], ys + [y], outs + [logits.detach()], losses + [loss.detach()]
            loss = losses[0] if accumulate == 1 else torch.stack(losses).sum()
            w.step(loss=loss, x=torch.cat(xs), y=torch.cat(ys), out=torch.cat(outs))
            opt.step()
    return Path(out)


def assert_same_run(a: Path, b: Path, tables=TABLES) -> None:
    for name in tables:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    pd.testing.assert_frame_equal(store.read_table(a, "units"), store.read_table(b, "units"))
    # metrics.csv: every column but the wall clock.
    ma, mb = (pd.read_csv(r / "metrics.csv").drop(columns="elapsed_s") for r in (a, b))
    pd.testing.assert_frame_equal(ma, mb)
    ca, cb = (json.loads((r / "config.json").read_text()) for r in (a, b))
    assert (ca["config"], ca["hash"]) == (cb["config"], cb["hash"])
    sa, sb = (json.loads((r / "summary.json").read_text()) for r in (a, b))
    assert sa["status"] == sb["status"] == "completed" and sa["steps_done"] == sb["steps_done"]
    assert sa["final"] == sb["final"]
    for (k, wa), (_, wb) in zip(torch.load(a / "model.pt").items(), torch.load(b / "model.pt").items()):
        assert torch.equal(wa, wb), k


# --------------------------------------------------------------------------- the same bytes


@pytest.mark.parametrize("kw", [
    dict(every=3, probe="fixed"),
    dict(every=2, quantities=["grad_ics"], loss_fn=F.cross_entropy),     # no probe: the training batches
], ids=["fixed-probe", "train-probe-grad-ics"])
def test_a_fit_records_what_the_hand_written_loop_records(tmp_path, kw):
    if kw.get("probe") == "fixed":
        kw = {**kw, "probe": torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(2))}
    run = fit(tmp_path / "fit", **kw)
    assert_same_run(run, by_hand(tmp_path / "hand", **kw),
                    TABLES + (("grad_ics.csv",) if "quantities" in kw else ()))
    config = json.loads((run / "config.json").read_text())["config"]
    assert (config["model"], config["norm"], config["lr"], config["steps"]) == ("Tiny", "batch", LR, STEPS)
    assert [s["linear"] for s in config["sites"]] == ["net.1", "net.4", "net.7"]
    grads = pd.read_csv(run / "grads.csv")
    assert sorted(grads.step.unique()) == list(range(1, STEPS + 1))
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics.train_acc.iloc[1:].notna().all()      # the output of training_step's forward was caught


def test_gradient_accumulation_is_one_step_per_optimizer_step(tmp_path):
    kw = dict(every=2, probe=torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(2)))
    run = fit(tmp_path / "fit", steps=3, accumulate=2, batches=loader(BATCH // 2), **kw)
    assert_same_run(run, by_hand(tmp_path / "hand", steps=3, accumulate=2, **kw))
    assert sorted(pd.read_csv(run / "grads.csv").step.unique()) == [1, 2, 3]
    assert json.loads((run / "config.json").read_text())["config"]["batch_size"] == BATCH


# --------------------------------------------------------------------------- batches and refusals


def test_a_batch_it_cannot_read_is_one_line_and_unpack_reads_it(tmp_path):
    with pytest.raises(IcsError) as raised:
        fit(tmp_path / "dict", batches=loader(as_dict=True), every=3)
    message = str(raised.value)
    assert "\n" not in message and "a dict with keys x, y" in message and "unpack=" in message
    summary = json.loads((tmp_path / "dict" / "summary.json").read_text())
    assert (summary["status"], summary["steps_done"]) == ("failed", 0)

    run = fit(tmp_path / "unpacked", batches=loader(as_dict=True), every=3, unpack=lambda b: (b["x"], b["y"]))
    plain = fit(tmp_path / "plain", every=3)
    for name in TABLES:
        assert (run / name).read_bytes() == (plain / name).read_bytes(), name


def test_a_crash_keeps_what_was_recorded(tmp_path):
    x, y = data()
    good = [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, 5 * BATCH, BATCH)]
    bad = (x[:BATCH], y[:BATCH], y[:BATCH])
    batches = torch.utils.data.DataLoader(good + [bad], batch_size=None)      # each item is one batch
    with pytest.raises(IcsError, match=r"this batch is a (tuple|list) of 3 \(Tensor, Tensor, Tensor\)"):
        fit(tmp_path / "r", batches=batches, every=2)
    run = tmp_path / "r"
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["steps_done"]) == ("failed", 5)
    assert sorted(pd.read_csv(run / "layers.csv").step.unique()) == [0, 2, 4, 5]
    assert sorted(pd.read_csv(run / "grads.csv").step.unique()) == [1, 2, 3, 4, 5]


def test_several_processes_and_unknown_arguments_are_refused(tmp_path):
    with pytest.raises(IcsError, match="runs on 2 processes"):
        IcsCallback(tmp_path / "r").on_fit_start(SimpleNamespace(world_size=2), Tiny())
    with pytest.raises(IcsError, match="unknown argument 'log_every'"):
        IcsCallback(tmp_path / "r", log_every=5)


# --------------------------------------------------------------------------- docs and imports


def test_the_docs_example_runs_as_written(tmp_path):
    run = run_doc_example(ROOT / "docs" / "watch.md", "## PyTorch Lightning", tmp_path, "fit.py")
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    assert (run / "layers.csv").is_file() and (run / "units.parquet").is_file()


def test_importing_ics_does_not_import_lightning():
    code = ("import sys, ics_cli, ics_cli.user; assert 'lightning' not in sys.modules; "
            "assert ics_cli.IcsCallback.__name__ == 'IcsCallback' and 'lightning' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
