"""Property tests of the task lifecycle, driven through ``TaskQueue`` on every store.

The example tests (test_store_contract.py) check one story each. Here Hypothesis
writes the stories: a state machine submits tasks (any priority, ``max_retries``
1 to 4, ready now or later), moves a manual clock (by random amounts, and exactly
onto the times a task falls due or a lease ends, or just past them), lets three
workers claim (limits 1 to 3, leases of several lengths, some task types only),
heartbeat, complete, fail and release tasks (with the lease they hold, with
``lease_id=None`` as the lesson's routes do, with a stale or a forged lease),
replays the dead letter and sweeps. After every step the queue must agree with
a small model kept beside it, and these five properties must hold:

1. **Not before its time.** A task is never claimed before its ``execute_at``,
   as the producer set it or as the backoff set it after a failure.
2. **One holder at a time.** At any moment at most one lease id can act on a
   task. A report with an earlier lease (or another task's, or a forged one) is
   refused with ``TaskConflict`` and changes nothing; so is any report, even one
   with the right lease, once the clock is past ``lease_expires_at``.
3. **Nothing forgotten.** ``attempts`` equals the claims minus the claims given
   back unstarted (``release(started=False)``); ``retries`` equals the reported
   failures plus the expired leases since the task last left the dead letter.
4. **The dead letter, exactly.** A task is ``failed`` exactly when its failures
   reach ``max_retries``, never before; and no task is ever lost: each can be
   read back with a valid status, and the counts by status add up to the number
   submitted.
5. **Priority, then first come first served.** A claim hands out, among the
   tasks ready at that moment, those of the best priority, and within a
   priority the ones ready earliest (then the first submitted).

Why a model, and why through the queue? The rules live in ``lifecycle`` as pure
functions, but a store decides which task a claim gets and when a lease counts
as expired (its heaps, its SQL): a store that skips a due task, or keeps a stale
lease alive, breaks the properties without any rule being wrong. The model
(``Expected`` below) only counts things (claims, releases, failures) and keeps
the status the lesson's state diagram gives; it never reads the queue's answer
to decide what the answer should be. Two things it does take from the queue:
the new lease ids (names, nothing to predict), and a backoff delay, which is
random: that one is checked against the policy's bounds, then remembered.

Not covered here: ``SimulationStore()`` as the simulation runs it, which forgets
completed tasks on purpose, so "every task can be found" does not
hold for it (test_simulation_store.py tests it).

The runs are deterministic (``derandomize=True``) and bounded; when one fails,
Hypothesis prints the shortest sequence of steps it found that breaks the
property, ready to paste into an example test.
"""

import math
import random
from dataclasses import dataclass, field
from typing import List, Optional

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule, run_state_machine_as_test)

from queue_system import (Backoff, ManualClock, MemoryStore, SQLiteStore, TaskConflict,
                          TaskQueue, lifecycle, sequential_ids)
from queue_system.stores.redis import RedisStore
from sim.store import SimulationStore
from queue_system.task import PRIORITY_RANK, STATUSES

START = 1_700_000_000.0
DEFAULT_LEASE = 10.0
MAX_TASKS = 10          # enough for priorities and FIFO to matter, few enough to collide often
WORKERS = ("w1", "w2", "w3")
TYPES = ("a", "b")
FORGED_LEASE = "lease-never-issued"

BACKOFFS = [Backoff("none"), Backoff("fixed", 5.0),
            Backoff("exponential", base=1.0, factor=2.0, max_delay=8.0, jitter=0.5)]

# A producer's submit: its type, priority and retries, and when the task may run:
# "now", after a delay of abs(offset) seconds, or at now + offset (in the past: at once).
TASK_SPEC = dict(type=st.sampled_from(TYPES), priority=st.sampled_from(list(PRIORITY_RANK)),
                 max_retries=st.integers(1, 4), when=st.sampled_from(["now", "delay", "at"]),
                 offset=st.sampled_from([-100.0, -0.5, 0.0, 0.5, 5.0, 30.0]))

