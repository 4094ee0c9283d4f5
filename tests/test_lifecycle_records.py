"""The records the transitions build, and ``task.changed``, the generated helper they use.

Each record is compared with the same record made the slow, named way
(keyword arguments, ``_replace``), from inputs whose every field holds a
distinct value, so a field moved, dropped or swapped cannot go unnoticed.
"""

import pytest

from queue_system import lifecycle
from queue_system.errors import TaskConflict
from queue_system.task import IDENTITY, Task, changed


def a_pending_task() -> Task:
    # Every field distinct, and none at its default: a swap of any two shows. (A pending
    # task would hold no result, lease or finish time; these are left from another life,
    # so that a transition that forgets to clear or keep them is seen.)
    return Task(id="task-9", type="email", payload={"to": "a@example.com"}, status="pending",
                priority="low", created_at=1.0, execute_at=2.0, retries=1, max_retries=7,
                attempts=3, result="an old result", error="an earlier error",
                worker_id="worker-old", lease_id="lease-old", lease_expires_at=1.75,
                claimed_at=1.5, finished_at=1.8,
                updated_at=2.5, idempotency_key="key-9", version=4, seq=12)


def test_new_task_is_the_record_named_field_by_field():
    made = lifecycle.new_task("task-1", "report", {"id": 3}, 100.0, "high", 5, None, "key-1")
    assert type(made) is Task and len(made) == len(Task._fields)
    assert made == Task(id="task-1", type="report", payload={"id": 3}, status="pending",
                        priority="high", created_at=100.0, execute_at=100.0, retries=0,
                        max_retries=5, attempts=0, updated_at=100.0, idempotency_key="key-1",
                        version=0)
    later = lifecycle.new_task("task-2", "report", None, 100.0, "normal", 3, 160.0)
    assert (later.status, later.execute_at, later.idempotency_key) == ("scheduled", 160.0, None)


def test_claim_changes_exactly_the_claim_fields():
    task = a_pending_task()
    claimed = lifecycle.claim(task, 10.0, "worker-2", "lease-2", 30.0)
    assert type(claimed) is Task
    assert claimed == task._replace(status="processing", attempts=4, worker_id="worker-2",
                                    lease_id="lease-2", lease_expires_at=40.0, claimed_at=10.0,
                                    updated_at=10.0, version=5)


def test_complete_changes_exactly_the_completion_fields():
    claimed = lifecycle.claim(a_pending_task(), 10.0, "worker-2", "lease-2", 30.0)
    done = lifecycle.complete(claimed, 12.0, "lease-2", {"sent": True})
    assert type(done) is Task
    assert done == claimed._replace(status="completed", result={"sent": True}, lease_id=None,
                                    lease_expires_at=None, finished_at=12.0, updated_at=12.0,
                                    version=6)


def test_changed_is_replace_for_every_field_a_transition_may_change():
    task = a_pending_task()
    changeable = [field for field in Task._fields if field not in IDENTITY]
    assert len(changeable) == 14  # the 13 a transition changes, and seq (the store's)
    for field in changeable:
        value = ("new", field)  # unlike any value the task holds
        assert changed(task, **{field: value}) == task._replace(**{field: value})
        assert type(changed(task, **{field: value})) is Task
    assert changed(task) == task
    assert changed(task, status="failed", retries=2, error="boom") == \
        task._replace(status="failed", retries=2, error="boom")


@pytest.mark.parametrize("field", ["lease", *IDENTITY])
def test_changed_refuses_a_field_that_does_not_exist_or_is_the_tasks_identity(field):
    with pytest.raises(TypeError, match=field):
        changed(a_pending_task(), **{field: "x"})


def test_changed_reads_as_a_function_of_this_module():
    """Generated, but help() and tracebacks should still say what it is."""
    assert changed.__module__ == "queue_system.task" and "IDENTITY" in changed.__doc__
    assert "status=KEEP" in str(__import__("inspect").signature(changed))


def test_a_lease_ending_exactly_now_still_holds_for_the_holder_and_the_sweep():
    held = lifecycle.claim(a_pending_task(), 10.0, "worker-2", "lease-2", 30.0)
    assert not lifecycle.lease_expired(held, 40.0) and lifecycle.lease_expired(held, 40.001)
    with pytest.raises(TaskConflict, match="not expired"):
        lifecycle.expire(held, 40.0, rng=None)
    assert lifecycle.complete(held, 40.0, "lease-2", None).status == "completed"
    assert lifecycle.expire(held, 40.001, rng=None).status == "pending"
