"""The client: the HTTP API as Python calls, for workers, the CLI and notebooks.

    client = QueueClient("http://127.0.0.1:3000")
    task = client.submit("email", {"to": "ada@example.org"}, priority="high")
    client.stats()

Errors come back as exceptions that say what happened: ``ApiError`` when
the server answered with a 4xx/5xx (its message included), or with what
the queue's API never answers (a 502: not the queue's server), and
``ServerUnreachable`` when nothing answered at all (or not within the timeout).

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


NOT_JSON = object()  # an answer whose body JSON cannot read


class ApiError(Exception):
    """The server refused the request: it answered with an HTTP 4xx or 5xx status, or
    with what the queue's API never answers (a redirect, no JSON object): a 502 then,
    as a gateway would say it.

    Attributes:
        status: The HTTP status code, such as 404 (no such task) or 409 (a stale lease).
        message: What is wrong: the answer's ``error`` field, else its text.
    """

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class ServerUnreachable(Exception):
    """No answer from the server (not started, wrong URL, network down, or none in time).

    After a timeout the server may still have done what was asked: a producer
    that sends again should give its task an idempotency key.
    """


def worker_token() -> Optional[str]:
    """The token a worker sends: ``QUEUE_WORKER_TOKEN``, else ``QUEUE_TOKEN``, else none.

    Returns:
        The first of the two variables that is set and not empty, or None.
    """
    return os.environ.get("QUEUE_WORKER_TOKEN") or os.environ.get("QUEUE_TOKEN") or None


class QueueClient:
    """A thin, synchronous client of the queue's HTTP API.

    Each method sends one request (``all_tasks`` one per page) and waits for the
    answer. Any of them raises ``ServerUnreachable`` when no answer comes (none at
    all, or none within ``timeout``), and ``ApiError`` when the server refuses.
    Besides the statuses each method lists, any request may get 401 (no token, or a
    wrong one), 403 (a token that may not do this: when the server has a
    ``QUEUE_WORKER_TOKEN``, only it may claim, report, replay or purge), 408, 413 or
    431 (the server's time and size limits), and 503 (the store failed; nothing was
    saved). Use it in a ``with`` block, or call ``close`` when done.

    Args:
        url: The server's address, ``http://HOST:PORT`` (or ``https://``).
        timeout: Seconds to wait for each answer (a claim adds its ``wait``).
        token: Sent as ``Authorization: Bearer <token>``; None for ``QUEUE_TOKEN`` from
            the environment, if set; ``""`` for no token.

    Raises:
        ValueError: ``url`` is not an http(s) address, or ``token`` is not visible ASCII
            characters without spaces.
    """

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
        """Close the client's connections; it cannot send requests after."""
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method: str, path: str, json: Any = None, params: Optional[dict] = None,
              timeout: Optional[float] = None, may_be_empty: bool = False) -> Optional[dict]:
        """One request; its answer, a JSON object (None for a 204 where ``may_be_empty``)."""
        try:
            response = self._http.request(method, path, json=json, params=params,
                                          timeout=timeout or self.timeout)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"no answer from {self.url}: {exc}") from None
        status = response.status_code
        if status == 204 and may_be_empty:
            return None
        try:
            answer = response.json()
        except ValueError:
            answer = NOT_JSON
        if status >= 400:
            message = answer.get("error") if isinstance(answer, dict) else None
            raise ApiError(status, str(message) if message else response.text)
        if not 200 <= status < 300 or not isinstance(answer, dict):
            # A redirect, an empty answer, no JSON, or JSON that is no object: whatever
            # answers there is not the queue's API. Said as a bad gateway would say it
            # (502), so that a worker waits and tries again, and says why.
            raise ApiError(502, f"{self.url} answered {method} {path} with {status} and no "
                                "JSON object, as the queue's API would: is it the queue's server?")
        return answer

    # -- producers ----------------------------------------------------------------

    def submit(self, type: str, payload: Any = None, **options) -> Task:
        """Enqueue one task (``POST /tasks``).

        Args:
            type: Which handler runs it, such as ``"email"``: 1 to 200 characters.
            payload: The handler's input, any JSON value; None sends ``{}``.
            **options: ``priority`` (``"high"``, ``"normal"``, ``"low"``),
                ``max_retries`` (1 to 1000), ``execute_at`` (seconds since the epoch, or
                an RFC 3339 time such as ``"2026-11-28T09:00:00Z"``), ``delay`` (seconds
                from now; not with ``execute_at``), ``idempotency_key`` (1 to 200
                characters).

        Returns:
            The task as stored; for an idempotency key used before, the first task,
            unchanged (nothing new is stored).

        Raises:
            ApiError: 400 for an invalid task or an unknown option; 503 when the queue
                is full (``--capacity``); 507 when the store's disk is nearly full.
            ServerUnreachable: No answer came (see the class).
        """
        body = {"type": type, "payload": {} if payload is None else payload, **options}
        return Task.from_dict(self._call("POST", "/tasks", body))

    def submit_many(self, tasks: Iterable[dict]) -> List[Task]:
        """Enqueue up to 1000 tasks in one request (``POST /tasks/batch``): all, or none.

        Args:
            tasks: From 1 to 1000 dicts, one per task: ``"type"``, and if wanted
                ``"payload"`` and ``submit``'s options by name.

        Returns:
            The tasks as stored, in the order given (for a key used before, its first
            task).

        Raises:
            ApiError: 400 if a task is invalid, or there are none or more than 1000
                (nothing is stored); 503 when they do not all fit in the queue
                (``--capacity``); 507 when the store's disk is nearly full.
            ServerUnreachable: No answer came (see the class).
        """
        answer = self._call("POST", "/tasks/batch", {"tasks": list(tasks)})
        return [Task.from_dict(t) for t in answer["tasks"]]

    # -- workers ----------------------------------------------------------------------

    def claim(self, worker_id: str, types: Optional[List[str]] = None, wait: float = 0,
              lease_seconds: Optional[float] = None, max_tasks: int = 1) -> List[Task]:
        """Take up to ``max_tasks`` ready tasks for ``worker_id`` (``POST /tasks/claim``).

        Each task is held under its own lease: send ``heartbeat`` before it ends, and
        report the task with ``complete``, ``fail``, ``release`` or ``ack``.

        Args:
            worker_id: Who takes them: 1 to 200 characters.
            types: Only tasks of these types; None or empty for any type.
            wait: Seconds to wait for a task when none is ready (a long poll), 0 to 60.
            lease_seconds: How long each lease lasts, from 1 to the server's
                ``--max-lease``; None for the server's ``--lease``.
            max_tasks: The most tasks to take, from 1 to the server's ``--max-claim``.

        Returns:
            The tasks now held, each with its ``lease_id``; an empty list if none was
            ready within ``wait`` seconds.

        Raises:
            ApiError: 400 for an invalid argument.
            ServerUnreachable: No answer came (see the class).
        """
        body = {"worker_id": worker_id, "wait": wait, "max_tasks": max_tasks}
        if types:
            body["types"] = list(types)
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        answer = self._call("POST", "/tasks/claim", body, timeout=self.timeout + wait,
                            may_be_empty=True)  # 204: nothing was ready
        return [] if answer is None else [Task.from_dict(t) for t in answer["tasks"]]

    def report_and_claim(self, worker_id: str, acks: List[dict],
                         types: Optional[List[str]] = None, wait: float = 0,
                         lease_seconds: Optional[float] = None,
                         max_tasks: int = 1) -> Tuple[List[Task], List[dict]]:
        """One request: report finished attempts (as ``ack``), then claim as ``claim``.

        Each report is recorded alone, and the reports are committed before the
        answer, whatever the claim finds. A refused report (a stale lease...) is in
        the results, not raised.

        Args:
            worker_id: As for ``claim``.
            acks: The reports, as for ``ack``: up to 1000 (none makes it a plain
                ``claim``, and the reports' results an empty list).
            types: As for ``claim``.
            wait: As for ``claim``.
            lease_seconds: As for ``claim``.
            max_tasks: As for ``claim``.

        Returns:
            ``(tasks, results)``: the tasks now held (maybe none), and one result per
            report, as ``ack`` returns them.

        Raises:
            ApiError: 400 for an invalid argument or report (then no report is recorded);
                a 503 (the store failed) may come after the reports were recorded.
            ServerUnreachable: No answer came (see the class).
        """
        if not acks:  # nothing to report: the server answers it as a plain claim
            return self.claim(worker_id, types, wait, lease_seconds, max_tasks), []
        body = {"worker_id": worker_id, "wait": wait, "max_tasks": max_tasks, "acks": acks}
        if types:
            body["types"] = list(types)
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        answer = self._call("POST", "/tasks/claim", body, timeout=self.timeout + wait)
        return [Task.from_dict(t) for t in answer["tasks"]], answer["acks"]

    def heartbeat(self, task_id: str, lease_id: str, lease_seconds: Optional[float] = None) -> Task:
        """Extend the lease of a task this worker holds (``POST /tasks/{id}/heartbeat``).

        Args:
            task_id: The task's id.
            lease_id: The ``lease_id`` its claim gave.
            lease_seconds: The lease now ends this many seconds from now, from 1 to the
                server's ``--max-lease``; None for the server's ``--lease``.

        Returns:
            The task with its new ``lease_expires_at``.

        Raises:
            ApiError: 404 if no task has this id; 409 if the task is not in progress, or
                the lease is stale or expired (another worker may hold the task now);
                400 for an invalid argument.
            ServerUnreachable: No answer came (see the class).
        """
        body = {"lease_id": lease_id}
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        return Task.from_dict(self._call("POST", f"/tasks/{_path_part(task_id)}/heartbeat", body))

    def complete(self, task_id: str, lease_id: str, result: Any = None) -> Task:
        """Record success (``POST /tasks/{id}/complete``).

        Args:
            task_id: The task's id.
            lease_id: The ``lease_id`` its claim gave.
            result: What the handler returned, any JSON value, kept on the task.

        Returns:
            The task, ``completed``.

        Raises:
            ApiError: 404 if no task has this id; 409 if the task is not in progress, or
                the lease is stale or expired (another worker may hold the task now);
                400 for an invalid argument.
            ServerUnreachable: No answer came (see the class).
        """
        return Task.from_dict(self._call("POST", f"/tasks/{_path_part(task_id)}/complete",
                                         {"lease_id": lease_id, "result": result}))

    def fail(self, task_id: str, lease_id: str, error: Optional[str] = None) -> Task:
        """Record a failed attempt (``POST /tasks/{id}/fail``).

        The task is retried after the backoff, or dead-lettered.

        Args:
            task_id: The task's id.
            lease_id: The ``lease_id`` its claim gave.
            error: What went wrong, kept on the task.

        Returns:
            The task: ``scheduled`` or ``pending`` for its retry, or ``failed`` (in the
            dead letter) once its failures reach ``max_retries``.

        Raises:
            ApiError: 404 if no task has this id; 409 if the task is not in progress, or
                the lease is stale or expired (another worker may hold the task now);
                400 for an invalid argument.
            ServerUnreachable: No answer came (see the class).
        """
        return Task.from_dict(self._call("POST", f"/tasks/{_path_part(task_id)}/fail",
                                         {"lease_id": lease_id, "error": error}))

    def release(self, task_id: str, lease_id: str, started: bool = False) -> Task:
        """Give a held task back unfinished (``POST /tasks/{id}/release``).

        No failure is counted, and the task is pending again at once.

        Args:
            task_id: The task's id.
            lease_id: The ``lease_id`` its claim gave.
            started: Whether its handler had begun: then the attempt still counts in
                ``attempts``; otherwise the claim no longer does.

        Returns:
            The task, ``pending`` again.

        Raises:
            ApiError: 404 if no task has this id; 409 if the task is not in progress, or
                the lease is stale or expired (another worker may hold the task now);
                400 for an invalid argument.
            ServerUnreachable: No answer came (see the class).
        """
        body = {"lease_id": lease_id}
        if started:
            body["started"] = True
        return Task.from_dict(self._call("POST", f"/tasks/{_path_part(task_id)}/release", body))

    def ack(self, acks: List[dict]) -> List[dict]:
        """Report finished attempts in one request (``POST /tasks/ack``).

        Each report succeeds or fails alone: a refused one is in the results, not raised.

        Args:
            acks: From 1 to 1000 dicts: ``id``, ``lease_id``, ``ok`` (True for success),
                and ``result`` (if ok) or ``error`` (if not).

        Returns:
            One dict per report, in order: ``{"id", "status"}`` when recorded, or
            ``{"id", "error", "code"}``, the code the report alone would have had (404,
            409...).

        Raises:
            ApiError: 400 if a report is invalid, or there are none or more than 1000
                (then no report is recorded).
            ServerUnreachable: No answer came (see the class).
        """
        return self._call("POST", "/tasks/ack", {"acks": acks})["results"]

    # -- looking ------------------------------------------------------------------------

    def get(self, task_id: str) -> Task:
        """One task, with its whole record (``GET /tasks/{id}``).

        Args:
            task_id: The task's id.

        Returns:
            The task.

        Raises:
            ApiError: 404 if no task has this id.
            ServerUnreachable: No answer came (see the class).
        """
        return Task.from_dict(self._call("GET", f"/tasks/{_path_part(task_id)}"))

    def tasks(self, status: Optional[str] = None, type: Optional[str] = None,
              limit: int = 100, offset: int = 0, after: Optional[int] = None) -> List[Task]:
        """A page of tasks in submission order, filtered by status and type (``GET /tasks``).

        For the next page, pass the last task's ``seq`` as ``after``: a page then costs
        the same however deep it is, while ``offset`` walks every task it skips.

        Args:
            status: Only tasks in this status (``scheduled``, ``pending``, ``processing``,
                ``completed``, ``failed``); None for any.
            type: Only tasks of this type; None for any.
            limit: The most tasks to return, 1 to 1000.
            offset: Skip this many matching tasks first.
            after: Only tasks whose ``seq`` is above this.

        Returns:
            Up to ``limit`` tasks.

        Raises:
            ApiError: 400 for an unknown status or a number out of range.
            ServerUnreachable: No answer came (see the class).
        """
        params = {"limit": limit, "offset": offset}
        if after is not None:
            params["after"] = after
        if status:
            params["status"] = status
        if type:
            params["type"] = type
        return [Task.from_dict(t) for t in self._call("GET", "/tasks", params=params)["tasks"]]

    def all_tasks(self, status: Optional[str] = None) -> List[Task]:
        """Every task, page by page (each page after the last one's ``seq``).

        Tasks may change while the pages are read: the list is not one snapshot.

        Args:
            status: Only tasks in this status; None for any.

        Returns:
            The tasks, in submission order.

        Raises:
            ApiError: As for ``tasks``, on any page.
            ServerUnreachable: No answer came (see the class).
        """
        found, after = [], None
        while True:
            page = self.tasks(status=status, limit=1000, after=after)
            found.extend(page)
            if len(page) < 1000:
                return found
            after = page[-1].seq

    def dead_letter(self, limit: int = 100, offset: int = 0,
                    after: Optional[int] = None) -> List[Task]:
        """A page of the dead letter (``GET /dead-letter``), in submission order.

        Args:
            limit: The most tasks to return, 1 to 1000.
            offset: Skip this many first.
            after: Only tasks whose ``seq`` is above this (the last one of the page before).

        Returns:
            Up to ``limit`` tasks whose failures reached ``max_retries`` (status
            ``failed``).

        Raises:
            ApiError: 400 for a number out of range.
            ServerUnreachable: No answer came (see the class).
        """
        params = {"limit": limit, "offset": offset}
        if after is not None:
            params["after"] = after
        answer = self._call("GET", "/dead-letter", params=params)
        return [Task.from_dict(t) for t in answer["tasks"]]

    def replay(self, task_id: str) -> Task:
        """Send a dead-lettered task back to the queue (``POST /dead-letter/{id}/replay``).

        Its retries are reset; its ``attempts`` and last ``error`` are kept.

        Args:
            task_id: The task's id.

        Returns:
            The task, ``pending``.

        Raises:
            ApiError: 404 if no task has this id; 409 if the task is not in the dead
                letter; 503 when the queue is full (``--capacity``).
            ServerUnreachable: No answer came (see the class).
        """
        return Task.from_dict(self._call("POST", f"/dead-letter/{_path_part(task_id)}/replay"))

    def purge(self, older_than: float) -> int:
        """Delete completed and dead-lettered tasks (``POST /tasks/purge``).

        Waiting and running work is kept.

        Args:
            older_than: Delete the tasks that finished at least this many seconds ago,
                from 0 to a century.

        Returns:
            How many tasks were deleted.

        Raises:
            ApiError: 400 if ``older_than`` is out of range.
            ServerUnreachable: No answer came (see the class).
        """
        return self._call("POST", "/tasks/purge", {"older_than": older_than})["deleted"]

    def stats(self) -> Dict[str, int]:
        """How many tasks are in each status (``GET /stats``).

        Returns:
            A dict of counts: ``scheduled``, ``pending``, ``processing``, ``completed``,
            ``failed``, ``dead_letter`` (the same as ``failed``) and ``total``.

        Raises:
            ApiError: Only for the statuses any request may get (see the class).
            ServerUnreachable: No answer came (see the class).
        """
        return self._call("GET", "/stats")

    def health(self) -> dict:
        """Whether the server answers and can read its store (``GET /health``, no token).

        Returns:
            ``{"status": "ok", "store": ..., "tasks": ..., "max_claim": ...}``: the
            store's URL, how many tasks it holds, and the most tasks one claim may take.

        Raises:
            ApiError: 503 if the store cannot be read.
            ServerUnreachable: No answer came (see the class).
        """
        return self._call("GET", "/health")
