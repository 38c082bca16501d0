"""RunConfig: every value that defines one training run, validated once, hashed, named.

Defaults follow the MNIST setup of Ioffe & Szegedy (2015, Sec. 4.1): three hidden layers of 100
sigmoid units, mini-batches of 60, plain SGD. Validation happens here, at the boundary, with
messages that name the option and the allowed values; code further in trusts the config.
`validate` checks what the options alone decide; `check_data` what needs the dataset (its size
and image shape), before any weight is allocated or any file written.

Run length: `steps` updates, or `epochs` E meaning ceil(E x train_size / batch_size) updates (E
training sets' worth of examples; each epoch's last partial batch is dropped, so this may run into
the next permutation). `check_data` turns epochs into steps once the training-set size is known
and sets epochs to None, so the hash, the run name and config.json describe the computation:
`--epochs 1` and `--steps 9` on the 512 synthetic images with batches of 60 are the same run.

Model size: `check_data` refuses a network whose parameters cannot fit in memory: at most
`max_params()` parameters, i.e. 16 bytes each (float32 weights, gradients and two Adam moments)
within a quarter of this machine's physical memory, and never more than 2**31.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import typing
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .errors import ConfigError, IcsError, require
from .net import shapes

MODELS = ("mlp", "cnn", "resmlp", "vgg", "dln", "resnet")
NOISES = ("none", "santurkar")
ACTIVATIONS = ("sigmoid", "relu", "tanh", "identity")    # net/models.py ACTIVATIONS: the module of each
INITS = ("torch", "xavier", "kaiming", "gaussian")
OPTIMIZERS = ("sgd", "adam")
DEVICES = ("auto", "cpu", "cuda")
PROBES = ("fixed", "train")   # where activation statistics come from (probes.py)
BN_EVALS = ("ema", "precise", "batch")
BATCH_SAMPLERS = ("iid", "paired", "two-class")
LR_SCALINGS = ("none", "linear")
LR_SCHEDULES = ("constant", "step", "cosine")
SPLITS = ("official", "heldout")
SHARPNESS_METHODS = ("lanczos", "power")
REGRESS_LOSSES = ("mean", "sum")   # the regression loss over the outputs (net/tasks.py)
DEFAULT_WIDTH = {"mlp": 100, "cnn": 32, "resmlp": 100, "vgg": 32, "dln": 10, "resnet": 16}
DEFAULT_DEPTH = {"mlp": 3, "cnn": 3, "resmlp": 20, "vgg": 8, "dln": 25, "resnet": 20}
DEFAULT_ACTIVATION = {"mlp": "sigmoid", "cnn": "sigmoid", "resmlp": "relu", "vgg": "relu", "dln": "identity",
                      "resnet": "relu"}
DEFAULT_STEPS = 2000
SEED_LIMIT = 2**63            # seeds in [0, 2**63): what torch's generators take, with room for offsets
PARAM_BYTES = 16              # float32 weight + gradient + two Adam moments
PARAM_LIMIT = 2**31

# Fields that say where things live or how they are shown, not what is computed: left out of the hash.
NOT_HASHED = ("out", "data_dir", "download", "device", "checkpoint_every", "tensorboard")
# Fields added after runs were first recorded, with the value that computes what runs did before
# they existed: at that value a field is left out of the hash, so older runs keep their hash (and
# their folder name) and are reused; any other value is hashed like every field.
HASHED_UNLESS = {"ghost_size": 4, "renorm_rmax": 3.0, "renorm_dmax": 5.0, "renorm_warmup": None,
                 "renorm_rmax_at": None, "renorm_dmax_at": None, "bn_eval": "ema", "precise_samples": 1000,
                 "freeze_bn_at": None, "micro_batch": None, "batch_sampler": "iid", "lr_scaling": "none",
                 "lr_base_batch": 60, "lr_schedule": "constant", "lr_warmup": 0.0, "lr_milestones": "0.5,0.75",
                 "lr_decay": 0.1, "split": "official", "second_view_until": None, "sharpness_method": "power",
                 "regress_loss": "mean"}
# Fields whose default computes something else than runs recorded before the field existed (their
# HASHED_UNLESS value): a recorded config.json without the field is read with that value (from_record).
NEW_DEFAULTS = ("sharpness_method",)
# Options that change nothing unless another option says so: (field, when it applies).
INERT_UNLESS = {
    "ghost_size": lambda c: c.norm == "ghost-batch",
    **{f: (lambda c: c.norm == "batch-renorm") for f in ("renorm_rmax", "renorm_dmax", "renorm_warmup",
                                                          "renorm_rmax_at", "renorm_dmax_at")},
    "precise_samples": lambda c: c.bn_eval == "precise",
    "lr_base_batch": lambda c: c.lr_scaling == "linear",
    **{f: (lambda c: c.lr_schedule == "step") for f in ("lr_milestones", "lr_decay")},
    "second_view_until": lambda c: any(getattr(c, f) > 0 for f in SECOND_VIEW_FIELDS),
    "sharpness_method": lambda c: c.sharpness_every > 0,
    "regress_loss": lambda c: _regression(c.dataset),
}
SECOND_VIEW_FIELDS = ("ics_every", "landscape_every", "relative_loss_every", "sharpness_every")
SHARPNESS_ITERS_MAX = 1000    # Hessian-vector products per sharpness measurement (Lanczos steps or power iterations)
STEPS_MAX = 10**8             # updates per run (--steps, or --epochs resolved)


@dataclass(frozen=True)
class RunConfig:
    # data
    dataset: str = "mnist-5k"
    data_dir: str | None = None       # None: $ICS_DATA_DIR, else ./data (ics_cli/net/data.py)
    split: str | None = None          # official, or heldout (the training set's last part as the test
                                      # set); None: the dataset's default (net/data.py DEFAULT_SPLIT)
    download: bool = False
    binarize: bool = False
    # model
    model: str = "mlp"
    depth: int | None = None          # None: DEFAULT_DEPTH of the model (3 for mlp and cnn)
    width: int | None = None          # None: DEFAULT_WIDTH of the model (100 units mlp, 32 channels cnn)
    activation: str | None = None     # None: DEFAULT_ACTIVATION of the model (sigmoid for mlp and cnn)
    init: str = "xavier"
    init_std: float = 0.01            # only for init="gaussian"
    # normalization
    norm: str = "none"
    groups: int = 4
    eps: float = 1e-5
    bn_momentum: float = 0.1
    noise: str = "none"               # santurkar: Santurkar et al.'s Algorithm 1 noise after every norm
    ghost_size: int = 4               # ghost-batch: statistics over virtual sub-batches of this size
    renorm_rmax: float = 3.0          # batch-renorm: the final bounds on r and d (Ioffe 2017)
    renorm_dmax: float = 5.0
    renorm_warmup: int | None = None  # batch-renorm: steps of plain BN (r = 1, d = 0) before the ramps;
    renorm_rmax_at: int | None = None  # the steps at which r_max and d_max reach their final values
    renorm_dmax_at: int | None = None  # (None: the paper's 5k/40k/25k schedule scaled to the run, see norms)
    # test-time statistics of batch-statistics norms: ema (running averages), precise (PreciseBN:
    # recomputed over precise_samples training images on the frozen model), batch (the test batch's own)
    bn_eval: str = "ema"
    precise_samples: int = 1000
    freeze_bn_at: float | None = None  # FrozenBN: population statistics in training from this fraction on
    # optimization
    optimizer: str = "sgd"
    lr: float = 0.5
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 60
    micro_batch: int | None = None    # normalize over micro-batches of this size; gradient over the batch
    batch_sampler: str = "iid"        # paired: batch_size / 2 classes x 2 images each (non-i.i.d.);
                                      # two-class: 2 classes x batch_size / 2 images each
    lr_scaling: str = "none"          # linear: the optimizer's lr is lr x batch_size / lr_base_batch
    lr_base_batch: int = 60
    lr_schedule: str = "constant"     # step: x lr_decay at each of lr_milestones; cosine: to 0 at the end
    lr_warmup: float = 0.0            # fraction of the run with a linear warm-up to the lr (any schedule)
    lr_milestones: str = "0.5,0.75"   # --lr-schedule step: where the lr decays, as fractions of the run
    lr_decay: float = 0.1             # --lr-schedule step: the factor at each milestone
    steps: int | None = None          # None with epochs None: 2000 steps
    epochs: float | None = None       # ceil(epochs x train_size / batch_size) steps; see check_data
    # recording: activation statistics every log_every steps (from a fixed probe batch or the training
    # batch), the test set every eval_every steps, gradient norms every step
    log_every: int = 100
    probe: str = "fixed"
    probe_size: int = 512
    eval_every: int = 500            # a test-set pass costs about ten training steps of the default MLP
    track_units: int = 4
    eval_batchstats: bool = True
    # regression (net/tasks.py): per sample the squared error averaged (mean) or summed (sum: ‖f(x) − y‖²,
    # the literal objective) over the outputs; ignored for classification
    regress_loss: str = "mean"
    # the second view of ICS (ics_cli/quantities): each every N steps, 0 = off
    ics_every: int = 0                # gradient-based ICS (Santurkar Def. 2.1)
    landscape_every: int = 0          # loss and gradient along the gradient (Santurkar Sec. 3.2)
    landscape_etas: str = "0.5,1,2,4"     # step sizes, as multiples of lr
    relative_loss_every: int = 0      # L(theta - alpha g) / L(theta) (Bjorck Fig. 2)
    relative_alphas: str = "1e-5:1:11"    # step sizes alpha: a comma list, or LOW:HIGH:N (log grid)
    sharpness_every: int = 0          # largest and smallest Hessian eigenvalue (Lanczos)
    sharpness_iters: int = 20         # Hessian-vector products per measurement
    sharpness_method: str = "lanczos"  # or power: the largest-|λ| eigenvalue, as recorded before lanczos
    second_view_until: float | None = None   # the second view only in the run's first fraction
    # divergence: a loss above diverge_factor x the first loss, or a smoothed loss (EMA, alpha 0.1)
    # above diverge_smooth x the first loss, or a NaN/inf loss, ends the run as `diverged`
    diverge_factor: float = 1e3
    diverge_smooth: float = 4.0
    # run
    checkpoint_every: float = 30.0    # seconds; where a killed run resumes from, not what it records
    tensorboard: bool = False         # also write the rows as TensorBoard events (RUN/tensorboard/)
    seed: int = 0
    device: str = "auto"
    out: str = "runs"

    @property
    def hidden_width(self) -> int:
        return self.width if self.width is not None else DEFAULT_WIDTH[self.model]

    @property
    def scaled_lr(self) -> float:
        """The optimizer's learning rate: lr, or under --lr-scaling linear lr x batch_size / lr_base_batch
        (Goyal et al. 2017's rule, as Wu & He 2018 use it)."""
        return self.lr * self.batch_size / self.lr_base_batch if self.lr_scaling == "linear" else self.lr

    @property
    def norm_batch(self) -> int:
        """Samples one set of batch statistics is taken over in training: the micro-batch, else the batch
        (ghost-batch divides it further into ghosts of ghost_size)."""
        return self.micro_batch or self.batch_size

    @property
    def hidden_depth(self) -> int:
        return self.depth if self.depth is not None else DEFAULT_DEPTH[self.model]

    def resolved(self, train_size: int | None = None) -> "RunConfig":
        """Fill derived values: width, and steps (2000 by default, or from epochs and `train_size`).

        With epochs given and no train_size, steps stays None: such a config has no hash yet.
        """
        # 1 and 1.0 are the same learning rate: one spelling, so one hash.
        floats = {f.name: float(v) for f in fields(self) if _expected(f.name)[0] is float
                  and isinstance(v := getattr(self, f.name), int) and not isinstance(v, bool)}
        from .net.data import default_split

        activation = self.activation or DEFAULT_ACTIVATION.get(self.model, "sigmoid")
        cfg = replace(self, width=self.hidden_width, depth=self.hidden_depth, activation=activation,
                      split=self.split or default_split(self.dataset), **floats)
        # An option with no effect under the others takes the value that computes the same: one
        # computation, one hash, one run folder (a sweep's common --ghost-size may meet --norm batch).
        cfg = replace(cfg, **{name: HASHED_UNLESS[name] for name, applies in INERT_UNLESS.items()
                              if not applies(cfg)})
        if cfg.steps is None:
            if cfg.epochs is None:
                cfg = replace(cfg, steps=DEFAULT_STEPS)
            elif train_size is not None:
                steps = max(1, math.ceil(cfg.epochs * train_size / cfg.batch_size))
                cfg = replace(cfg, steps=steps, epochs=None)
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

    @classmethod
    def from_record(cls, d: dict) -> "RunConfig":
        """The config a run folder's config.json recorded: a field it lacks (added later) takes the
        value that computes what runs did before it existed (HASHED_UNLESS), not today's default."""
        return cls.from_dict({**{k: HASHED_UNLESS[k] for k in NEW_DEFAULTS}, **d})

    def hash(self) -> str:
        """Short hash of everything that changes what the run computes (steps resolved from epochs)."""
        if self.steps is None and self.epochs is not None:
            raise ValueError("a config with --epochs has no hash before its training-set size is known; "
                             "resolve it with config.check_data (train.prepare and Sweep.configs do)")
        d = {k: v for k, v in asdict(self.resolved()).items() if k not in NOT_HASHED
             and not (k in HASHED_UNLESS and v == HASHED_UNLESS[k])}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]

    def name(self) -> str:
        """Readable run-folder name: the main settings, then the hash."""
        cfg = self.resolved()
        return (f"{cfg.model}-{cfg.norm}-{cfg.activation}-lr{cfg.lr:g}-bs{cfg.batch_size}"
                f"-s{cfg.seed}-{self.hash()}")


