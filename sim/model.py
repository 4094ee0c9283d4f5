"""The model: producers, the real queue and failing workers, on SimPy's clock.

Think of a post office with a ticket machine. Customers (tasks) walk in
at random; the ticket machine is ``queue_system``'s own ``TaskQueue`` over
the memory store (``store.SimulationStore``), which decides who is served next (priority, then first
come first served), when a failed task may come back (backoff), when it
goes to the dead letter, and when an abandoned ticket is handed to someone
else (the lease). The clerks (workers) only ask the machine for the next
ticket, serve it, and report success or failure. A clerk may faint (a
crash): the ticket stays "being served" until its lease runs out, and the
queue's own sweep puts it back. Nothing of the queue's rules is written
here again: time is simply SimPy's ``env.now`` instead of the wall clock.

Why it is fast enough to simulate hours in seconds: there is no SimPy
process per task. A producer is one process (one timeout per arrival), a
worker is one process (one timeout per attempt). An idle worker parks on
its own event, and a submission wakes exactly one parked worker; a single
timer wakes idle workers at ``queue.next_wakeup()`` (a scheduled task falls
due, a lease ends), never a polling tick.
"""

from __future__ import annotations

import functools
import gc
import math
import random
from dataclasses import dataclass
from typing import Dict, List, Optional

import pandas as pd
import simpy

from queue_system.errors import QueueFull
from queue_system.lifecycle import heartbeat_every
from queue_system.queue import TaskQueue, sequential_ids
from queue_system.worker.prefetch import Prefetch

from . import records as R
from .plan import producer_arrivals
from .scenario import MAX_SAMPLES, Scenario
from .store import SimulationStore
from .summary import summarise

INF = math.inf


@dataclass
class Result:
    """One run: the scenario, the seed, the DataFrames and the summary figures."""

    scenario: Scenario
    seed: int
    end: float                  # simulated time when the run stopped
    tasks: pd.DataFrame         # one row per task
    attempts: pd.DataFrame      # one row per attempt
    timeseries: pd.DataFrame    # sampled queue length, in progress, busy workers, dead letter
    summary: Dict[str, float]   # throughput, waits, utilisation... after the warm-up


