"""The limits the API enforces at its edge, each tried as an attacker would.

Every case here was a 500, a stored task nobody could read, or input taken
silently before the limits existed. Each test sends the hostile request and
checks the answer is a 4xx that names the rule, and that nothing of it was kept.
"""

import json
import random

import pytest
from fastapi.testclient import TestClient

from queue_system import Backoff, ManualClock, SQLiteStore, TaskQueue
from queue_system.limits import DEPTH_CEILING, Limits
from queue_system.server import create_app
from queue_system.server.housekeeping import DiskGuard

START = 1_700_000_000.0


def nested(depth: int):
    value = []
    for _ in range(depth - 1):
        value = [value]
    return value


def deep_text(depth: int, inner: str = "1") -> str:
    """``depth`` levels of JSON arrays as text (no Python object: any depth is cheap)."""
    return "[" * depth + inner + "]" * depth


@pytest.fixture
def clock():
    return ManualClock(START)


@pytest.fixture
def make_api(tmp_path, clock):
    clients = []

    def make(limits=Limits(), capacity=None, **options):
        queue = TaskQueue(SQLiteStore(str(tmp_path / f"api{len(clients)}.db")), clock,
                          backoff=Backoff("none"), lease_seconds=30, rng=random.Random(0),
                          capacity=capacity)
        client = TestClient(create_app(queue, limits=limits, **options))
        client.__enter__()
        clients.append((client, queue))
        return client
    yield make
    for client, queue in clients:
        client.__exit__(None, None, None)
        queue.store.close()


@pytest.fixture
def api(make_api):
    return make_api()


def error_of(response):
    body = response.json()
    assert set(body) == {"error"} and body["error"], body
    return body["error"]


def post_text(api, path, text):
    return api.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


# -- nesting -----------------------------------------------------------------------------

@pytest.mark.parametrize("path, template", [
    ("/task", '{"type": "x", "payload": %s}'),
    ("/tasks", '{"type": "x", "payload": %s}'),
    ("/tasks/batch", '{"tasks": [{"type": "x", "payload": %s}]}'),
    ("/tasks/claim", '{"worker_id": %s}'),
    ("/tasks/ack", '{"acks": [{"id": "t", "lease_id": "l", "ok": true, "result": %s}]}'),
])
@pytest.mark.parametrize("depth", [5000, 960])
def test_a_deeply_nested_body_is_a_400_and_nothing_is_stored(api, path, template, depth):
    """5,000 levels crashed the JSON parser (500); about 960 were stored, then unreadable."""
    answer = post_text(api, path, template % deep_text(depth))
    assert answer.status_code == 400
    assert "nested" in error_of(answer) and "--max-depth" in error_of(answer)
    assert api.get("/stats").json()["total"] == 0


def test_payloads_nest_up_to_the_limit_exactly(make_api):
    api = make_api(Limits(max_depth=5))
    assert api.post("/tasks", json={"type": "x", "payload": nested(5)}).status_code == 202
    answer = api.post("/tasks", json={"type": "x", "payload": {"a": nested(5)}})
    assert answer.status_code == 400 and "'payload' is nested more than 5" in error_of(answer)
    answer = api.post("/tasks/batch", json={"tasks": [{"type": "x"},
                                                      {"type": "x", "payload": nested(6)}]})
    assert answer.status_code == 400 and "--max-depth" in error_of(answer)
    # Far deeper, the whole body is refused before it is parsed for the routes.
    answer = api.post("/tasks", json={"type": "x", "payload": nested(50)})
    assert answer.status_code == 400 and "at most 5 (--max-depth)" in error_of(answer)
    assert api.get("/stats").json()["total"] == 1


def test_a_deep_result_is_refused_and_the_task_stays_readable(api):
    """A result nested ~960 deep made its task unreadable for good; now it is refused and
    the worker still holds the task, which it can complete with a sane result."""
    api.post("/tasks", json={"type": "x"})
    [task] = api.post("/tasks/claim", json={"worker_id": "w"}).json()["tasks"]
    for path, body in [(f"/tasks/{task['id']}/complete",
                        '{"lease_id": "%s", "result": %s}' % (task["lease_id"], deep_text(960))),
                       (f"/complete/{task['id']}", '{"result": %s}' % deep_text(40)),
                       ("/tasks/ack", '{"acks": [{"id": "%s", "lease_id": "%s", "ok": true, '
                                      '"result": %s}]}' % (task["id"], task["lease_id"],
                                                           deep_text(40)))]:
        answer = post_text(api, path, body)
        assert answer.status_code == 400, path
        assert "nested" in error_of(answer)
    again = api.get(f"/tasks/{task['id']}")
    assert again.status_code == 200 and again.json()["status"] == "processing"
    assert api.get("/tasks").status_code == 200
    done = api.post(f"/tasks/{task['id']}/complete",
                    json={"lease_id": task["lease_id"], "result": {"ok": True}})
    assert done.status_code == 200 and done.json()["result"] == {"ok": True}


