"""The worker's own logic, against a fake client (no server, no sockets)."""

import sys
import threading
import time

import pytest

from queue_system import MemoryStore, TaskQueue, sequential_ids
from queue_system.client import ApiError
from queue_system.worker import Worker
from queue_system.worker import worker as worker_module


class LateAnswerClient:
    """Answers the first claim with a task, but only after the worker was told to stop:
    the answer was on its way when the stop came."""

    url = "fake://"

    def __init__(self, task, delay):
        self.task, self.delay = task, delay
        self.worker = None
        self.answered = False
        self.released = []

    def claim(self, worker_id, types=None, wait=0, lease_seconds=None, max_tasks=1):
        if self.answered:  # later polls: nothing
            time.sleep(wait)
            return []
        self.worker.stopping.wait()
        time.sleep(self.delay)
        self.answered = True
        return [self.task]

    def release(self, task_id, lease_id, started=False):
        self.released.append(task_id)

    def ack(self, acks):
        raise AssertionError("nothing should run once the worker is stopping")


def test_a_claim_answered_just_after_the_stop_is_given_back():
    queue = TaskQueue(MemoryStore(), make_id=sequential_ids())
    queue.submit("report", {})
    [task] = queue.claim("w")
    client = LateAnswerClient(task, delay=0.1)
    worker = Worker(client, "w", {None: lambda t: None}, poll_wait=30)
    client.worker = worker
    runner = threading.Thread(target=worker.run)
    runner.start()
    time.sleep(0.1)
    worker.stop()
    runner.join(timeout=5)
    assert not runner.is_alive()
    # Before run() returned, the late task went back to the server.
    assert client.released == [task.id]


def test_an_idle_worker_still_stops_promptly():
    class Idle:
        url = "fake://"

        def claim(self, *args, wait=0, **kwargs):
            time.sleep(wait)
            return []

    worker = Worker(Idle(), "w", {None: lambda t: None}, poll_wait=30)
    runner = threading.Thread(target=worker.run)
    runner.start()
    time.sleep(0.1)
    worker.stop()
    runner.join(timeout=5)
    assert not runner.is_alive()  # it did not wait for its 30 s poll to end


class RefusingClient:
    """A server that refuses every claim (status ``status``), counting them."""

    url = "fake://"

    def __init__(self, status):
        self.status, self.claims = status, 0

    def claim(self, *args, **kwargs):
        self.claims += 1
        raise ApiError(self.status, "worker_id: String should have at least 1 character")


def test_a_claim_refused_with_a_4xx_stops_the_worker_at_once():
    client = RefusingClient(400)
    worker = Worker(client, "", {None: lambda t: None}, concurrency=3, poll_wait=30)
    runner = threading.Thread(target=worker.run)
    runner.start()
    runner.join(timeout=5)
    assert not runner.is_alive()  # stopped by itself: asking again would be refused again
    assert worker.refused is not None and worker.refused.status == 400
    assert client.claims <= 3  # one per thread at most, no loop


def test_a_server_error_is_retried_but_not_after_the_stop(monkeypatch):
    monkeypatch.setattr(worker_module, "RETRY_FIRST", 0.01)
    client = RefusingClient(503)
    worker = Worker(client, "w", {None: lambda t: None}, poll_wait=30)
    runner = threading.Thread(target=worker.run)
    runner.start()
    deadline = time.monotonic() + 5
    while client.claims < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.claims >= 3 and worker.refused is None  # a 5xx may pass: it tries again
    worker.stop()
    runner.join(timeout=5)
    assert not runner.is_alive()
    after_stop = client.claims
    time.sleep(0.3)
    assert client.claims == after_stop  # no request once stopped


