"""Every route of the HTTP API, the lesson's included, with its error cases.

The app runs in-process (Starlette's test client) over a SQLite store and a
manual clock, so lease expiry is tested without sleeping.
"""

import random
import threading
import time

import pytest
from fastapi.testclient import TestClient

from queue_system import Backoff, ManualClock, SQLiteStore, TaskQueue
from queue_system.localhost import wait_for
from queue_system.server import create_app

START = 1_700_000_000.0


@pytest.fixture
def clock():
    return ManualClock(START)


@pytest.fixture
def api(tmp_path, clock):
    queue = TaskQueue(SQLiteStore(str(tmp_path / "api.db")), clock, backoff=Backoff("none"),
                      lease_seconds=30, rng=random.Random(0))
    with TestClient(create_app(queue, max_body=64 * 1024)) as client:
        yield client
    queue.store.close()


def claim(api, worker="w1", **body):
    response = api.post("/tasks/claim", json={"worker_id": worker, **body})
    return response.json()["tasks"] if response.status_code == 200 else []


def error_of(response):
    body = response.json()
    assert set(body) == {"error"} and body["error"], body
    return body["error"]


# -- the lesson's routes, used exactly as its curl commands and workers do ----------------

def test_lesson_flow_submit_dequeue_complete_stats(api):
    answer = api.post("/task", json={"type": "email",
                                     "payload": {"to": "user@example.com", "subject": "Hello"}})
    assert answer.status_code == 202
    body = answer.json()
    assert body["message"] == "Task enqueued" and body["stats"]["pending"] == 1
    task = api.get("/dequeue").json()
    assert task["id"] == body["taskId"] and task["type"] == "email"
    assert task["payload"]["to"] == "user@example.com" and task["status"] == "processing"
    assert api.get("/dequeue").status_code == 204
    assert api.get("/stats").json()["processing"] == 1
    done = api.post(f"/complete/{task['id']}", json={"result": {"sent": True}})
    assert done.status_code == 200 and done.json()["task"]["result"] == {"sent": True}
    stats = api.get("/stats").json()
    assert {k: stats[k] for k in ("pending", "processing", "completed", "failed")} == \
        {"pending": 0, "processing": 0, "completed": 1, "failed": 0}


def test_lesson_fail_route_retries_then_dead_letters(api):
    task_id = api.post("/task", json={"type": "report", "payload": {"id": 1}}).json()["taskId"]
    statuses = []
    for _ in range(3):
        held = api.get("/dequeue").json()
        assert held["id"] == task_id
        statuses.append(api.post(f"/fail/{task_id}", json={"error": "boom"}).json()["task"]["status"])
    assert statuses == ["pending", "pending", "failed"]
    assert [t["id"] for t in api.get("/dead-letter").json()["tasks"]] == [task_id]


def test_empty_payload_is_accepted_and_missing_payload_defaults_to_empty(api):
    assert api.post("/task", json={"type": "email", "payload": {}}).status_code == 202
    assert api.post("/task", json={"type": "email"}).status_code == 202
    assert [t["payload"] for t in api.get("/tasks").json()["tasks"]] == [{}, {}]