def test_the_depth_limit_cannot_be_set_where_reading_back_could_fail():
    with pytest.raises(ValueError, match="max_depth"):
        Limits(max_depth=DEPTH_CEILING + 1)


def test_the_store_refuses_to_write_what_it_could_not_read_back(tmp_path, clock):
    """Through Python, not HTTP: a payload too deep to read back is refused at once."""
    queue = TaskQueue(SQLiteStore(str(tmp_path / "q.db")), clock)
    with pytest.raises(ValueError, match="nested deeper"):
        queue.submit("x", nested(300))
    assert queue.stats()["total"] == 0


# -- ids, keys and dates ------------------------------------------------------------------

def test_a_worker_id_longer_than_200_characters_is_refused_on_every_route(api):
    api.post("/tasks", json={"type": "x"})
    long_id = "w" * 10_000
    answer = api.get("/dequeue", params={"worker_id": long_id})
    assert answer.status_code == 400 and "worker_id" in error_of(answer)
    answer = api.post("/tasks/claim", json={"worker_id": long_id})
    assert answer.status_code == 400 and "worker_id" in error_of(answer)
    assert api.get("/stats").json()["pending"] == 1  # nobody took it
    assert api.get("/dequeue", params={"worker_id": "w" * 200}).status_code == 200


@pytest.mark.parametrize("text", [
    "1" * 5000,           # Python's fromisoformat read this as the year 1111
    "11111111",           # a basic-format date
    "2026-W48-3",         # a week date
    "2026-13-01T00:00Z",  # no 13th month
    "2026-11-28",         # a date without a time
    "2026-11-28T09:00:00",  # no zone: whose nine o'clock?
    "2026-11-28T09:00Z",  # no seconds
    "2026-02-30T09:00:00Z",  # no 30th of February
    "next tuesday",
])
def test_execute_at_as_text_must_be_a_plain_iso_8601_time(api, text):
    answer = api.post("/tasks", json={"type": "x", "execute_at": text})
    assert answer.status_code == 400 and "execute_at" in error_of(answer)
    assert api.get("/stats").json()["total"] == 0


@pytest.mark.parametrize("text, seconds", [
    ("2023-11-14T22:13:20Z", START),
    ("2023-11-14t22:13:20z", START),
    ("2023-11-14 23:13:20+01:00", START),
    ("2023-11-14T22:13:20.5Z", START + 0.5),
    ("2023-11-14T22:14:00-00:00", START + 40),
])
def test_execute_at_accepts_rfc_3339_times(api, clock, text, seconds):
    answer = api.post("/tasks", json={"type": "x", "execute_at": text})
    assert answer.status_code == 202
    assert answer.json()["execute_at"] == max(seconds, START)


@pytest.mark.parametrize("value", [-1, 253402300800, 1e300])
def test_execute_at_in_seconds_stays_within_the_years_1970_to_9999(api, value):
    answer = api.post("/tasks", json={"type": "x", "execute_at": value})
    assert answer.status_code == 400 and "execute_at" in error_of(answer)


def test_an_idempotency_key_longer_than_200_characters_is_refused(api):
    answer = api.post("/tasks", json={"type": "x", "idempotency_key": "k" * 201})
    assert answer.status_code == 400 and "idempotency_key" in error_of(answer)


# -- claims -------------------------------------------------------------------------------

