"""Group commit: many requests, one transaction, and nothing half done.

A request that does not fit on a full disk is refused alone. A commit that
fails makes SQLite abandon the whole transaction; every request of the batch
must then fail with that error, and none may be stored.
"""

import contextlib
import threading

import pytest
from sqlite_faults import next_commit_fails

from queue_system import MemoryStore, SQLiteStore, TaskQueue
from queue_system.errors import StoreFull, StoreUnavailable
from queue_system.server.group_commit import GroupCommitter


def test_one_refused_request_does_not_undo_the_others(tmp_path):
    store = SQLiteStore(str(tmp_path / "q.db"))
    queue = TaskQueue(store)
    committer = GroupCommitter(store)
    try:
        futures = [committer.submit(queue.submit, "ok", 1),
                   committer.submit(queue.submit, "", 2),  # invalid: refused alone
                   committer.submit(queue.submit, "ok", 3)]
        assert futures[0].result().__class__ is tuple and futures[2].result()[1]
        with pytest.raises(Exception):
            futures[1].result()
    finally:
        committer.close()
    assert [t.payload for t in queue.list()] == [1, 3]


@pytest.mark.parametrize("fault", ["commit", "request"])
def test_a_full_disk_refuses_what_did_not_fit_or_the_whole_batch(tmp_path, fault):
    store = SQLiteStore(str(tmp_path / "q.db"))
    queue = TaskQueue(store)
    queue.submit("before", {})
    pages, = store._db.execute("PRAGMA page_count").fetchone()
    store._db.execute(f"PRAGMA max_page_count={pages + 2}")  # the disk is (nearly) full
    committer = GroupCommitter(store)
    running, gate = threading.Event(), threading.Event()
    try:
        # Hold the committer so that the three requests queue up and form one batch.
        blocker = committer.submit(lambda: (running.set(), gate.wait()))
        running.wait(10)
        futures = [committer.submit(queue.submit, "small", {}),
                   committer.submit(queue.submit, "big", {"blob": "x" * 50_000}),
                   committer.submit(queue.submit, "small2", {})]
        with next_commit_fails(store, after=1) if fault == "commit" else contextlib.nullcontext():
            gate.set()
            blocker.result()
            # The big one never fits: a 507, as the disk guard's; or the batch's error.
            with pytest.raises(StoreFull if fault == "request" else StoreUnavailable, match="full"):
                futures[1].result(timeout=10)
            for future in (futures[0], futures[2]):
                if fault == "commit":
                    with pytest.raises(StoreUnavailable, match="full"):
                        future.result(timeout=10)
                else:
                    assert future.result(timeout=10)[1]
    finally:
        committer.close()
    store._db.execute(f"PRAGMA max_page_count={pages + 10_000}")
    assert [t.type for t in queue.list()] == (["before"] if fault == "commit"
                                              else ["before", "small", "small2"])
    # The store still works afterwards.
    assert queue.submit("after", {})[1]


@pytest.mark.parametrize("make_store", [lambda path: SQLiteStore(str(path / "q.db")),
                                        lambda path: MemoryStore()], ids=["sqlite", "memory"])
def test_reports_sent_as_one_are_each_recorded_once_and_a_refused_one_alone(tmp_path,
                                                                            make_store):
    store = make_store(tmp_path)
    queue = TaskQueue(store)
    for n in range(4):
        queue.submit("x", {"n": n}, max_retries=1 if n == 3 else 3)
    a, b, c, d = queue.claim("w", limit=4)
    committer = GroupCommitter(store)
    dead_lettered = []  # as the server logs them: through the outbox, after the commit
    queue.on_dead_letter = lambda task: committer.outbox.add(
        lambda: dead_lettered.append(task.id))
    # d's dead-lettering runs before b is refused: the optimistic pass is undone with
    # its dead-letter line, and d runs again alone.
    reports = [(a, "complete"), (d, "fail"), (b, "stale"), (c, "complete")]

    def report(item):
        task, what = item
        if what == "stale":
            return queue.complete(task.id, "not-the-lease", "late")
        if what == "fail":
            return queue.fail(task.id, task.lease_id, "boom")
        return queue.complete(task.id, task.lease_id, "done")
    try:
        results = committer.submit(committer._each, report, reports).result()
    finally:
        committer.close()
    assert [ok for ok, _ in results] == [True, True, False, True]
    assert "lease" in str(results[2][1])
    for task in (a, c):  # recorded once: one version after the claim, not two
        stored = queue.get(task.id)
        assert stored.status == "completed" and stored.version == task.version + 1
    assert queue.get(b.id).status == "processing" and queue.get(b.id).version == b.version
    assert queue.get(d.id).status == "failed" and queue.get(d.id).version == d.version + 1
    assert dead_lettered == [d.id]  # its dead-letter line once, though it may run twice
