"""The lesson's routes, as its producer and worker call them with curl.

``POST /task`` answers ``{taskId, message, stats}``; ``GET /dequeue`` hands
out the next task under the server's lease (or 204); ``POST /complete/{id}``
and ``POST /fail/{id}`` report it without a lease id, as the lesson's
worker does; ``GET /stats`` counts the tasks per status.
"""


import logging
from typing import Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from .. import schemas
from ..context import ServerContext
from ..errors import FastJSON
from .workers import claim_waiting

log = logging.getLogger("queue_system.server")


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(tags=["lesson"])
    queue = ctx.queue
    reported = {200: {"model": schemas.LessonTaskOut}, **schemas.LEASE_ERRORS}

    @api.post("/task", status_code=202, responses={
        202: {"model": schemas.LessonSubmitOut, "description": "Stored"},
        **schemas.SUBMIT_ERRORS})
    async def lesson_submit(body: schemas.LessonTaskIn):
        """The lesson's route: enqueue ``{type, payload}``; 202 ``{taskId, message, stats}``."""
        ctx.check_depth(body.payload, "payload")

        def submit_and_count():
            ctx.disk.check()
            return queue.submit(body.type, body.payload), queue.stats()
        # One trip to the store thread: the stats the lesson shows include this task.
        (task, _), stats = await ctx.run(submit_and_count, makes_work=True)
        ctx.submitted([task])
        log.info("[Queue] Enqueued task %s (%s)", task.id, task.type)
        return FastJSON({"taskId": task.id, "message": "Task enqueued", "stats": stats},
                        status_code=202)

    @api.get("/stats", responses={200: {"model": schemas.StatsOut}, **schemas.EVERY_ROUTE})
    async def stats():
        """Counts per status: pending, scheduled, processing, completed, failed (dead letter)."""
        return await ctx.run(queue.stats)

    @api.get("/dequeue", responses={200: {"model": schemas.TaskOut}, **schemas.NO_TASK,
                                                    **schemas.QUERY_ERRORS})
    async def lesson_dequeue(request: Request, worker_id: Optional[str] = Query(
            None, min_length=1, max_length=schemas.MAX_ID_LENGTH)):
        """The lesson's worker route: the next task (under a lease) or 204."""
        who = worker_id or f"http-{request.client.host if request.client else 'client'}"
        tasks = await claim_waiting(ctx, request, who, None, None, 1, 0)
        if not tasks:
            return Response(status_code=204)
        return tasks[0].to_dict()

    @api.post("/complete/{task_id}", responses=reported)
    async def lesson_complete(task_id: str, body: Optional[schemas.LessonCompleteIn] = None):
        """The lesson's route: complete the task under its current lease."""
        if body is not None:
            ctx.check_depth(body.result, "result")
        task = await ctx.finish(queue.complete, task_id, None, body.result if body else None,
                                ok=True)
        return {"message": "Task completed", "task": task.to_dict()}

    @api.post("/fail/{task_id}", responses=reported)
    async def lesson_fail(task_id: str, body: Optional[schemas.LessonFailIn] = None):
        """The lesson's route: fail the task under its current lease (retry or dead letter)."""
        task = await ctx.finish(queue.fail, task_id, None, body.error if body else None,
                                ok=False)
        return {"message": f"Task {task.status}", "task": task.to_dict()}

    return api