def test_one_claim_takes_at_most_max_claim_tasks_under_at_most_max_lease(make_api):
    """Claiming 1,000 tasks under 24-hour leases starved every honest worker."""
    api = make_api(Limits(max_claim=10, max_lease=60))
    api.post("/tasks/batch", json={"tasks": [{"type": "x"}] * 30})
    answer = api.post("/tasks/claim", json={"worker_id": "greedy", "max_tasks": 1000})
    assert answer.status_code == 400 and "max_tasks" in error_of(answer)
    answer = api.post("/tasks/claim", json={"worker_id": "greedy", "lease_seconds": 86400})
    assert answer.status_code == 400 and "lease_seconds" in error_of(answer)
    taken = api.post("/tasks/claim", json={"worker_id": "w", "max_tasks": 10,
                                           "lease_seconds": 60}).json()["tasks"]
    assert len(taken) == 10
    answer = api.post(f"/tasks/{taken[0]['id']}/heartbeat",
                      json={"lease_id": taken[0]["lease_id"], "lease_seconds": 61})
    assert answer.status_code == 400 and "lease_seconds" in error_of(answer)


# -- capacity, the disk, retention --------------------------------------------------------

def test_a_full_queue_answers_503_with_retry_after_and_keeps_nothing(make_api):
    api = make_api(capacity=2)
    for n in range(2):
        assert api.post("/tasks", json={"type": "x", "idempotency_key": f"k{n}"}).status_code == 202
    for path, body in [("/tasks", {"type": "x"}), ("/task", {"type": "x"}),
                       ("/tasks/batch", {"tasks": [{"type": "x"}]})]:
        answer = api.post(path, json=body)
        assert answer.status_code == 503, path
        assert "full" in error_of(answer) and int(answer.headers["Retry-After"]) > 0
    # A resend of a stored task is answered: it takes no room.
    again = api.post("/tasks", json={"type": "x", "idempotency_key": "k0"})
    assert again.status_code == 200
    # Once a worker takes a task, there is room again.
    api.post("/tasks/claim", json={"worker_id": "w"})
    assert api.post("/tasks", json={"type": "x"}).status_code == 202
    assert api.get("/stats").json()["total"] == 3


def test_new_work_is_refused_with_507_when_the_disk_is_nearly_full(tmp_path, make_api):
    api = make_api(Limits(min_free_disk=2 ** 62), disk_folder=str(tmp_path))
    for path, body in [("/tasks", {"type": "x"}), ("/task", {"type": "x"}),
                       ("/tasks/batch", {"tasks": [{"type": "x"}]})]:
        answer = api.post(path, json=body)
        assert answer.status_code == 507, path
        assert "--min-free-disk" in error_of(answer) and int(answer.headers["Retry-After"]) > 0
    assert api.get("/stats").json()["total"] == 0


def test_the_disk_guard_looks_at_the_disk_at_most_once_a_second():
    free, looked, now = [10], [], [0.0]

    def free_bytes(folder):
        looked.append(folder)
        return free[0]
    guard = DiskGuard("/data", min_free=5, free_bytes=free_bytes, clock=lambda: now[0])
    guard.check()
    free[0] = 1
    guard.check()  # the same second: the last answer stands
    assert len(looked) == 1
    now[0] = 1.0
    with pytest.raises(Exception, match="min-free-disk"):
        guard.check()
    assert len(looked) == 2


def test_purge_deletes_old_finished_tasks_only(api, clock):
    ids = [api.post("/tasks", json={"type": "x", "max_retries": 1}).json()["id"]
           for _ in range(4)]
    tasks = api.post("/tasks/claim", json={"worker_id": "w", "max_tasks": 3,
                                           "lease_seconds": 3600}).json()["tasks"]
    api.post(f"/tasks/{tasks[0]['id']}/complete", json={"lease_id": tasks[0]["lease_id"]})
    api.post(f"/tasks/{tasks[1]['id']}/fail", json={"lease_id": tasks[1]["lease_id"]})
    clock.advance(3600)
    assert api.post("/tasks/purge", json={"older_than": 7200}).json() == {"deleted": 0}
    assert api.post("/tasks/purge", json={"older_than": 60}).json() == {"deleted": 2}
    left = {t["id"]: t["status"] for t in api.get("/tasks").json()["tasks"]}
    assert left == {ids[2]: "processing", ids[3]: "pending"}
    answer = api.post("/tasks/purge", json={"older_than": -1})
    assert answer.status_code == 400 and "older_than" in error_of(answer)


# -- the protocol -------------------------------------------------------------------------

