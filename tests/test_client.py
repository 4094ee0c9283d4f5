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


@pytest.mark.parametrize("answer", [
    httpx.Response(200, text="<html>a web page</html>"),   # not the queue's server
    httpx.Response(302, headers={"location": "/login"}),    # a proxy sending us elsewhere
])
def test_an_answer_that_is_not_json_is_an_api_error_naming_the_address(answer):
    with client_answered_by(lambda request: answer) as client:
        with pytest.raises(ApiError) as refused:
            client.stats()
    assert refused.value.status == 502
    assert "127.0.0.1:9" in refused.value.message and "no JSON" in refused.value.message


@pytest.mark.parametrize("body, message", [
    ('["not", "an", "object"]', '["not", "an", "object"]'),
    ('{"detail": "no error field"}', '{"detail": "no error field"}'),
    ('{"error": "the queue is full"}', "the queue is full"),
])
def test_an_error_answer_is_an_api_error_whatever_its_json(body, message):
    answer = httpx.Response(503, text=body, headers={"content-type": "application/json"})
    with client_answered_by(lambda request: answer) as client:
        with pytest.raises(ApiError) as refused:
            client.submit("email", {})
    assert (refused.value.status, refused.value.message) == (503, message)


def test_a_json_null_answer_is_returned_as_none():
    answer = httpx.Response(200, text="null", headers={"content-type": "application/json"})
    with client_answered_by(lambda request: answer) as client:
        assert client._call("GET", "/stats") is None


def test_report_and_claim_with_nothing_to_report_is_a_plain_claim(tmp_path):
    with LiveSystem(tmp_path) as system:
        system.start_server()
        client = system.client
        assert client.report_and_claim("worker-1", []) == ([], [])  # nothing ready: a 204
        submitted = client.submit("email", {"to": "ada@example.org"})
        [task], reports = client.report_and_claim("worker-1", [])
        assert (task.id, task.status, reports) == (submitted.id, "processing", [])
