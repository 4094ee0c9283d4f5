"""Who may use the server: tokens, and no web page driving it from another site.

The requests below carry the headers a browser sends (Chromium's, for a
page at http://evil.example that posts to the teacher's local server), so
the refusals are those a real attack would meet. curl, the worker and the
CLI send no Origin: the lesson's commands keep working.
"""

import json
import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from live import ROOT, LiveSystem, wait_for
from queue_system import MemoryStore, TaskQueue
from queue_system.client import ApiError, QueueClient
from queue_system.server import create_app
from queue_system.server.access import Access

LOCAL = Access.for_bind("127.0.0.1")
HOST = {"Host": "127.0.0.1:3000"}
# What Chromium sends with fetch("http://127.0.0.1:3000/tasks", {method: "POST",
# body: JSON.stringify(task)}) from a page at http://evil.example: a "simple" request
# (text/plain), sent without asking first.
CROSS_SITE_POST = {**HOST, "Origin": "http://evil.example", "Content-Type": "text/plain;charset=UTF-8",
                   "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors",
                   "Sec-Fetch-Dest": "empty", "Referer": "http://evil.example/"}
# An <img src="http://127.0.0.1:3000/dequeue"> on that page: no Origin at all.
CROSS_SITE_IMAGE = {**HOST, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors",
                    "Sec-Fetch-Dest": "image", "Referer": "http://evil.example/"}
# A <form method=post enctype=text/plain> submitted on that page.
CROSS_SITE_FORM = {**HOST, "Origin": "http://evil.example", "Content-Type": "text/plain",
                   "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
                   "Sec-Fetch-Dest": "document"}
# A page served by the API itself (same origin), posting JSON.
SAME_ORIGIN_POST = {**HOST, "Origin": "http://127.0.0.1:3000", "Content-Type": "application/json",
                    "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors",
                    "Sec-Fetch-Dest": "empty"}
TASK = json.dumps({"type": "email", "payload": {"to": "x@example.com"}})


@pytest.fixture
def make_api():
    clients = []

    def make(access=LOCAL):
        queue = TaskQueue(MemoryStore())
        client = TestClient(create_app(queue, access=access))
        client.__enter__()
        clients.append(client)
        return client, queue
    yield make
    for client in clients:
        client.__exit__(None, None, None)


def error_of(response):
    body = response.json()
    assert set(body) == {"error"} and body["error"], body
    return body["error"]


# -- web pages -----------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [CROSS_SITE_POST, CROSS_SITE_FORM], ids=["fetch", "form"])
@pytest.mark.parametrize("path", ["/tasks", "/task", "/tasks/claim"])
def test_a_web_page_of_another_site_cannot_submit_or_claim(make_api, headers, path):
    api, queue = make_api()
    body = TASK if path != "/tasks/claim" else '{"worker_id": "evil"}'
    answer = api.post(path, content=body.encode(), headers=headers)
    assert answer.status_code == 403 and "another origin" in error_of(answer)
    assert queue.stats()["total"] == 0


def test_a_web_page_of_another_site_cannot_complete_a_task(make_api):
    api, queue = make_api()
    task, _ = queue.submit("email", {})
    [held] = queue.claim("honest")
    answer = api.post(f"/complete/{task.id}", content=b'{"result": "spoiled"}',
                      headers=CROSS_SITE_POST)
    assert answer.status_code == 403
    assert queue.get(task.id).status == "processing" and queue.get(task.id).result is None


def test_an_image_on_another_site_cannot_take_a_task(make_api):
    api, queue = make_api()
    queue.submit("email", {})
    answer = api.get("/dequeue", headers=CROSS_SITE_IMAGE)
    assert answer.status_code == 403 and "another site" in error_of(answer)
    assert queue.stats()["pending"] == 1


def test_a_link_from_another_site_still_opens_the_docs(make_api):
    api, _ = make_api()
    answer = api.get("/docs", headers={**HOST, "Sec-Fetch-Site": "cross-site",
                                       "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"})
    assert answer.status_code == 200


def test_a_page_of_the_server_itself_may_post_json_but_not_text(make_api):
    api, queue = make_api()
    assert api.post("/tasks", content=TASK.encode(), headers=SAME_ORIGIN_POST).status_code == 202
    answer = api.post("/tasks", content=TASK.encode(),
                      headers={**SAME_ORIGIN_POST, "Content-Type": "text/plain"})
    assert answer.status_code == 403 and "application/json" in error_of(answer)
    assert queue.stats()["total"] == 1


