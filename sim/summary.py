"""The summary: a run's records boiled down to the figures a manager asks for.

A shop's end-of-day report does not list every customer; it says how many
were served per hour, how long they waited (on average, and for the
unluckiest 5% and 1%), how busy the staff were, how many gave up. The
first minutes of the day are left out (the *warm-up*): the shop opened
empty, which is not its usual state.

Time averages (queue length, utilisation) are exact integrals computed
from each task's and attempt's intervals clipped to the observation window
[warm-up, end], not samples.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import pandas as pd

from .scenario import Scenario

# The figures, in the order reports print them, with their units.
FIGURES = {
    "arrival_rate": "tasks/s",
    "throughput": "tasks/s",
    "mean_wait": "s",
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


def overlap(start: np.ndarray, end: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Length of each interval [start, end] inside the window [lo, hi]."""
    return np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0.0, None)


def summarise(scenario: Scenario, tasks: pd.DataFrame, attempts: pd.DataFrame,
              end: float) -> Dict[str, float]:
    lo = min(scenario.warmup, end)
    span = end - lo
    created = tasks["created"].to_numpy()
    finished = tasks["finished"].to_numpy()
    # Compared as a categorical column (on its integer codes), not as an array of strings.
    status = tasks["status"]
    is_completed = (status == "completed").to_numpy()
    is_dead = (status == "dead_letter").to_numpy()
    is_refused = (status == "refused").to_numpy()
    in_window = created >= lo
    done = in_window & (is_completed | is_dead)
    wait = tasks["wait"].to_numpy()[done]
    completed = is_completed & (finished >= lo)
    busy = overlap(attempts["start"].to_numpy(), attempts["end"].to_numpy(), lo, end).sum()
    # A task is in the system from its creation until it finishes (or the run ends).
    until = np.where(np.isnan(finished), end, finished)
    present = overlap(created, until, lo, end).sum()
    # Waiting in the queue: due (past its execute_at) but not being served.
    due = overlap(tasks["ready"].to_numpy(), until, lo, end).sum()
    ended = int(done.sum())
    refused = int((is_refused & in_window).sum())
    n_window = int(in_window.sum())

    def pct(q):
        return float(np.percentile(wait, q)) if len(wait) else float("nan")

    summary = {
        "arrival_rate": n_window / span if span else float("nan"),
        "throughput": completed.sum() / span if span else float("nan"),
        "mean_wait": float(wait.mean()) if len(wait) else float("nan"),
        "p50_wait": pct(50),
        "p95_wait": pct(95),
        "p99_wait": pct(99),
        "mean_time_in_system": float(tasks["time_in_system"].to_numpy()[done].mean())
        if done.any() else float("nan"),
        "utilisation": busy / (scenario.workers * span) if span else float("nan"),
        "mean_queue_length": (due - busy) / span if span else float("nan"),
        "mean_in_system": present / span if span else float("nan"),
        "mean_attempts": float(tasks["attempts"].to_numpy()[done].mean()) if done.any() else float("nan"),
        "dead_letter_fraction": float((is_dead & in_window).sum() / ended)
        if ended else float("nan"),
        "refused_fraction": refused / n_window if n_window else float("nan"),
        "refused": float(refused),
    }
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
