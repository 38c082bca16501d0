"""RunConfig: every value that defines one training run, validated once, hashed, named.

Defaults follow the MNIST setup of Ioffe & Szegedy (2015, Sec. 4.1): three hidden layers of 100
sigmoid units, mini-batches of 60, plain SGD. Validation happens here, at the boundary, with
messages that name the option and the allowed values; code further in trusts the config.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .errors import ConfigError

MODELS = ("mlp", "cnn")
ACTIVATIONS = ("sigmoid", "relu", "tanh")
INITS = ("torch", "xavier", "kaiming", "gaussian")
OPTIMIZERS = ("sgd", "adam")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_WIDTH = {"mlp": 100, "cnn": 32}

# Fields that say where things live or how they are shown, not what is computed: left out of the hash.
NOT_HASHED = ("out", "data_dir", "download", "device")


@dataclass(frozen=True)
class RunConfig:
    # data
    dataset: str = "mnist-5k"
    data_dir: str = "data"
    download: bool = False
    binarize: bool = False
    # model
    model: str = "mlp"
    depth: int = 3
    width: int | None = None          # None: 100 units (mlp) or 32 channels (cnn)
    activation: str = "sigmoid"
    init: str = "xavier"
    init_std: float = 0.01            # only for init="gaussian"
    # normalization
    norm: str = "none"
    groups: int = 4
    eps: float = 1e-5
    bn_momentum: float = 0.1
    # optimization
    optimizer: str = "sgd"
    lr: float = 0.5
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 60
    steps: int | None = None          # None with epochs None: 2000 steps
    epochs: float | None = None
    # recording
    log_every: int = 100
    probe_size: int = 512
    track_units: int = 4
    eval_batchstats: bool = True
    # divergence: a loss above diverge_factor x the first loss, or a smoothed loss (EMA, alpha 0.1)
    # above diverge_smooth x the first loss, or a NaN/inf loss, ends the run as `diverged`
    diverge_factor: float = 1e3
    diverge_smooth: float = 4.0
    # run
    seed: int = 0
    device: str = "auto"
    out: str = "runs"

    @property
    def hidden_width(self) -> int:
        return self.width if self.width is not None else DEFAULT_WIDTH[self.model]

    def resolved(self, train_size: int | None = None) -> "RunConfig":
        """Fill derived values: width, and steps from epochs once the train set size is known."""
        cfg = replace(self, width=self.hidden_width)
        if cfg.steps is None:
            if cfg.epochs is not None and train_size is not None:
                steps = max(1, math.ceil(cfg.epochs * train_size / cfg.batch_size))
            else:
                steps = 2000
            cfg = replace(cfg, steps=steps)
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(names))}")
        return cls(**d)

    def hash(self) -> str:
        """Short hash of everything that changes what the run computes."""
        d = {k: v for k, v in asdict(self.resolved()).items() if k not in NOT_HASHED}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]

    def name(self) -> str:
        """Readable run-folder name: the main settings, then the hash."""
        cfg = self.resolved()
        return (f"{cfg.model}-{cfg.norm}-{cfg.activation}-lr{cfg.lr:g}-bs{cfg.batch_size}"
                f"-s{cfg.seed}-{self.hash()}")


def _choice(option: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{option} '{value}' is not one of: {', '.join(map(str, allowed))}")


def _positive(option: str, value, *, integer: bool = False, allow_zero: bool = False) -> None:
    bad = value is None or (value < 0 if allow_zero else value <= 0) or (
        isinstance(value, float) and not math.isfinite(value))
    if bad:
        kind = "an integer" if integer else "a number"
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{option} must be {kind} {bound}, got {value}")


def validate(cfg: RunConfig) -> RunConfig:
    """Check every user-settable value and combination; return the resolved config."""
    from . import norms
    from .data import DATASETS

    _choice("--dataset", cfg.dataset, list(DATASETS))
    _choice("--model", cfg.model, MODELS)
    _choice("--activation", cfg.activation, ACTIVATIONS)
    _choice("--init", cfg.init, INITS)
    _choice("--optimizer", cfg.optimizer, OPTIMIZERS)
    _choice("--device", cfg.device, DEVICES)
    _choice("--norm", cfg.norm, list(norms.REGISTRY))
    _positive("--lr", cfg.lr)
    _positive("--depth", cfg.depth, integer=True)
    if cfg.width is not None:
        _positive("--width", cfg.width, integer=True)
    _positive("--batch-size", cfg.batch_size, integer=True)
    if cfg.steps is not None:
        _positive("--steps", cfg.steps, integer=True)
    if cfg.epochs is not None:
        _positive("--epochs", cfg.epochs)
    if cfg.steps is not None and cfg.epochs is not None:
        raise ConfigError("give either --steps or --epochs, not both")
    _positive("--log-every", cfg.log_every, integer=True)
    _positive("--probe-size", cfg.probe_size, integer=True)
    _positive("--track-units", cfg.track_units, integer=True, allow_zero=True)
    _positive("--eps", cfg.eps)
    _positive("--init-std", cfg.init_std)
    _positive("--groups", cfg.groups, integer=True)
    _positive("--momentum", cfg.momentum, allow_zero=True)
    for option, value in (("--diverge-factor", cfg.diverge_factor), ("--diverge-smooth", cfg.diverge_smooth)):
        if not value > 1:
            raise ConfigError(f"{option} must be a number > 1, got {value}")
    _positive("--weight-decay", cfg.weight_decay, allow_zero=True)
    if cfg.momentum >= 1:
        raise ConfigError(f"--momentum must be in [0, 1), got {cfg.momentum}")
    if not 0 <= cfg.bn_momentum <= 1:
        raise ConfigError(f"--bn-momentum must be in [0, 1], got {cfg.bn_momentum}")
    if cfg.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    cfg = cfg.resolved()
    norms.check(cfg)
    return cfg


def check_writable(out: str | Path) -> None:
    """Refuse an --out folder that cannot be created or written, before anything is written."""
    out = Path(out)
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"--out '{out}': '{probe}' is a file, not a folder; choose a folder")
    try:  # permissions alone don't tell (root, read-only mounts, /proc): try it
        with tempfile.TemporaryDirectory(dir=probe):
            pass
    except OSError as e:
        raise ConfigError(f"--out '{out}' is not writable ({e.strerror}); choose a folder you can write to") from None
