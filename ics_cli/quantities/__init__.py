"""The second view of internal covariate shift: quantities that need passes of their own.

Each is a module with one `Quantity` subclass (base.py says the shape): gradient-based ICS
(grad_ics.py, Santurkar et al. 2018 Def. 2.1), the loss landscape along the gradient (landscape.py,
Santurkar Sec. 3.2), the relative loss of one step (relative_loss.py, Bjorck et al. 2018 Fig. 2) and
sharpness (sharpness.py, the top Hessian eigenvalue). Each writes one table to the run folder, has
its own cadence option, and is documented with its formula in docs/metrics.md.
"""

from __future__ import annotations

from .base import Probe, Quantity, side_effect_free
from .grad_ics import GradICS
from .landscape import Landscape
from .relative_loss import RelativeLoss
from .sharpness import Sharpness

REGISTRY: dict[str, type[Quantity]] = {q.name: q for q in (GradICS, Landscape, RelativeLoss, Sharpness)}
TABLES: dict[str, list[str]] = {q.name: list(q.columns) for q in REGISTRY.values()}
KEYS: dict[str, tuple[str, ...]] = {q.name: q.keys for q in REGISTRY.values()}


def active(cfg, model) -> list[Quantity]:
    """The quantities this run records (cadence > 0), built for `model`."""
    return [q(cfg, model) for q in REGISTRY.values() if getattr(cfg, q.every_field) > 0]


def check(cfg) -> None:
    for q in REGISTRY.values():
        q.check(cfg)


__all__ = ["Probe", "Quantity", "side_effect_free", "REGISTRY", "TABLES", "KEYS", "active", "check"]
