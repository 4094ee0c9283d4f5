"""The summary: a run's records boiled down to the figures a manager asks for.

A shop's end-of-day report does not list every customer; it says how many
were served per hour, how long they waited (on average, and for the
unluckiest 5% and 1%), how busy the staff were, how many gave up. The
first minutes of the day are left out (the *warm-up*): the shop opened
empty, which is not its usual state.

Time averages (queue length, utilisation) are exact integrals computed
from each task's and attempt's intervals clipped to the observation window
[warm-up, end], not samples.

What each figure counts (``FIGURES`` lists them with their units; "in the
window" means after the warm-up):

* ``arrival_rate``: tasks created in the window per second, refused ones
  included; ``throughput``: tasks *completed* in the window per second (the
  useful work); ``departure_rate``: tasks that *left* in the window per
  second, completed or dead-lettered. Refused tasks never enter, so they are
  no departure.
* Little's law, L = lambda W, holds with ``mean_in_system`` (L),
  ``mean_time_in_system`` (W, dead-lettered tasks included) and
  ``departure_rate`` (lambda): in a stable run tasks leave as fast as they
  are admitted. ``throughput`` leaves out the dead-lettered tasks, which were
  in the system too, so it is too small for Little; ``arrival_rate`` counts
  refused tasks, which never were.
* ``attempt_rate``: attempts started in the window per second (retries and
  attempts cut short by a crash included): the load the workers see.
* ``p_wait``: the probability that a task waits at all, P(wait > 0), which
  Erlang C predicts: among tasks created in the window, admitted, and due
  (past their ``execute_at``) before the run ended, the share whose first
  attempt did not start the moment it was due (``first_wait`` above 1 ns),
  or had not started when the run ended.
* Waits (``mean_wait``, the p50/p95/p99 quantiles, ``mean_wait_high``,
  ``_normal`` and ``_low`` per priority): a task's whole wait, from when it
  was due to its end, less its time in service (retries and backoff
  included), over tasks created in the window that completed or went to
  the dead letter. A priority with no such task has NaN.
* Waits per attempt: ``mean_first_wait``, the mean wait before attempt 1
  (the queue alone: what Erlang C, Pollaczek-Khinchine and Cobham predict),
  over the same tasks; ``mean_retry_wait``, the mean wait before a retry
  (attempt 2, 3...), from the end of the attempt before to the start of
  this one: backoff, queueing again and, after a crash, the rest of the
  lease. NaN when no task was retried.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import pandas as pd

from .scenario import Scenario

# The figures, in the order reports print them, with their units.
FIGURES = {
    "arrival_rate": "tasks/s",
    "throughput": "tasks/s",
    "departure_rate": "tasks/s",
    "attempt_rate": "attempts/s",
    "p_wait": "fraction",
    "mean_wait": "s",
    "mean_first_wait": "s",
    "mean_retry_wait": "s",
    "mean_wait_high": "s",
    "mean_wait_normal": "s",
    "mean_wait_low": "s",
    "p50_wait": "s",
    "p95_wait": "s",
    "p99_wait": "s",
    "mean_time_in_system": "s",
    "utilisation": "fraction",
    "mean_queue_length": "tasks",
    "mean_in_system": "tasks",
    "mean_attempts": "attempts/task",
    "dead_letter_fraction": "fraction",
    "refused_fraction": "fraction",
    "refused": "tasks",
}

# Figures that are quantiles of one run's waits, not means: their spread over
# replications is lumpy (often a run of zeros), so intervals treat them apart.
QUANTILES = ("p50_wait", "p95_wait", "p99_wait")

# A first attempt that starts this close after the task fell due did not wait: a worker
# woken by a timer starts at the timer's float sum, which may differ from execute_at by
# a rounding error.
NO_WAIT = 1e-9


def figure_range(name: str) -> Tuple[float, float]:
    """The values a figure can take: [0, 1] for a fraction, [1, inf) for attempts per
    task, [0, inf) for every other (rates, seconds, counts). Intervals stay inside it."""
    unit = FIGURES[name]
    if unit == "fraction":
        return 0.0, 1.0
    if unit == "attempts/task":
        return 1.0, float("inf")
    return 0.0, float("inf")


def overlap(start: np.ndarray, end: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Length of each interval [start, end] inside the window [lo, hi]."""
    return np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0.0, None)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def _retry_waits(tasks: pd.DataFrame, keep: np.ndarray) -> np.ndarray:
    """The gap before each retry of a task in ``keep`` (a mask over task rows): the start of
    attempt k >= 2 less the end of attempt k - 1, from the tasks' ``start_k``/``end_k``
    columns (the records already put each task's attempts in order there)."""
    gaps = []
    k = 2
    while f"start_{k}" in tasks:
        gap = tasks[f"start_{k}"].to_numpy()[keep] - tasks[f"end_{k - 1}"].to_numpy()[keep]
        gaps.append(gap[~np.isnan(gap)])  # NaN: the task had no attempt k
        k += 1
    return np.concatenate(gaps) if gaps else np.empty(0)