_HINTS: dict | None = None


def _regression(dataset: str) -> bool:
    from .net.data import REGRESSION

    return dataset in REGRESSION


def _expected(name: str) -> tuple[type, bool]:
    """The base type of RunConfig field `name` and whether it may be None."""
    global _HINTS
    if _HINTS is None:
        _HINTS = typing.get_type_hints(RunConfig)
    hint = _HINTS[name]
    args = typing.get_args(hint)
    if not args:
        return hint, False
    return next(a for a in args if a is not type(None)), type(None) in args


def type_problem(name: str, value) -> str | None:
    """None if `value` has the type RunConfig field `name` takes, else what it should be, in words."""
    base, optional = _expected(name)
    if value is None and optional:
        return None
    ok = {bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str)}[base]
    if ok:
        return None
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[base]
    return words + (" (or left out)" if optional else "")


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
    from .net import norms, schedule
    from . import quantities
    from .net.data import DATASETS, check_split, root as data_root

    for f in fields(cfg):
        value = getattr(cfg, f.name)
        expected = type_problem(f.name, value)
        if expected:
            raise ConfigError(f"--{f.name.replace('_', '-')} must be {expected}, got {value!r}")
    _choice("--dataset", cfg.dataset, list(DATASETS))
    _choice("--model", cfg.model, MODELS)
    if cfg.activation is not None:
        _choice("--activation", cfg.activation, ACTIVATIONS)
    _choice("--init", cfg.init, INITS)
    _choice("--optimizer", cfg.optimizer, OPTIMIZERS)
    _choice("--device", cfg.device, DEVICES)
    _choice("--norm", cfg.norm, list(norms.REGISTRY))
    _positive("--lr", cfg.lr)
    if cfg.depth is not None:
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
    _choice("--probe", cfg.probe, PROBES)
    _choice("--noise", cfg.noise, NOISES)
    _choice("--bn-eval", cfg.bn_eval, BN_EVALS)
    _choice("--batch-sampler", cfg.batch_sampler, BATCH_SAMPLERS)
    _choice("--lr-scaling", cfg.lr_scaling, LR_SCALINGS)
    _choice("--lr-schedule", cfg.lr_schedule, LR_SCHEDULES)
    _choice("--sharpness-method", cfg.sharpness_method, SHARPNESS_METHODS)
    _choice("--regress-loss", cfg.regress_loss, REGRESS_LOSSES)
    if cfg.split is not None:
        _choice("--split", cfg.split, SPLITS)
        check_split(cfg.dataset, cfg.split)
    schedule.check(cfg)
    if cfg.second_view_until is not None and not 0 < cfg.second_view_until <= 1:
        raise ConfigError(f"--second-view-until must be a fraction of the run in (0, 1], got {cfg.second_view_until}")
    _positive("--ghost-size", cfg.ghost_size, integer=True)
    _positive("--precise-samples", cfg.precise_samples, integer=True)
    _positive("--lr-base-batch", cfg.lr_base_batch, integer=True)
    if cfg.micro_batch is not None:
        _positive("--micro-batch", cfg.micro_batch, integer=True)
        _micro_batch(cfg)
    for option, value in (("--renorm-rmax", cfg.renorm_rmax), ("--renorm-dmax", cfg.renorm_dmax)):
        _positive(option, value, allow_zero=True)
    if cfg.renorm_rmax < 1:
        raise ConfigError(f"--renorm-rmax must be a number >= 1 (r is clipped to [1/r_max, r_max]), got {cfg.renorm_rmax}")
    for option, value in (("--renorm-warmup", cfg.renorm_warmup), ("--renorm-rmax-at", cfg.renorm_rmax_at),
                          ("--renorm-dmax-at", cfg.renorm_dmax_at)):
        if value is not None:
            _positive(option, value, integer=True, allow_zero=True)
    if cfg.freeze_bn_at is not None and not 0 < cfg.freeze_bn_at < 1:
        raise ConfigError(f"--freeze-bn-at must be a fraction of the run in (0, 1), got {cfg.freeze_bn_at}")
    for option, value in (("--ics-every", cfg.ics_every), ("--landscape-every", cfg.landscape_every),
                          ("--relative-loss-every", cfg.relative_loss_every),
                          ("--sharpness-every", cfg.sharpness_every)):
        _positive(option, value, integer=True, allow_zero=True)
    _positive("--sharpness-iters", cfg.sharpness_iters, integer=True)
    if cfg.sharpness_iters > SHARPNESS_ITERS_MAX:
        raise ConfigError(f"--sharpness-iters must be an integer in [1, {SHARPNESS_ITERS_MAX}] (Hessian-vector "
                          f"products per measurement), got {cfg.sharpness_iters}")
    if cfg.steps is not None and cfg.steps > STEPS_MAX:
        raise ConfigError(f"--steps must be an integer in [1, {STEPS_MAX:.0e}], got {cfg.steps}")
    _positive("--log-every", cfg.log_every, integer=True)
    _positive("--eval-every", cfg.eval_every, integer=True)
    _positive("--checkpoint-every", cfg.checkpoint_every, allow_zero=True)
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
    if not 0 <= cfg.seed < SEED_LIMIT:
        raise ConfigError(f"--seed must be an integer in [0, 2**63), got {cfg.seed}")
    if cfg.momentum >= 1:
        raise ConfigError(f"--momentum must be in [0, 1), got {cfg.momentum}")
    if not 0 <= cfg.bn_momentum <= 1:
        raise ConfigError(f"--bn-momentum must be in [0, 1], got {cfg.bn_momentum}")
    if cfg.tensorboard:
        require("tensorboard", "TensorBoard", "--tensorboard")
    if cfg.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    cfg = replace(cfg.resolved(), data_dir=str(data_root(cfg.data_dir)))    # $ICS_DATA_DIR read once, here
    shapes.check_norm(cfg)
    shapes.check(cfg)
    quantities.check(cfg)
    return cfg