@pytest.mark.parametrize("headers", [
    {**HOST},                                                     # curl -d without -H
    {**HOST, "Content-Type": "application/json"},                 # the lesson's curl
    {**HOST, "Content-Type": "application/x-www-form-urlencoded"},  # curl -d's default
    {"Host": "localhost:3000", "Content-Type": "application/json"},
], ids=["no type", "json", "form type", "localhost"])
def test_curl_and_programs_without_origin_are_unaffected(make_api, headers):
    api, queue = make_api()
    assert api.post("/task", content=TASK.encode(), headers=headers).status_code == 202
    assert queue.stats()["pending"] == 1


def test_a_server_on_the_loopback_answers_only_to_local_names(make_api):
    """DNS rebinding: evil.example made to point at 127.0.0.1 still sends its own name."""
    api, queue = make_api()
    answer = api.post("/tasks", content=TASK.encode(),
                      headers={"Host": "evil.example:3000", "Content-Type": "application/json"})
    assert answer.status_code == 403 and "evil.example" in error_of(answer)
    assert api.get("/stats", headers={"Host": "evil.example"}).status_code == 403
    for name in ("localhost:3000", "127.0.0.1:3000", "[::1]:3000", "LOCALHOST"):
        assert api.get("/stats", headers={"Host": name}).status_code == 200, name
    named, _ = make_api(Access.for_bind("127.0.0.1", extra_hosts=["queue.lan"]))
    assert named.get("/stats", headers={"Host": "queue.lan:3000"}).status_code == 200
    anywhere, _ = make_api(Access.for_bind("0.0.0.0"))
    assert anywhere.get("/stats", headers={"Host": "producer:3000"}).status_code == 200


# -- tokens ----------------------------------------------------------------------------------

def bearer(token):
    return {**HOST, "Authorization": f"Bearer {token}"}


def test_with_a_token_every_route_but_health_needs_it(make_api):
    api, queue = make_api(Access.for_bind("127.0.0.1", token="s3cret"))
    task, _ = queue.submit("email", {})
    for method, path in [("GET", "/stats"), ("GET", "/tasks"), ("GET", f"/tasks/{task.id}"),
                         ("POST", "/tasks"), ("POST", "/task"), ("GET", "/dequeue"),
                         ("GET", "/dead-letter"), ("POST", f"/dead-letter/{task.id}/replay")]:
        for headers in (HOST, bearer("wrong")):
            answer = api.request(method, path, headers=headers,
                                 content=TASK.encode() if method == "POST" else None)
            assert answer.status_code == 401, (method, path)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
            assert "token" in error_of(answer)
    assert queue.stats()["processing"] == 0 and queue.stats()["total"] == 1
    assert api.get("/health", headers=HOST).status_code == 200
    assert api.get("/openapi.json", headers=HOST).json()["security"] == [{"bearer": []}]
    assert api.get("/stats", headers=bearer("s3cret")).status_code == 200
    assert api.post("/tasks", content=TASK.encode(), headers=bearer("s3cret")).status_code == 202


def test_a_worker_token_keeps_submitters_from_completing_tasks(make_api):
    api, queue = make_api(Access.for_bind("127.0.0.1", token="student", worker_token="worker"))
    assert api.post("/tasks", content=TASK.encode(), headers=bearer("student")).status_code == 202
    claim = b'{"worker_id": "w"}'
    answer = api.post("/tasks/claim", content=claim, headers=bearer("student"))
    assert answer.status_code == 403 and "not act on them" in error_of(answer)
    assert api.get("/dequeue", headers=bearer("student")).status_code == 403
    [task] = api.post("/tasks/claim", content=claim, headers=bearer("worker")).json()["tasks"]
    ack = json.dumps({"acks": [{"id": task["id"], "lease_id": task["lease_id"], "ok": True}]})
    for path, body in [(f"/tasks/{task['id']}/complete", None), (f"/complete/{task['id']}", None),
                       (f"/tasks/{task['id']}/fail", None), (f"/fail/{task['id']}", None),
                       (f"/tasks/{task['id']}/heartbeat", None),
                       (f"/tasks/{task['id']}/release", None), ("/tasks/ack", ack),
                       ("/tasks/purge", '{"older_than": 0}'),
                       (f"/dead-letter/{task['id']}/replay", None)]:
        body = (body or json.dumps({"lease_id": task["lease_id"], "result": "spoiled"})).encode()
        assert api.post(path, content=body, headers=bearer("student")).status_code == 403, path
        assert api.post(path, content=body, headers=HOST).status_code == 401, path
    assert queue.get(task["id"]).status == "processing"
    done = api.post(f"/tasks/{task['id']}/complete", headers=bearer("worker"),
                    content=json.dumps({"lease_id": task["lease_id"], "result": 1}).encode())
    assert done.status_code == 200 and done.json()["status"] == "completed"
    # Both tokens read; only the worker's works.
    assert api.get("/stats", headers=bearer("worker")).status_code == 200


