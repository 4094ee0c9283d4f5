"""GET /metrics: the queue's counts in the Prometheus text format, read back by
prometheus_client's own parser after a run whose every step is known."""

import random

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from queue_system import Backoff, ManualClock, SQLiteStore, TaskQueue
from queue_system.localhost import wait_for
from queue_system.server import create_app

START = 1_700_000_000.0


@pytest.fixture
def served(tmp_path):
    clock = ManualClock(START)
    queue = TaskQueue(SQLiteStore(str(tmp_path / "metrics.db")), clock, backoff=Backoff("none"),
                      lease_seconds=30, rng=random.Random(0))
    with TestClient(create_app(queue)) as client:
        yield client, clock
    queue.store.close()


def samples(client) -> dict:
    """{(name, labels as a sorted tuple): value} of every sample /metrics gives."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def claim(client, worker, **body):
    return client.post("/tasks/claim", json={"worker_id": worker, **body}).json()["tasks"]


def test_metrics_after_a_known_run(served):
    client, clock = served
    client.post("/tasks/batch", json={"tasks": [{"type": "email"}] * 3})
    client.post("/tasks", json={"type": "report", "max_retries": 1})
    client.post("/task", json={"type": "email"})  # the lesson's route counts too
    clock.advance(2.0)  # every task waits 2 s before it is handed out
    held = claim(client, "w1", max_tasks=3, types=["email"])
    report = claim(client, "w2", types=["report"])[0]
    clock.advance(0.5)  # and runs for half a second
    for task in held[:2]:
        client.post(f"/tasks/{task['id']}/complete", json={"lease_id": task["lease_id"]})
    client.post(f"/tasks/{held[2]['id']}/fail", json={"lease_id": held[2]["lease_id"],
                                                       "error": "smtp down"})  # retried
    client.post(f"/tasks/{report['id']}/fail", json={"lease_id": report["lease_id"]})  # dead
    last = claim(client, "w3", lease_seconds=5)  # the fifth email (or the retried one)
    assert len(last) == 1
    clock.advance(6.0)  # w3 stopped: its lease runs out, the task is pending again

    # Nobody asks for work: the server's own timer sweeps (reading /metrics does not).
    found = wait_for(lambda: (seen := samples(client)).get(("queue_leases_expired_total", ()))
                     and seen, 10, "the server's sweep")
    # Tasks by status now: 1 pending after the expiry, plus the retried email; 2 done, 1 dead.
    by_status = {dict(labels)["status"]: value for (name, labels), value in found.items()
                 if name == "queue_tasks"}
    assert by_status == {"scheduled": 0, "pending": 2, "processing": 0, "completed": 2,
                         "failed": 1}
    assert found[("queue_tasks_submitted_total", (("type", "email"),))] == 4
    assert found[("queue_tasks_submitted_total", (("type", "report"),))] == 1
    assert found[("queue_tasks_completed_total", (("type", "email"),))] == 2
    assert found[("queue_attempts_failed_total", (("type", "email"),))] == 1
    assert found[("queue_attempts_failed_total", (("type", "report"),))] == 1
    assert found[("queue_tasks_dead_lettered_total", (("type", "report"),))] == 1
    assert ("queue_tasks_dead_lettered_total", (("type", "email"),)) not in found
    assert found[("queue_attempts_total", (("type", "email"),))] == 4
    assert found[("queue_attempts_total", (("type", "report"),))] == 1
    assert found[("queue_leases_expired_total", ())] == 1
    # Five attempts handed out: four after 2 s of waiting, the last one 2.5 s.
    assert found[("queue_wait_seconds_count", ())] == 5
    assert found[("queue_wait_seconds_sum", ())] == pytest.approx(4 * 2.0 + 2.5)
    assert found[("queue_wait_seconds_bucket", (("le", "2.5"),))] == 5
    assert found[("queue_wait_seconds_bucket", (("le", "1.0"),))] == 0
    # Four attempts reported, each after 0.5 s.
    assert found[("queue_run_seconds_count", ())] == 4
    assert found[("queue_run_seconds_sum", ())] == pytest.approx(2.0)
    # w1 and w2 were heard within the server's 30 s lease; w3, which asked for 5 s, was
    # last heard 6 s ago: no longer seen.
    assert found[("queue_workers_seen", ())] == 2


def test_undone_work_counts_nothing(tmp_path):
    """A batch refused by the queue itself (in the store thread: one task over its
    capacity undoes the whole batch) and a refused report count nothing."""
    queue = TaskQueue(SQLiteStore(str(tmp_path / "full.db")), capacity=1)
    with TestClient(create_app(queue)) as client:
        bad = client.post("/tasks/batch", json={"tasks": [{"type": "email"}] * 2})
        assert bad.status_code == 503  # the queue is full: nothing stored
        assert client.get("/stats").json()["total"] == 0
        assert client.post("/tasks/nope/complete", json={"lease_id": "x"}).status_code == 404
        found = samples(client)
    queue.store.close()
    assert not any(name in ("queue_tasks_submitted_total", "queue_tasks_completed_total")
                   for name, _ in found)


def test_a_last_attempt_whose_lease_ran_out_is_dead_lettered_and_counted(served):
    client, clock = served
    client.post("/tasks", json={"type": "report", "max_retries": 1})
    task = claim(client, "w1", lease_seconds=5)[0]
    clock.advance(6.0)  # w1 died holding its only attempt
    found = wait_for(lambda: (seen := samples(client)).get(("queue_leases_expired_total", ()))
                     and seen, 10, "the server's sweep")
    assert found[("queue_leases_expired_total", ())] == 1
    assert found[("queue_tasks_dead_lettered_total", (("type", "report"),))] == 1
    assert client.get(f"/tasks/{task['id']}").json()["status"] == "failed"


def test_a_claim_given_back_unstarted_is_counted_apart(served):
    client, _ = served
    client.post("/tasks/batch", json={"tasks": [{"type": "email"}] * 2})
    first, second = claim(client, "w1", max_tasks=2)
    client.post(f"/tasks/{second['id']}/release", json={"lease_id": second["lease_id"]})
    found = samples(client)
    assert found[("queue_attempts_total", (("type", "email"),))] == 2
    assert found[("queue_attempts_given_back_total", (("type", "email"),))] == 1
    assert client.get(f"/tasks/{second['id']}").json()["attempts"] == 0  # as the task says


def test_metrics_need_the_token_when_the_server_has_one(tmp_path):
    from queue_system.server.access import Access
    queue = TaskQueue(SQLiteStore(str(tmp_path / "t.db")))
    with TestClient(create_app(queue, access=Access(token="s3cret"))) as client:
        assert client.get("/metrics").status_code == 401
        ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and "queue_tasks" in ok.text
    queue.store.close()