# Which task a worker's report is about (an index into the tasks, see ``pick``), and
# which lease it carries (see ``lease_for``).
TASK_INDEX = st.integers(0, MAX_TASKS)
LEASE_CHOICE = st.sampled_from(["held", "none", "issued", "forged"])
LEASE_INDEX = st.integers(0, 30)

# Deterministic and bounded: 3 to 5 s per store on a quiet machine. No example
# database (nothing written to .hypothesis/), and one bug reported at a time,
# which keeps shrinking a failure short.
SETTINGS = settings(max_examples=200, stateful_step_count=50, deadline=None, derandomize=True,
                    database=None, report_multiple_bugs=False,
                    suppress_health_check=[HealthCheck.too_slow])

STORES = {
    "memory": MemoryStore,
    "simulation": lambda: SimulationStore(forget_completed=False),
    "sqlite": lambda: SQLiteStore(":memory:"),
}


@dataclass
class Expected:
    """What the model knows about one task: what the producer asked for, and counts."""

    id: str
    type: str
    priority: str
    max_retries: int
    seq: int                         # submission order: the last tie-breaker
    status: str
    execute_at: float                # as the producer, the backoff or a release set it
    claims: int = 0
    unstarted_releases: int = 0
    failures: int = 0                # reported failures + expired leases, since the last replay
    lease_id: Optional[str] = None   # the lease that may act on it now (if processing)
    lease_expires_at: Optional[float] = None
    leases: List[str] = field(default_factory=list)  # every lease it was ever claimed under

    def serving_order(self):
        return PRIORITY_RANK[self.priority], self.execute_at, self.seq