def test_an_open_server_says_so_and_a_closed_one_does_not(tmp_path):
    from queue_system.server.serve import access_notice
    assert "open" in access_notice(Access.for_bind("127.0.0.1"), "127.0.0.1")
    assert "WARNING" in access_notice(Access.for_bind("0.0.0.0"), "0.0.0.0")
    assert "WARNING" in access_notice(Access.for_bind("0.0.0.0", worker_token="w"), "0.0.0.0")
    assert "open" not in access_notice(Access.for_bind("0.0.0.0", token="t"), "0.0.0.0")


def test_a_server_on_every_interface_answers_a_browser_only_by_address(make_api):
    """DNS rebinding against Docker's 0.0.0.0: the page's name resolves to the server, and
    its requests look same-origin. Browsers must come by IP address or localhost."""
    api, queue = make_api(Access.for_bind("0.0.0.0"))
    rebound = {"Host": "rebind.evil.example:3000", "Origin": "http://rebind.evil.example:3000",
               "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin",
               "Sec-Fetch-Mode": "cors"}
    answer = api.post("/tasks", content=TASK.encode(), headers=rebound)
    assert answer.status_code == 403 and "rebind.evil.example" in error_of(answer)
    assert api.get("/tasks", headers={**rebound, "Sec-Fetch-Site": "none"}).status_code == 403
    for host in ("192.168.1.10:3000", "localhost:3000", "[::1]:3000"):
        page = dict(rebound, Host=host, Origin=f"http://{host}")
        assert api.post("/tasks", content=TASK.encode(), headers=page).status_code == 202, host
    # Programs (no Origin, no Sec-Fetch-*) may use any name: workers call it "producer".
    assert api.get("/stats", headers={"Host": "producer:3000"}).status_code == 200


def test_a_token_must_be_whole_and_printable(make_api):
    api, _ = make_api(Access.for_bind("127.0.0.1", token="s3cret"))
    for value in ("", "s3c", "s3cret2", " s3cret x"):
        answer = api.get("/stats", headers={**HOST, "Authorization": f"Bearer {value}"})
        assert answer.status_code == 401, repr(value)
    for bad in ("héllo", "two words", "line\nbreak"):
        with pytest.raises(ValueError, match="QUEUE_TOKEN"):
            Access.for_bind("127.0.0.1", token=bad)
        with pytest.raises(ValueError, match="token"):
            QueueClient("http://127.0.0.1:3000", token=bad)


# -- the programs pass the token ----------------------------------------------------------------

def test_workers_and_the_cli_pass_the_tokens_from_the_environment(tmp_path):
    tokens = {"QUEUE_TOKEN": "student-secret", "QUEUE_WORKER_TOKEN": "worker-secret"}
    with LiveSystem(tmp_path) as live:
        live.start_server(env=tokens)
        assert "needs QUEUE_TOKEN" in live.log("server") or "QUEUE_WORKER_TOKEN" in live.log("server")
        cli = [sys.executable, "-m", "queue_system"]
        url = ["--url", live.url]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env.pop("QUEUE_TOKEN", None)
        refused = subprocess.run(cli + ["submit", "email"] + url, capture_output=True, text=True,
                                 env=env, cwd=ROOT, timeout=60)
        assert refused.returncode == 1 and "401" in refused.stderr and "token" in refused.stderr
        done = subprocess.run(cli + ["submit", "email", "--count", "3"] + url, capture_output=True,
                              text=True, env=dict(env, QUEUE_TOKEN="student-secret"), cwd=ROOT,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        live.start_worker("worker-1", "--min-work", "0", "--max-work", "0.01",
                          "--failure-rate", "0", env=tokens)
        with QueueClient(live.url, token="student-secret") as client:
            wait_for(lambda: client.stats()["completed"] == 3, timeout=30,
                     what="the worker to complete the tasks")
        with QueueClient(live.url, token="") as anonymous:
            with pytest.raises(ApiError) as refused_call:
                anonymous.stats()
            assert refused_call.value.status == 401

