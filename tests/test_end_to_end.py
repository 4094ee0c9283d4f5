"""End to end on loopback: a real server and real worker processes.

These are the lesson's promises, checked with processes and signals:
nothing is lost when workers fail, when a worker is killed mid-task, or
when the server itself is killed right after accepting tasks.
"""

import signal
import threading
import time

import pytest

from queue_system.client import QueueClient

from live import LiveSystem, wait_for

FAST = ["--min-work", "0", "--max-work", "0.01"]


@pytest.fixture
def live(tmp_path):
    with LiveSystem(tmp_path) as system:
        yield system


def all_finished(client, total):
    stats = client.stats()
    return stats if stats["completed"] + stats["failed"] == total else None


def test_three_workers_drain_200_tasks_with_failures_and_lose_none(live):
    live.start_server("--backoff", "none")
    workers = [live.start_worker(f"worker-{n}", *FAST, "--failure-rate", "0.2", "--seed", str(n))
               for n in (1, 2, 3)]
    submitted = live.client.submit_many({"type": ["email", "image", "report"][i % 3],
                                         "payload": {"n": i}} for i in range(200))
    stats = wait_for(lambda: all_finished(live.client, 200), 120, "200 tasks to finish")
    tasks = {t.id: t for t in live.client.all_tasks()}
    assert set(tasks) == {t.id for t in submitted}
    assert stats["pending"] == stats["processing"] == stats["scheduled"] == 0
    assert stats["completed"] + stats["failed"] == 200
    # With p=0.2, 3 attempts: about 200 * 0.008 = 1.6 dead letters; failures did happen.
    assert sum(t.retries for t in tasks.values()) > 0
    for task in tasks.values():
        if task.status == "failed":
            assert task.retries == task.max_retries and task.attempts == 3
        else:
            assert task.status == "completed" and task.result and task.attempts == task.retries + 1
    assert {t.worker_id for t in tasks.values()} == {"worker-1", "worker-2", "worker-3"}
    for worker in workers:  # warm shutdown: each worker exits cleanly
        assert live.kill(worker, signal.SIGTERM) == 0


def test_server_killed_right_after_202s_keeps_every_accepted_task(live):
    live.start_server()
    accepted, lock = [], threading.Lock()

    def produce(n):
        with QueueClient(live.url) as client:
            for i in range(50):
                task = client.submit("report", {"producer": n, "i": i})
                with lock:
                    accepted.append(task.id)

    producers = [threading.Thread(target=produce, args=(n,)) for n in range(6)]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join()
    live.kill(live.server, signal.SIGKILL)  # no shutdown, no flush: the OS drops the process
    live.start_server()
    stored = {t.id for t in live.client.all_tasks()}
    assert len(accepted) == 300
    assert set(accepted) <= stored


def test_server_killed_while_accepting_keeps_every_202(live):
    live.start_server()
    accepted, stop = [], threading.Event()

    def produce():
        with QueueClient(live.url, timeout=5) as client:
            while not stop.is_set():
                try:
                    accepted.append(client.submit("report", {}).id)
                except Exception:
                    return  # the server is gone: only what got a 202 counts

    producers = [threading.Thread(target=produce) for _ in range(4)]
    for thread in producers:
        thread.start()
    wait_for(lambda: len(accepted) >= 200, 60, "200 accepted tasks")
    live.kill(live.server, signal.SIGKILL)
    stop.set()
    for thread in producers:
        thread.join()
    live.start_server()
    stored = {t.id for t in live.client.all_tasks()}
    assert set(accepted) <= stored


def test_worker_killed_mid_task_its_task_is_finished_by_another_after_the_lease(live):
    live.start_server("--lease", "2")
    task = live.client.submit("report", {"id": 1})
    victim = live.start_worker("victim", "--min-work", "60", "--max-work", "60",
                               "--failure-rate", "0")
    wait_for(lambda: live.client.get(task.id).status == "processing", 30, "the task to start")
    assert live.client.get(task.id).worker_id == "victim"
    time.sleep(2.5)  # heartbeats keep the lease alive past its 2 s length
    assert live.client.get(task.id).worker_id == "victim"
    live.kill(victim, signal.SIGKILL)
    live.start_worker("rescuer", *FAST, "--failure-rate", "0")
    done = wait_for(lambda: (lambda t: t if t.status == "completed" else None)(
        live.client.get(task.id)), 30, "another worker to complete the task")
    assert done.worker_id == "rescuer"
    assert done.attempts == 2 and done.retries == 1 and "victim" in done.error


