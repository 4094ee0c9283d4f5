"""Replications: run the same scenario with several seeds, and say how sure we are.

One simulated day is one roll of the dice: a lucky day has short queues.
To report "the mean wait is 1.08 s" honestly we run R independent days
(seeds), take the mean of each figure over the R runs, and give a 95%
confidence interval. If the model is right, the interval contains the true
value in 95 experiments out of 100.

Two kinds of interval, and neither leaves the figure's range (a wait is
never negative, a fraction never above 1; ``summary.figure_range``):

* Means, rates and fractions: Student's t, mean +- t(0.975, R-1) * s / sqrt(R),
  where s is the standard deviation across runs, then cut to the figure's
  range. The cut never loses the truth: the true value lies in the range, so
  the cut interval holds it exactly when the uncut one did, and the coverage
  stays 95%. (Without it, the spike's dead-letter fraction, zero in most
  runs, would get an interval reaching below 0.)
* Quantiles (p50, p95, p99 wait): a bootstrap. One run's median wait is
  often exactly 0 (most tasks found a free worker) and sometimes a fraction
  of a second, so the R values are lumpy, and the t interval, which assumes
  their mean is near normal, reached below zero: [-0.017, 0.116] s for the
  spike's median wait. The bootstrap draws R runs with replacement from the
  R we have, B = 2000 times, and keeps the middle of those draws' means. A
  mean of observed values lies between the smallest and the largest of
  them, so the interval stays in the range. The plain percentile bootstrap
  (the middle 95%) is too narrow with few runs (about 91% coverage for 10
  normal values), so this is Hesterberg's *expanded* percentile interval:
  the middle 1 - 2 Phi(-sqrt(R / (R-1)) t(0.975, R-1)) of the draws, 98.3%
  for R = 10, which covers as t does on normal values (T. C. Hesterberg,
  "What teachers should know about the bootstrap", *The American
  Statistician* 69(4), 2015). Its generator is seeded: the same runs give
  the same interval. No interval is trustworthy for a figure that is 0 in
  most of 10 runs: on values that were 0 seven times in ten, t and this
  bootstrap held the truth only about 80% of the time (400 trials). Give
  quantiles 20 or more replications before relying on them.

The runs are independent, so they may go to parallel processes
(``processes=2``): each returns only its summary, a few numbers.
"""

from __future__ import annotations

import math
import pickle
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from statistics import NormalDist
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from .model import Result, simulate
from .scenario import Scenario
from .summary import FIGURES, QUANTILES, figure_range

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


def confidence_interval(values, level_t: Optional[float] = None,
                        bounds: Tuple[float, float] = (-math.inf, math.inf)) -> Dict[str, float]:
    """Mean and 95% t interval of independent replication values (NaNs ignored), cut to
    ``bounds``. ``half_width`` is half the interval's width (the cut makes it lopsided)."""
    x = _finite(values)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    if n < 2:  # one run: no spread, no interval
        return _row(mean, math.nan, math.nan, n)
    half = (level_t or t975(n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return _row(mean, max(mean - half, bounds[0]), min(mean + half, bounds[1]), n)


BOOTSTRAP_DRAWS = 2000
BOOTSTRAP_SEED = 20240601  # any fixed number: the same runs must give the same interval


def bootstrap_interval(values, draws: int = BOOTSTRAP_DRAWS,
                       seed: int = BOOTSTRAP_SEED) -> Dict[str, float]:
    """Mean and 95% expanded-percentile bootstrap interval of replication values (NaNs ignored).

    ``draws`` resamples of the n values with replacement; the interval runs between the
    alpha and 1 - alpha quantiles of their means, with alpha = Phi(-sqrt(n / (n-1))
    t(0.975, n-1)) (Hesterberg 2015) instead of 2.5%, which is too narrow for small n.
    It lies within the values' own [min, max]. The generator is seeded.
    """
    x = _finite(values)
    n = len(x)
    if n < 2:
        return _row(float(x.mean()) if n else math.nan, math.nan, math.nan, n)
    alpha = NormalDist().cdf(-math.sqrt(n / (n - 1)) * t975(n - 1))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(draws, n))].mean(axis=1)
    low, high = np.percentile(means, [100 * alpha, 100 * (1 - alpha)])
    return _row(float(x.mean()), float(low), float(high), n)


def figure_interval(name: str, values) -> Dict[str, float]:
    """The 95% interval that suits the figure ``name`` (see the module's doc)."""
    if name in QUANTILES:
        return bootstrap_interval(values)
    return confidence_interval(values, bounds=figure_range(name))


def _finite(values) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[~np.isnan(x)]


def _row(mean: float, low: float, high: float, n: int) -> Dict[str, float]:
    return {"mean": mean, "half_width": (high - low) / 2, "low": low, "high": high, "n": n}


@dataclass
class Replications:
    scenario: Scenario
    seeds: List[int]
    runs: pd.DataFrame           # one row per seed, one column per summary figure
    results: List[Result]        # the full runs, when asked to keep them

    def ci(self) -> pd.DataFrame:
        """Each summary figure: mean, half-width and bounds of its 95% interval, and its unit.

        The interval suits the figure (``figure_interval``): it may be lopsided around the
        mean, so draw it from ``low`` and ``high``; ``half_width`` is half its width."""
        rows = {name: figure_interval(name, self.runs[name]) for name in FIGURES if name in self.runs}
        frame = pd.DataFrame(rows).T
        frame["unit"] = [FIGURES[name] for name in frame.index]
        return frame

    def contains(self, figure: str, value: float) -> bool:
        row = figure_interval(figure, self.runs[figure])
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
