"""The dead-letter log (exercise 2.3): one JSON line per task that enters the dead letter,
written only once the transition is committed."""

import contextlib
import json
import logging
import os
import threading

import pytest
from live import LiveSystem, wait_for
from sqlite_faults import next_commit_fails

from queue_system import (
    Backoff,
    ManualClock,
    MemoryStore,
    SQLiteStore,
    TaskQueue,
    sequential_ids,
)
from queue_system.dead_letter_log import (
    DeadLetterLog,
    dead_letter_line,
    read_dead_letter_log,
)
from queue_system.errors import StoreFull, StoreUnavailable
from queue_system.server.group_commit import GroupCommitter, Outbox


def queue_with_log(store, clock, log):
    return TaskQueue(store, clock, backoff=Backoff("none"), lease_seconds=10,
                     make_id=sequential_ids(), on_dead_letter=log.append)


def test_a_last_failure_and_a_last_expired_lease_both_reach_the_hook():
    clock, logged = ManualClock(0), []
    queue = queue_with_log(MemoryStore(), clock, logged)
    failing, _ = queue.submit("email", {"n": 1}, max_retries=1)
    abandoned, _ = queue.submit("email", {"n": 2}, max_retries=1)
    retried, _ = queue.submit("email", {"n": 3}, max_retries=2)
    held = {t.id: t for t in queue.claim("w", limit=3)}
    queue.fail(failing.id, held[failing.id].lease_id, "boom")
    queue.fail(retried.id, held[retried.id].lease_id, "boom")  # retried: not dead yet
    clock.advance(11)  # the worker holding the second task died
    queue.sweep()
    assert [(t.id, t.status) for t in logged] == [(failing.id, "failed"), (abandoned.id, "failed")]
    assert "lease expired" in logged[1].error


def test_the_line_is_the_task_as_the_api_shows_it_plus_when(tmp_path):
    clock, logged = ManualClock(1_700_000_000), []
    queue = queue_with_log(MemoryStore(), clock, logged)
    task, _ = queue.submit("image", {"url": "x"}, max_retries=1)
    [held] = queue.claim("w")
    dead = queue.fail(held.id, held.lease_id, "broken image")
    line = json.loads(dead_letter_line(dead, 1_700_000_001))
    assert line.pop("logged_at") == "2023-11-14T22:13:21+00:00"
    assert line == dead.to_dict() and line["error"] == "broken image"
    log = DeadLetterLog(str(tmp_path / "logs" / "dead.jsonl"))  # the folder is created
    log.write(dead)
    log.write(dead)  # appended, never rewritten
    log.close()
    assert [r["id"] for r in read_dead_letter_log(log.path)] == [dead.id, dead.id]


def test_an_undone_request_leaves_nothing_in_the_outbox(tmp_path):
    store = SQLiteStore(str(tmp_path / "q.db"))
    outbox, written = Outbox(), []
    committer = GroupCommitter(store, outbox=outbox)

    def dead_then_refused():
        outbox.add(lambda: written.append("undone"))
        raise ValueError("refused after the effect was noted")

    try:
        committer.submit(lambda: outbox.add(lambda: written.append("kept"))).result(10)
        with pytest.raises(ValueError):
            committer.submit(dead_then_refused).result(10)
    finally:
        committer.close()
    assert written == ["kept"]


@pytest.mark.parametrize("fault", ["commit", "request"])
def test_a_failed_commit_or_request_releases_no_effect(tmp_path, fault):
    store = SQLiteStore(str(tmp_path / "q.db"))
    queue = TaskQueue(store)
    outbox, written = Outbox(), []
    pages, = store._db.execute("PRAGMA page_count").fetchone()
    store._db.execute(f"PRAGMA max_page_count={pages + 2}")  # the disk is (nearly) full
    committer = GroupCommitter(store, outbox=outbox)
    running, gate = threading.Event(), threading.Event()

    def big_submit_with_effect():
        outbox.add(lambda: written.append("should not be written"))
        return queue.submit("big", {"blob": "x" * 50_000})

    try:
        blocker = committer.submit(lambda: (running.set(), gate.wait()))
        running.wait(10)
        futures = [committer.submit(big_submit_with_effect), committer.submit(queue.submit, "s", {})]
        # The big task does not fit: SQLite refuses that request alone. Or the commit of
        # the batch fails, and SQLite gives up the whole transaction.
        with next_commit_fails(store, after=1) if fault == "commit" else contextlib.nullcontext():
            gate.set()
            blocker.result()
            with pytest.raises(StoreFull if fault == "request" else StoreUnavailable, match="full"):
                futures[0].result(10)
            if fault == "commit":
                with pytest.raises(StoreUnavailable):
                    futures[1].result(10)
            else:
                assert futures[1].result(10)[1]  # stored: one request refused, not the batch
    finally:
        committer.close()
    assert written == []
    assert [task.type for task in queue.list()] == ([] if fault == "commit" else ["s"])


def test_the_server_logs_dead_letters_to_a_file(tmp_path):
    path = tmp_path / "dead-letter.jsonl"
    with LiveSystem(tmp_path) as live:
        # A 3 s lease: long enough for the reports below on a slow machine, short for the test.
        live.start_server("--backoff", "none", "--lease", "3", "--dead-letter-log", str(path))
        client = live.client
        failing = client.submit("email", {"n": 1}, max_retries=1)
        ok = client.submit("email", {"n": 2}, max_retries=1)
        abandoned = client.submit("email", {"n": 3}, max_retries=1)
        held = {t.id: t for t in client.claim("w", max_tasks=3)}
        client.fail(failing.id, held[failing.id].lease_id, "boom")
        client.complete(ok.id, held[ok.id].lease_id, {"done": True})
        # Nobody reports the third: its lease ends and the server's next sweep dead-letters it.
        wait_for(lambda: client.get(abandoned.id).status == "failed", 10, "the lease to end")
        lines = wait_for(lambda: path.exists() and len(read_dead_letter_log(str(path))) == 2
                         and read_dead_letter_log(str(path)), 10, "two lines")
    assert [line["id"] for line in lines] == [failing.id, abandoned.id]
    assert lines[0]["error"] == "boom" and "lease expired" in lines[1]["error"]
    assert all(line["status"] == "failed" and line["logged_at"] for line in lines)


def test_a_line_that_cannot_be_written_is_logged_not_raised(caplog):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (Linux) to stand for a full disk")
    log = DeadLetterLog("/dev/full")
    task, _ = TaskQueue(MemoryStore(), make_id=sequential_ids()).submit("email", {})
    with caplog.at_level(logging.ERROR, logger="queue_system.server"):
        log.write(task)  # the disk is full: no exception reaches the committed request
    assert f"could not log dead-lettered task {task.id} to /dev/full" in caplog.text
