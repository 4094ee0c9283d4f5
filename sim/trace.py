"""What-if from a trace: a run that happened becomes a scenario to run again and change.

The other direction of predict-then-verify. A class has just produced some
traffic (a live run, or a simulated one); ``python -m sim run --trace DIR``
asks of it "what if we had six workers, or a shorter lease?". The trace is
what ``sim live --csv DIR`` and ``sim run --csv DIR`` write: ``tasks.csv``
and ``attempts.csv``, the simulation's own records, so a live trace and a
simulated one read alike (and ``scenario.json``, when ``sim live`` wrote
it, for the queue's settings).

From the trace, the scenario takes:

* **arrivals, as recorded**: each task kind (a type and a priority) becomes a
  producer that sends its tasks at the recorded times, so the same tasks
  arrive in the same order;
* **service times, fitted** per kind from the attempts that ran to their
  end (completed or failed): a fixed time if they hardly vary, a uniform
  with the same mean and spread if they vary less than an exponential
  does (squared coefficient of variation under 1/2), else an exponential
  with their mean;
* **delays** (``execute_at`` ahead of submission), fitted the same way per kind;
* **the failure probability**: failed attempts over attempts that ran to
  their end;
* **the number of workers**: those seen in the attempts.

Everything else (lease, backoff, retries, capacity, crashes) comes from
the base scenario: ``scenario.json`` in the trace's folder, or the one
named with ``--scenario`` / ``--config``; a what-if then changes any of it.
"""

from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np
import pandas as pd

from .arrivals import Arrivals
from .distributions import Dist
from .scenario import Producer, Scenario, TaskKind

UNIFORM_BELOW_SCV = 0.5  # a uniform's squared coefficient of variation is at most 1/3
FIXED_BELOW_SCV = 1e-6


def fit_duration(values) -> Dist:
    """A duration distribution with the mean and spread of ``values`` (seconds)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x) & (x >= 0)]
    if len(x) == 0:
        raise ValueError("no durations to fit a distribution to")
    mean = float(x.mean())
    if mean == 0:
        return Dist.fixed(0.0)
    scv = float(x.var()) / mean ** 2 if len(x) > 1 else 0.0
    if scv < FIXED_BELOW_SCV:
        return Dist.fixed(mean)
    if scv < UNIFORM_BELOW_SCV:
        half = math.sqrt(3 * scv) * mean  # a uniform [m - h, m + h] has variance h**2 / 3
        return Dist.uniform(max(mean - half, 0.0), mean + half)
    return Dist.exponential(mean)


def read_trace(folder: str) -> tuple:
    """(tasks, attempts, base scenario or None, the run's end or None) from a folder
    written with ``--csv``."""
    paths = {name: os.path.join(folder, f"{name}.csv") for name in ("tasks", "attempts")}
    missing = [p for p in paths.values() if not os.path.exists(p)]
    if missing:
        raise ValueError(f"{folder}: not a trace, {', '.join(map(os.path.basename, missing))} "
                         "missing (write one with sim live --csv DIR or sim run --csv DIR)")
    tasks = pd.read_csv(paths["tasks"], index_col="task")
    attempts = pd.read_csv(paths["attempts"])
    for frame, columns, name in ((tasks, ("type", "priority", "created", "ready", "status"),
                                  "tasks.csv"),
                                 (attempts, ("task", "worker", "start", "end", "outcome"),
                                  "attempts.csv")):
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise ValueError(f"{folder}/{name}: no column {', '.join(absent)}")
    scenario_path = os.path.join(folder, "scenario.json")
    base = None
    if os.path.exists(scenario_path):
        with open(scenario_path, encoding="utf-8") as f:
            base = Scenario.from_json(f.read())
    end = None
    summary_path = os.path.join(folder, "summary.csv")
    if os.path.exists(summary_path):
        summary = pd.read_csv(summary_path)
        if "end" in summary and len(summary):
            end = float(summary["end"].iloc[0])
    return tasks, attempts, base, end


def scenario_from_trace(tasks: pd.DataFrame, attempts: pd.DataFrame,
                        base: Optional[Scenario] = None, end: Optional[float] = None
                        ) -> Scenario:
    """The scenario that plays ``tasks``' recorded arrivals again, with service times and failures
    fitted from ``attempts``; every other setting from ``base``. It lasts until ``end``
    (the recorded run's), or just past the last arrival."""
    base = base or Scenario()
    admitted = tasks[tasks["status"] != "refused"] if "status" in tasks else tasks
    if admitted.empty:
        raise ValueError("the trace holds no task to run again")
    ran = attempts[attempts["outcome"].isin(["completed", "failed"])]
    ran = ran.assign(seconds=ran["end"] - ran["start"])
    kind_of = tasks[["type", "priority"]].astype(str)
    ran = ran.join(kind_of, on="task")
    producers = []
    for (type_, priority), group in tasks.groupby(["type", "priority"], sort=False,
                                                  observed=True):
        type_, priority = str(type_), str(priority)
        mine = ran[(ran["type"] == type_) & (ran["priority"] == priority)]["seconds"]
        if mine.empty:  # none of this kind ran: borrow every kind's service
            mine = ran["seconds"]
        if mine.empty:
            raise ValueError("no attempt in the trace ran to its end: no service time to fit")
        delays = (group["ready"] - group["created"]).clip(lower=0)
        delay = Dist.fixed(0.0) if (delays == 0).all() else fit_duration(delays)
        times = tuple(float(t) for t in np.sort(group["created"].to_numpy()))
        kind = TaskKind(type_, priority, 1.0, fit_duration(mine), delay)
        producers.append(Producer(f"trace {type_} {priority}", Arrivals.recorded(times), (kind,)))
    outcomes = ran["outcome"].value_counts()
    failure_p = float(outcomes.get("failed", 0)) / len(ran)
    workers = int(attempts["worker"].nunique()) if len(attempts) else base.workers
    last = float(tasks["created"].max())
    duration = end if end is not None and end >= last else math.ceil(last) + 1.0
    return base.replace(
        name=f"trace of {base.name}",
        description=f"{len(tasks)} recorded arrivals played again; service times and failures "
                    f"fitted from {len(ran)} attempts",
        producers=tuple(producers), workers=workers, failure_p=failure_p,
        duration=duration, warmup=min(base.warmup, duration / 2), max_tasks=None)