class Model:
    """Build with a scenario, then ``run()``; a model runs once."""

    def __init__(self, scenario: Scenario, seed: Optional[int] = None):
        self.scenario = sc = scenario
        self.seed = sc.seed if seed is None else seed
        self.env = env = simpy.Environment()
        # The memory store for one thread, which forgets completed tasks: the model keeps
        # its own records.
        self.store = SimulationStore()
        # The queue under test, on SimPy's clock (``getattr(env, "now")``, a lambda's frame
        # less on every queue call). Its rng draws backoff jitter.
        self.queue = TaskQueue(self.store, functools.partial(getattr, env, "now"),
                               backoff=sc.backoff,
                               lease_seconds=sc.lease_seconds,
                               rng=random.Random(self._seed("queue")),
                               make_id=sequential_ids(),
                               make_lease_id=sequential_ids("lease-"),
                               capacity=sc.capacity)  # a submit beyond: QueueFull
        self.rec = R.Recorder()
        self.kinds = sc.kinds()
        # Separate random streams for arrivals, service, failures and crashes: changing
        # the failure probability then leaves the arrival times unchanged (common
        # random numbers make scenario comparisons sharper).
        service_rng = random.Random(self._seed("service"))
        self.service = [k.service.sampler(service_rng) for k in self.kinds]
        self.fail_draw = random.Random(self._seed("failures")).random
        self.idle: List[simpy.Event] = []  # parked workers' wake-up events
        # Per worker: its name, its prefetch rule (how many tasks a claim asks for, as live),
        # and the event it is parked on, if idle.
        self.names = [f"worker-{w + 1}" for w in range(sc.workers)]
        self.prefetch = [Prefetch() for _ in range(sc.workers)]
        self.parked: List[Optional[simpy.Event]] = [None] * sc.workers
        # A task running longer than this renews its lease as it runs, as the live worker's
        # heartbeat thread does: for the lesson's tasks it never comes to that.
        self.beat = heartbeat_every(sc.lease_seconds)
        self.timer_at = INF             # when the wake-up timer rings, if armed
        # Per worker: (task, start) while serving, else None. Busy workers are counted from
        # it when sampling, rather than kept in a counter updated twice per task.
        self.current: List[Optional[tuple]] = [None] * sc.workers
        self.unstarted: List[list] = [[] for _ in range(sc.workers)]  # claimed, not started
        # Tasks held by a crashed worker: row -> (task id, the dead lease). Only the queue's
        # sweep (run inside claim) can free them, out of the workers' sight.
        self.orphans: Dict[int, tuple] = {}
        self.finished = 0               # completed + dead-lettered + refused
        self.arrivals_open = len(sc.producers)
        self.drained = env.event()
        self.ran = False

    def _seed(self, stream: str) -> str:
        # random.Random hashes a str seed with SHA-512: stable across runs and machines.
        return f"{self.seed}:{stream}"

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> Result:
        if self.ran:
            raise RuntimeError("a model runs once; build a new one for another run")
        self.ran = True
        sc, env = self.scenario, self.env
        counter = [0]  # tasks created so far by all producers (for max_tasks)
        kind_index = 0
        for i, producer in enumerate(sc.producers):
            env.process(self._producer(i, producer, kind_index, counter))
            kind_index += len(producer.mix)
        for w in range(sc.workers):
            process = env.process(self._worker(w))
            if sc.crash_rate > 0:
                env.process(self._crasher(w, process))
        every = sc.sample_every or ((sc.duration / 2000) if sc.duration else 10.0)
        env.process(self._sampler(every))
        # Python's cycle collector would walk every task the queue keeps, again and again,
        # as the run allocates: about a tenth of the run's time, to find nothing, since the
        # model makes no reference cycles per task. It is paused for the run only (the
        # collector belongs to the whole process: run models in processes, as
        # ``replications`` does, not in threads).
        collecting = gc.isenabled()
        gc.disable()
        try:
            env.run(until=sc.duration if sc.duration is not None else self.drained)
        finally:
            if collecting:
                gc.enable()
        return self._result()

    # -- producers --------------------------------------------------------------------------

    def _producer(self, index: int, producer, first_kind: int, counter: list):
        """One producer: its tasks at the times of its plan, the very plan the live runner
        submits (``plan``: same seed, same tasks), until the run's end or ``max_tasks``."""
        sc, env = self.scenario, self.env
        horizon = INF if sc.duration is None else sc.duration
        max_tasks = INF if sc.max_tasks is None else sc.max_tasks
        for t, kind, type_, priority, delay in producer_arrivals(producer, self.seed, index,
                                                                 first_kind, horizon):
            if counter[0] >= max_tasks:
                break
            yield env.timeout(t - env.now)
            if counter[0] >= max_tasks:  # another producer may have taken the last slot
                break
            counter[0] += 1
            self._submit(kind, type_, priority, delay)
        self.arrivals_open -= 1
        self._check_drained()

    def _submit(self, kind: int, type_: str, priority: str, delay) -> None:
        """A task arrives and is submitted. Its payload is its row in the records: the
        worker that serves it finds it back by it."""
        now, rec = self.env.now, self.rec
        row = len(rec.created)
        try:
            task, _ = self.queue.submit(type_, row, priority=priority, delay=delay,
                                        max_retries=self.scenario.max_retries)
        except QueueFull:
            # The queue's capacity rule said no (HTTP 503 on the live server).
            rec.task(kind, now, now, now, R.REFUSED)
            self.finished += 1
            return
        rec.task(kind, now, task.execute_at, R.NAN, R.IN_SYSTEM)
        if task.status == "scheduled":
            self._arm(task.execute_at)
        elif self.idle:
            self._wake_one()

    # -- waking idle workers ----------------------------------------------------------------

    def _wake_one(self) -> None:
        """A task is ready: the worker parked longest ago... or last: any one will do."""
        self.idle.pop().succeed()

    def _wake_all(self, _event=None) -> None:
        # Emptied in place: the processes hold a reference to this very list.
        events = self.idle[:]
        self.idle.clear()
        for event in events:
            event.succeed()

    def _arm(self, when: float) -> None:
        """Make sure idle workers look at the queue again at ``when`` (or just after)."""
        now = self.env.now
        if when <= now:
            # Nothing changes at ``now`` itself (a lease ending exactly now still holds:
            # ``lifecycle.lease_expired``): look again at the next instant.
            when = math.nextafter(now, INF)
        if when >= self.timer_at:
            return
        delay = when - now
        self.timer_at = now + delay  # the very sum SimPy computes for the event's time
        self.env.timeout(delay).callbacks.append(self._ring)

    def _ring(self, _event) -> None:
        if self.env.now != self.timer_at:
            return  # an older timer, superseded by an earlier one that has rung already
        self.timer_at = INF
        # Several scheduled tasks may have fallen due at once: let every idle worker look.
        self._wake_all()

    # -- workers ----------------------------------------------------------------------------

    def _worker(self, w: int):
        """Worker ``w``, as the live worker runs: claim as many tasks as the prefetch rule
        says, serve them in turn, report each outcome as it ends (live, it rides on the
        next claim: the same instant here, where requests take no time), and claim again.
        A crash (an interrupt) may come at any ``yield``."""
        env, unstarted = self.env, self.unstarted[w]
        claim_seconds = self.scenario.claim_seconds
        while True:
            try:
                if not self._claim(w):
                    yield self._park(w)  # until a task arrives or falls due
                    self.parked[w] = None
                    continue
                if claim_seconds:  # the claim's round trip, before the first task starts
                    yield env.timeout(claim_seconds)
            except simpy.Interrupt:
                yield from self._crashed(w)
                continue
            while unstarted:
                try:
                    task, start, duration = self._start(w)
                    if duration <= self.beat:
                        yield env.timeout(duration)
                    else:
                        task = yield from self._serve_long(w, task, start, duration)
                    self._report(w, task, start)
                except simpy.Interrupt:
                    yield from self._crashed(w)

    def _claim(self, w: int) -> bool:
        """Claim tasks for worker ``w`` into its ``unstarted`` list; False if none was ready."""
        tasks = self.queue.claim(self.names[w], None, None, self.prefetch[w].size())
        if self.orphans:
            self._settle_orphans()  # the claim swept: crashed workers' tasks may be back
        self.unstarted[w][:] = tasks
        return bool(tasks)

    def _park(self, w: int) -> simpy.Event:
        """Worker ``w`` found nothing: the event it waits on, until a submission or the
        timer (the queue's next change by itself: a task falls due, a lease ends) wakes it."""
        wakeup = self.queue.next_wakeup()
        if wakeup is not None:
            self._arm(wakeup)
        self.parked[w] = parked = self.env.event()
        self.idle.append(parked)
        return parked

    def _start(self, w: int):
        """Worker ``w`` starts its next claimed task: ``(task, start, duration)``."""
        task = self.unstarted[w].pop(0)
        start = self.env.now
        if task.lease_expires_at - start < self.beat:
            # Held unstarted behind longer tasks than the rule foresaw: renew the leases,
            # as the live worker's heartbeat thread does.
            task = self._renew(w, task)
        row = task.payload  # the task's row in the records
        self.current[w] = (task, start)
        duration = self.service[self.rec.kind[row]]()
        self.prefetch[w].observe(duration)
        return task, start, duration

    def _serve_long(self, w: int, task, start: float, duration: float):
        """A task longer than the heartbeat period: renew the leases every period, as the
        live worker's heartbeat thread does. Returns the task with its latest lease."""
        beat, left = self.beat, duration
        while left > beat:
            yield self.env.timeout(beat)
            left -= beat
            task = self._renew(w, task)
            self.current[w] = (task, start)
        yield self.env.timeout(left)
        return task

    def _renew(self, w: int, task):
        """Heartbeat ``task`` and every task worker ``w`` holds unstarted; the task renewed."""
        heartbeat, unstarted = self.queue.heartbeat, self.unstarted[w]
        unstarted[:] = [heartbeat(t.id, t.lease_id) for t in unstarted]
        return heartbeat(task.id, task.lease_id)

    def _report(self, w: int, task, start: float) -> None:
        """Worker ``w`` ends ``task``: it fails with the scenario's probability, else it is
        completed. The queue decides what a failure leads to; the records keep the attempt."""
        now, row, rec = self.env.now, task.payload, self.rec
        self.current[w] = None
        p = self.scenario.failure_p
        if p and self.fail_draw() < p:
            after = self.queue.fail(task.id, task.lease_id, "the handler raised an error")
            outcome = R.FAILED
            if after.status == "failed":
                self._finished(row, R.DEAD, now)
            elif after.status == "scheduled":
                self._arm(after.execute_at)
            elif self.idle:
                self._wake_one()
        else:
            self.queue.complete(task.id, task.lease_id)
            outcome = R.OK
            self._finished(row, R.COMPLETED, now)
        rec.attempt(row, w, start, now, outcome)

    def _finished(self, row: int, status: int, now: float) -> None:
        """Task ``row`` leaves the system (completed or dead-lettered)."""
        self.rec.status[row] = status
        self.rec.finished[row] = now
        self.finished += 1
        if not self.arrivals_open:
            self._check_drained()

    def _crashed(self, w: int):
        """Worker ``w`` crashed. The tasks it held, running or not yet started, are left
        "processing": only their leases running out bring them back (the queue's sweep
        does that). It restarts ``restart_delay`` later."""
        env, rec = self.env, self.rec
        parked, self.parked[w] = self.parked[w], None
        if parked is not None and parked in self.idle:
            self.idle.remove(parked)
        held = self.current[w]
        if held is not None:
            task, start = held
            self.current[w] = None
            rec.attempt(task.payload, w, start, env.now, R.CRASHED)
            self.orphans[task.payload] = (task.id, task.lease_id)
            self._arm(task.lease_expires_at)
        for task in self.unstarted[w]:  # claimed, never started: no attempt to record
            self.orphans[task.payload] = (task.id, task.lease_id)
            self._arm(task.lease_expires_at)
        self.unstarted[w].clear()
        yield env.timeout(self.scenario.restart_delay)

    def _settle_orphans(self) -> None:
        """See what the queue's sweep did with crashed workers' tasks.

        The claim that just ran swept expired leases: a task is back in the queue
        (another worker will record its next attempt), or, if that was its last
        attempt, in the dead letter, which only the store can tell us.
        """
        rec = self.rec
        for row, (task_id, dead_lease) in list(self.orphans.items()):
            task = self.store.get(task_id)  # None: completed by another worker since
            if task is not None and task.status == "processing" and task.lease_id == dead_lease:
                continue  # the lease has not run out yet
            del self.orphans[row]
            if task is not None and task.status == "failed" and rec.status[row] == R.IN_SYSTEM:
                self._finished(row, R.DEAD, task.finished_at)

    def _crasher(self, w: int, worker: simpy.Process):
        """Worker ``w`` crashes after an exponential time up, then stays down ``restart_delay``."""
        env, sc = self.env, self.scenario
        rng = random.Random(self._seed(f"crashes:{w}"))
        while True:
            yield env.timeout(rng.expovariate(sc.crash_rate))
            worker.interrupt("crash")
            yield env.timeout(sc.restart_delay)

    def _check_drained(self) -> None:
        if not self.arrivals_open and self.finished == len(self.rec.created) \
                and not self.drained.triggered:
            self.drained.succeed()

    # -- the time series ------------------------------------------------------------------

    def _sampler(self, every: float):
        env, sample, counts, current = self.env, self.rec.sample, self.queue.stats, self.current
        # At most MAX_SAMPLES samples. A scenario with a duration is refused if it would
        # need more; a run without one (until max_tasks are done) has no known end, and
        # its time series simply stops there rather than fill the memory.
        for _ in range(MAX_SAMPLES + 1):
            busy = sum(1 for held in current if held is not None)  # workers serving a task now
            c = counts()  # reading changes nothing: the observer cannot alter the run
            sample(env.now, c["pending"], c["scheduled"], c["processing"], busy, c["failed"])
            yield env.timeout(every)

    # -- the end -----------------------------------------------------------------------------

    def _result(self) -> Result:
        env, rec = self.env, self.rec
        end = env.now
        # Attempts still running at the end are recorded as unfinished.
        for w, held in enumerate(self.current):
            if held is not None:
                task, start = held
                rec.attempt(task.payload, w, start, end, R.UNFINISHED)
        # Crashed workers' tasks swept since the last claim.
        self._settle_orphans()
        attempts = rec.attempts_frame()
        tasks = rec.tasks_frame(self.kinds, attempts)
        timeseries = rec.timeseries_frame()
        summary = summarise(self.scenario, tasks, attempts, end)
        return Result(self.scenario, self.seed, end, tasks, attempts, timeseries, summary)


def simulate(scenario: Scenario, seed: Optional[int] = None) -> Result:
    """Run ``scenario`` once (with ``seed`` instead of the scenario's own, if given)."""
    return Model(scenario, seed).run()
