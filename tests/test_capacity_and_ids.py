"""The queue's capacity rule, its purge, and ids that never refuse a valid task.

All on every store (``store`` in conftest.py): the rule lives in ``TaskQueue``,
so the live server and the simulation refuse at the same point.
"""

import itertools

import pytest

import sim
from queue_system import TaskQueue
from queue_system.errors import InvalidTask, QueueFull, TaskConflict, TaskNotFound
from queue_system.queue import wall_clock_ids
from sim.model import Model


def test_a_queue_refuses_tasks_beyond_its_capacity(make_queue, clock):
    queue = make_queue(capacity=3)
    queue.submit("x", {})
    queue.submit("x", {}, delay=60)          # scheduled tasks wait too
    queue.submit("x", {}, idempotency_key="k")
    with pytest.raises(QueueFull, match="capacity is 3") as refusal:
        queue.submit("x", {})
    assert refusal.value.status_code == 503 and refusal.value.retry_after > 0
    assert queue.submit("x", {}, idempotency_key="k")[1] is False  # a resend is answered
    [task] = queue.claim("w")                 # running work does not wait: room again
    queue.submit("x", {})
    queue.complete(task.id, task.lease_id)
    assert queue.stats()["total"] == 4


def test_a_batch_fits_whole_or_not_at_all(make_queue):
    queue = make_queue(capacity=3)
    queue.submit("x", {}, idempotency_key="first")
    with pytest.raises(QueueFull, match="3 more do not fit"):
        queue.submit_many([{"type": "x"}] * 3)
    assert queue.stats()["total"] == 1
    # Resent keys take no room: two new tasks and one resend fit.
    done = queue.submit_many([{"type": "x"}, {"type": "x"},
                              {"type": "x", "idempotency_key": "first"}])
    assert [created for _, created in done] == [True, True, False]


def test_a_new_key_repeated_in_a_batch_takes_one_place(make_queue):
    queue = make_queue(capacity=1)
    done = queue.submit_many([{"type": "x", "idempotency_key": "dup"}] * 2)
    assert [created for _, created in done] == [True, False]
    assert done[0][0].id == done[1][0].id


def test_a_replay_waits_again_so_a_full_queue_refuses_it(make_queue):
    queue = make_queue(capacity=1)
    task, _ = queue.submit("x", {}, max_retries=1)
    [held] = queue.claim("w")
    queue.fail(held.id, held.lease_id)
    queue.submit("x", {})
    with pytest.raises(QueueFull):
        queue.replay(task.id)
    assert queue.get(task.id).status == "failed"
    queue.claim("w")
    assert queue.replay(task.id).status == "pending"


def test_a_capacity_must_be_a_whole_number(make_queue):
    for bad in (-1, 2.5, True, "10"):
        with pytest.raises(ValueError, match="capacity"):
            make_queue(capacity=bad)


def test_the_simulation_refuses_by_the_queues_own_rule():
    """Every task the overload preset records as refused is one its TaskQueue refused."""
    model = Model(sim.preset("overload").replace(duration=300.0))
    assert model.queue.capacity == 100
    refusals = itertools.count()
    submit = model.queue.submit

    def counted(*args, **kwargs):
        try:
            return submit(*args, **kwargs)
        except QueueFull:
            next(refusals)
            raise
    model.queue.submit = counted
    result = model.run()
    refused = int((result.tasks["status"] == "refused").sum())
    assert refused > 0 and refused == next(refusals)


def test_purge_removes_old_finished_tasks_and_frees_their_keys(make_queue, clock):
    queue = make_queue()
    done, _ = queue.submit("x", {}, idempotency_key="once")
    waiting, _ = queue.submit("x", {})
    [task] = queue.claim("w")
    queue.complete(task.id, task.lease_id)
    clock.advance(100)
    assert queue.purge(older_than=200) == 0
    assert queue.purge(older_than=50) == 1
    assert [t.id for t in queue.list()] == [waiting.id]
    assert queue.stats()["completed"] == 0
    again, created = queue.submit("x", {}, idempotency_key="once")
    assert created and again.id != done.id


def test_a_repeated_id_is_replaced_not_refused(store, clock):
    """With 32 random bits, 1,000 tasks made in one millisecond collided about once in
    8,600 batches, and the batch was refused. Now a taken id is drawn again."""
    ids = iter(["task-1", "task-1", "task-2", "task-2", "task-3", "task-4"])
    queue = TaskQueue(store, clock, make_id=lambda: next(ids))
    first, _ = queue.submit("x", {})
    second, created = queue.submit("x", {})            # task-1 is taken: task-2
    assert created and (first.id, second.id) == ("task-1", "task-2")
    batch = queue.submit_many([{"type": "x"}, {"type": "x"}])  # made as task-2, task-3
    assert [task.id for task, _ in batch] == ["task-4", "task-3"]
    assert sorted(t.id for t in queue.list()) == ["task-1", "task-2", "task-3", "task-4"]


def test_default_ids_carry_64_random_bits(clock):
    make_id = wall_clock_ids(clock)
    ids = {make_id() for _ in range(10_000)}  # all in the same millisecond
    assert len(ids) == 10_000
    assert all(len(i.rsplit("-", 1)[1]) == 16 for i in ids)


def test_a_misspelt_field_in_a_batch_is_refused_by_name_and_nothing_is_stored(make_queue):
    queue = make_queue()
    with pytest.raises(InvalidTask, match="unknown task field 'priorty'"):
        queue.submit_many([{"type": "email"}, {"type": "email", "priorty": "high"}])
    assert queue.stats()["total"] == 0


def test_types_given_as_one_string_is_refused_not_read_letter_by_letter(make_queue):
    queue = make_queue()
    queue.submit("e", {})  # a one-letter type, which list("email") would have matched
    with pytest.raises(InvalidTask, match="list of task types"):
        queue.claim("worker-1", types="email")
    assert queue.stats()["pending"] == 1


TRANSITIONS_BY_ID = {
    "heartbeat": lambda queue, task_id: queue.heartbeat(task_id, "lease-1"),
    "complete": lambda queue, task_id: queue.complete(task_id, "lease-1"),
    "fail": lambda queue, task_id: queue.fail(task_id, "lease-1", "boom"),
    "release": lambda queue, task_id: queue.release(task_id, "lease-1"),
    "replay": lambda queue, task_id: queue.replay(task_id),
}


@pytest.mark.parametrize("capacity", [None, 5])
@pytest.mark.parametrize("step", sorted(TRANSITIONS_BY_ID))
def test_every_transition_of_an_unknown_task_is_not_found(make_queue, step, capacity):
    queue = make_queue(capacity=capacity)
    with pytest.raises(TaskNotFound, match="task-404"):
        TRANSITIONS_BY_ID[step](queue, "task-404")


def test_replaying_a_task_not_in_the_dead_letter_is_a_conflict_even_in_a_full_queue(make_queue):
    queue = make_queue(capacity=1)
    waiting, _ = queue.submit("email", {})  # the queue is full now
    with pytest.raises(TaskConflict, match="not in the dead letter"):
        queue.replay(waiting.id)
    assert queue.get(waiting.id) == waiting
