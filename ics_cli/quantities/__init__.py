"""The second view of internal covariate shift: quantities that need passes of their own.

Each is a module with one `Quantity` subclass (base.py says the shape): gradient-based ICS
(grad_ics.py, Santurkar et al. 2018 Def. 2.1), the loss landscape along the gradient (landscape.py,
Santurkar Sec. 3.2), the relative loss of one step (relative_loss.py, Bjorck et al. 2018 Fig. 2) and
sharpness (sharpness.py, the largest and smallest Hessian eigenvalue). Each writes one table to the run folder, has
its own cadence option, and is documented with its formula in docs/metrics.md.
"""

from __future__ import annotations

from .base import Probe, Quantity, side_effect_free
from .grad_ics import GradICS
from .landscape import Landscape
from .relative_loss import RelativeLoss
from .sharpness import Sharpness

REGISTRY: dict[str, type[Quantity]] = {}
TABLES: dict[str, list[str]] = {}               # its run-folder table's columns, by name
KEYS: dict[str, tuple[str, ...]] = {}           # the columns that name one row of it


def register(quantity: type[Quantity]) -> type[Quantity]:
    """Add a quantity: the one place a new one is named. Its table then belongs to every run folder that
    records it (store/schema.py), `ics export --table`, the compare tables (analyse/quantities.py: a
    `<name>_curves` table unless it has a family of its own there), their long tables, and the report.
    Register before those modules are imported (they read the registry once)."""
    REGISTRY[quantity.name] = quantity
    TABLES[quantity.name] = list(quantity.columns)
    KEYS[quantity.name] = tuple(quantity.keys)
    return quantity


for _q in (GradICS, Landscape, RelativeLoss, Sharpness):
    register(_q)


def active(cfg, model) -> list[Quantity]:
    """The quantities this run records (cadence > 0), built for `model`."""
    return [q(cfg, model) for q in REGISTRY.values() if getattr(cfg, q.every_field) > 0]


def check(cfg) -> None:
    for q in REGISTRY.values():
        q.check(cfg)


__all__ = ["Probe", "Quantity", "side_effect_free", "REGISTRY", "TABLES", "KEYS", "register", "active", "check"]
