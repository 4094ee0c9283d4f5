"""The simulation's store (``sim.store``): it forgets completed tasks."""

import random

import pytest

from queue_system import Backoff, ManualClock, TaskQueue, sequential_ids
from queue_system.errors import TaskNotFound
from sim.store import SimulationStore

START = 1_700_000_000.0


@pytest.fixture
def forgetful():
    clock = ManualClock(START)
    store = SimulationStore()
    queue = TaskQueue(store, clock, backoff=Backoff("fixed", 10), lease_seconds=30,
                      rng=random.Random(1), make_id=sequential_ids())
    return queue, store, clock


def run_one(queue, worker="w"):
    task, = queue.claim(worker)
    return queue.complete(task.id, task.lease_id)


def test_a_completed_task_is_counted_but_no_longer_found(forgetful):
    queue, store, _ = forgetful
    first, _ = queue.submit("email", 1)
    second, _ = queue.submit("email", 2)
    done = run_one(queue)
    assert done.id == first.id and done.status == "completed"
    assert store.get(first.id) is None
    assert [t.id for t in store.list()] == [second.id]
    assert store.list(status="completed") == []
    counts = queue.stats()
    assert (counts["completed"], counts["pending"], counts["total"]) == (1, 1, 2)


def test_completing_a_forgotten_task_again_is_not_found(forgetful):
    queue, _, _ = forgetful
    queue.submit("email", 1)
    task, = queue.claim("w")
    queue.complete(task.id, task.lease_id)
    with pytest.raises(TaskNotFound):
        queue.complete(task.id, task.lease_id)


def test_stale_entries_of_forgotten_tasks_are_skipped_everywhere(forgetful):
    """A task retried after a backoff left a scheduled entry, a lease entry and two ready
    entries behind; once it is completed and forgotten, none of them may resurface."""
    queue, store, clock = forgetful
    retried, _ = queue.submit("email", "retried")
    task, = queue.claim("w")
    after = queue.fail(task.id, task.lease_id, "boom")
    assert after.status == "scheduled"
    clock.advance(10)
    task, = queue.claim("w")          # promoted by the sweep, then claimed
    queue.complete(task.id, task.lease_id)
    other, _ = queue.submit("email", "other")
    clock.advance(100)                # past every lease the forgotten task ever had
    assert queue.sweep() == {"promoted": 0, "expired": 0}
    assert queue.next_wakeup() is None
    assert [t.id for t in store.next_pending()] == [other.id]
    assert run_one(queue).id == other.id
    assert queue.claim("w") == []
    assert store.count_by_status()["completed"] == 2


def test_the_idempotency_key_of_a_forgotten_task_is_free_again(forgetful):
    queue, _, _ = forgetful
    first, created = queue.submit("email", 1, idempotency_key="order-7")
    assert created
    again, created = queue.submit("email", 1, idempotency_key="order-7")
    assert (again.id, created) == (first.id, False)  # still in play: the same task
    run_one(queue)
    fresh, created = queue.submit("email", 1, idempotency_key="order-7")
    assert created and fresh.id != first.id


def test_dead_lettered_tasks_are_kept(forgetful):
    queue, store, clock = forgetful
    task, _ = queue.submit("email", 1, max_retries=1)
    claimed, = queue.claim("w")
    dead = queue.fail(claimed.id, claimed.lease_id, "boom")
    assert dead.status == "failed"
    assert store.get(task.id) == dead
    assert [t.id for t in queue.dead_letter()] == [task.id]
    replayed = queue.replay(task.id)
    assert replayed.status == "pending"


def test_an_expired_lease_still_comes_back(forgetful):
    queue, _, clock = forgetful
    task, _ = queue.submit("email", 1)
    queue.claim("crashed-worker")
    clock.advance(31)
    again, = queue.claim("w")
    assert (again.id, again.attempts, again.retries) == (task.id, 2, 1)


def test_a_forgotten_id_used_again_is_a_new_task(forgetful):
    """Two queues with their own sequential ids on one store: the second makes ``task-1``
    again after the first ``task-1`` was forgotten. The old task's leftover heap entries
    (same id, same versions) must not pass for the new task's."""
    queue, store, clock = forgetful
    old, _ = queue.submit("email", "old", priority="normal")
    run_one(queue)                                     # old task-1: completed, forgotten
    other = TaskQueue(store, clock, lease_seconds=30, make_id=sequential_ids())
    again, created = other.submit("email", "new", priority="low")
    assert created and again.id == old.id
    urgent, _ = queue.submit("email", "urgent", priority="normal")
    assert [t.payload for t in store.next_pending(limit=3)] == ["urgent", "new"]
    clock.advance(20)                                  # the old lease ended at 30 s
    held = queue.claim("w", limit=3)
    assert [t.payload for t in held] == ["urgent", "new"]
    clock.advance(15)                                  # past the old lease, not the new ones
    assert queue.stats()["processing"] == 2
    assert queue.sweep() == {"promoted": 0, "expired": 0}