class QueueClient:
    """The client's calls, answered by an in-memory queue (no HTTP)."""

    url = "fake://"

    def __init__(self, queue, fail_first_claim=False):
        self.queue = queue
        self.fail_first_claim = fail_first_claim

    def claim(self, worker_id, types=None, wait=0, lease_seconds=None, max_tasks=1):
        if self.fail_first_claim:
            self.fail_first_claim = False
            raise RuntimeError("a bug in the client")
        tasks = self.queue.claim(worker_id, types, lease_seconds, max_tasks)
        if not tasks:
            time.sleep(0.01)
        return tasks

    def ack(self, acks):
        results = []
        for a in acks:
            task = (self.queue.complete(a["id"], a["lease_id"], a.get("result")) if a["ok"]
                    else self.queue.fail(a["id"], a["lease_id"], a.get("error")))
            results.append({"id": task.id, "status": task.status})
        return results

    def report_and_claim(self, worker_id, acks, types=None, wait=0, lease_seconds=None,
                         max_tasks=1):
        results = QueueClient.ack(self, acks)  # one request: not also an ack and a claim
        return QueueClient.claim(self, worker_id, types, wait, lease_seconds, max_tasks), results

    def heartbeat(self, task_id, lease_id, lease_seconds=None):
        return self.queue.heartbeat(task_id, lease_id, lease_seconds)

    def release(self, task_id, lease_id, started=False):
        return self.queue.release(task_id, lease_id, started)


def run_until(worker, done, timeout=10):
    runner = threading.Thread(target=worker.run)
    runner.start()
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    runner.join(timeout=10)
    assert not runner.is_alive()


def test_results_that_are_not_strict_json_are_reported_as_failures():
    queue = TaskQueue(MemoryStore(), make_id=sequential_ids())
    nan, _ = queue.submit("nan", {}, max_retries=1)
    text, _ = queue.submit("text", {}, max_retries=1)
    handlers = {"nan": lambda t: float("nan"),
                "text": lambda t: (_ for _ in ()).throw(ValueError("bad \ud800 text"))}
    worker = Worker(QueueClient(queue), "w", handlers)
    run_until(worker, lambda: queue.stats()["failed"] == 2)
    assert "ValueError" in queue.get(nan.id).error
    error = queue.get(text.id).error
    assert error.startswith("ValueError: bad ") and "\ud800" not in error
    error.encode("utf-8")  # storable text


def test_an_unexpected_error_does_not_stop_the_worker():
    queue = TaskQueue(MemoryStore(), make_id=sequential_ids())
    task, _ = queue.submit("report", {})
    worker = Worker(QueueClient(queue, fail_first_claim=True), "w", {None: lambda t: "done"})
    worker_module.RETRY_MAX, saved = 0.05, worker_module.RETRY_MAX
    try:
        run_until(worker, lambda: queue.get(task.id).status == "completed")
    finally:
        worker_module.RETRY_MAX = saved
    assert queue.get(task.id).result == "done"


def test_a_handler_that_exits_fails_its_task_and_the_worker_goes_on():
    queue = TaskQueue(MemoryStore(), make_id=sequential_ids())
    leaving, _ = queue.submit("leave", {}, max_retries=1)
    after, _ = queue.submit("report", {})
    handlers = {"leave": lambda t: sys.exit(3), "report": lambda t: "done"}
    worker = Worker(QueueClient(queue), "w", handlers, concurrency=2)
    run_until(worker, lambda: queue.get(after.id).status == "completed"
              and queue.get(leaving.id).status == "failed")
    assert queue.get(leaving.id).error == "SystemExit: 3"
    assert worker.done == {"completed": 1, "failed": 1}


class CountingClient(QueueClient):
    """The fake client, counting the worker's requests by kind."""

    def __init__(self, queue):
        super().__init__(queue)
        self.calls = {"claim": 0, "report_and_claim": 0, "ack": 0}

    def claim(self, *args, **kwargs):
        self.calls["claim"] += 1
        return super().claim(*args, **kwargs)

    def report_and_claim(self, *args, **kwargs):
        self.calls["report_and_claim"] += 1
        return super().report_and_claim(*args, **kwargs)

    def ack(self, acks):
        self.calls["ack"] += 1
        return super().ack(acks)


