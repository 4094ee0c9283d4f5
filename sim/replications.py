"""Replications: run the same scenario with several seeds, and say how sure we are.

One simulated day is one roll of the dice: a lucky day has short queues.
To report "the mean wait is 1.08 s" honestly we run R independent days
(seeds), take the mean of each figure over the R runs, and give a 95%
confidence interval, mean +- t(0.975, R-1) * s / sqrt(R), where s is the
standard deviation across runs. If the model is right, the interval
contains the true value in 95 experiments out of 100.

The runs are independent, so they may go to parallel processes
(``processes=2``): each returns only its summary, a few numbers.
"""

from __future__ import annotations

import math
import pickle
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from .model import Result, simulate
from .scenario import Scenario
from .summary import FIGURES

# Student's t 0.975 quantiles for 1..30 degrees of freedom (two-sided 95%).
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t975(df: int) -> float:
    """The t quantile for a 95% interval; beyond 30 degrees of freedom, interpolated to 1.96."""
    if df < 1:
        return math.nan
    if df <= 30:
        return T975[df - 1]
    # t(df) ~ z + (z**3 + z) / (4 df) (Cornish-Fisher, first term): within 0.001 here.
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df)


def confidence_interval(values, level_t: Optional[float] = None) -> Dict[str, float]:
    """Mean and 95% interval of independent replication values (NaNs ignored)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    half = (level_t or t975(n - 1)) * float(x.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return {"mean": mean, "half_width": half, "low": mean - half, "high": mean + half, "n": n}


@dataclass
class Replications:
    scenario: Scenario
    seeds: List[int]
    runs: pd.DataFrame           # one row per seed, one column per summary figure
    results: List[Result]        # the full runs, when asked to keep them

    def ci(self) -> pd.DataFrame:
        """Each summary figure: mean, half-width and bounds of its 95% interval, and its unit."""
        rows = {name: confidence_interval(self.runs[name]) for name in FIGURES if name in self.runs}
        frame = pd.DataFrame(rows).T
        frame["unit"] = [FIGURES[name] for name in frame.index]
        return frame

    def contains(self, figure: str, value: float) -> bool:
        row = confidence_interval(self.runs[figure])
        return row["low"] <= value <= row["high"]


def _summary_only(args):
    scenario, seed = args
    return simulate(scenario, seed).summary


def replicate(scenario: Scenario, replications: int = 10, processes: int = 1,
              keep: bool = False, first_seed: Optional[int] = None) -> Replications:
    """Run ``scenario`` with seeds ``first_seed .. first_seed + R - 1`` (default: its own seed on).

    ``processes > 1`` runs them in parallel (summaries only: ``keep`` needs one process,
    as full DataFrames are too big to send back for nothing).
    """
    if replications < 1:
        raise ValueError("at least one replication")
    start = scenario.seed if first_seed is None else first_seed
    seeds = list(range(start, start + replications))
    results: List[Result] = []
    if processes > 1 and not keep and _picklable(scenario):
        # No more processes than runs: each would start (and import pandas) for nothing.
        with ProcessPoolExecutor(max_workers=min(processes, replications)) as pool:
            summaries = list(pool.map(_summary_only, [(scenario, s) for s in seeds]))
    else:
        summaries = []
        for seed in seeds:
            result = simulate(scenario, seed)
            summaries.append(result.summary)
            if keep:
                results.append(result)
    runs = pd.DataFrame(summaries, index=pd.Index(seeds, name="seed"))
    return Replications(scenario, seeds, runs, results)


def _picklable(scenario: Scenario) -> bool:
    # A scenario with a rate *function* (a lambda) cannot go to another process.
    try:
        pickle.dumps(scenario)
        return True
    except Exception:
        return False
