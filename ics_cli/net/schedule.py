"""Learning-rate schedules: the lr of every update, a pure function of the run's config and the step.

Update s (s = 0 … steps − 1, the one that turns θ_s into θ_{s+1}) uses lr(s) = base × warm(s) × shape(s),
where base is the optimizer's lr (--lr, times batch / lr_base_batch under --lr-scaling linear) and T the
run's steps:

Fractions of the run become steps as FrozenBN's do: step_at(f) = ⌈f × T⌉ (the product rounded to 9
decimals first), so `--freeze-bn-at 0.5` freezes at the update the 0.5 milestone decays.

- warm-up (`--lr-warmup f`, any schedule): W = step_at(f) updates; warm(s) = (s + 1) / W for s < W
  (linear, never 0), then 1 (Goyal et al. 2017);
- `constant`: shape(s) = 1: the optimizer's lr is never touched, so a constant run is the run it always was;
- `step`: shape(s) = decay^k, k = the number of milestones m (`--lr-milestones`, fractions of the run)
  with s >= step_at(m) (He et al. 2016: 0.1 at 50% and 75%);
- `cosine`: shape(s) = (1 + cos(π (s − W) / (T − W))) / 2 after the warm-up (Loshchilov & Hutter 2017,
  without restarts): lr falls from base to near 0 at the last update.

The `lr` column of metrics.csv at step s is lr(s), the lr of the update that follows that row; the
second view's `lr` (sharpness × lr, landscape step sizes) is the lr of the step it measures.
"""

from __future__ import annotations

import functools
import math

from ..errors import ConfigError


def step_at(fraction: float, steps: int) -> int:
    """The first step at or after `fraction` of a run of `steps` updates: ceil(fraction x steps), the
    product rounded to 9 decimals first (0.7 x 10 is 7, not 7.000000000000001)."""
    return math.ceil(round(fraction * steps, 9))


def milestones(cfg) -> tuple[float, ...]:
    """--lr-milestones as fractions (validated by `check`)."""
    return _parsed(str(cfg.lr_milestones))


@functools.lru_cache(maxsize=64)
def _parsed(text: str) -> tuple[float, ...]:
    """The comma list as numbers, parsed once per text (lr_at runs on every update)."""
    return tuple(float(v) for v in text.split(",") if v.strip())


def varies(cfg) -> bool:
    """Whether the lr ever differs from the optimizer's own."""
    return cfg.lr_schedule != "constant" or cfg.lr_warmup > 0


def lr_at(cfg, step: int, base: float) -> float:
    """The lr of update `step` (0-based) of a run of cfg.steps updates, from the optimizer's `base` lr."""
    steps = cfg.steps
    warm = step_at(cfg.lr_warmup, steps)
    factor = (step + 1) / warm if step < warm else 1.0
    if cfg.lr_schedule == "step":
        factor *= cfg.lr_decay ** sum(step >= step_at(m, steps) for m in milestones(cfg))
    elif cfg.lr_schedule == "cosine" and step >= warm:
        factor *= (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm))) / 2
    return base * factor


def check(cfg) -> None:
    """Refuse schedule options that cannot be meant (called by config.validate)."""
    if not (isinstance(cfg.lr_warmup, (int, float)) and 0 <= cfg.lr_warmup < 1):
        raise ConfigError(f"--lr-warmup must be a fraction of the run in [0, 1), got {cfg.lr_warmup}")
    if not (isinstance(cfg.lr_decay, (int, float)) and 0 < cfg.lr_decay <= 1):
        raise ConfigError(f"--lr-decay must be a factor in (0, 1], got {cfg.lr_decay}")
    try:
        marks = milestones(cfg)
    except ValueError:
        marks = None
    if marks is None or not marks or any(not 0 < m < 1 for m in marks) or list(marks) != sorted(set(marks)):
        raise ConfigError(f"--lr-milestones must be increasing fractions of the run in (0, 1), comma-separated "
                          f"(e.g. 0.5,0.75), got '{cfg.lr_milestones}'")