class LifecycleMachine(RuleBasedStateMachine):
    """Random producers, workers and clock moves against a ``TaskQueue`` and a model."""

    def __init__(self, make_store):
        super().__init__()
        self.store = make_store()
        self.clock = ManualClock(START)
        self.tasks: List[Expected] = []
        self.by_id = {}
        self.issued_leases: List[str] = []
        self.dead_letter_calls: List[str] = []     # what the queue's on_dead_letter saw
        self.expected_dead_letter_calls: List[str] = []

    @initialize(backoff=st.sampled_from(BACKOFFS),
                first_tasks=st.lists(st.fixed_dictionaries(TASK_SPEC), max_size=6))
    def build_queue(self, backoff, first_tasks):
        self.backoff = backoff
        self.queue = TaskQueue(self.store, self.clock, backoff=backoff,
                               lease_seconds=DEFAULT_LEASE, rng=random.Random(7),
                               make_id=sequential_ids("task-"),
                               make_lease_id=sequential_ids("lease-"),
                               on_dead_letter=lambda task: self.dead_letter_calls.append(task.id))
        for spec in first_tasks:  # a backlog to start with, so that claims have a choice
            self.submit(**spec)

    def teardown(self):
        self.store.close()

    # -- helpers ------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def pick(self, index: int, status: Optional[str]) -> Expected:
        """A task: one in ``status`` if there is any (None: any task)."""
        some = [t for t in self.tasks if t.status == status] if status else []
        some = some or self.tasks
        return some[index % len(some)]

    def lease_for(self, task: Expected, which: str, index: int) -> Optional[str]:
        """The lease a report carries: the one the task is held under, None, any lease ever
        issued (its own earlier ones, another task's), or one nobody was ever given."""
        if which == "held":
            return task.lease_id or (task.leases[-1] if task.leases else FORGED_LEASE)
        if which == "none":
            return None
        if which == "issued" and self.issued_leases:
            return self.issued_leases[index % len(self.issued_leases)]
        return FORGED_LEASE

    def model_sweep(self):
        """What the queue does before a claim, a read or a count: due tasks become pending,
        expired leases count as a failure (back to pending at once, or to the dead letter)."""
        now = self.now()
        promoted = expired = 0
        for task in self.tasks:
            if task.status == "scheduled" and task.execute_at <= now:
                task.status = "pending"
                promoted += 1
        for task in self.tasks:
            if task.status == "processing" and task.lease_expires_at < now:
                expired += 1
                task.failures += 1
                task.lease_id = task.lease_expires_at = None
                if task.failures >= task.max_retries:
                    task.status = "failed"
                    self.expected_dead_letter_calls.append(task.id)
                else:
                    task.status, task.execute_at = "pending", now   # no backoff after a crash
        return {"promoted": promoted, "expired": expired}

    def may_act(self, task: Expected, lease_id: Optional[str]) -> bool:
        """Property 2: only the current lease (or None, meaning it), and only until it ends."""
        return (task.status == "processing" and lease_id in (None, task.lease_id)
                and self.now() <= task.lease_expires_at)

    def report(self, task: Expected, lease_id: Optional[str], action):
        """Run a worker's report; if the model says it must be refused, check that it is
        refused and that the stored task did not change. Returns the new task, or None."""
        if self.may_act(task, lease_id):
            return action()
        before = self.store.get(task.id)
        with pytest.raises(TaskConflict):
            action()
        assert self.store.get(task.id) == before, "a refused report changed the task"
        return None

    # -- producers ------------------------------------------------------------------------

    @precondition(lambda self: len(self.tasks) < MAX_TASKS)
    @rule(**TASK_SPEC)
    def submit(self, type, priority, max_retries, when, offset):
        now = self.now()
        if when == "now":
            task, created = self.queue.submit(type, None, priority=priority,
                                              max_retries=max_retries)
            execute_at = now
        elif when == "delay":
            delay = abs(offset)
            task, created = self.queue.submit(type, None, priority=priority,
                                              max_retries=max_retries, delay=delay)
            execute_at = now + delay
        else:  # a time in the past means "as soon as possible"
            task, created = self.queue.submit(type, None, priority=priority,
                                              max_retries=max_retries, execute_at=now + offset)
            execute_at = max(now + offset, now)
        assert created and task.id not in self.by_id
        expected = Expected(task.id, type, priority, max_retries, seq=len(self.tasks),
                            status="scheduled" if execute_at > now else "pending",
                            execute_at=execute_at)
        self.tasks.append(expected)
        self.by_id[task.id] = expected

    # -- time ------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 5.0, 10.0, 30.0])
          | st.floats(0, 120, allow_nan=False, allow_infinity=False))
    def advance(self, seconds):
        self.clock.advance(seconds)

    @precondition(lambda self: any(t.status in ("scheduled", "processing") for t in self.tasks))
    @rule(index=TASK_INDEX, just_after=st.booleans())
    def advance_to_a_boundary(self, index, just_after):
        """Land exactly on a time a task falls due or a lease ends (or the next float after)."""
        times = sorted({t.execute_at if t.status == "scheduled" else t.lease_expires_at
                        for t in self.tasks if t.status in ("scheduled", "processing")})
        times = [t for t in times if t >= self.now()] or times  # index 0: the next one
        target = times[index % len(times)]
        if just_after:
            target = math.nextafter(target, math.inf)
        if target > self.now():
            self.clock.now = target

    # -- workers ---------------------------------------------------------------------------

    @rule(worker=st.sampled_from(WORKERS), limit=st.integers(1, 3),
          lease_seconds=st.sampled_from([None, 1.0, 2.5, 10.0, 30.0]),
          types=st.sampled_from([None, ["a"], ["b"], ["a", "b"]]))
    def claim(self, worker, limit, lease_seconds, types):
        claimed = self.queue.claim(worker, types=types, lease_seconds=lease_seconds, limit=limit)
        self.model_sweep()  # the queue swept first, at the same time
        now = self.now()
        for task in claimed:  # property 1, checked against the model's own execute_at
            execute_at = self.by_id[task.id].execute_at
            assert now >= execute_at, f"{task.id} claimed at {now}, before its {execute_at}"
        # Property 5: the best `limit` of the ready tasks, in serving order.
        ready = sorted((t for t in self.tasks if t.status == "pending"
                        and (types is None or t.type in types)), key=Expected.serving_order)
        assert [t.id for t in claimed] == [t.id for t in ready[:limit]], \
            "the claim did not hand out the best ready tasks in priority then FIFO order"
        lease = DEFAULT_LEASE if lease_seconds is None else lease_seconds
        for task in claimed:
            expected = self.by_id[task.id]
            assert task.lease_id not in self.issued_leases, "a lease id was handed out twice"
            assert task.worker_id == worker
            expected.status = "processing"
            expected.claims += 1
            expected.lease_id, expected.lease_expires_at = task.lease_id, now + lease
            expected.leases.append(task.lease_id)
            self.issued_leases.append(task.lease_id)

    @precondition(lambda self: self.tasks)
    @rule(index=TASK_INDEX, which=LEASE_CHOICE, lease_index=LEASE_INDEX,
          lease_seconds=st.sampled_from([None, 1.0, 10.0, 30.0]))
    def heartbeat(self, index, which, lease_index, lease_seconds):
        task = self.pick(index, "processing")
        lease_id = self.lease_for(task, which, lease_index)
        if self.report(task, lease_id,
                       lambda: self.queue.heartbeat(task.id, lease_id, lease_seconds)):
            lease = DEFAULT_LEASE if lease_seconds is None else lease_seconds
            task.lease_expires_at = self.now() + lease

    @precondition(lambda self: self.tasks)
    @rule(index=TASK_INDEX, which=LEASE_CHOICE, lease_index=LEASE_INDEX)
    def complete(self, index, which, lease_index):
        task = self.pick(index, "processing")
        lease_id = self.lease_for(task, which, lease_index)
        if self.report(task, lease_id, lambda: self.queue.complete(task.id, lease_id, "done")):
            task.status, task.lease_id, task.lease_expires_at = "completed", None, None

    @precondition(lambda self: self.tasks)
    @rule(index=TASK_INDEX, which=LEASE_CHOICE, lease_index=LEASE_INDEX)
    def fail(self, index, which, lease_index):
        task = self.pick(index, "processing")
        lease_id = self.lease_for(task, which, lease_index)
        after = self.report(task, lease_id, lambda: self.queue.fail(task.id, lease_id, "boom"))
        if after is None:
            return
        now = self.now()
        task.failures += 1
        task.lease_id = task.lease_expires_at = None
        if task.failures >= task.max_retries:
            task.status = "failed"
            self.expected_dead_letter_calls.append(task.id)
            return
        # The backoff delay is random: check it against the policy, then remember it.
        low, high = backoff_bounds(self.backoff, task.failures)
        delay = after.execute_at - now
        assert low - 1e-6 <= delay <= high + 1e-6, \
            f"backoff delay {delay} outside [{low}, {high}] after failure {task.failures}"
        task.execute_at = after.execute_at
        task.status = "scheduled" if task.execute_at > now else "pending"

    @precondition(lambda self: self.tasks)
    @rule(index=TASK_INDEX, which=LEASE_CHOICE, lease_index=LEASE_INDEX, started=st.booleans())
    def release(self, index, which, lease_index, started):
        task = self.pick(index, "processing")
        lease_id = self.lease_for(task, which, lease_index)
        if self.report(task, lease_id,
                       lambda: self.queue.release(task.id, lease_id, started=started)):
            task.status, task.execute_at = "pending", self.now()
            task.lease_id = task.lease_expires_at = None
            if not started:
                task.unstarted_releases += 1

    # -- the dead letter, sweeps and reads ----------------------------------------------------

    @precondition(lambda self: self.tasks)
    @rule(index=TASK_INDEX)
    def replay(self, index):
        task = self.pick(index, "failed")
        if task.status == "failed":
            self.queue.replay(task.id)
            task.status, task.execute_at, task.failures = "pending", self.now(), 0
        else:
            before = self.store.get(task.id)
            with pytest.raises(TaskConflict):
                self.queue.replay(task.id)
            assert self.store.get(task.id) == before

    @rule()
    def sweep(self):
        assert self.queue.sweep() == self.model_sweep()

    @rule()
    def stats(self):
        # Reading changes nothing: the counts are the model's as it stands, unswept.
        counts = self.queue.stats()
        assert counts["total"] == len(self.tasks)
        assert counts["dead_letter"] == counts["failed"]
        for status in STATUSES:
            assert counts[status] == sum(task.status == status for task in self.tasks), status

    @precondition(lambda self: self.tasks)
    @rule(index=TASK_INDEX)
    def get(self, index):
        task = self.pick(index, None)
        got = self.queue.get(task.id)
        assert got.status == task.status

    # -- after every step -----------------------------------------------------------------------

    @invariant()
    def the_queue_agrees_with_the_model(self):
        """Read the store directly (the same as ``queue.get``: reading changes nothing)."""
        now = self.now()
        for expected in self.tasks:
            task = self.store.get(expected.id)
            name = expected.id
            # 4: never lost, and still the task the producer submitted.
            assert task is not None, f"{name} was lost"
            assert (task.type, task.priority, task.max_retries) == \
                (expected.type, expected.priority, expected.max_retries), f"{name} changed"
            # 3: attempts and retries are exact counts.
            assert task.attempts == expected.claims - expected.unstarted_releases, \
                f"{name}: attempts {task.attempts}, but {expected.claims} claims " \
                f"and {expected.unstarted_releases} given back unstarted"
            assert task.retries == expected.failures, \
                f"{name}: retries {task.retries}, but {expected.failures} failures " \
                "(reported or expired) since it last left the dead letter"
            # 4: the dead letter exactly when the failures reach max_retries.
            assert expected.failures <= task.max_retries, f"{name} failed after its last retry"
            assert (task.status == "failed") == (expected.failures == task.max_retries), \
                f"{name} is {task.status} after {expected.failures} of {task.max_retries} failures"
            assert task.status == expected.status, \
                f"{name} is {task.status}, the lifecycle says {expected.status}"
            if task.status in ("scheduled", "pending"):
                assert task.execute_at == expected.execute_at, f"{name}: execute_at moved"
                # A pending task is ready; a scheduled one may be due but not yet swept.
                assert task.status == "scheduled" or task.execute_at <= now
            # 2: only the current lease, while it lasts, can act on the task. Ask the
            # lifecycle's own check about every lease ever issued (and a forged one).
            if task.status == "processing":
                assert (task.lease_id, task.lease_expires_at) == \
                    (expected.lease_id, expected.lease_expires_at), f"{name}: wrong lease"
            else:
                assert task.lease_id is None and task.lease_expires_at is None, \
                    f"{name} is {task.status} but still has a lease"
            able = [lease for lease in self.issued_leases + [FORGED_LEASE]
                    if can_act(task, now, lease)]
            assert len(able) <= 1, f"{name} can be acted on with leases {able}"
            assert able == ([expected.lease_id] if self.may_act(expected, expected.lease_id)
                            else []), f"{name}: leases {able} may act on it"
        # 4: the counts by status add up to the tasks submitted, and listing finds them all.
        counts = self.store.count_by_status()
        assert counts == {s: sum(t.status == s for t in self.tasks) for s in STATUSES}
        assert sum(counts.values()) == len(self.tasks)
        assert [t.id for t in self.store.list(limit=MAX_TASKS + 1)] == \
            [t.id for t in self.tasks], "listing lost a task or broke submission order"
        # Each entry into the dead letter is reported once (a sweep goes by lease expiry,
        # not submission order, hence sorted).
        assert sorted(self.dead_letter_calls) == sorted(self.expected_dead_letter_calls)


def can_act(task, now, lease_id) -> bool:
    try:
        lifecycle.check_lease(task, now, lease_id)
    except TaskConflict:
        return False
    return True


def backoff_bounds(backoff: Backoff, retries: int):
    """The range a policy's delay after failure number ``retries`` must fall in."""
    if backoff.kind == "none":
        return 0.0, 0.0
    if backoff.kind == "fixed":
        return backoff.base, backoff.base
    ceiling = min(backoff.max_delay, backoff.base * backoff.factor ** (retries - 1))
    return ceiling * (1 - backoff.jitter), ceiling


@pytest.mark.parametrize("store", [*STORES, "redis"])
def test_lifecycle_properties(store, request):
    if store == "redis":  # each example on an empty database of the session's Redis
        server = request.getfixturevalue("redis_server")

        def make():
            server.flush()
            return RedisStore(server.url)
    else:
        make = STORES[store]
    run_state_machine_as_test(lambda: LifecycleMachine(make), settings=SETTINGS)