def test_warm_shutdown_finishes_the_running_task(live):
    live.start_server()
    task = live.client.submit("email", {"to": "a@b.c"})
    worker = live.start_worker("polite", "--min-work", "1.5", "--max-work", "1.5",
                               "--failure-rate", "0")
    # Claimed is not started: wait for the handler to run (a task not started goes back).
    wait_for(lambda: f"Processing task {task.id}" in live.log("polite"), 30, "the task to start")
    assert live.kill(worker, signal.SIGTERM) == 0
    finished = live.client.get(task.id)
    assert finished.status == "completed" and finished.result == {"sent": True, "to": "a@b.c"}
    assert "finishing current tasks" in live.log("polite")


def test_second_signal_gives_the_lease_back_at_once(live):
    live.start_server("--lease", "60")
    task = live.client.submit("report", {})
    worker = live.start_worker("impatient", "--min-work", "60", "--max-work", "60")
    wait_for(lambda: f"Processing task {task.id}" in live.log("impatient"), 30, "the task to start")
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) != 0
    back = live.client.get(task.id)
    assert back.status == "pending" and back.retries == 0  # given back, not counted as failed
    assert back.attempts == 1, "its handler had begun: the attempt counts"


def test_worker_waits_for_an_unreachable_server(live):
    worker = live.start_worker("early", *FAST, "--failure-rate", "0")
    time.sleep(1.0)
    assert worker.poll() is None  # still alive, retrying
    live.start_server()
    task = live.client.submit("report", {})
    wait_for(lambda: live.client.get(task.id).status == "completed", 30, "the task to complete")
    assert "server unreachable, retrying" in live.log("early")


def test_idle_worker_gets_a_new_task_quickly(live):
    live.start_server()
    live.start_worker("idle", "--min-work", "0", "--max-work", "0", "--failure-rate", "0",
                      "--poll-wait", "30")
    warm = live.client.submit("report", {})
    wait_for(lambda: live.client.get(warm.id).status == "completed", 30, "the worker to start")
    time.sleep(0.5)  # the worker is now idle in a long poll
    task = live.client.submit("report", {})
    done = wait_for(lambda: (lambda t: t if t.status == "completed" else None)(
        live.client.get(task.id)), 30, "the task", interval=0.01)
    # Woken by the submit: claimed long before the 30 s poll would have ended.
    assert done.claimed_at - done.created_at < 30


def test_stopping_an_idle_worker_loses_no_task(live):
    live.start_server("--lease", "60")
    worker = live.start_worker("leaving", *FAST, "--failure-rate", "0", "--poll-wait", "30")
    warm = live.client.submit("report", {})
    wait_for(lambda: live.client.get(warm.id).status == "completed", 30, "the worker to start")
    time.sleep(0.3)  # idle in a 30 s long poll
    assert live.kill(worker, signal.SIGTERM) == 0  # it does not wait for the poll to end
    task = live.client.submit("report", {})
    time.sleep(0.5)
    # Whatever the abandoned poll might have claimed was given back: the task is ready.
    assert live.client.get(task.id).status == "pending"


def test_one_worker_runs_tasks_concurrently_and_only_its_types(live):
    live.start_server()
    for i in range(3):
        live.client.submit("email", {"to": f"user{i}@example.com"})
    report = live.client.submit("report", {"id": 1})
    live.start_worker("mailer", "--concurrency", "3", "--types", "email",
                      "--min-work", "2", "--max-work", "2", "--failure-rate", "0")

    def three_at_once():
        held = live.client.tasks(status="processing")
        return len(held) == 3 and {t.worker_id for t in held} == {"mailer"} and held
    held = wait_for(three_at_once, 30, "three emails in progress at once", interval=0.02)
    assert {t.type for t in held} == {"email"}
    wait_for(lambda: live.client.stats()["completed"] == 3, 30, "the emails to complete")
    assert live.client.get(report.id).status == "pending"  # not this worker's type


