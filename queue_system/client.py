"""The client: the HTTP API as Python calls, for workers, the CLI and notebooks.

    client = QueueClient("http://127.0.0.1:3000")
    task = client.submit("email", {"to": "ada@example.org"}, priority="high")
    client.stats()

Errors come back as exceptions that say what happened: ``ApiError`` when
the server answered with a 4xx/5xx (its message included), and
``ServerUnreachable`` when nothing answered at all.

A server started with ``QUEUE_TOKEN`` wants it on every request: the client
sends the token it is given, or by default ``QUEUE_TOKEN`` from the
environment (``worker_token()`` prefers ``QUEUE_WORKER_TOKEN``).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Optional, Tuple
from urllib.parse import quote

import httpx

from .limits import TOKEN_TEXT
from .task import Task


def _path_part(task_id: str) -> str:
    """A task id as one URL path segment: ``/``, ``?`` or ``#`` in it stay part of the id."""
    return quote(task_id, safe="")


class ApiError(Exception):
    """The server refused the request; ``status`` is the HTTP code."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class ServerUnreachable(Exception):
    """No answer from the server (not started, wrong URL, network down)."""


def worker_token() -> Optional[str]:
    """The token a worker sends: ``QUEUE_WORKER_TOKEN``, else ``QUEUE_TOKEN``, else none."""
    return os.environ.get("QUEUE_WORKER_TOKEN") or os.environ.get("QUEUE_TOKEN") or None


class QueueClient:
    """A thin, synchronous client of the queue's HTTP API."""

    def __init__(self, url: str = "http://127.0.0.1:3000", timeout: float = 10.0,
                 token: Optional[str] = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        if token is None:
            token = os.environ.get("QUEUE_TOKEN") or None
        if token and not TOKEN_TEXT.match(token):
            raise ValueError("the token (QUEUE_TOKEN) must be visible ASCII characters "
                             "without spaces")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            if httpx.URL(self.url).scheme not in ("http", "https"):
                raise ValueError
            self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)
        except (ValueError, httpx.InvalidURL):
            raise ValueError(f"not a server address: {url!r} (expected http://HOST:PORT)") from None

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method: str, path: str, json: Any = None, params: Optional[dict] = None,
              timeout: Optional[float] = None) -> Optional[Any]:
        try:
            response = self._http.request(method, path, json=json, params=params,
                                          timeout=timeout or self.timeout)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"no answer from {self.url}: {exc}") from None
        if response.status_code == 204:
            return None
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise ApiError(response.status_code, message)
        return response.json()

    # -- producers ----------------------------------------------------------------

    def submit(self, type: str, payload: Any = None, **options) -> Task:
        """Enqueue one task; options: priority, max_retries, execute_at, delay, idempotency_key."""
        body = {"type": type, "payload": {} if payload is None else payload, **options}
        return Task.from_dict(self._call("POST", "/tasks", body))

    def submit_many(self, tasks: Iterable[dict]) -> List[Task]:
        """Enqueue up to 1000 tasks (dicts with type, payload, options) in one request."""
        answer = self._call("POST", "/tasks/batch", {"tasks": list(tasks)})
        return [Task.from_dict(t) for t in answer["tasks"]]

    # -- workers ----------------------------------------------------------------------

    def claim(self, worker_id: str, types: Optional[List[str]] = None, wait: float = 0,
              lease_seconds: Optional[float] = None, max_tasks: int = 1) -> List[Task]:
        """Tasks now held by ``worker_id`` (empty list if none within ``wait`` seconds)."""
        body = {"worker_id": worker_id, "wait": wait, "max_tasks": max_tasks}
        if types:
            body["types"] = list(types)
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        answer = self._call("POST", "/tasks/claim", body, timeout=self.timeout + wait)
        return [] if answer is None else [Task.from_dict(t) for t in answer["tasks"]]

    def report_and_claim(self, worker_id: str, acks: List[dict],
                         types: Optional[List[str]] = None, wait: float = 0,
                         lease_seconds: Optional[float] = None,
                         max_tasks: int = 1) -> Tuple[List[Task], List[dict]]:
        """One request: report finished attempts (as ``ack``), then claim as ``claim``.

        Returns the tasks now held and one result per report. The reports are
        committed before the answer, whatever the claim finds."""
        body = {"worker_id": worker_id, "wait": wait, "max_tasks": max_tasks, "acks": acks}
        if types:
            body["types"] = list(types)
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        answer = self._call("POST", "/tasks/claim", body, timeout=self.timeout + wait)
        return [Task.from_dict(t) for t in answer["tasks"]], answer["acks"]

    def heartbeat(self, task_id: str, lease_id: str, lease_seconds: Optional[float] = None) -> Task:
        body = {"lease_id": lease_id}
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        return Task.from_dict(self._call("POST", f"/tasks/{_path_part(task_id)}/heartbeat", body))

    def complete(self, task_id: str, lease_id: str, result: Any = None) -> Task:
        return Task.from_dict(self._call("POST", f"/tasks/{_path_part(task_id)}/complete",
                                         {"lease_id": lease_id, "result": result}))

    def fail(self, task_id: str, lease_id: str, error: Optional[str] = None) -> Task:
        return Task.from_dict(self._call("POST", f"/tasks/{_path_part(task_id)}/fail",
                                         {"lease_id": lease_id, "error": error}))

    def release(self, task_id: str, lease_id: str, started: bool = False) -> Task:
        """Give a held task back; ``started``: its handler had begun (the attempt counts)."""
        body = {"lease_id": lease_id}
        if started:
            body["started"] = True
        return Task.from_dict(self._call("POST", f"/tasks/{_path_part(task_id)}/release", body))

    def ack(self, acks: List[dict]) -> List[dict]:
        """Report finished attempts: dicts of id, lease_id, ok, and result or error."""
        return self._call("POST", "/tasks/ack", {"acks": acks})["results"]

    # -- looking ------------------------------------------------------------------------

    def get(self, task_id: str) -> Task:
        return Task.from_dict(self._call("GET", f"/tasks/{_path_part(task_id)}"))

    def tasks(self, status: Optional[str] = None, type: Optional[str] = None,
              limit: int = 100, offset: int = 0, after: Optional[int] = None) -> List[Task]:
        params = {"limit": limit, "offset": offset}
        if after is not None:
            params["after"] = after
        if status:
            params["status"] = status
        if type:
            params["type"] = type
        return [Task.from_dict(t) for t in self._call("GET", "/tasks", params=params)["tasks"]]

    def all_tasks(self, status: Optional[str] = None) -> List[Task]:
        """Every task, page by page (each page after the last one's ``seq``)."""
        found, after = [], None
        while True:
            page = self.tasks(status=status, limit=1000, after=after)
            found.extend(page)
            if len(page) < 1000:
                return found
            after = page[-1].seq

    def dead_letter(self, limit: int = 100, offset: int = 0,
                    after: Optional[int] = None) -> List[Task]:
        params = {"limit": limit, "offset": offset}
        if after is not None:
            params["after"] = after
        answer = self._call("GET", "/dead-letter", params=params)
        return [Task.from_dict(t) for t in answer["tasks"]]

    def retry_dead(self, task_id: str) -> Task:
        return Task.from_dict(self._call("POST", f"/dead-letter/{_path_part(task_id)}/retry"))

    def purge(self, older_than: float) -> int:
        """Delete tasks that finished more than ``older_than`` seconds ago; how many went."""
        return self._call("POST", "/tasks/purge", {"older_than": older_than})["deleted"]

    def stats(self) -> Dict[str, int]:
        return self._call("GET", "/stats")

    def health(self) -> dict:
        return self._call("GET", "/health")
