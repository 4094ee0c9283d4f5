"""Shared fixtures: a queue on every store, with a clock the test moves by hand."""

import random

import pytest

from queue_system import Backoff, ManualClock, TaskQueue, open_store, sequential_ids
from sim.store import SimulationStore

START = 1_700_000_000.0


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One redis-server for the session (``redis_server.py``); each test that uses it
    starts from an empty database."""
    from redis_server import RedisServer, skip_without_redis
    skip_without_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["memory", "simulation", "sqlite", "redis"])
def store(request, tmp_path):
    """Every store, each named by its URL as a user would (``stores.open_store``).
    "simulation": the simulation's store (``sim.store``), the memory store without its
    locks; here it keeps completed tasks, whose forgetting test_simulation_store.py tests."""
    if request.param == "simulation":
        store = SimulationStore(forget_completed=False)
    elif request.param == "redis":
        server = request.getfixturevalue("redis_server")
        server.flush()
        store = open_store(server.url)
    else:
        store = open_store("memory://" if request.param == "memory"
                           else f"sqlite:///{tmp_path / 'q.db'}")
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
