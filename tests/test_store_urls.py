"""Stores named by URL in one place, and an engine's failure as one error.

``open_store`` is what the CLI, the server, the demo and the tests use; a
store's own engine errors leave it as ``StoreUnavailable``, which the API
answers with a 503 whatever the engine.
"""

import os
import sqlite3

import pytest
from fastapi.testclient import TestClient

from queue_system import MemoryStore, SQLiteStore, TaskQueue, open_store
from queue_system.errors import StoreUnavailable
from queue_system.server.app import create_app
from queue_system.stores import store_url


@pytest.mark.parametrize("where, kind, path", [
    ("sqlite:///relative.db", SQLiteStore, "relative.db"),
    ("relative.db", SQLiteStore, "relative.db"),         # a bare path: a SQLite file
    ("memory://", MemoryStore, None),
    ("memory", MemoryStore, None),
])
def test_a_url_names_the_store(tmp_path, monkeypatch, where, kind, path):
    monkeypatch.chdir(tmp_path)
    store = open_store(where)
    try:
        assert isinstance(store, kind)
        assert store.url == store_url(where)
        if path is not None:
            assert store.path == path and os.path.exists(tmp_path / path)
            assert store.folder == str(tmp_path)
        else:
            assert store.folder is None
    finally:
        store.close()


def test_an_absolute_sqlite_path_takes_four_slashes(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/q.db")  # tmp_path starts with its own /
    try:
        assert store.path == f"{tmp_path}/q.db" and store.url.startswith("sqlite:////")
        assert open_store(store.url).path == store.path  # the URL opens the same file
    finally:
        store.close()


@pytest.mark.parametrize("where, says", [
    ("postgres://localhost/q", "unknown store 'postgres'"),
    ("sqlite://", "names no file"),
    ("sqlite:///", "names no file"),
    ("memory://elsewhere", "takes nothing after memory://"),
    ("", "a store is a URL"),
])
def test_a_url_that_names_no_store_is_refused_with_a_reason(where, says):
    with pytest.raises(ValueError, match=says):
        open_store(where)


@pytest.fixture
def locked(tmp_path):
    """A SQLite store whose file another process holds locked for writing."""
    path = str(tmp_path / "locked.db")
    store = SQLiteStore(path, busy_timeout=0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield store, holder
    holder.close()
    store.close()


def test_an_engine_error_leaves_the_store_as_store_unavailable(locked):
    store, holder = locked
    queue = TaskQueue(store)
    with pytest.raises(StoreUnavailable, match="SQLite: database is locked") as caught:
        queue.submit("email", {})
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    with pytest.raises(StoreUnavailable):
        queue.claim("w1")
    holder.execute("ROLLBACK")
    assert queue.list() == []  # nothing of the refused submit was kept


def test_the_api_answers_an_unavailable_store_with_a_503_and_keeps_nothing(locked):
    store, holder = locked
    with TestClient(create_app(TaskQueue(store))) as client:
        answer = client.post("/tasks", json={"type": "email"})
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
        assert "nothing was saved" in answer.json()["error"]
        assert "database is locked" in answer.json()["error"]
        holder.execute("ROLLBACK")
        assert client.get("/stats").json()["total"] == 0
        assert client.get("/health").json()["store"] == store.url


def test_a_sqlite_file_made_before_the_counts_is_counted_once_as_it_is_opened(tmp_path):
    path = str(tmp_path / "old.db")
    queue = TaskQueue(SQLiteStore(path))
    queue.submit_many([{"type": "t"}] * 5 + [{"type": "t", "delay": 60}] * 2)
    held = queue.claim("w", limit=2)
    queue.complete(held[0].id, held[0].lease_id)
    last = queue.list(limit=10)[-1]
    queue.store.close()
    old = sqlite3.connect(path)  # as a file of the version before: no counts, no line
    old.executescript("DROP TRIGGER counts_insert; DROP TRIGGER counts_delete; "
                      "DROP TRIGGER counts_update; DROP TRIGGER line_insert; "
                      "DROP TABLE counts; DROP TABLE line;")
    old.close()
    store = SQLiteStore(path)
    try:
        assert store.count_by_status() == {"scheduled": 2, "pending": 3, "processing": 1,
                                           "completed": 1, "failed": 0}
        assert TaskQueue(store).submit("t")[0].seq == last.seq + 1
        assert store.count_by_status()["pending"] == 4  # and kept from then on
    finally:
        store.close()


def test_a_bug_in_the_use_of_sqlite_is_not_passed_off_as_the_engine_failing(tmp_path):
    store = SQLiteStore(str(tmp_path / "q.db"))
    try:
        with pytest.raises(sqlite3.ProgrammingError):  # a wrong statement: ours to fix
            store._select("SELECT ? FROM tasks", ())
    finally:
        store.close()
