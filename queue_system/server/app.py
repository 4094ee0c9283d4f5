"""The HTTP API: the lesson's producer routes and the queue's full API.

Every route hands its work to the group committer (one thread owns the
store) and answers once the work is committed: a 202 means the task is on
disk. A worker that asks for a task with ``wait`` is held (long poll) until
a task arrives, which wakes it within milliseconds, or the wait runs out.
Bad input is answered with a 4xx and ``{"error": "what is wrong"}``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, Optional

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import json_codec
from ..dead_letter_log import DeadLetterLog
from ..errors import InvalidTask, QueueError
from ..queue import TaskQueue
from ..task import STATUSES, Task
from . import schemas
from .json_body import DEFAULT_MAX_BODY, BodyLimit
from .group_commit import GroupCommitter, Outbox

log = logging.getLogger("queue_system.server")

MAX_OFFSET = 10 ** 12  # far beyond any real queue, within SQLite's integers


class FastJSON(JSONResponse):
    """JSON responses encoded by orjson: the hot routes answer faster."""

    def render(self, content: Any) -> bytes:
        return json_codec.dumps_bytes(content)


class WorkSignal:
    """Wakes long-polling claims when work may have appeared."""

    def __init__(self):
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        return self._event

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()


def error(status: int, message: str) -> FastJSON:
    return FastJSON({"error": message}, status_code=status)


def parse_execute_at(value) -> Optional[float]:
    """Seconds since the epoch, or an ISO 8601 time (UTC if it names no zone)."""
    if value is None or isinstance(value, (int, float)):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidTask(f"'execute_at' {value!r} is neither seconds since the epoch "
                          "nor an ISO 8601 time such as 2026-11-28T09:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def describe_validation(exc: RequestValidationError) -> tuple:
    """Turn pydantic's error list into one sentence and a status code."""
    problems = []
    for item in exc.errors():
        kind = item.get("type", "")
        if kind == "json_invalid":
            return 400, f"Invalid JSON: {item.get('ctx', {}).get('error', item.get('msg'))}"
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        if kind == "missing" and not where:
            return 400, "a JSON body is required"
        if not where and kind in ("model_attributes_type", "dict_type"):
            return 400, "the body must be a JSON object, such as {\"type\": \"email\"}"
        problems.append(f"{where or 'body'}: {item.get('msg')}")
    return 400, "; ".join(problems)


