"""The lifecycle's graph (``lifecycle.TRANSITIONS``) is what its functions do: no more, no less.

Every transition is tried on a task in every status, with retries left and
without, with and without a backoff; each status change it makes must be an
edge of the graph, and every edge of the graph must be made by some try.
"""

import random

from queue_system import Backoff, lifecycle
from queue_system.errors import QueueError
from queue_system.task import STATUSES, Task

NOW = 100.0


def task_in(status, retries=0):
    base = dict(id="t", type="email", payload={}, status=status, created_at=0.0,
                execute_at=NOW - 1, retries=retries, max_retries=3, updated_at=0.0)
    if status == "processing":
        base.update(worker_id="w", lease_id="L", lease_expires_at=NOW - 1 if retries else NOW + 10,
                    claimed_at=0.0, attempts=1)
    if status == "scheduled":
        base.update(execute_at=NOW - 1)
    return Task(**base)


def tries(task):
    """Each transition with the arguments a caller would give it."""
    rng = random.Random(1)
    for backoff in (Backoff("none"), Backoff("fixed", 5)):
        yield "fail", lambda: lifecycle.fail(task, NOW, None, "boom", backoff, rng)
    yield "promote", lambda: lifecycle.promote(task, NOW)
    yield "claim", lambda: lifecycle.claim(task, NOW, "w2", "L2", 30)
    yield "heartbeat", lambda: lifecycle.heartbeat(task, NOW, None, 30)
    yield "complete", lambda: lifecycle.complete(task, NOW, None, "ok")
    yield "expire", lambda: lifecycle.expire(task, NOW + 20, rng)
    yield "release", lambda: lifecycle.release(task, NOW, None)
    yield "replay", lambda: lifecycle.replay(task, NOW)


def test_every_status_change_is_an_edge_and_every_edge_happens():
    made = {name: set() for name in lifecycle.TRANSITIONS}
    made["new_task"] = {(None, lifecycle.new_task("a", "email", {}, NOW).status),
                        (None, lifecycle.new_task("b", "email", {}, NOW, execute_at=NOW + 5).status)}
    for status in STATUSES:
        for retries in (0, 2):  # retries left, and a last attempt
            task = task_in(status, retries)
            if status == "processing" and retries:
                task = task._replace(lease_expires_at=NOW + 10)
            for name, step in tries(task):
                try:
                    after = step()
                except QueueError:
                    continue  # refused: no edge
                made[name].add((status, after.status))
    for name, edges in lifecycle.TRANSITIONS.items():
        assert made[name] == edges, name


def test_the_lessons_diagram_maps_onto_the_graph():
    # The lesson's stateDiagram: EnAttente -> EnCours -> Terminé | Échoué -> EnAttente | LettreMorte.
    edges = set().union(*lifecycle.TRANSITIONS.values())
    lesson = {("pending", "processing"), ("processing", "completed"), ("processing", "pending"),
              ("processing", "failed")}
    assert lesson <= edges