def test_a_worker_makes_one_request_per_task_the_report_riding_on_the_next_claim():
    queue = TaskQueue(MemoryStore(), make_id=sequential_ids())
    for _ in range(40):
        queue.submit("x", {})
    client = CountingClient(queue)
    worker = Worker(client, "w", {None: lambda task: "done"}, prefetch=1)
    run_until(worker, lambda: queue.stats()["completed"] == 40)
    assert queue.stats()["completed"] == 40
    # The first claim, then one claim per task that also reports the one before, and
    # at most a claim and a report alone around the stop.
    assert client.calls["report_and_claim"] >= 39
    assert sum(client.calls.values()) <= 40 + 3, client.calls


def test_the_automatic_prefetch_streams_short_tasks():
    queue = TaskQueue(MemoryStore(), make_id=sequential_ids())
    for _ in range(500):
        queue.submit("x", {})
    client = CountingClient(queue)
    worker = Worker(client, "w", {None: lambda task: None})  # prefetch "auto"
    run_until(worker, lambda: queue.stats()["completed"] == 500)
    assert queue.stats()["completed"] == 500
    assert worker.prefetch.size() == 100
    assert sum(client.calls.values()) < 50, client.calls  # not 500 round trips


class TooLargeClient(CountingClient):
    """A server that refuses every claim carrying reports (413: too large, as 100 results
    of 20 KB would be), reports of more than one outcome, and the result "too deep"."""

    def report_and_claim(self, *args, **kwargs):
        self.calls["report_and_claim"] += 1
        raise ApiError(413, "request body larger than 1048576 bytes")

    def ack(self, acks):
        self.calls["ack"] += 1
        if len(acks) > 1:
            raise ApiError(413, "request body larger than 1048576 bytes")
        if acks[0].get("result") == "too deep":
            raise ApiError(400, "'acks.0.result' is nested more than 32 levels deep")
        return QueueClient.ack(self, acks)


def test_reports_a_claim_cannot_carry_go_alone_and_none_is_lost():
    queue = TaskQueue(MemoryStore(), make_id=sequential_ids())
    for n in range(20):
        queue.submit("x", {"n": n})
    client = TooLargeClient(queue)
    worker = Worker(client, "w", {None: lambda task: "too deep" if task.payload["n"] == 7
                                  else "done"}, prefetch=5)
    run_until(worker, lambda: queue.stats()["completed"] + queue.stats()["pending"] == 20
              and queue.stats()["processing"] == 0 and client.calls["ack"] >= 20)
    stats = queue.stats()
    assert stats["processing"] == 0 and stats["completed"] == 19, stats
    refused = [t for t in queue.list() if t.payload["n"] == 7][0]
    assert refused.retries >= 1 and "refused the result" in refused.error  # each attempt


def test_a_prefetch_beyond_the_servers_max_claim_is_capped_not_fatal():
    queue = TaskQueue(MemoryStore(), make_id=sequential_ids())
    for _ in range(300):
        queue.submit("x", {})

    class SmallClaims(CountingClient):
        def claim(self, worker_id, types=None, wait=0, lease_seconds=None, max_tasks=1):
            if max_tasks > 10:
                raise ApiError(400, "max_tasks: Input should be less than or equal to 10")
            return super().claim(worker_id, types, wait, lease_seconds, max_tasks)

        def report_and_claim(self, worker_id, acks, types=None, wait=0, lease_seconds=None,
                             max_tasks=1):
            if max_tasks > 10:
                raise ApiError(400, "max_tasks: Input should be less than or equal to 10")
            return super().report_and_claim(worker_id, acks, types, wait, lease_seconds,
                                            max_tasks)

        def health(self):
            return {"status": "ok", "max_claim": 10}

    worker = Worker(SmallClaims(queue), "w", {None: lambda task: None})
    run_until(worker, lambda: queue.stats()["completed"] == 300)
    assert queue.stats()["completed"] == 300 and worker.refused is None
    assert worker.prefetch.cap == 10


