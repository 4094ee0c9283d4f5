"""The HTTP API: the lesson's producer routes and the queue's full API.

Every route hands its work to the group committer (one thread owns the
store) and answers once the work is committed: a 202 means the task is on
disk. A worker that asks for a task with ``wait`` is held (long poll) until
a task arrives, which wakes it within milliseconds, or the wait runs out.
Bad input is answered with a 4xx and ``{"error": "what is wrong"}``; the
limits it enforces are in ``limits``, and who may call it in ``access``.
Every status a route can answer is in the OpenAPI document at
``/openapi.json``, with the rules each field must follow.
"""


import asyncio
import functools
import logging
import re
import sqlite3
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Optional

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import json_codec
from ..dead_letter_log import DeadLetterLog
from ..errors import InvalidTask, QueueError
from ..json_codec import nested_deeper_than
from ..limits import DEFAULT_LIMITS, Limits
from ..queue import TaskQueue
from ..task import Task
from . import schemas
from .access import Access, AccessGuard
from .group_commit import GroupCommitter, Outbox
from .housekeeping import DiskGuard, purge_interval
from .json_body import BodyLimit
from .long_poll import WaitingClaims, WorkSignal, wait_for_work

log = logging.getLogger("queue_system.server")

MAX_OFFSET = 10 ** 12  # far beyond any real queue, within SQLite's integers
PURGE_STEP = 1000  # finished tasks deleted per transaction


class FastJSON(JSONResponse):
    """JSON responses encoded by orjson: the hot routes answer faster."""

    def render(self, content: Any) -> bytes:
        return json_codec.dumps_bytes(content)


def error(status: int, message: str, headers: Optional[dict] = None) -> FastJSON:
    return FastJSON({"error": message}, status_code=status, headers=headers)


def parse_execute_at(value) -> Optional[float]:
    """Seconds since the epoch, or an RFC 3339 time such as 2026-11-28T09:00:00Z."""
    if value is None or isinstance(value, (int, float)):
        return value
    problem = None
    if len(value) > 64 or not re.match(schemas.RFC_3339, value):
        problem = "not in the form 2026-11-28T09:00:00Z (date, time to the second, zone)"
    else:
        # Its four-digit year bounds it; a time already past means "now", as in seconds.
        try:
            return datetime.fromisoformat(value.upper()).timestamp()
        except ValueError as exc:
            problem = str(exc)  # such as a 13th month
    raise InvalidTask(f"'execute_at' {value[:64]!r} is not a valid time: {problem}; write seconds "
                      "since the epoch or an RFC 3339 time, such as 2026-11-28T09:00:00Z")


def check_depth(value: Any, limit: int, what: str) -> None:
    """Refuse a payload or result nested deeper than ``limit`` (``--max-depth``)."""
    if value.__class__ in (dict, list) and nested_deeper_than(value, limit):
        raise InvalidTask(f"'{what}' is nested more than {limit} levels deep (--max-depth)")


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
        if where.rpartition(".")[2] == "type" and kind in ("string_too_short",
                                                           "string_pattern_mismatch"):
            problems.append(f"'{where}' must be a non-empty string, such as \"email\"")
            continue
        problems.append(f"{where or 'body'}: {item.get('msg')}")
    return 400, "; ".join(problems)


