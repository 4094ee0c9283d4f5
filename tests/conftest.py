"""Shared fixtures: a queue on every store, with a clock the test moves by hand."""

import random

import pytest

from queue_system import Backoff, ManualClock, MemoryStore, SQLiteStore, TaskQueue, sequential_ids

START = 1_700_000_000.0


@pytest.fixture(params=["memory", "memory-one-thread", "sqlite"])
def store(request, tmp_path):
    # "memory-one-thread": the same code without its locks, as the simulation runs it
    # (which also forgets completed tasks: see test_memory_store.py).
    if request.param == "sqlite":
        store = SQLiteStore(str(tmp_path / "q.db"))
    else:
        store = MemoryStore(threadsafe=request.param == "memory")
    yield store
    store.close()


@pytest.fixture
def clock():
    return ManualClock(START)


@pytest.fixture
def make_queue(store, clock):
    """Build a queue over the parametrised store; keyword arguments override defaults."""
    def make(**options):
        options.setdefault("backoff", Backoff("none"))
        options.setdefault("lease_seconds", 30)
        return TaskQueue(store, clock, rng=random.Random(1), make_id=sequential_ids(), **options)
    return make


@pytest.fixture
def queue(make_queue):
    return make_queue()


@pytest.fixture
def browser():
    """A headless Chromium (``browser.py``: Debian's, driven by Playwright), closed at the
    end of the test. Modules that use it call ``browser.skip_without_a_browser()``."""
    from browser import ARGS, CHROMIUM, sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()