def create_app(queue: TaskQueue, *, max_body: int = DEFAULT_MAX_BODY,
               store_name: str = "memory",
               dead_letter_log: Optional[DeadLetterLog] = None) -> FastAPI:
    """The API over ``queue``. The app owns the queue's store while it runs.

    With a ``dead_letter_log``, every task that enters the dead letter (a last
    failure, or a last attempt whose worker died) is appended to it once that
    transition is committed."""
    state = {}

    @asynccontextmanager
    async def lifespan(app):
        outbox = Outbox()
        if dead_letter_log is not None:
            queue.on_dead_letter = lambda task: outbox.add(
                functools.partial(dead_letter_log.write, task))
        state["committer"] = GroupCommitter(queue.store, outbox=outbox)
        state["signal"] = WorkSignal()
        try:
            yield
        finally:
            state["committer"].close()
            queue.on_dead_letter = None

    app = FastAPI(title="queue_system", version="1.0",
                  summary="The lesson's task queue: priorities, retries, dead letter, "
                          "scheduled tasks and leases.",
                  lifespan=lifespan, default_response_class=FastJSON)

    async def run(fn, *args):
        return await state["committer"].run(fn, *args)

    def wake_workers():
        state["signal"].notify()

    @app.exception_handler(QueueError)
    async def queue_error(request: Request, exc: QueueError):
        return error(exc.status_code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return error(*describe_validation(exc))

    @app.exception_handler(sqlite3.Error)
    async def store_error(request: Request, exc: sqlite3.Error):
        log.error("the store failed: %s", exc)
        return error(503, f"the store could not do this, nothing was saved: {exc}")

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error(500, f"internal error ({type(exc).__name__}); see the server's log")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail))

    # -- producers -----------------------------------------------------------------

    def submit(spec: schemas.TaskIn):
        return queue.submit(spec.type, spec.payload, priority=spec.priority,
                            max_retries=spec.max_retries,
                            execute_at=parse_execute_at(spec.execute_at), delay=spec.delay,
                            idempotency_key=spec.idempotency_key)

    @app.post("/task", status_code=202, tags=["lesson"])
    async def seed_submit(body: schemas.SeedTaskIn):
        """The lesson's route: enqueue ``{type, payload}``; 202 ``{taskId, message, stats}``."""
        # One trip to the store thread: the stats the lesson shows include this task.
        (task, _), stats = await run(lambda: (queue.submit(body.type, body.payload),
                                              queue.stats()))
        wake_workers()
        log.info("[Queue] Enqueued task %s (%s)", task.id, task.type)
        return FastJSON({"taskId": task.id, "message": "Task enqueued", "stats": stats},
                        status_code=202)

    @app.post("/tasks", status_code=202, tags=["tasks"])
    async def submit_task(body: schemas.TaskIn):
        """Enqueue a task with priority, max_retries, execute_at or delay, idempotency key.

        202 with the task; 200 with the first task if the idempotency key was used before."""
        task, created = await run(submit, body)
        if created:
            wake_workers()
            log.info("[Queue] Enqueued task %s (%s, %s)", task.id, task.type, task.priority)
        return FastJSON(task.to_dict(), status_code=202 if created else 200)

    @app.post("/tasks/batch", status_code=202, tags=["tasks"])
    async def submit_batch(body: schemas.TaskBatchIn):
        """Enqueue up to 1000 tasks at once: all are stored, or none (400 says which is bad)."""
        specs = [dict(spec.model_dump(),
                      execute_at=parse_execute_at(spec.execute_at)) for spec in body.tasks]
        try:
            submitted = await run(queue.submit_many, specs)
        except InvalidTask as exc:
            return error(400, f"no task stored: {exc.message}")
        wake_workers()
        log.info("[Queue] Enqueued %d tasks", len(submitted))
        return FastJSON({"tasks": [t.to_dict() for t, _ in submitted]}, status_code=202)

    # -- workers ------------------------------------------------------------------------

    async def claim_waiting(request, worker_id, types, lease_seconds, limit, wait) -> list:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait

        def claim_and_next_wakeup():
            return queue.claim(worker_id, types, lease_seconds, limit), queue.next_wakeup()

        while True:
            # Take the event before looking, so a task enqueued meanwhile still wakes us.
            signal = state["signal"].current()
            if wait and await request.is_disconnected():
                return []  # the worker left while we waited: claim nothing for it
            tasks, wakeup = await run(claim_and_next_wakeup)
            if tasks and wait and await request.is_disconnected():
                # The worker left while we waited (stopped, killed): give them back.
                for task in tasks:
                    await run(queue.release, task.id, task.lease_id)
                # Wake the live pollers: they were woken with us, found nothing (we had
                # it) and now wait for a lease that no longer exists.
                wake_workers()
                return []
            remaining = deadline - loop.time()
            if tasks or remaining <= 0:
                for task in tasks:
                    log.info("[Queue] Dequeued task %s by %s", task.id, worker_id)
                return tasks
            if await request.is_disconnected():
                return []
            if wakeup is not None:  # a scheduled task falls due, or a lease ends
                remaining = min(remaining, max(wakeup - queue.clock(), 0.001))
            try:
                await asyncio.wait_for(signal.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    @app.post("/tasks/claim", tags=["workers"],
              responses={204: {"description": "No task within the wait"}})
    async def claim(body: schemas.ClaimIn, request: Request):
        """Take up to ``max_tasks`` ready tasks, each under a lease; wait up to ``wait`` s."""
        tasks = await claim_waiting(request, body.worker_id, body.types, body.lease_seconds,
                                    body.max_tasks, body.wait)
        if not tasks:
            return Response(status_code=204)
        return FastJSON({"tasks": [t.to_dict() for t in tasks]})

    def announce(task: Task) -> None:
        """Log what a reported attempt did, and wake the workers if the task is back."""
        log_outcome(task)
        if task.status in ("pending", "scheduled"):
            wake_workers()

    def log_outcome(task: Task) -> None:
        if task.status == "completed":
            log.info("[Queue] Completed task %s", task.id)
        elif task.status == "failed":
            log.warning("[Queue] Task %s failed permanently after %d retries: %s",
                        task.id, task.retries, task.error)
        elif task.retries:
            log.info("[Queue] Task %s failed, retrying (%d/%d)", task.id, task.retries,
                     task.max_retries)

    async def finish(step, task_id, *args) -> Task:
        task = await run(step, task_id, *args)
        announce(task)
        return task

    @app.post("/tasks/{task_id}/heartbeat", tags=["workers"])
    async def heartbeat(task_id: str, body: schemas.HeartbeatIn):
        """Extend the lease of a task you hold; 409 if the lease is stale."""
        return (await run(queue.heartbeat, task_id, body.lease_id, body.lease_seconds)).to_dict()

    @app.post("/tasks/{task_id}/complete", tags=["workers"])
    async def complete(task_id: str, body: schemas.CompleteIn):
        """Record success with a result; 409 if the lease is stale or the task not in progress."""
        return (await finish(queue.complete, task_id, body.lease_id, body.result)).to_dict()

    @app.post("/tasks/{task_id}/fail", tags=["workers"])
    async def fail(task_id: str, body: schemas.FailIn):
        """Record a failed attempt: retried after the backoff, or dead-lettered."""
        return (await finish(queue.fail, task_id, body.lease_id, body.error)).to_dict()

    @app.post("/tasks/{task_id}/release", tags=["workers"])
    async def release(task_id: str, body: schemas.ReleaseIn):
        """Give a held task back unfinished (a worker shutting down); no failure counted.

        With ``started: false`` (the default) its handler never began, and the claim no
        longer counts in ``attempts``; with ``started: true`` the attempt still counts."""
        return (await finish(queue.release, task_id, body.lease_id, body.started)).to_dict()

    @app.post("/tasks/ack", tags=["workers"])
    async def ack(body: schemas.AckBatchIn):
        """Report many finished attempts in one request; each succeeds or fails alone."""
        def one(item: schemas.AckIn):
            if item.ok:
                return queue.complete(item.id, item.lease_id, item.result)
            return queue.fail(item.id, item.lease_id, item.error)
        futures = [state["committer"].submit(one, item) for item in body.acks]
        results = []
        for item, future in zip(body.acks, futures):
            try:
                task = await asyncio.wrap_future(future)
            except QueueError as exc:
                results.append({"id": item.id, "error": exc.message, "code": exc.status_code})
                continue
            except Exception as exc:  # each outcome alone: one bad item fails no other
                log.exception("ack of task %s failed", item.id)
                results.append({"id": item.id, "error": f"{type(exc).__name__}: {exc}",
                                "code": 503 if isinstance(exc, sqlite3.Error) else 500})
                continue
            announce(task)
            results.append({"id": task.id, "status": task.status})
        return {"results": results}

    # -- looking -------------------------------------------------------------------------

    @app.get("/tasks/{task_id}", tags=["tasks"])
    async def get_task(task_id: str):
        """One task, with its whole record; 404 if unknown."""
        return (await run(queue.get, task_id)).to_dict()

    @app.get("/tasks", tags=["tasks"])
    async def list_tasks(status: Optional[str] = Query(None, description=", ".join(STATUSES)),
                         type: Optional[str] = None,
                         limit: int = Query(100, ge=1, le=1000),
                         offset: int = Query(0, ge=0, le=MAX_OFFSET)):
        """Tasks in submission order, filtered by status and type."""
        tasks = await run(queue.list, status, type, limit, offset)
        return {"tasks": [t.to_dict() for t in tasks], "count": len(tasks)}

    @app.get("/dead-letter", tags=["dead letter"])
    async def dead_letter(limit: int = Query(100, ge=1, le=1000),
                          offset: int = Query(0, ge=0, le=MAX_OFFSET)):
        """Tasks that used up their retries (status ``failed``)."""
        tasks = await run(queue.dead_letter, limit, offset)
        return {"tasks": [t.to_dict() for t in tasks], "count": len(tasks)}

    @app.post("/dead-letter/{task_id}/retry", tags=["dead letter"])
    async def retry_dead(task_id: str):
        """Send a dead-lettered task back to the queue, retries reset; 409 if not dead."""
        task = await run(queue.retry_dead, task_id)
        wake_workers()
        log.info("[Queue] Task %s sent back from the dead letter", task_id)
        return task.to_dict()

    @app.get("/stats", tags=["lesson"])
    async def stats():
        """Counts per status: pending, scheduled, processing, completed, failed (dead letter)."""
        return await run(queue.stats)

    @app.get("/health", tags=["operations"])
    async def health():
        """200 when the server answers and its store can be read."""
        counts = await run(queue.stats)
        return {"status": "ok", "store": store_name, "tasks": counts["total"]}

    # -- the lesson's worker routes --------------------------------------------------------

    @app.get("/dequeue", tags=["lesson"],
             responses={204: {"description": "No task ready"}})
    async def seed_dequeue(request: Request, worker_id: Optional[str] = None):
        """The lesson's worker route: the next task (under a lease) or 204."""
        who = worker_id or f"http-{request.client.host if request.client else 'client'}"
        tasks = await claim_waiting(request, who, None, None, 1, 0)
        if not tasks:
            return Response(status_code=204)
        return tasks[0].to_dict()

    @app.post("/complete/{task_id}", tags=["lesson"])
    async def seed_complete(task_id: str, body: Optional[schemas.SeedCompleteIn] = None):
        """The lesson's route: complete the task under its current lease."""
        task = await finish(queue.complete, task_id, None, body.result if body else None)
        return {"message": "Task completed", "task": task.to_dict()}

    @app.post("/fail/{task_id}", tags=["lesson"])
    async def seed_fail(task_id: str, body: Optional[schemas.SeedFailIn] = None):
        """The lesson's route: fail the task under its current lease (retry or dead letter)."""
        task = await finish(queue.fail, task_id, None, body.error if body else None)
        return {"message": f"Task {task.status}", "task": task.to_dict()}

    return BodyLimit(app, max_body=max_body) if max_body else app