def _micro_batch(cfg: RunConfig) -> None:
    """--micro-batch must cut the batch into equal slices, and is refused with what would see one
    slice for the whole batch: passes that read the training pass (--probe train), the second view's
    passes over the batch, and the noise stream (one draw per training pass)."""
    m, b = cfg.micro_batch, cfg.batch_size
    if b % m:
        divisors = [d for d in range(1, b + 1) if b % d == 0]
        raise ConfigError(f"--micro-batch {m} does not divide --batch-size {b}; "
                          f"allowed: {', '.join(map(str, divisors))}")
    conflicts = [("--probe train", cfg.probe == "train"), ("--noise santurkar", cfg.noise == "santurkar")]
    conflicts += [(f"--{f.replace('_', '-')}", getattr(cfg, f) > 0)
                  for f in ("ics_every", "landscape_every", "relative_loss_every", "sharpness_every")]
    for option, on in conflicts:
        if on:
            raise ConfigError(f"--micro-batch cannot be combined with {option} (it measures the batch as one "
                              f"pass); leave out one of them")


def max_params() -> int:
    """The most parameters a run may have: PARAM_BYTES each within a quarter of physical memory."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):   # not every system reports it
        return PARAM_LIMIT
    return max(1, min(PARAM_LIMIT, memory // 4 // PARAM_BYTES))


def param_count(cfg: RunConfig, input_shape: tuple[int, int, int], num_classes: int = 10) -> int:
    """Parameters of the model models.build makes, exactly (arithmetic: nothing is built).

    Every model is a chain of hidden layers of `width` units (a 3x3 conv for cnn and vgg, a
    Linear for the others: resmlp's skips add none), each with its norm's parameters per unit (γ and
    β; rms: a gain), and a bias unless the norm has a β (the dln: never), then a linear head (with a
    bias, except the dln's). The dln's `depth` counts its head. The resnet's 3x3 convs have w, 2w
    and 4w channels by stage (its option-A shortcuts add no parameters); its `depth` counts its head.
    """
    from .net import norms

    width, depth = cfg.hidden_width, cfg.hidden_depth
    c, h, w = input_shape
    if cfg.model in ("cnn", "vgg"):
        first, rest = 9 * c * width, 9 * width * width
    else:
        first, rest = c * h * w * width, width * width
    norm = norms.get(cfg.norm)
    if cfg.model == "dln":
        hidden, per_unit, head_bias = depth - 1, norm.params, 0
    else:
        hidden, per_unit, head_bias = depth, norm.params + (0 if norm.affine else 1), num_classes
    if cfg.model == "resnet":      # the stem to w, then 2n convs per stage of w, 2w, 4w channels
        n, convs, units, fan_in = shapes.resnet_blocks(depth), 9 * c * width, width, width
        for out in (width, 2 * width, 4 * width):
            convs += 9 * fan_in * out + (2 * n - 1) * 9 * out * out
            units, fan_in = units + 2 * n * out, out
        return convs + units * per_unit + 4 * width * num_classes + head_bias
    return first + (hidden - 1) * rest + hidden * per_unit * width + width * num_classes + head_bias


def check_data(cfg: RunConfig, train_size: int, test_size: int, input_shape: tuple[int, int, int],
               num_classes: int = 10, class_counts: list[int] | None = None) -> RunConfig:
    """Refuse what the dataset makes impossible; return cfg with steps resolved from epochs.

    Call after `validate`, before building the model: every check here is arithmetic.
    `class_counts` (training images per class), when known, lets the paired sampler be checked.
    """
    n, shape = f"{train_size:,}", "x".join(map(str, input_shape))
    if test_size < 1:
        raise ConfigError(f"--dataset {cfg.dataset}: the test split is empty; give a dataset with test images")
    if cfg.batch_size > train_size:
        raise ConfigError(f"--batch-size {cfg.batch_size} is larger than the training set of --dataset "
                          f"{cfg.dataset} ({n} images); use a batch size of at most {n}")
    if cfg.probe == "fixed" and cfg.probe_size > train_size:
        raise ConfigError(f"--probe-size {cfg.probe_size} is larger than the training set of --dataset "
                          f"{cfg.dataset} ({n} images); use a probe size of at most {n}")
    params, limit = param_count(cfg, input_shape, num_classes), max_params()
    if params > limit:
        raise ConfigError(f"--width {cfg.hidden_width} with --depth {cfg.hidden_depth} gives the {cfg.model} about "
                          f"{params:.3g} parameters on {shape} inputs; at most {limit:.3g} fit here "
                          f"({PARAM_BYTES} bytes each in a quarter of this machine's memory, and at most "
                          f"2**31); use a smaller --width or --depth")
    if cfg.bn_eval == "precise" and not cfg.norm_batch <= cfg.precise_samples <= train_size:
        raise ConfigError(f"--precise-samples {cfg.precise_samples}: PreciseBN needs at least one normalization "
                          f"batch ({cfg.norm_batch}) and at most the training set of --dataset {cfg.dataset} "
                          f"({n} images); use a value in [{cfg.norm_batch}, {train_size}]")
    if cfg.batch_sampler == "paired":
        _paired(cfg, num_classes, class_counts)
    if cfg.batch_sampler == "two-class":
        _two_class(cfg, num_classes, class_counts)
    shapes.check_norm_input(cfg, input_shape)
    shapes.check_input(cfg, input_shape)
    resolved = cfg.resolved(train_size)
    if resolved.steps > STEPS_MAX:
        raise ConfigError(f"--epochs {cfg.epochs:g}: {resolved.steps:,} updates of --batch-size {cfg.batch_size}; "
                          f"at most {STEPS_MAX:.0e} fit in a run")
    return resolved


def _paired(cfg: RunConfig, num_classes: int, class_counts: list[int] | None) -> None:
    """--batch-sampler paired: batch_size / 2 distinct classes of a classification set, 2 images each."""
    from .net.data import REGRESSION

    b = cfg.batch_size
    if cfg.dataset in REGRESSION:
        raise ConfigError(f"--batch-sampler paired needs classes; --dataset {cfg.dataset} is a regression; "
                          f"use --batch-sampler iid")
    if b % 2:
        raise ConfigError(f"--batch-sampler paired takes 2 images of each class: --batch-size {b} is odd; "
                          f"use an even batch size")
    if b // 2 > num_classes:
        raise ConfigError(f"--batch-sampler paired: --batch-size {b} needs {b // 2} distinct classes but "
                          f"--dataset {cfg.dataset} has {num_classes}; the largest paired batch is {2 * num_classes}")
    if class_counts is not None and min(class_counts) < 2:
        few = [str(c) for c, k in enumerate(class_counts) if k < 2]
        raise ConfigError(f"--batch-sampler paired: class(es) {', '.join(few)} of --dataset {cfg.dataset} have "
                          f"fewer than 2 training images; use --batch-sampler iid")


def _two_class(cfg: RunConfig, num_classes: int, class_counts: list[int] | None) -> None:
    """--batch-sampler two-class: 2 distinct classes of a classification set, batch_size / 2 images each."""
    from .net.data import REGRESSION

    b = cfg.batch_size
    if cfg.dataset in REGRESSION:
        raise ConfigError(f"--batch-sampler two-class needs classes; --dataset {cfg.dataset} is a regression; "
                          f"use --batch-sampler iid")
    if b % 2:
        raise ConfigError(f"--batch-sampler two-class takes half the batch from each of 2 classes: --batch-size "
                          f"{b} is odd; use an even batch size")
    if num_classes < 2:
        raise ConfigError(f"--batch-sampler two-class needs 2 classes; --dataset {cfg.dataset} has {num_classes}")
    if class_counts is not None and min(class_counts) < b // 2:
        few = [str(c) for c, k in enumerate(class_counts) if k < b // 2]
        raise ConfigError(f"--batch-sampler two-class: class(es) {', '.join(few)} of --dataset {cfg.dataset} have "
                          f"fewer than {b // 2} training images (half of --batch-size {b}); use a smaller batch")


def check_writable(out: str | Path, option: str = "--out", *, beside: bool = False) -> None:
    """Refuse a folder that cannot be created or written, before anything is written.

    `beside`: the output is staged in a folder next to `out` (compare, plot), so its parent must be
    writable too.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{option} '{out}' is a file; give a folder (it is created if missing)")
    probe = out.absolute()
    while not os.path.lexists(probe):
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{option} '{out}' cannot be created: '{probe}' is a file; give a folder")
    folders = [probe] + ([out.absolute().parent] if beside and probe == out.absolute() else [])
    for folder in folders:
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"{option} '{out}' is not writable ('{folder}' is read-only); give a folder "
                              "you can write to")
    try:  # permissions alone don't tell (root, read-only mounts, /proc): try it
        with tempfile.TemporaryDirectory(dir=probe):
            pass
    except OSError as e:
        raise ConfigError(f"{option} '{out}' is not writable ({e.strerror}); give a folder you can write to") from None


def check_output_file(path: Path, kind: str) -> Path:
    """Refuse an --out file that cannot be written (a folder, or in a folder that does not exist) with
    one line, before any work; return its folder."""
    folder = path.absolute().parent
    if path.is_dir():
        raise IcsError(f"--out '{path}' is a folder; give {kind} file name")
    if not folder.is_dir():
        raise IcsError(f"--out '{path}' cannot be written: its folder '{folder}' does not exist")
    return folder
