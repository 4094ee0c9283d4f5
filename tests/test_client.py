"""The client's own behaviour: what it makes of answers the queue's API never gives, and a
report-and-claim with nothing to report."""

import httpx
import pytest

from live import LiveSystem
from queue_system.client import ApiError, QueueClient


def client_answered_by(handler) -> QueueClient:
    """A client whose every request gets ``handler(request)``'s answer, with no server."""
    client = QueueClient("http://127.0.0.1:9")
    client._http = httpx.Client(base_url=client.url, transport=httpx.MockTransport(handler))
    return client


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("answer", [
    httpx.Response(200, text="<html>a web page</html>"),   # not the queue's server
    httpx.Response(302, headers={"location": "/login"}),    # a proxy sending us elsewhere
    httpx.Response(307, text='{"error": "elsewhere"}', headers=JSON),
    httpx.Response(200, text="null", headers=JSON),
    httpx.Response(200, text="[1, 2]", headers=JSON),
    httpx.Response(204),                                    # empty, where a task is due
])
@pytest.mark.parametrize("call", [lambda client: client.stats(),
                                  lambda client: client.get("task-1"),
                                  lambda client: client.complete("task-1", "lease-1")])
def test_an_answer_the_api_never_gives_is_an_api_error_naming_the_address(answer, call):
    with client_answered_by(lambda request: answer) as client:
        with pytest.raises(ApiError) as refused:
            call(client)
    assert refused.value.status == 502
    assert "127.0.0.1:9" in refused.value.message and "queue's server" in refused.value.message


def test_a_claim_answered_204_is_no_task():
    with client_answered_by(lambda request: httpx.Response(204)) as client:
        assert client.claim("worker-1") == []


@pytest.mark.parametrize("body, message", [
    ('["not", "an", "object"]', '["not", "an", "object"]'),
    ('{"detail": "no error field"}', '{"detail": "no error field"}'),
    ('{"error": "the queue is full"}', "the queue is full"),
    ('{"error": {"code": 5}}', "{'code': 5}"),                # always text
    ("<html>Service Unavailable</html>", "<html>Service Unavailable</html>"),
])
def test_an_error_answer_is_an_api_error_whatever_its_body(body, message):
    answer = httpx.Response(503, text=body, headers=JSON)
    with client_answered_by(lambda request: answer) as client:
        with pytest.raises(ApiError) as refused:
            client.submit("email", {})
    assert (refused.value.status, refused.value.message) == (503, message)


def test_report_and_claim_with_nothing_to_report_is_a_plain_claim(tmp_path):
    with LiveSystem(tmp_path) as system:
        system.start_server()
        client = system.client
        assert client.report_and_claim("worker-1", []) == ([], [])  # nothing ready: a 204
        submitted = client.submit("email", {"to": "ada@example.org"})
        [task], reports = client.report_and_claim("worker-1", [])
        assert (task.id, task.status, reports) == (submitted.id, "processing", [])
