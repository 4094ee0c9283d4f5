"""A SQLite store whose next COMMIT fails as a full disk makes it: the whole
transaction given up (SQLite rolls it back by itself), an OperationalError."""

import contextlib
import sqlite3


@contextlib.contextmanager
def next_commit_fails(store, message: str = "database or disk is full", after: int = 0):
    """The first COMMIT after ``after`` others fails."""
    original = store._db
    failed, passed = [], [None] * after

    class FailingCommit:
        def __getattr__(self, name):
            return getattr(original, name)

        def execute(self, sql, *args):
            if sql == "COMMIT" and passed:
                passed.pop()
            elif sql == "COMMIT" and not failed:
                failed.append(sql)
                original.execute("ROLLBACK")
                raise sqlite3.OperationalError(message)
            return original.execute(sql, *args)
    store._db = FailingCommit()
    try:
        yield failed
    finally:
        store._db = original
