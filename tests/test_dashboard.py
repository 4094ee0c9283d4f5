"""The dashboard's page and state, and /docs, in-process: what the page draws comes from
/dashboard/state, and nothing either page needs comes from the network.

The page itself, in a real browser, is tested by ``test_dashboard_browser.py``."""

import random
import re

import pytest
from fastapi.testclient import TestClient

from queue_system import Backoff, ManualClock, MemoryStore, TaskQueue
from queue_system.localhost import wait_for
from queue_system.server import create_app
from queue_system.server.access import Access

START = 1_700_000_000.0


@pytest.fixture
def served():
    clock = ManualClock(START)
    queue = TaskQueue(MemoryStore(), clock, backoff=Backoff("none"), lease_seconds=30,
                      rng=random.Random(0))
    app = create_app(queue)
    app.context.dashboard.fresh = 0  # every request sees the queue as it is now
    with TestClient(app) as client:
        yield client, clock


def referenced(html: str):
    return re.findall(r'(?:src|href)="([^"]+)"', html)


@pytest.mark.parametrize("page", ["/", "/docs"])
def test_a_page_loads_nothing_from_the_network(served, page):
    client, _ = served
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assets = referenced(response.text)
    assert assets, "the page names its scripts and styles"
    for asset in assets:
        assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
        if asset.endswith((".js", ".css")):
            assert client.get(asset).status_code == 200, asset
    for asset in ("/dashboard/assets/dashboard.js", "/dashboard/assets/dashboard.css"):
        text = client.get(asset).text
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), asset


def test_the_state_counts_draws_and_lists_what_the_queue_holds(served):
    client, clock = served
    client.post("/tasks/batch", json={"tasks": [{"type": "email"}] * 4})
    client.post("/tasks", json={"type": "report", "delay": 60})
    client.post("/tasks", json={"type": "image", "max_retries": 1})
    clock.advance(1.5)
    held = client.post("/tasks/claim", json={"worker_id": "w1", "types": ["email"],
                                             "max_tasks": 2}).json()["tasks"]
    image = client.post("/tasks/claim", json={"worker_id": "w2", "types": ["image"]}
                        ).json()["tasks"][0]
    clock.advance(2.0)
    client.post(f"/tasks/{held[0]['id']}/complete", json={"lease_id": held[0]["lease_id"]})
    client.post(f"/tasks/{image['id']}/fail", json={"lease_id": image["lease_id"],
                                                     "error": "disk full"})
    state = client.get("/dashboard/state").json()
    assert state["counts"] == {"scheduled": 1, "pending": 2, "processing": 1, "completed": 1,
                               "failed": 1}
    assert state["history"][-1] == {"t": START + 3.5, **state["counts"]}
    assert state["mean_wait"] == pytest.approx(1.5)  # three claims, each after 1.5 s
    assert state["throughput"] == pytest.approx(1 / 3.5)  # one completed since the start
    workers = {row["id"]: row for row in state["workers"]}
    assert set(workers) == {"w1", "w2"}
    assert [t["id"] for t in workers["w1"]["tasks"]] == [held[1]["id"]]
    assert workers["w1"]["since"] == START + 1.5
    assert workers["w1"]["lease_left"] == pytest.approx(30 - 2.0)
    assert workers["w2"]["tasks"] == [] and workers["w2"]["last_heard"] == START + 3.5
    assert state["dead_letter"] == [{
        "id": image["id"], "type": "image", "priority": "normal", "error": "disk full",
        "attempts": 1, "finished_at": START + 3.5}]
    assert state["dead_letter_count"] == 1