def test_a_task_given_back_by_a_dead_poll_wakes_the_live_ones(live):
    """A killed worker's long poll may be woken with the others and claim the task; the
    server gives it back, and must wake the live pollers then, not at the end of their wait."""
    import json
    import socket

    live.start_server()
    body = json.dumps({"worker_id": "ghost", "wait": 30}).encode()
    ghost = socket.create_connection(("127.0.0.1", live.port))
    ghost.sendall(b"POST /tasks/claim HTTP/1.1\r\nHost: localhost\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body))
    time.sleep(0.3)  # the ghost's poll waits first, so it is woken first...
    ghost.close()    # ...and its worker is gone (as if killed)
    got = {}

    def live_poll():
        with QueueClient(live.url) as client:
            started = time.monotonic()
            got["tasks"] = client.claim("alive", wait=30)
            got["waited"] = time.monotonic() - started

    poller = threading.Thread(target=live_poll)
    poller.start()
    time.sleep(0.3)  # the live worker is waiting too
    submitted = time.monotonic()
    task = live.client.submit("report", {})
    poller.join(timeout=40)
    assert [t.id for t in got["tasks"]] == [task.id]
    assert time.monotonic() - submitted < 5  # not the 30 s wait
    assert got["tasks"][0].attempts == 1, "a claim the ghost could not keep is not an attempt"


def test_a_claim_answered_as_the_worker_stops_is_not_left_processing(live):
    """SIGTERM the moment the server has answered a claim, the answer still on its way:
    the worker either runs the task (warm shutdown) or gives it back at once; it never
    exits leaving it under a lease that nobody renews."""
    live.start_server("--lease", "60")
    task = live.client.submit("report", {})
    worker = live.start_worker("racer", "--min-work", "1", "--max-work", "1",
                               "--failure-rate", "0")
    wait_for(lambda: live.client.get(task.id).status == "processing", 30, "the claim",
             interval=0.001)
    assert live.kill(worker, signal.SIGTERM) == 0
    after = live.client.get(task.id)
    assert after.status in ("completed", "pending") and after.retries == 0, after


SLOW_HANDLERS = '''\
import time

def run(task):
    time.sleep(task.payload["seconds"])  # the lesson's 1-3 s tasks, scaled down
    return {"slept": task.payload["seconds"]}

HANDLERS = {None: run}
'''


def held_at_once(tasks) -> dict:
    """Per worker, the most tasks it held at the same time (claimed, not yet reported),
    by the server's own timestamps. A worker's claim carries the report of its last task,
    committed first: one at a time means each claim comes at or after the last finish."""
    most = {}
    for worker in {t.worker_id for t in tasks}:
        mine = sorted((t for t in tasks if t.worker_id == worker), key=lambda t: t.claimed_at)
        events = sorted([(t.claimed_at, 1) for t in mine] + [(t.finished_at, -1) for t in mine])
        held = peak = 0
        for _, change in events:  # a finish and a claim at the same instant: finish first
            held += change
            peak = max(peak, held)
        most[worker] = peak
    return most


@pytest.mark.parametrize("prefetch, one_at_a_time", [("auto", True), ("5", False)],
                         ids=["auto: one at a time", "fixed 5: the control"])
def test_long_tasks_are_not_held_by_one_worker_while_another_is_idle(live, tmp_path, prefetch,
                                                                    one_at_a_time):
    """The lesson's burst of 30 tasks of 1-3 s on three workers, scaled to 0.15-0.35 s. With
    the automatic prefetch each worker holds only the task it runs (no task waits in one
    worker while another is idle); a fixed prefetch of 5 makes workers hoard, which the
    same measure shows."""
    live.start_server()
    (tmp_path / "slow_handlers.py").write_text(SLOW_HANDLERS)
    env = {"PYTHONPATH": str(tmp_path)}
    with QueueClient(live.url) as client:
        before = {t.id for t in client.all_tasks()}
        for n in range(3):
            live.start_worker(f"fair-{n}-{prefetch}", "--handlers", "slow_handlers:HANDLERS",
                              "--prefetch", prefetch, env=env)
        for n in range(3):  # warm-up: each worker learns how long tasks take
            client.submit("report", {"seconds": 0.2})
        wait_for(lambda: client.stats()["completed"] >= len(before) + 3, 30, "the warm-up")
        burst = client.submit_many([{"type": "report", "payload": {"seconds": 0.15 + 0.1 * (n % 3)}}
                                    for n in range(30)])
        ids = {t.id for t in burst}
        wait_for(lambda: all(client.get(i).status == "completed" for i in ids), 60, "the burst")
        tasks = [client.get(i) for i in ids]
    most = held_at_once(tasks)
    assert len(most) == 3  # all three workers took part
    if one_at_a_time:
        assert set(most.values()) == {1}, most
    else:
        assert max(most.values()) > 1, most
