"""Predict, then verify: a live run's figures held against the simulation's prediction.

The simulation is run R times (seeds), which gives, for each summary
figure, where one more run should fall: the 95% *prediction* interval,
mean +- t(0.975, R-1) * s * sqrt(1 + 1/R), cut to the figure's range (a
wait is never negative). It is wider than the confidence interval of the
mean (``replications``), which says where the *average* of many runs lies;
a live run is one run, so it is judged by the prediction interval.

A figure that hardly varies between runs (the throughput of a steady hour)
has an interval so narrow that any systematic cost the model leaves out
would put the live value outside; there a live value within ``TOLERANCE``
(10%) of the simulated mean also agrees. Every other difference is worth
reading: the HTTP round trip of a claim, the heartbeats, a commit, a
process that takes time to start again are costs the model does not have,
unless it is told (``calibrate``).
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import pandas as pd

from .replications import t975
from .summary import FIGURES, figure_range

TOLERANCE = 0.10  # a live value this close to the simulated mean agrees, however narrow the interval
INSIDE, CLOSE, OUTSIDE, UNDEFINED = "inside", f"within {TOLERANCE:.0%}", "outside", "n/a"


def prediction_interval(values: Iterable[float], bounds=(-math.inf, math.inf)) -> Dict[str, float]:
    """Mean and 95% prediction interval of one more value like ``values`` (NaNs ignored)."""
    x = np.asarray(list(values), dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    mean = float(x.mean())
    if n == 1:
        return {"mean": mean, "low": math.nan, "high": math.nan, "n": 1}
    half = t975(n - 1) * float(x.std(ddof=1)) * math.sqrt(1 + 1 / n)
    low, high = bounds
    return {"mean": mean, "low": max(mean - half, low), "high": min(mean + half, high), "n": n}


def verdict(live: float, row: Dict[str, float], tolerance: float = TOLERANCE) -> str:
    """Does ``live`` agree with the prediction ``row`` (mean, low, high)?"""
    mean, low, high = row["mean"], row["low"], row["high"]
    if any(math.isnan(v) for v in (live, mean, low, high)):
        return UNDEFINED
    if low <= live <= high:
        return INSIDE
    narrow = (high - low) / 2 < tolerance * abs(mean)
    if narrow and abs(live - mean) <= tolerance * abs(mean):
        return CLOSE
    return OUTSIDE


def compare(live: Dict[str, float], runs: pd.DataFrame,
            figures: Sequence[str] = tuple(FIGURES)) -> pd.DataFrame:
    """One row per figure: the simulation's mean and prediction interval over ``runs``
    (one row per replication), the live value, their relative difference, the verdict."""
    rows = {}
    for name in figures:
        if name not in runs or name not in live:
            continue
        row = prediction_interval(runs[name], figure_range(name))
        value = float(live[name])
        difference = (value - row["mean"]) / abs(row["mean"]) if row["mean"] else math.nan
        rows[name] = {"simulated": row["mean"], "low": row["low"], "high": row["high"],
                      "live": value, "difference": difference,
                      "verdict": verdict(value, row), "unit": FIGURES[name]}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    for column in ("simulated", "low", "high", "live", "difference"):
        if column in frame:
            frame[column] = frame[column].astype(float)
    frame.index.name = "figure"
    return frame


def format_comparison(frame: pd.DataFrame) -> List[str]:
    """The comparison as lines of text, one per figure."""
    lines = [f"{'figure':<22}{'simulated':>11}{'95% prediction':>24}{'live':>11}"
             f"{'diff':>8}  verdict"]
    for name, row in frame.iterrows():
        interval = ("" if math.isnan(row["low"]) else f"[{row['low']:.4g}, {row['high']:.4g}]")
        diff = "" if math.isnan(row["difference"]) else f"{row['difference']:+.0%}"
        lines.append(f"{name:<22}{row['simulated']:>11.4g}{interval:>24}{row['live']:>11.4g}"
                     f"{diff:>8}  {row['verdict']}")
    return lines


def smoothed(timeseries: pd.DataFrame, column: str, window: float) -> np.ndarray:
    """``column`` averaged over the ``window`` seconds up to each sample: the queue's
    state at an instant jumps by whole tasks; its average over a minute has a shape."""
    times = timeseries["time"].to_numpy()
    step = float(np.median(np.diff(times))) if len(times) > 1 else window
    samples = max(1, int(round(window / step))) if step > 0 else 1
    return timeseries[column].rolling(samples, min_periods=1).mean().to_numpy()


def band(timeseries: Sequence[pd.DataFrame], column: str, window: float,
         quantiles=(0.025, 0.5, 0.975)) -> Optional[pd.DataFrame]:
    """Per sample time, the quantiles of ``column`` (``smoothed`` over ``window`` s)
    over simulated runs sampled alike."""
    if not timeseries:
        return None
    length = min(len(ts) for ts in timeseries)
    values = np.vstack([smoothed(ts, column, window)[:length] for ts in timeseries])
    frame = pd.DataFrame({"time": timeseries[0]["time"].to_numpy()[:length]})
    for q in quantiles:
        frame[f"q{q:g}"] = np.quantile(values, q, axis=0)
    return frame


def plot_comparison(live, simulated: Sequence, path: Optional[str] = None):
    """Queue length and busy workers over time, each averaged over a thirtieth of the
    run: the simulation's 95% band (over its runs, ``Result`` objects) behind the live
    run's line. Written to ``path``, or returned as a figure."""
    import matplotlib.pyplot as plt
    if path is not None:
        plt.switch_backend("Agg")  # a file: no screen needed

    series = [r.timeseries for r in simulated]
    window = live.scenario.duration / 30  # two minutes of an hour
    fig, axes = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for ax, column, label in zip(axes, ("queue_length", "busy_workers"),
                                 ("tasks waiting", "busy workers")):
        b = band(series, column, window)
        if b is not None:
            minutes = b["time"] / 60
            ax.fill_between(minutes, b["q0.025"], b["q0.975"], color="tab:blue", alpha=0.25,
                            label=f"simulation, 95% of {len(series)} runs")
            ax.plot(minutes, b["q0.5"], color="tab:blue", lw=1, label="simulation, median")
        ax.plot(live.timeseries["time"] / 60, smoothed(live.timeseries, column, window),
                color="tab:red", lw=1.5, label="live run")
        ax.set_ylabel(f"{label}\n(mean over {window:g} s)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8)
    axes[-1].set_xlabel("scenario time (minutes)")
    fig.suptitle(f"'{live.scenario.name}': prediction and live run")
    fig.tight_layout()
    if path is None:
        return fig  # for a notebook to show
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def claim_round_trip(result) -> float:
    """The median time, in the run's own (scenario) seconds, from a worker's end of one
    attempt to its start of the next when that next task was already due: the report and
    the claim's round trip, which the model calls ``claim_seconds``. NaN if never seen."""
    attempts = result.attempts.sort_values(["worker", "start"], kind="stable")
    ready = result.tasks["ready"].to_numpy()
    gaps = []
    for _, mine in attempts.groupby("worker", sort=False):
        ends = mine["end"].to_numpy()[:-1]
        starts = mine["start"].to_numpy()[1:]
        finished = mine["outcome"].isin(["completed", "failed"]).to_numpy()[:-1]
        waiting = ready[mine["task"].to_numpy()[1:]] <= ends
        keep = finished & waiting & (starts >= ends)
        gaps.append(starts[keep] - ends[keep])
    gaps = np.concatenate(gaps) if gaps else np.array([])
    return float(np.median(gaps)) if len(gaps) else math.nan
