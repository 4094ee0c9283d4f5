"""sim: a SimPy model of producers, the queue and failing workers, on the real queue code.

``simulate(preset("spike"))`` runs one scenario; ``replicate`` runs several
seeds and gives confidence intervals; ``theory`` has the textbook formulas
to compare with; ``python -m sim`` is the command line.
"""

from .arrivals import Arrivals
from .distributions import Dist
from .model import Model, Result, simulate
from .scenario import PRESETS, Producer, Scenario, TaskKind, mmc, preset

__all__ = ["Arrivals", "Dist", "Model", "Result", "simulate", "PRESETS", "Producer",
           "Scenario", "TaskKind", "mmc", "preset"]
