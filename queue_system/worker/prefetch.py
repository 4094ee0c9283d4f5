"""How many tasks a worker claims at once: enough to stream short tasks, one for long ones.

Each claim costs a round trip, so a worker that claims one task at a time
spends most of its time waiting on the network when its tasks take
microseconds. Claiming many at once fixes that, but a task claimed and not
yet started waits in this worker while another worker might be idle: for
the lesson's 1 to 3 s tasks, holding even one extra would make it wait
seconds for nothing.

The rule (``--prefetch auto``, the default): hold at most ``budget``
seconds of work not yet started. The worker keeps a running mean of how
long its tasks take (an exponentially weighted mean, so it follows a change
of workload within a few dozen tasks), and claims::

    1 + floor(budget / mean duration)     tasks, at most ``cap``

It starts the first of them at once; the last waits about ``budget``
seconds at most. With the default 100 ms budget, tasks of 1 ms are claimed
100 at a time (the cap, the server's default --max-claim), tasks of 30 ms 4
at a time, tasks of 60 ms 2 at a time, and anything longer than 100 ms one
at a time. Before any task has run, it claims one. A fixed number
(``--prefetch 10``) is used as is.

The rule knows only the past: after a run of short tasks, one claim may
take long ones too, and they wait in this worker (its heartbeats keep their
leases) while the mean catches up. And a worker that dies holding tasks it
had not started costs each of them an attempt, as any expired lease does:
the budget keeps that to about 100 ms of work.

The simulation's workers follow the same rule (``sim/model.py``), so its
predictions hold for the live workers.
"""

from __future__ import annotations

from typing import Optional

DEFAULT_BUDGET = 0.1  # seconds of claimed, unstarted work a worker may hold
DEFAULT_CAP = 100     # the server's default --max-claim
SMOOTHING = 0.2       # weight of the newest duration in the running mean


class Prefetch:
    """``size()`` tasks to claim next; ``observe(seconds)`` after each task runs."""

    def __init__(self, fixed: Optional[int] = None, budget: float = DEFAULT_BUDGET,
                 cap: int = DEFAULT_CAP):
        if fixed is not None and fixed < 1:
            raise ValueError("a fixed prefetch must be at least 1")
        if not budget >= 0 or cap < 1:
            raise ValueError("the budget must be zero or more and the cap at least 1")
        self.fixed = fixed
        self.budget = budget
        self.cap = cap
        self.mean: Optional[float] = None  # running mean of task durations, seconds

    @property
    def adaptive(self) -> bool:
        return self.fixed is None

    def observe(self, seconds: float) -> None:
        mean = self.mean
        self.mean = seconds if mean is None else mean + SMOOTHING * (seconds - mean)

    def size(self) -> int:
        if self.fixed is not None:
            return self.fixed
        mean = self.mean
        if mean is None:
            return 1
        if mean <= 0:
            return self.cap
        return max(1, min(self.cap, 1 + int(self.budget / mean)))

    def __repr__(self) -> str:
        return str(self.fixed) if self.fixed is not None else f"auto ({self.budget * 1000:g} ms)"
