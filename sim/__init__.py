"""sim: a SimPy model of producers, the queue and failing workers, on the real queue code.

``simulate(preset("spike"))`` runs one scenario; ``replicate`` runs several
seeds and gives confidence intervals; ``theory`` has the textbook formulas
to compare with; ``python -m sim`` is the command line.
"""

from .arrivals import Arrivals
from .distributions import Dist
from .presets import PRESETS, mmc_scenario, preset
from .scenario import Producer, Scenario, TaskKind

_FROM_MODEL = ("Model", "Result", "simulate")


def __getattr__(name):
    # The model (SimPy, pandas) is imported when first asked for: a live run's worker
    # imports ``sim.live_handlers`` and needs none of it, and starts faster without.
    if name in _FROM_MODEL:
        from . import model
        return getattr(model, name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")

__all__ = ["Arrivals", "Dist", "Model", "Result", "simulate", "PRESETS", "Producer",
           "Scenario", "TaskKind", "mmc_scenario", "preset"]