def create_app(queue: TaskQueue, *, limits: Limits = DEFAULT_LIMITS,
               max_body: Optional[int] = None, store_name: str = "memory",
               dead_letter_log: Optional[DeadLetterLog] = None,
               access: Access = Access(), disk_folder: Optional[str] = None):
    """The API over ``queue``, as an ASGI app. The app owns the queue's store while it runs.

    ``limits`` are enforced at the edge (``max_body`` overrides ``limits.max_body``);
    the queue's ``capacity`` is its own rule. ``access`` says who may call.
    With ``disk_folder``, new work is refused while that folder's disk has less
    than ``limits.min_free_disk`` free; with ``limits.retention``, finished tasks
    older than it are purged by a timer. With a ``dead_letter_log``, every task
    that enters the dead letter (a last failure, or a last attempt whose worker
    died) is appended to it once that transition is committed."""
    if max_body is not None:
        limits = limits.replace(max_body=max_body)
    max_depth = limits.max_depth
    disk = DiskGuard(disk_folder, limits.min_free_disk, reusable_bytes=queue.store.reusable_bytes)
    ClaimIn, HeartbeatIn = schemas.worker_bodies(limits)
    state = {}

    @asynccontextmanager
    async def lifespan(app):
        outbox = Outbox()
        if dead_letter_log is not None:
            queue.on_dead_letter = lambda task: outbox.add(
                functools.partial(dead_letter_log.write, task))
        state["waiting"] = waiting = WaitingClaims(queue, outbox)
        state["committer"] = GroupCommitter(queue.store, outbox=outbox, on_work=waiting.serve)
        state["signal"] = WorkSignal()
        purging = (asyncio.get_running_loop().create_task(purge_for_ever(limits.retention))
                   if limits.retention is not None else None)
        try:
            yield
        finally:
            if purging is not None:
                purging.cancel()
            state["committer"].close()
            queue.on_dead_letter = None

    app = FastAPI(title="queue_system", version="1.0",
                  summary="The lesson's task queue: priorities, retries, dead letter, "
                          "scheduled tasks and leases.",
                  lifespan=lifespan, default_response_class=FastJSON)

    async def run(fn, *args, makes_work: bool = False):
        """``fn(*args)`` in the store thread, committed. With ``makes_work``, the work it
        makes is handed to waiting workers in the same commit (``long_poll``)."""
        return await state["committer"].run(fn, *args, makes_work=makes_work)

    async def purge(older_than: float) -> int:
        """Purge in bounded steps: the store is never held long, others' requests go between."""
        deleted = 0
        while True:
            step = await run(queue.purge, older_than, PURGE_STEP)
            deleted += step
            if step < PURGE_STEP:
                return deleted

    async def purge_for_ever(retention: float) -> None:
        while True:
            await asyncio.sleep(purge_interval(retention))
            try:
                deleted = await purge(retention)
            except Exception:  # a failed purge is retried at the next tick
                log.exception("purging finished tasks failed")
                continue
            if deleted:
                log.info("[Queue] Purged %d tasks finished more than %gs ago", deleted, retention)

    def wake_workers():
        state["signal"].notify()

    @app.exception_handler(QueueError)
    async def queue_error(request: Request, exc: QueueError):
        retry_after = getattr(exc, "retry_after", None)  # a full queue, a full disk
        return error(exc.status_code, exc.message,
                     None if retry_after is None else {"Retry-After": str(retry_after)})

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        status, message = describe_validation(exc)
        if request.url.path == "/tasks/batch":
            message = f"no task stored: {message}"  # a batch is all or nothing
        return error(status, message)

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
        headers = exc.headers
        if exc.status_code == 405:
            # Starlette names the methods of the first route that matched the path only
            # (POST for /tasks); the answer must name all of them (GET, POST).
            methods = set()
            for route in app.router.routes:
                if getattr(route, "path_regex", None) and route.path_regex.match(request.url.path):
                    methods |= set(getattr(route, "methods", None) or ())
            headers = dict(headers or {}, Allow=", ".join(sorted(methods)))
        return error(exc.status_code, str(exc.detail), headers)

    # -- producers -----------------------------------------------------------------

    def submit(spec: schemas.TaskIn):
        disk.check()
        return queue.submit(spec.type, spec.payload, priority=spec.priority,
                            max_retries=spec.max_retries,
                            execute_at=parse_execute_at(spec.execute_at), delay=spec.delay,
                            idempotency_key=spec.idempotency_key)

    submitting = {**schemas.EVERY_ROUTE, **schemas.WITH_BODY, **schemas.SUBMITTING}

    @app.post("/task", status_code=202, tags=["lesson"], responses={
        202: {"model": schemas.SeedSubmitOut, "description": "Stored"}, **submitting})
    async def seed_submit(body: schemas.SeedTaskIn):
        """The lesson's route: enqueue ``{type, payload}``; 202 ``{taskId, message, stats}``."""
        check_depth(body.payload, max_depth, "payload")

        def submit_and_count():
            disk.check()
            return queue.submit(body.type, body.payload), queue.stats()
        # One trip to the store thread: the stats the lesson shows include this task.
        (task, _), stats = await run(submit_and_count, makes_work=True)
        wake_workers()
        log.info("[Queue] Enqueued task %s (%s)", task.id, task.type)
        return FastJSON({"taskId": task.id, "message": "Task enqueued", "stats": stats},
                        status_code=202)

    @app.post("/tasks", status_code=202, tags=["tasks"], responses={
        202: {"model": schemas.TaskOut, "description": "Stored"},
        200: {"model": schemas.TaskOut,
              "description": "The idempotency key was used before: the first task, unchanged"},
        **submitting})
    async def submit_task(body: schemas.TaskIn):
        """Enqueue a task with priority, max_retries, execute_at or delay, idempotency key.

        202 with the task; 200 with the first task if the idempotency key was used before."""
        check_depth(body.payload, max_depth, "payload")
        task, created = await run(submit, body, makes_work=True)
        if created:
            wake_workers()
            log.info("[Queue] Enqueued task %s (%s, %s)", task.id, task.type, task.priority)
        return FastJSON(task.to_dict(), status_code=202 if created else 200)

    @app.post("/tasks/batch", status_code=202, tags=["tasks"], responses={
        202: {"model": schemas.TasksOut, "description": "All stored (a resent key: its first task)"},
        **submitting})
    async def submit_batch(body: schemas.TaskBatchIn):
        """Enqueue up to 1000 tasks at once: all are stored, or none (400 says which is bad)."""
        for number, spec in enumerate(body.tasks):
            check_depth(spec.payload, max_depth, f"tasks.{number}.payload")
        specs = [dict(spec.model_dump(),
                      execute_at=parse_execute_at(spec.execute_at)) for spec in body.tasks]

        def submit_all():
            disk.check()
            return queue.submit_many(specs)
        try:
            submitted = await run(submit_all, makes_work=True)
        except InvalidTask as exc:
            return error(400, f"no task stored: {exc.message}")
        wake_workers()
        log.info("[Queue] Enqueued %d tasks", len(submitted))
        return FastJSON({"tasks": [t.to_dict() for t, _ in submitted]}, status_code=202)

    # -- workers ------------------------------------------------------------------------

    def give_back(tasks: list) -> None:
        """Release tasks claimed for a long poll that was cancelled (the server stopping).
        Called from the store thread: it only queues the releases."""
        for task in tasks:
            state["committer"].submit(queue.release, task.id, task.lease_id, makes_work=True)

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
            remaining = deadline - loop.time()
            if not tasks and remaining > 0:
                if wakeup is not None:  # a scheduled task falls due, or a lease ends
                    remaining = min(remaining, max(wakeup - queue.clock(), 0.001))
                waiter = state["waiting"].park(worker_id, types, lease_seconds, limit)
                tasks = await wait_for_work(state["waiting"], waiter, signal, remaining,
                                            give_back)
                if not tasks:
                    continue  # woken, or the wait ran out: look again
            if tasks and wait and await request.is_disconnected():
                # The worker left while we waited (stopped, killed): give them back.
                for task in tasks:
                    await run(queue.release, task.id, task.lease_id, makes_work=True)
                # Wake the live pollers: they were woken with us, found nothing (we had
                # it) and now wait for a lease that no longer exists.
                wake_workers()
                return []
            for task in tasks:
                log.info("[Queue] Dequeued task %s by %s", task.id, worker_id)
            return tasks

    body_errors = {**schemas.EVERY_ROUTE, **schemas.WITH_BODY}
    leased = {**body_errors, **schemas.LEASED}
    one_task = {200: {"model": schemas.TaskOut}, **leased}

    @app.post("/tasks/claim", tags=["workers"], responses={
        200: {"model": schemas.ClaimOut}, **schemas.NO_TASK, **body_errors})
    async def claim(body: ClaimIn, request: Request):
        """Take up to ``max_tasks`` ready tasks, each under a lease; wait up to ``wait`` s.

        With ``acks``, the outcomes of the tasks the worker finished are recorded first,
        each alone as ``POST /tasks/ack`` does, and committed before the answer, which
        is then a 200 with their results under ``acks``, tasks or none: a worker makes
        one request per round, the report of the last and the claim of the next."""
        results = await record_outcomes(body.acks) if body.acks else None
        tasks = await claim_waiting(request, body.worker_id, body.types, body.lease_seconds,
                                    body.max_tasks, body.wait)
        if results is not None:
            return FastJSON({"tasks": [t.to_dict() for t in tasks], "acks": results})
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

    async def finish(step, task_id, *args, makes_work: bool = False) -> Task:
        task = await run(step, task_id, *args, makes_work=makes_work)
        announce(task)
        return task

    @app.post("/tasks/{task_id}/heartbeat", tags=["workers"], responses=one_task)
    async def heartbeat(task_id: str, body: HeartbeatIn):
        """Extend the lease of a task you hold; 409 if the lease is stale."""
        return (await run(queue.heartbeat, task_id, body.lease_id, body.lease_seconds)).to_dict()

    @app.post("/tasks/{task_id}/complete", tags=["workers"], responses=one_task)
    async def complete(task_id: str, body: schemas.CompleteIn):
        """Record success with a result; 409 if the lease is stale or the task not in progress."""
        check_depth(body.result, max_depth, "result")
        return (await finish(queue.complete, task_id, body.lease_id, body.result)).to_dict()

    @app.post("/tasks/{task_id}/fail", tags=["workers"], responses=one_task)
    async def fail(task_id: str, body: schemas.FailIn):
        """Record a failed attempt: retried after the backoff, or dead-lettered."""
        return (await finish(queue.fail, task_id, body.lease_id, body.error)).to_dict()

    @app.post("/tasks/{task_id}/release", tags=["workers"], responses=one_task)
    async def release(task_id: str, body: schemas.ReleaseIn):
        """Give a held task back unfinished (a worker shutting down); no failure counted.

        With ``started: false`` (the default) its handler never began, and the claim no
        longer counts in ``attempts``; with ``started: true`` the attempt still counts."""
        return (await finish(queue.release, task_id, body.lease_id, body.started,
                             makes_work=True)).to_dict()

    @app.post("/tasks/ack", tags=["workers"], responses={
        200: {"model": schemas.AckOut}, **body_errors})
    async def ack(body: schemas.AckBatchIn):
        """Report many finished attempts in one request; each succeeds or fails alone."""
        return {"results": await record_outcomes(body.acks)}

    async def record_outcomes(acks: list) -> list:
        """Complete or fail each reported attempt alone; one result per report."""
        for number, item in enumerate(acks):
            check_depth(item.result, max_depth, f"acks.{number}.result")

        def one(item: schemas.AckIn):
            if item.ok:
                return queue.complete(item.id, item.lease_id, item.result)
            return queue.fail(item.id, item.lease_id, item.error)
        results = []
        # A failure may send its task back at once; a completion never makes work.
        reported = await state["committer"].run_each(
            one, acks, makes_work=any(not item.ok for item in acks))
        for item, (ok, value) in zip(acks, reported):
            if ok:
                announce(value)
                results.append({"id": value.id, "status": value.status})
            elif isinstance(value, QueueError):  # each outcome alone: one fails no other
                results.append({"id": item.id, "error": value.message, "code": value.status_code})
            else:
                log.error("ack of task %s failed: %r", item.id, value)
                results.append({"id": item.id, "error": f"{type(value).__name__}: {value}",
                                "code": 503 if isinstance(value, sqlite3.Error) else 500})
        return results

    # -- looking -------------------------------------------------------------------------

    reading = {**schemas.EVERY_ROUTE, **schemas.WITH_QUERY}

    @app.get("/tasks/{task_id}", tags=["tasks"], responses={
        200: {"model": schemas.TaskOut}, **schemas.EVERY_ROUTE, **schemas.ONE_TASK})
    async def get_task(task_id: str):
        """One task, with its whole record; 404 if unknown."""
        return (await run(queue.get, task_id)).to_dict()

    @app.get("/tasks", tags=["tasks"], responses={200: {"model": schemas.TaskListOut}, **reading})
    async def list_tasks(status: Optional[schemas.Status] = None,
                         type: Optional[str] = Query(None, max_length=schemas.MAX_TYPE_LENGTH),
                         limit: int = Query(100, ge=1, le=1000),
                         offset: int = Query(0, ge=0, le=MAX_OFFSET)):
        """Tasks in submission order, filtered by status and type."""
        tasks = await run(queue.list, status, type, limit, offset)
        return {"tasks": [t.to_dict() for t in tasks], "count": len(tasks)}

    @app.get("/dead-letter", tags=["dead letter"], responses={
        200: {"model": schemas.TaskListOut}, **reading})
    async def dead_letter(limit: int = Query(100, ge=1, le=1000),
                          offset: int = Query(0, ge=0, le=MAX_OFFSET)):
        """Tasks that used up their retries (status ``failed``)."""
        tasks = await run(queue.dead_letter, limit, offset)
        return {"tasks": [t.to_dict() for t in tasks], "count": len(tasks)}

    @app.post("/dead-letter/{task_id}/retry", tags=["dead letter"], responses={
        200: {"model": schemas.TaskOut}, **schemas.EVERY_ROUTE, **schemas.DEAD})
    async def retry_dead(task_id: str):
        """Send a dead-lettered task back to the queue, retries reset; 409 if not dead."""
        task = await run(queue.retry_dead, task_id, makes_work=True)
        wake_workers()
        log.info("[Queue] Task %s sent back from the dead letter", task_id)
        return task.to_dict()

    @app.post("/tasks/purge", tags=["operations"], responses={
        200: {"model": schemas.PurgeOut}, **body_errors})
    async def purge_finished(body: schemas.PurgeIn):
        """Delete completed and dead-lettered tasks that finished more than ``older_than``
        seconds ago (``serve --retention`` does it on a timer). Waiting work is kept."""
        return {"deleted": await purge(body.older_than)}

    @app.get("/stats", tags=["lesson"], responses={
        200: {"model": schemas.StatsOut}, **schemas.EVERY_ROUTE})
    async def stats():
        """Counts per status: pending, scheduled, processing, completed, failed (dead letter)."""
        return await run(queue.stats)

    @app.get("/health", tags=["operations"], responses={
        200: {"model": schemas.HealthOut}, 403: schemas.EVERY_ROUTE[403],
        503: schemas.EVERY_ROUTE[503]})
    async def health():
        """200 when the server answers and its store can be read."""
        counts = await run(queue.stats)
        return {"status": "ok", "store": store_name, "tasks": counts["total"],
                "max_claim": limits.max_claim}

    # -- the lesson's worker routes --------------------------------------------------------

    @app.get("/dequeue", tags=["lesson"], responses={
        200: {"model": schemas.TaskOut}, **schemas.NO_TASK, **reading})
    async def seed_dequeue(request: Request, worker_id: Optional[str] = Query(
            None, min_length=1, max_length=schemas.MAX_ID_LENGTH)):
        """The lesson's worker route: the next task (under a lease) or 204."""
        who = worker_id or f"http-{request.client.host if request.client else 'client'}"
        tasks = await claim_waiting(request, who, None, None, 1, 0)
        if not tasks:
            return Response(status_code=204)
        return tasks[0].to_dict()

    seed_reported = {200: {"model": schemas.SeedTaskOut}, **leased}

    @app.post("/complete/{task_id}", tags=["lesson"], responses=seed_reported)
    async def seed_complete(task_id: str, body: Optional[schemas.SeedCompleteIn] = None):
        """The lesson's route: complete the task under its current lease."""
        if body is not None:
            check_depth(body.result, max_depth, "result")
        task = await finish(queue.complete, task_id, None, body.result if body else None)
        return {"message": "Task completed", "task": task.to_dict()}

    @app.post("/fail/{task_id}", tags=["lesson"], responses=seed_reported)
    async def seed_fail(task_id: str, body: Optional[schemas.SeedFailIn] = None):
        """The lesson's route: fail the task under its current lease (retry or dead letter)."""
        task = await finish(queue.fail, task_id, None, body.error if body else None)
        return {"message": f"Task {task.status}", "task": task.to_dict()}

    app.openapi = functools.partial(openapi_document, app, access)
    wrapped = AccessGuard(BodyLimit(app, max_body=limits.max_body, max_depth=max_depth), access)
    wrapped.fastapi = app  # for whoever needs the routes or the schema
    return wrapped


def openapi_document(app: FastAPI, access: Access) -> dict:
    """FastAPI's document, made to tell the truth: invalid input is a 400 here, not
    FastAPI's 422, and a server with a token says how to send it."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, summary=app.summary,
                               routes=app.routes)
        for path in document["paths"].values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        components = document.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        if not access.is_open:
            document["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}}
            document["security"] = [{"bearer": []}]
        app.openapi_schema = document
    return app.openapi_schema