def test_curl_without_content_type_still_reads_json(api):
    answer = api.post("/task", content=b'{"type": "report", "payload": {"id": 1}}',
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 202


@pytest.mark.parametrize("body, expected", [
    (b"{not json", "Invalid JSON"),
    (b"", "JSON body is required"),
    (b"[1, 2]", "JSON object"),
    (b'{"payload": {}}', "type"),
    (b'{"type": 5}', "type"),
    (b'{"type": ""}', "type"),
    (b'{"type": "email", "extra": 1}', "extra"),
])
def test_lesson_submit_refuses_bad_input_with_a_message(api, body, expected):
    answer = api.post("/task", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert expected.lower() in error_of(answer).lower()
    assert api.get("/stats").json()["total"] == 0


def test_lesson_complete_and_fail_errors(api):
    assert api.post("/complete/nope", json={}).status_code == 404
    assert api.post("/fail/nope", json={"error": "x"}).status_code == 404
    task_id = api.post("/task", json={"type": "t"}).json()["taskId"]
    answer = api.post(f"/complete/{task_id}", json={"result": 1})
    assert answer.status_code == 409 and "not in progress" in error_of(answer)
    assert api.post(f"/fail/{task_id}", json={"error": 5}).status_code == 400


# -- the full API ---------------------------------------------------------------------------

def test_submit_with_options_and_get(api, clock):
    answer = api.post("/tasks", json={"type": "image", "payload": [1, 2], "priority": "high",
                                      "max_retries": 5, "delay": 10})
    assert answer.status_code == 202
    task = answer.json()
    assert task["status"] == "scheduled" and task["execute_at"] == START + 10
    assert api.get(f"/tasks/{task['id']}").json() == task
    iso = api.post("/tasks", json={"type": "x", "execute_at": "2030-01-01T00:00:00Z"}).json()
    assert iso["execute_at"] == 1893456000.0


@pytest.mark.parametrize("body, expected", [
    ({"type": "x", "priority": "urgent"}, "priority"),
    ({"type": "x", "max_retries": "3"}, "max_retries"),
    ({"type": "x", "max_retries": 0}, "max_retries"),
    ({"type": "x", "delay": -1}, "delay"),
    ({"type": "x", "delay": 1, "execute_at": 5}, "not both"),
    ({"type": "x", "execute_at": "next tuesday"}, "execute_at"),
    ({"type": "x" * 201}, "at most 200"),
    ({"type": "x", "idempotency_key": ""}, "idempotency_key"),
])
def test_submit_refuses_bad_options(api, body, expected):
    answer = api.post("/tasks", json=body)
    assert answer.status_code == 400
    assert expected in error_of(answer)


def test_idempotency_key_over_http(api):
    first = api.post("/tasks", json={"type": "email", "idempotency_key": "k1"})
    again = api.post("/tasks", json={"type": "email", "idempotency_key": "k1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]


def test_batch_submit_is_all_or_nothing(api):
    good = api.post("/tasks/batch", json={"tasks": [{"type": "a"}, {"type": "b", "priority": "low"}]})
    assert good.status_code == 202 and len(good.json()["tasks"]) == 2
    bad = api.post("/tasks/batch", json={"tasks": [{"type": "c"}, {"type": "d", "max_retries": 0}]})
    assert bad.status_code == 400 and "no task stored" in error_of(bad)
    assert api.get("/stats").json()["total"] == 2
    assert api.post("/tasks/batch", json={"tasks": []}).status_code == 400


def test_claim_priority_types_and_batch(api):
    for body in [{"type": "email", "payload": 1}, {"type": "image", "payload": 2, "priority": "high"},
                 {"type": "report", "payload": 3, "priority": "low"}]:
        api.post("/tasks", json=body)
    assert [t["payload"] for t in claim(api, types=["email", "report"], max_tasks=5)] == [1, 3]
    assert [t["payload"] for t in claim(api)] == [2]
    assert api.post("/tasks/claim", json={"worker_id": "w"}).status_code == 204


@pytest.mark.parametrize("body", [
    {}, {"worker_id": ""}, {"worker_id": "w", "wait": -1}, {"worker_id": "w", "wait": 61},
    {"worker_id": "w", "max_tasks": 0}, {"worker_id": "w", "lease_seconds": 0},
    {"worker_id": "w", "types": "email"},
])
def test_claim_refuses_bad_requests(api, body):
    assert api.post("/tasks/claim", json=body).status_code == 400


def test_heartbeat_complete_fail_release_with_leases(api, clock):
    ids = [api.post("/tasks", json={"type": "t", "payload": i}).json()["id"] for i in range(3)]
    held = {t["id"]: t for t in claim(api, max_tasks=3)}
    a, b, c = (held[i] for i in ids)
    clock.advance(20)
    beat = api.post(f"/tasks/{a['id']}/heartbeat", json={"lease_id": a["lease_id"]})
    assert beat.status_code == 200 and beat.json()["lease_expires_at"] == clock() + 30
    done = api.post(f"/tasks/{a['id']}/complete", json={"lease_id": a["lease_id"], "result": "r"})
    assert done.json()["status"] == "completed"
    failed = api.post(f"/tasks/{b['id']}/fail", json={"lease_id": b["lease_id"], "error": "e"})
    assert failed.json()["status"] == "pending" and failed.json()["retries"] == 1
    released = api.post(f"/tasks/{c['id']}/release", json={"lease_id": c["lease_id"]})
    assert released.json()["status"] == "pending" and released.json()["retries"] == 0
    assert released.json()["attempts"] == 0, "given back unstarted: not an attempt"
    again = {t["id"]: t for t in claim(api, max_tasks=2)}[c["id"]]
    wrong = api.post(f"/tasks/{c['id']}/release", json={"lease_id": again["lease_id"],
                                                         "started": "yes"})
    assert wrong.status_code == 400 and "started" in error_of(wrong)
    begun = api.post(f"/tasks/{c['id']}/release", json={"lease_id": again["lease_id"],
                                                         "started": True})
    assert begun.json()["status"] == "pending" and begun.json()["attempts"] == 1


def test_stale_lease_gets_409_and_changes_nothing(api, clock):
    task_id = api.post("/tasks", json={"type": "t"}).json()["id"]
    slow = claim(api, "slow")[0]
    clock.advance(31)
    fast = claim(api, "fast")[0]
    assert fast["id"] == task_id and fast["retries"] == 1
    for route in ("complete", "fail", "heartbeat", "release"):
        answer = api.post(f"/tasks/{task_id}/{route}", json={"lease_id": slow["lease_id"]})
        assert answer.status_code == 409, route
        assert "stale" in error_of(answer)
    assert api.get(f"/tasks/{task_id}").json()["worker_id"] == "fast"


def test_lease_routes_errors(api):
    assert api.post("/tasks/nope/complete", json={"lease_id": "x"}).status_code == 404
    task_id = api.post("/tasks", json={"type": "t"}).json()["id"]
    assert api.post(f"/tasks/{task_id}/complete", json={}).status_code == 400  # no lease id
    assert api.post(f"/tasks/{task_id}/complete", json={"lease_id": "x"}).status_code == 409


def test_ack_batch_each_item_alone(api):
    for i in range(3):
        api.post("/tasks", json={"type": "t", "payload": i})
    a, b, c = claim(api, max_tasks=3)
    results = api.post("/tasks/ack", json={"acks": [
        {"id": a["id"], "lease_id": a["lease_id"], "ok": True, "result": {"n": 1}},
        {"id": b["id"], "lease_id": b["lease_id"], "ok": False, "error": "bad"},
        {"id": c["id"], "lease_id": "stale", "ok": True},
        {"id": "missing", "lease_id": "x", "ok": True},
    ]}).json()["results"]
    assert results[0] == {"id": a["id"], "status": "completed"}
    assert results[1] == {"id": b["id"], "status": "pending"}
    assert results[2]["code"] == 409 and results[3]["code"] == 404
    assert api.get(f"/tasks/{c['id']}").json()["status"] == "processing"


def test_list_filters_and_paging(api):
    for i in range(5):
        api.post("/tasks", json={"type": "even" if i % 2 == 0 else "odd", "payload": i})
    assert [t["payload"] for t in api.get("/tasks?type=even").json()["tasks"]] == [0, 2, 4]
    assert [t["payload"] for t in api.get("/tasks?limit=2&offset=2").json()["tasks"]] == [2, 3]
    assert api.get("/tasks?status=pending").json()["count"] == 5
    for bad in ("status=done", "limit=0", "limit=abc", "offset=-1"):
        answer = api.get(f"/tasks?{bad}")
        assert answer.status_code == 400 and error_of(answer)


def test_get_unknown_task_is_404(api):
    answer = api.get("/tasks/does-not-exist")
    assert answer.status_code == 404 and "does-not-exist" in error_of(answer)


def test_dead_letter_replay(api):
    task_id = api.post("/tasks", json={"type": "t", "max_retries": 1}).json()["id"]
    held = claim(api)[0]
    api.post(f"/tasks/{task_id}/fail", json={"lease_id": held["lease_id"], "error": "x"})
    assert api.get("/dead-letter").json()["count"] == 1
    again = api.post(f"/dead-letter/{task_id}/replay")
    assert again.status_code == 200 and again.json()["status"] == "pending"
    assert api.post(f"/dead-letter/{task_id}/replay").status_code == 409
    assert api.post("/dead-letter/nope/replay").status_code == 404


def test_health_docs_and_unknown_routes(api):
    assert api.get("/health").json()["status"] == "ok"
    assert api.get("/docs").status_code == 200
    spec = api.get("/openapi.json").json()
    for path in ("/task", "/dequeue", "/complete/{task_id}", "/fail/{task_id}", "/tasks",
                 "/tasks/claim", "/tasks/{task_id}/heartbeat", "/dead-letter/{task_id}/replay"):
        assert path in spec["paths"]
    assert api.get("/nowhere").status_code == 404
    assert api.delete("/stats").status_code == 405


def test_body_over_the_limit_is_413(api):
    big = {"type": "t", "payload": "x" * (70 * 1024)}
    answer = api.post("/tasks", json=big)
    assert answer.status_code == 413 and "larger than" in error_of(answer)
    chunked = api.post("/tasks", content=iter([b'{"type": "t", "payload": "', b"x" * 70000, b'"}']))
    assert chunked.status_code == 413
    assert api.get("/stats").json()["total"] == 0


def test_long_poll_claim_is_woken_by_a_submit(api):
    got = {}

    def wait_for_task():
        started = time.monotonic()
        got["tasks"] = claim(api, "sleeper", wait=10)
        got["waited"] = time.monotonic() - started

    waiter = threading.Thread(target=wait_for_task)
    waiter.start()
    time.sleep(0.3)
    api.post("/tasks", json={"type": "t", "payload": "wake up"})
    waiter.join(timeout=10)
    assert [t["payload"] for t in got["tasks"]] == ["wake up"]
    assert got["waited"] < 10  # woken by the submit, not by the end of the wait


def test_long_poll_claim_returns_204_after_the_wait(api):
    assert api.post("/tasks/claim", json={"worker_id": "w", "wait": 0.2}).status_code == 204


def test_payload_with_integers_beyond_64_bits_round_trips(api):
    # Not powers of two: a float would not pass for them.
    huge = {"n": 12345678901234567890123, "list": [-(3 ** 45), 1.5, "x"]}
    answer = api.post("/tasks", json={"type": "t", "payload": huge})
    assert answer.status_code == 202 and answer.json()["payload"] == huge
    got = api.get(f"/tasks/{answer.json()['id']}").json()["payload"]
    assert got == huge and type(got["n"]) is int
    [task] = claim(api)
    assert task["payload"] == huge
    done = api.post(f"/tasks/{task['id']}/complete",
                    json={"lease_id": task["lease_id"], "result": {"sum": 98765432109876543210987}})
    assert done.status_code == 200
    assert api.get(f"/tasks/{task['id']}").json()["result"] == {"sum": 98765432109876543210987}


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_numbers_that_are_not_json_are_a_400_not_null(api, number):
    answer = api.post("/tasks", content=f'{{"type": "t", "payload": {{"x": {number}}}}}'.encode())
    assert answer.status_code == 400 and "finite" in error_of(answer)
    assert api.get("/stats").json()["total"] == 0
    api.post("/tasks", json={"type": "t"})
    [task] = claim(api)
    done = api.post(f"/tasks/{task['id']}/complete",
                    content=f'{{"lease_id": "{task["lease_id"]}", "result": {number}}}'.encode())
    assert done.status_code == 400 and "finite" in error_of(done)
    assert api.get(f"/tasks/{task['id']}").json()["status"] == "processing"


def test_a_byte_order_mark_is_named_as_such(api):
    answer = api.post("/tasks", content=b'\xef\xbb\xbf{"type": "t"}')
    assert answer.status_code == 400 and "byte order mark" in error_of(answer)


@pytest.mark.parametrize("body", [
    b'{"type": "\\ud800"}', b'{"type": "t", "payload": "\\udfff"}',
    b'{"type": "t", "payload": {"\\ud800": 1}}', b'{"type": "t", "idempotency_key": "\\ud800"}',
    b'{"type": "t", "payload": "\xed\xa0\x80"}',
])
def test_text_that_is_not_unicode_is_a_400_not_a_500(api, body):
    answer = api.post("/tasks", content=body)
    assert answer.status_code == 400 and "UTF-8" in error_of(answer)
    assert api.get("/stats").json()["total"] == 0


def test_surrogate_pairs_are_fine(api):
    answer = api.post("/tasks", content='{"type": "t", "payload": "\\ud83d\\ude00"}'.encode())
    assert answer.status_code == 202 and answer.json()["payload"] == "\U0001F600"


def test_an_ack_with_bad_text_fails_alone(api):
    for i in range(2):
        api.post("/tasks", json={"type": "t", "payload": i})
    a, b = claim(api, max_tasks=2)
    body = ('{"acks": [{"id": "%s", "lease_id": "%s", "ok": true},'
            ' {"id": "%s", "lease_id": "%s", "ok": false, "error": "bad \\ud800"}]}'
            % (a["id"], a["lease_id"], b["id"], b["lease_id"]))
    answer = api.post("/tasks/ack", content=body.encode())
    assert answer.status_code == 400  # refused whole, before anything is stored
    assert api.get(f"/tasks/{a['id']}").json()["status"] == "processing"


@pytest.mark.parametrize("query", ["offset=9223372036854775808", "offset=1e20", "limit=1001"])
def test_paging_out_of_range_is_a_400(api, query):
    for path in ("/tasks", "/dead-letter"):
        answer = api.get(f"{path}?{query}")
        assert answer.status_code == 400 and error_of(answer)


# -- one round trip per task: the report rides on the next claim ----------------------------

def test_a_claim_carries_the_last_outcomes_and_commits_them_first(api):
    first = api.post("/tasks", json={"type": "x"}).json()["id"]
    second = api.post("/tasks", json={"type": "x"}).json()["id"]
    [held] = claim(api)
    answer = api.post("/tasks/claim", json={"worker_id": "w1", "acks": [
        {"id": held["id"], "lease_id": held["lease_id"], "ok": True, "result": {"sent": 1}}]})
    assert answer.status_code == 200
    body = answer.json()
    assert body["acks"] == [{"id": first, "status": "completed"}]
    assert [t["id"] for t in body["tasks"]] == [second]
    assert api.get(f"/tasks/{first}").json()["result"] == {"sent": 1}


def test_a_stale_outcome_on_a_claim_changes_nothing_and_the_claim_still_works(api, clock):
    task = api.post("/tasks", json={"type": "x"}).json()["id"]
    [held] = claim(api)
    clock.advance(31)  # the lease ran out: another worker may hold it now
    [again] = claim(api, worker="w2")
    answer = api.post("/tasks/claim", json={"worker_id": "w1", "acks": [
        {"id": task, "lease_id": held["lease_id"], "ok": False, "error": "late"}]})
    assert answer.status_code == 200
    [refused] = answer.json()["acks"]
    assert refused["code"] == 409 and "stale" in refused["error"]
    assert answer.json()["tasks"] == []  # nothing left to claim: 200 all the same
    assert api.get(f"/tasks/{task}").json()["lease_id"] == again["lease_id"]


def test_the_server_sweeps_on_its_own_timer_while_no_worker_asks(api, clock):
    delayed = api.post("/tasks", json={"type": "email", "delay": 5}).json()
    held = api.post("/tasks", json={"type": "report"}).json()
    lease = claim(api, "w1", lease_seconds=3)[0]
    assert lease["id"] == held["id"]
    clock.advance(5.0)  # the delayed task is due, w1's lease has run out
    # No claim comes: the timer promotes the one and takes the other back. (A GET does
    # not: reading changes nothing, see the store contract.)
    stats = wait_for(lambda: (seen := api.get("/stats").json())["pending"] == 2 and seen,
                     10, "the server's sweep")
    assert stats["scheduled"] == stats["processing"] == 0
    assert api.get(f"/tasks/{delayed['id']}").json()["status"] == "pending"
    assert api.get(f"/tasks/{held['id']}").json()["retries"] == 1  # the lease expired


def test_pages_by_cursor_over_http(api):
    ids = [api.post("/tasks", json={"type": "t", "payload": n}).json()["id"] for n in range(7)]
    first = api.get("/tasks", params={"limit": 3}).json()["tasks"]
    after = first[-1]["seq"]
    second = api.get("/tasks", params={"limit": 3, "after": after}).json()["tasks"]
    assert [t["id"] for t in first + second] == ids[:6]
    assert [t["id"] for t in api.get("/tasks", params={"after": second[-1]["seq"]}
                                     ).json()["tasks"]] == ids[6:]
    bad = api.get("/tasks", params={"after": -1})
    assert bad.status_code == 400 and "after" in error_of(bad)
    assert api.get("/dead-letter", params={"after": after}).json() == {"tasks": [], "count": 0}
    dead = []
    for _ in range(3):  # three failures each (max_retries 3, no backoff): all dead-lettered
        for task in claim(api, "w1", max_tasks=7):
            answer = api.post(f"/tasks/{task['id']}/fail", json={"lease_id": task["lease_id"]})
            dead += [answer.json()] if answer.json()["status"] == "failed" else []
    assert len(dead) == 7
    page = api.get("/dead-letter", params={"after": first[1]["seq"], "limit": 2}).json()
    assert [t["id"] for t in page["tasks"]] == ids[2:4]
