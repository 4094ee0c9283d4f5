"""The queue's metrics in the Prometheus text format (``GET /metrics``), by prometheus_client.

What a scraper gets, every name prefixed ``queue_``:

* ``queue_tasks{status}``: the tasks in each status now (a gauge, counted
  by the store at each scrape);
* ``queue_tasks_submitted_total{type}``, ``queue_tasks_completed_total{type}``,
  ``queue_attempts_failed_total{type}`` (each failed attempt, retried or
  not) and ``queue_tasks_dead_lettered_total{type}`` (a last failure, or a
  last attempt whose lease ran out);
* ``queue_attempts_total{type}``: tasks handed to a worker, one per claim;
  ``queue_attempts_given_back_total{type}``: those a worker gave back before
  starting them (a worker stopping with prefetched tasks), which the task's
  own ``attempts`` no longer counts: attempts begun are the difference;
* ``queue_wait_seconds`` (from ready to handed out) and
  ``queue_run_seconds`` (from handed out to reported): histograms;
* ``queue_leases_expired_total``: leases that ran out (a worker stopped or
  was too slow), and ``queue_workers_seen``: the workers heard from within
  the last lease.

Counters count what this server process has seen since it started, as
Prometheus expects (a restart starts them again; ``rate()`` copes). Each
app has its own registry: two apps in one process (the tests) count apart.
Counters are only ever moved after the commit that made them true: an
undone request counts nothing.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque
from typing import Dict, Iterable, List, Optional, Tuple

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..task import STATUSES, Task

# From a millisecond (a worker waiting in a long poll) to an hour (a queue far behind).
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)
RUN_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 2, 3, 5, 10, 30, 60, 300, 1800, 3600)


class Buckets:
    """A histogram's counts: how many values fell at or under each bound, and their sum."""

    def __init__(self, bounds: Tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative, running = [], 0
        for bound, count in zip(self.bounds + (float("inf"),), self.counts):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return HistogramMetricFamily(name, documentation, buckets=cumulative, sum_value=self.sum)


class QueueMetrics:
    """What one server has seen, counted as it happens and written out by prometheus_client
    at each scrape (a custom collector: counting is a dict increment, a microsecond or
    less per task, where the library's own counters took ten)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.submitted: Counter = Counter()     # by type
        self.completed: Counter = Counter()
        self.failed: Counter = Counter()        # failed attempts
        self.dead_lettered: Counter = Counter()
        self.attempts: Counter = Counter()
        self.given_back: Counter = Counter()
        self.wait = Buckets(WAIT_BUCKETS)
        self.run = Buckets(RUN_BUCKETS)
        self.leases_expired = 0
        self.recent = RecentActivity()  # the dashboard's throughput and mean wait
        self._counts: Dict[str, int] = {}
        self._workers = 0
        self.registry = CollectorRegistry()
        self.registry.register(self)

    # -- what happened (after its commit) ------------------------------------------------

    def on_submitted(self, tasks: Iterable[Task]) -> None:
        for task in tasks:
            self.submitted[task.type] += 1

    # A few microseconds per task would be a few percent of the server's time per task:
    # these loops are written for speed, and count a batch's tasks at once where they can.

    def on_claimed(self, tasks: List[Task]) -> None:
        """``tasks`` were handed to one worker, by one claim."""
        if not tasks:
            return
        attempts, observe, total = self.attempts, self.wait.observe, 0.0
        for task in tasks:
            attempts[task.type] += 1
            ready = task.created_at if task.created_at > task.execute_at else task.execute_at
            wait = task.claimed_at - ready
            wait = wait if wait > 0.0 else 0.0
            observe(wait)
            total += wait
        self.recent.claimed(tasks[0].claimed_at, len(tasks), total)

    def on_reported(self, reports: List[Tuple[Task, bool]]) -> None:
        """Workers reported these attempts: each task as it is after the report, and
        whether the attempt succeeded."""
        completed, failed, observe, done, at = self.completed, self.failed, self.run.observe, 0, 0.0
        for task, ok in reports:
            if ok:
                completed[task.type] += 1
                done, at = done + 1, task.updated_at
            else:
                failed[task.type] += 1
            if task.claimed_at is not None:
                ran = task.updated_at - task.claimed_at
                observe(ran if ran > 0.0 else 0.0)
        if done:
            self.recent.completed(at, done)

    def on_given_back(self, task: Task) -> None:
        """A worker gave ``task`` back unstarted: its claim was no attempt after all."""
        self.given_back[task.type] += 1

    def on_dead_letter(self, task: Task) -> None:
        self.dead_lettered[task.type] += 1

    def on_lease_expired(self, task: Task) -> None:
        self.leases_expired += 1

    # -- a scrape ---------------------------------------------------------------------------

    def render(self, counts: Dict[str, int], workers: int) -> bytes:
        """The text a scraper reads, with the store's ``counts`` per status (``stats``)."""
        self._counts, self._workers = counts, workers
        return generate_latest(self.registry)

    def collect(self):
        """prometheus_client's collector protocol: every metric, as it stands."""
        tasks = GaugeMetricFamily("queue_tasks", "Tasks in each status now", labels=["status"])
        for status in STATUSES:
            tasks.add_metric([status], self._counts.get(status, 0))
        yield tasks
        for name, documentation, by_type in (
                ("queue_tasks_submitted", "Tasks submitted", self.submitted),
                ("queue_tasks_completed", "Tasks completed", self.completed),
                ("queue_attempts_failed", "Attempts that failed (retried or not)", self.failed),
                ("queue_tasks_dead_lettered", "Tasks sent to the dead letter",
                 self.dead_lettered),
                ("queue_attempts", "Tasks handed to a worker, one per claim", self.attempts),
                ("queue_attempts_given_back", "Claims given back unstarted: no attempt",
                 self.given_back)):
            family = CounterMetricFamily(name, documentation, labels=["type"])
            for type_, value in sorted(by_type.items()):
                family.add_metric([type_], value)
            yield family
        yield self.wait.family("queue_wait_seconds", "From ready to handed to a worker")
        yield self.run.family("queue_run_seconds", "From handed out to reported, per attempt")
        yield CounterMetricFamily("queue_leases_expired", "Leases that ran out",
                                  value=self.leases_expired)
        yield GaugeMetricFamily("queue_workers_seen", "Workers heard from within the last lease",
                                value=self._workers)


class RecentActivity:
    """Completions, claims and their waits, per second of the queue's clock, for the last
    ``keep`` seconds: the dashboard's throughput and mean wait over its window, at a cost
    that does not grow with the traffic (one bucket a second)."""

    def __init__(self, keep: float = 600.0):
        self.keep = keep
        self._seconds: deque = deque()  # [second, completed, claims, wait sum], in order

    def _bucket(self, at: float) -> list:
        second = int(at)
        seconds = self._seconds
        if seconds and seconds[-1][0] == second:
            return seconds[-1]
        # A late event: stamped in the store thread before the last one counted, but its
        # request finished after (requests share commits and end in any order).
        if seconds and seconds[-1][0] > second:
            for bucket in reversed(seconds):
                if bucket[0] <= second:
                    return bucket
            return seconds[0]
        seconds.append([second, 0, 0, 0.0])
        while seconds[-1][0] - seconds[0][0] > self.keep:
            seconds.popleft()
        return seconds[-1]

    def completed(self, at: float, count: int = 1) -> None:
        self._bucket(at)[1] += count

    def claimed(self, at: float, count: int, waits: float) -> None:
        """``count`` claims at ``at`` that waited ``waits`` seconds in all."""
        bucket = self._bucket(at)
        bucket[2] += count
        bucket[3] += waits

    def over(self, since: float, now: float) -> Tuple[Optional[float], Optional[float]]:
        """(completions per second, mean wait in seconds) from ``since`` to ``now``; None
        for a rate over no time, or a mean over no claim."""
        completed = claims = 0
        wait = 0.0
        for second, done, claimed, waited in self._seconds:
            if since <= second + 1 and second <= now:
                completed, claims, wait = completed + done, claims + claimed, wait + waited
        span = now - since
        return (completed / span if span > 0 else None, wait / claims if claims else None)