def test_a_405_names_the_allowed_methods(api):
    answer = api.delete("/tasks")
    assert answer.status_code == 405
    assert set(answer.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_the_schema_states_the_statuses_and_rules_the_api_enforces(api):
    document = api.get("/openapi.json").json()
    text = json.dumps(document)
    assert '"422"' not in text and "HTTPValidationError" not in text
    submit = document["paths"]["/tasks"]["post"]["responses"]
    assert {"200", "202", "400", "413", "503", "507"} <= set(submit)
    complete = document["paths"]["/tasks/{task_id}/complete"]["post"]["responses"]
    assert {"200", "400", "404", "409"} <= set(complete)
    task_in = document["components"]["schemas"]["TaskIn"]["properties"]
    assert task_in["type"]["minLength"] == 1 and task_in["type"]["maxLength"] == 200
    assert task_in["max_retries"]["minimum"] == 1 and task_in["max_retries"]["maximum"] == 1000
    claim_in = document["components"]["schemas"]["ClaimIn"]["properties"]
    assert claim_in["max_tasks"]["maximum"] == Limits().max_claim
    assert claim_in["worker_id"]["maxLength"] == 200


def test_every_limit_is_a_serve_flag_and_documented_in_the_readme():
    import dataclasses
    from pathlib import Path

    from queue_system.cli import build_parser, limits_from
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    args = build_parser().parse_args(["serve"])
    assert limits_from(args) == Limits()  # the flags' defaults are the limits' defaults
    for field in dataclasses.fields(Limits):
        flag, variable = f"--{field.name.replace('_', '-')}", field.name.upper()
        assert f"`{flag}` / `{variable}`" in readme, field.name
    changed = limits_from(build_parser().parse_args(
        ["serve", "--max-body", "64K", "--retention", "7d", "--capacity", "100"]))
    assert (changed.max_body, changed.retention, changed.capacity) == (65536, 604800, 100)


def test_with_a_retention_the_server_purges_finished_tasks_by_itself(make_api, clock):
    import time
    api = make_api(Limits(retention=10))  # purged every second
    kept = api.post("/tasks", json={"type": "x"}).json()["id"]
    done = api.post("/tasks", json={"type": "x"}).json()["id"]
    [task] = api.post("/tasks/claim", json={"worker_id": "w"}).json()["tasks"]
    assert task["id"] == kept
    api.post("/tasks/claim", json={"worker_id": "w2"})
    claimed = api.get(f"/tasks/{done}").json()
    api.post(f"/tasks/{done}/complete", json={"lease_id": claimed["lease_id"]})
    clock.advance(11)
    deadline = time.monotonic() + 10
    while api.get(f"/tasks/{done}").status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api.get(f"/tasks/{done}").status_code == 404
    assert api.get(f"/tasks/{kept}").status_code == 200  # still held: never purged


def test_a_body_sent_with_a_get_is_ignored_not_parsed(api):
    for body in (b"NaN", b"[" * 5000):
        answer = api.request("GET", "/stats", content=body)
        assert answer.status_code == 200 and answer.json()["total"] == 0


def test_a_replay_from_the_dead_letter_counts_against_the_capacity(make_api):
    api = make_api(capacity=1)
    dead = api.post("/tasks", json={"type": "x", "max_retries": 1}).json()["id"]
    [task] = api.post("/tasks/claim", json={"worker_id": "w"}).json()["tasks"]
    api.post(f"/tasks/{dead}/fail", json={"lease_id": task["lease_id"]})
    api.post("/tasks", json={"type": "x"})  # the queue is full again
    answer = api.post(f"/dead-letter/{dead}/replay")
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0
    assert api.get(f"/tasks/{dead}").json()["status"] == "failed"


def test_a_purge_gives_the_disk_guard_its_space_back(tmp_path, clock):
    """SQLite keeps purged pages for its next rows; the guard counts them as free."""
    store = SQLiteStore(str(tmp_path / "q.db"))
    queue = TaskQueue(store, clock)
    for _ in range(3):
        queue.submit_many([{"type": "x", "payload": "p" * 2000}] * 100)
    for task in queue.claim("w", limit=300):
        queue.complete(task.id, task.lease_id)
    before = store.reusable_bytes()
    assert queue.purge(older_than=0) == 300
    freed = store.reusable_bytes() - before
    assert freed > 300 * 2000
    guard = DiskGuard(str(tmp_path), min_free=freed, free_bytes=lambda folder: 0,
                      reusable_bytes=store.reusable_bytes)
    guard.check()  # no error: the freed pages count
    store.close()