class TokenRotatedClient(CountingClient):
    """A server whose worker token changed after the first claim: every report is 403."""

    def report_and_claim(self, *args, **kwargs):
        self.calls["report_and_claim"] += 1
        raise ApiError(403, "this route needs the worker token (QUEUE_WORKER_TOKEN)")

    def ack(self, acks):
        self.calls["ack"] += 1
        raise ApiError(403, "this route needs the worker token (QUEUE_WORKER_TOKEN)")


def test_a_report_refused_for_its_token_stops_the_worker_without_splitting_it():
    queue = TaskQueue(MemoryStore(), make_id=sequential_ids())
    for _ in range(8):
        queue.submit("x", {})
    client = TokenRotatedClient(queue)
    worker = Worker(client, "w", {None: lambda task: "done"}, prefetch=4)
    runner = threading.Thread(target=worker.run)
    runner.start()
    runner.join(timeout=10)
    assert not runner.is_alive()  # stopped by itself: a wrong token stays wrong
    assert worker.refused is not None and worker.refused.status == 403
    # The outcomes were not split into single reports, nor turned into failures.
    assert client.calls["ack"] == 0, client.calls
    assert client.calls["report_and_claim"] == 1, client.calls
    assert queue.stats()["failed"] == 0 and queue.stats()["processing"] == 4  # leases run out


class BrokenReportsClient(CountingClient):
    """A server whose report route fails every time (a 500 from a bug)."""

    def report_and_claim(self, *args, **kwargs):
        self.calls["report_and_claim"] += 1
        raise ApiError(500, "internal error (KeyError); see the server's log")


def test_a_report_the_server_fails_again_and_again_is_given_up_not_retried_for_ever(
        monkeypatch):
    monkeypatch.setattr(worker_module, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(worker_module, "RETRY_MAX", 0.05)
    queue = TaskQueue(MemoryStore(), make_id=sequential_ids())
    first, _ = queue.submit("x", {})
    client = BrokenReportsClient(queue)
    worker = Worker(client, "w", {None: lambda task: "done"}, prefetch=1)
    runner = threading.Thread(target=worker.run)
    runner.start()
    deadline = time.monotonic() + 10
    while first.id in worker._held or client.calls["report_and_claim"] == 0:
        assert time.monotonic() < deadline, "the report is still retried, its task held"
        time.sleep(0.01)
    given_up_after = client.calls["report_and_claim"]
    worker.stop()
    runner.join(timeout=10)
    assert not runner.is_alive() and worker.refused is None  # a 5xx may pass another time
    assert 2 <= given_up_after <= 10  # retried a few times, then let go
    assert queue.get(first.id).status == "processing"  # its lease will run out: run again


def test_the_live_worker_renews_its_leases_at_the_lifecycles_period(monkeypatch):
    """The heartbeat thread asks ``lifecycle.heartbeat_every`` (as the simulated worker
    does) how often to renew, with the lease it holds: 30 s here. The answer is shortened
    so that the test sees renewals at once."""
    asked = []

    def heartbeat_every(lease_seconds):
        asked.append(lease_seconds)
        return 0.01

    monkeypatch.setattr(worker_module, "heartbeat_every", heartbeat_every)
    queue = TaskQueue(MemoryStore(), lease_seconds=30, make_id=sequential_ids())
    task, _ = queue.submit("slow", {})
    renewed = threading.Event()
    client = QueueClient(queue)
    heartbeat = client.heartbeat

    def counted_heartbeat(task_id, lease_id, lease_seconds=None):
        renewed.set()
        return heartbeat(task_id, lease_id, lease_seconds)

    client.heartbeat = counted_heartbeat
    worker = Worker(client, "w", {"slow": lambda t: renewed.wait(10) and "done"})
    run_until(worker, lambda: queue.get(task.id).status == "completed")
    assert renewed.is_set() and queue.get(task.id).result == "done"
    assert asked and all(lease == pytest.approx(30.0) for lease in asked)