def summarise(scenario: Scenario, tasks: pd.DataFrame, attempts: pd.DataFrame,
              end: float) -> Dict[str, float]:
    lo = min(scenario.warmup, end)
    span = end - lo
    created = tasks["created"].to_numpy()
    finished = tasks["finished"].to_numpy()
    ready = tasks["ready"].to_numpy()
    # Compared as a categorical column (on its integer codes), not as an array of strings.
    status = tasks["status"]
    is_completed = (status == "completed").to_numpy()
    is_dead = (status == "dead_letter").to_numpy()
    is_refused = (status == "refused").to_numpy()
    in_window = created >= lo
    done = in_window & (is_completed | is_dead)
    wait = tasks["wait"].to_numpy()[done]
    completed = is_completed & (finished >= lo)
    departed = (is_completed | is_dead) & (finished >= lo)
    starts = attempts["start"].to_numpy()
    busy = overlap(starts, attempts["end"].to_numpy(), lo, end).sum()
    # A task is in the system from its creation until it finishes (or the run ends).
    until = np.where(np.isnan(finished), end, finished)
    present = overlap(created, until, lo, end).sum()
    # Waiting: due (past the execute_at it was submitted with) and not being served, so
    # time spent in a retry's backoff counts here too (the time series' "queue_length"
    # counts pending tasks only, and reads lower when tasks are retried).
    due = overlap(ready, until, lo, end).sum()
    ended = int(done.sum())
    refused = int((is_refused & in_window).sum())
    n_window = int(in_window.sum())
    # P(wait > 0): admitted tasks due before the end; one not started by then has waited.
    first_wait = tasks["first_wait"].to_numpy()
    asked = in_window & ~is_refused & (ready <= end)
    waited = np.isnan(first_wait[asked]) | (first_wait[asked] > NO_WAIT)
    priority = tasks["priority"].cat.codes.to_numpy()[done]

    def pct(q):
        return float(np.percentile(wait, q)) if len(wait) else float("nan")

    def per_second(amount):
        # A count per second of the window, or an integral over it (task-seconds) as a
        # time average.
        return amount / span if span else float("nan")

    summary = {
        "arrival_rate": per_second(n_window),
        "throughput": per_second(completed.sum()),
        "departure_rate": per_second(departed.sum()),
        "attempt_rate": per_second(((starts >= lo) & (starts <= end)).sum()),
        "p_wait": _mean(waited),
        "mean_wait": _mean(wait),
        "mean_first_wait": _mean(first_wait[done]),
        "mean_retry_wait": _mean(_retry_waits(tasks, done)),
        "p50_wait": pct(50),
        "p95_wait": pct(95),
        "p99_wait": pct(99),
        "mean_time_in_system": _mean(tasks["time_in_system"].to_numpy()[done]),
        "utilisation": busy / (scenario.workers * span) if span else float("nan"),
        "mean_queue_length": per_second(due - busy),
        "mean_in_system": per_second(present),
        "mean_attempts": _mean(tasks["attempts"].to_numpy()[done]),
        "dead_letter_fraction": float((is_dead & in_window).sum() / ended)
        if ended else float("nan"),
        "refused_fraction": refused / n_window if n_window else float("nan"),
        "refused": float(refused),
    }
    # One figure per priority the records know (high, normal, low), NaN when none ended.
    for code, name in enumerate(tasks["priority"].cat.categories):
        summary[f"mean_wait_{name}"] = _mean(wait[priority == code])
    # Whole-run counts (not windowed): the conservation check reads these.
    summary.update({
        "created": float(len(tasks)),
        "completed": float(is_completed.sum()),
        "dead_letter": float(is_dead.sum()),
        "refused_total": float(is_refused.sum()),
        "in_system_at_end": float(len(tasks) - is_completed.sum() - is_dead.sum() - is_refused.sum()),
        "end": float(end),
    })
    return {key: float(value) for key, value in summary.items()}
