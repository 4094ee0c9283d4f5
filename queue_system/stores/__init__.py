"""Stores: where tasks live. One contract (``base.Store``), several places."""

from .base import Store
from .memory import MemoryStore
from .sqlite import SQLiteStore


def open_store(where: str) -> Store:
    """``memory`` for a throwaway store, anything else is a SQLite file path."""
    return MemoryStore() if where == "memory" else SQLiteStore(where)


__all__ = ["Store", "MemoryStore", "SQLiteStore", "open_store"]