def test_a_stopped_worker_disappears_when_its_lease_runs_out(served):
    client, clock = served
    client.post("/tasks", json={"type": "email"})
    task = client.post("/tasks/claim", json={"worker_id": "w1", "lease_seconds": 10}
                       ).json()["tasks"][0]
    clock.advance(9.0)
    state = client.get("/dashboard/state").json()
    assert [row["id"] for row in state["workers"]] == ["w1"]
    assert state["workers"][0]["tasks"][0]["id"] == task["id"]
    assert state["workers"][0]["lease_left"] == pytest.approx(1.0)
    clock.advance(1.5)  # w1 said nothing more: its lease (10 s, not the server's 30) ran out
    state = wait_for(lambda: (seen := client.get("/dashboard/state").json())["counts"]["pending"]
                     and seen, 10, "the server's sweep")
    assert state["counts"]["pending"] == 1 and state["counts"]["processing"] == 0
    assert state["workers"] == []
    # A worker that asked for no lease of its own is forgotten after the server's.
    client.post("/tasks/claim", json={"worker_id": "w2"})
    clock.advance(29.0)
    assert [row["id"] for row in client.get("/dashboard/state").json()["workers"]] == ["w2"]
    clock.advance(1.5)  # its lease ran out too: gone once the server's timer has swept
    wait_for(lambda: client.get("/dashboard/state").json()["workers"] == [], 10,
             "the server's sweep")


def test_the_history_keeps_the_last_minutes_a_point_a_second(served):
    client, clock = served
    for _ in range(5):
        client.get("/dashboard/state")  # the same second: one point
    for second in range(400):
        clock.advance(1.0)
        if second == 10:
            client.post("/tasks", json={"type": "email"})
        client.get("/dashboard/state")
    history = client.get("/dashboard/state").json()["history"]
    times = [point["t"] for point in history]
    assert times == sorted(times) and times[-1] - times[0] <= 300
    assert len(history) == 301 and all(p["pending"] == 1 for p in history)


def test_the_page_is_open_its_data_needs_the_token():
    queue = TaskQueue(MemoryStore())
    with TestClient(create_app(queue, access=Access(token="s3cret"))) as client:
        assert client.get("/").status_code == 200
        assert client.get("/dashboard/assets/dashboard.js").status_code == 200
        assert client.get("/docs/assets/swagger-ui.css").status_code == 200
        assert client.get("/dashboard/state").status_code == 401
        ok = client.get("/dashboard/state", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["counts"]["pending"] == 0


def test_only_the_files_the_pages_use_are_served(served):
    client, _ = served
    for name in ("index.html", "swagger-initializer.js", "swagger-ui-bundle.js.map"):
        assert client.get(f"/docs/assets/{name}").status_code == 404, name
    refused = client.post("/dashboard/assets/dashboard.js")
    assert refused.status_code == 405 and "GET" in refused.headers["Allow"]


def test_the_dead_letter_shows_the_latest_failures_first(served, monkeypatch):
    from queue_system.server import dashboard
    monkeypatch.setattr(dashboard, "MAX_DEAD", 2)
    client, clock = served
    ids = []
    for n in range(3):
        task = client.post("/tasks", json={"type": "email", "max_retries": 1}).json()
        held = client.post("/tasks/claim", json={"worker_id": "w1"}).json()["tasks"][0]
        client.post(f"/tasks/{held['id']}/fail", json={"lease_id": held["lease_id"]})
        ids.append(task["id"])
        clock.advance(1.0)
    state = client.get("/dashboard/state").json()
    assert [row["id"] for row in state["dead_letter"]] == [ids[2], ids[1]]
    assert state["dead_letter_count"] == 3


def test_the_workers_listed_are_capped_with_their_total(served, monkeypatch):
    """Worker ids come from the network: a page lists at most MAX_WORKERS of them, those
    holding tasks first, and says how many there are."""
    from queue_system.server import dashboard
    monkeypatch.setattr(dashboard, "MAX_WORKERS", 2)
    client, _ = served
    client.post("/tasks", json={"type": "email"})
    for worker in ("w3", "w2", "w1"):  # w3 takes the task; the others find nothing
        client.post("/tasks/claim", json={"worker_id": worker})
    state = client.get("/dashboard/state").json()
    assert [row["id"] for row in state["workers"]] == ["w3", "w1"]
    assert state["workers_count"] == 3
