"""The API against its own OpenAPI document, with schemathesis.

schemathesis reads ``/openapi.json`` and, for every route, sends requests
the document says are valid and requests it says are not (wrong types,
values out of range, missing fields), to a real server on 127.0.0.1. Every
answer must be one the document lists for that route, with the body it
describes; valid requests must not be refused as invalid, invalid ones
must be refused; and no answer may be a 5xx. So the document tells the
truth, and nothing a client can send breaks the server.

Bounded and repeatable: a fixed number of examples per route and mode,
drawn from a fixed seed (``derandomize``).
"""

import collections

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from live import LiveSystem
from queue_system import MemoryStore, TaskQueue
from queue_system.server import create_app

EXAMPLES = 40  # per route and generation mode (valid, invalid)
SEEN = collections.Counter()
# The document the server serves, as schemathesis reads it (built in-process here, so
# the routes are known when pytest collects; a test below checks the server serves it).
DOCUMENT = create_app(TaskQueue(MemoryStore())).fastapi.openapi()
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
ROUTES = [(path, method.upper(), mode) for path, methods in DOCUMENT["paths"].items()
          for method, operation in methods.items()
          for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
          # Invalid input needs something to get wrong: a body or a query parameter.
          if mode is GenerationMode.POSITIVE or "requestBody" in operation
          or any(p["in"] == "query" for p in operation.get("parameters", ()))]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("schema")
    with LiveSystem(folder) as live:
        live.start_server("--capacity", "5000")
        yield live


def test_the_server_serves_this_document(server):
    assert server.client._call("GET", "/openapi.json") == DOCUMENT


@pytest.mark.parametrize("path, method, mode", ROUTES,
                         ids=[f"{m} {p} {mode.value}" for p, m, mode in ROUTES])
def test_every_answer_is_one_the_schema_lists(server, path, method, mode):
    operation = SCHEMA[path][method]

    @given(operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        if mode is GenerationMode.POSITIVE and isinstance(case.body, dict) and "wait" in case.body:
            case.body["wait"] = 0  # a valid long poll would hold each case up to 60 s
        SEEN["cases"] += 1
        response = case.call_and_validate(base_url=server.url)
        SEEN[f"{response.status_code // 100}xx"] += 1
    check()


@pytest.fixture(scope="module")
def closed_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("closed")
    with LiveSystem(folder) as live:
        live.start_server(env={"QUEUE_TOKEN": "class", "QUEUE_WORKER_TOKEN": "workers"})
        yield live


@pytest.mark.parametrize("path, method", sorted({(p, m) for p, m, _ in ROUTES}))
def test_a_closed_server_refuses_as_the_schema_says(closed_server, path, method):
    """Without a token, or with the submitters' on a worker's route: 401 and 403, documented."""
    operation = SCHEMA[path][method]

    @given(operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(max_examples=5, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        if isinstance(case.body, dict) and "wait" in case.body:
            case.body["wait"] = 0
        for headers in ({}, {"Authorization": "Bearer class"}):
            SEEN["cases"] += 1
            response = case.call_and_validate(base_url=closed_server.url, headers=headers)
            SEEN[f"{response.status_code // 100}xx"] += 1
            if path in ("/health", "/openapi.json"):
                assert response.status_code == 200
            elif not headers:
                assert response.status_code == 401
    check()


def test_zz_the_run_tried_enough_cases_and_saw_no_5xx():
    """Runs after the cases above (pytest keeps a module's order): their tally."""
    print(f"\nschemathesis: {SEEN['cases']} cases, answers {dict(sorted(SEEN.items()))}")
    # Some routes have fewer possible requests than EXAMPLES (GET /stats has one).
    assert SEEN["cases"] >= 20 * EXAMPLES
    assert SEEN["5xx"] == 0
