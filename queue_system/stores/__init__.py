"""Stores: where tasks live. One contract (``base.Store``), several engines, named by URL.

======================== =====================================================
``sqlite:///data/q.db``  a SQLite file, created if missing (the default); the
                         path is relative, ``sqlite:////srv/q.db`` absolute
``memory://``            a throwaway store inside this process
``redis://host:6379/0``  a Redis server, shared by several API servers
======================== =====================================================

``open_store`` is the one place that turns a URL into a store: the CLI, the
server, the demo and the tests all go through it. A bare path (``data/q.db``)
still means a SQLite file, and ``memory`` the memory store.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .base import Store
from .memory import MemoryStore
from .sqlite import SQLiteStore

SCHEMES = ("sqlite", "memory", "redis")


def store_url(where: str) -> str:
    """``where`` as a store URL: a bare path becomes ``sqlite:///path``."""
    if not isinstance(where, str) or not where.strip():
        raise ValueError("a store is a URL such as sqlite:///data/queue.db, memory:// "
                         "or redis://localhost:6379/0")
    if where == "memory":
        return "memory://"
    if "://" not in where:
        return f"sqlite:///{where}"
    scheme, rest = where.split("://", 1)
    return f"{scheme.lower()}://{rest}"  # a scheme is the same in any case


def open_store(where: str) -> Store:
    """The store ``where`` names (see the module's table); ValueError if it names none."""
    url = store_url(where)
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        if url != "memory://":
            raise ValueError(f"the memory store takes nothing after memory://, not {url!r}")
        return MemoryStore()
    if scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
        if not path:
            raise ValueError(f"{url!r} names no file: write sqlite:///data/queue.db "
                             "(a relative path) or sqlite:////srv/queue.db (an absolute one)")
        return SQLiteStore(path)
    if scheme == "redis":
        from .redis import RedisStore  # only when asked: it needs the redis package
        return RedisStore(url)
    raise ValueError(f"unknown store {urlsplit(url).scheme!r} in {url!r}: use one of "
                     + ", ".join(f"{scheme}://" for scheme in SCHEMES))


__all__ = ["Store", "MemoryStore", "SQLiteStore", "open_store", "store_url"]
