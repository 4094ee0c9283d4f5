"""Producers and readers: submit one task or a batch, read one task or a page of them."""


import logging
from typing import Optional

from fastapi import APIRouter, Query

from ...errors import InvalidTask
from .. import schemas
from ..context import ServerContext, parse_execute_at
from ..errors import FastJSON, error

log = logging.getLogger("queue_system.server")



def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(tags=["tasks"])
    queue = ctx.queue

    def submit(spec: schemas.TaskIn):
        ctx.disk.check()
        return queue.submit(spec.type, spec.payload, priority=spec.priority,
                            max_retries=spec.max_retries,
                            execute_at=parse_execute_at(spec.execute_at), delay=spec.delay,
                            idempotency_key=spec.idempotency_key)

    @api.post("/tasks", status_code=202, responses={
        202: {"model": schemas.TaskOut, "description": "Stored"},
        200: {"model": schemas.TaskOut,
              "description": "The idempotency key was used before: the first task, unchanged"},
        **schemas.SUBMIT_ERRORS})
    async def submit_task(body: schemas.TaskIn):
        """Enqueue a task with priority, max_retries, execute_at or delay, idempotency key.

        202 with the task; 200 with the first task if the idempotency key was used before."""
        ctx.check_depth(body.payload, "payload")
        task, created = await ctx.run(submit, body, makes_work=True)
        if created:
            ctx.submitted([task])
            log.info("[Queue] Enqueued task %s (%s, %s)", task.id, task.type, task.priority)
        return FastJSON(task.to_dict(), status_code=202 if created else 200)

    @api.post("/tasks/batch", status_code=202, responses={
        202: {"model": schemas.TasksOut,
              "description": "All stored (a resent key: its first task)"},
        **schemas.SUBMIT_ERRORS})
    async def submit_batch(body: schemas.TaskBatchIn):
        """Enqueue up to 1000 tasks at once: all are stored, or none (400 says which is bad)."""
        for number, spec in enumerate(body.tasks):
            ctx.check_depth(spec.payload, f"tasks.{number}.payload")
        specs = [dict(spec.model_dump(),
                      execute_at=parse_execute_at(spec.execute_at)) for spec in body.tasks]

        def submit_all():
            ctx.disk.check()
            return queue.submit_many(specs)
        try:
            submitted = await ctx.run(submit_all, makes_work=True)
        except InvalidTask as exc:
            return error(400, f"no task stored: {exc.message}")
        ctx.submitted([task for task, created in submitted if created])
        log.info("[Queue] Enqueued %d tasks", len(submitted))
        return FastJSON({"tasks": [t.to_dict() for t, _ in submitted]}, status_code=202)

    @api.get("/tasks/{task_id}", responses={
        200: {"model": schemas.TaskOut}, **schemas.EVERY_ROUTE, **schemas.ONE_TASK})
    async def get_task(task_id: str):
        """One task, with its whole record; 404 if unknown."""
        return (await ctx.run(queue.get, task_id)).to_dict()

    @api.get("/tasks", responses={200: {"model": schemas.TaskListOut}, **schemas.QUERY_ERRORS})
    async def list_tasks(status: Optional[schemas.StatusName] = None,
                         type: Optional[str] = Query(None, max_length=schemas.MAX_TYPE_LENGTH),
                         limit: int = Query(100, ge=1, le=1000),
                         offset: int = Query(0, ge=0, le=schemas.MAX_OFFSET),
                         after: Optional[int] = schemas.AFTER):
        """Tasks in submission order, filtered by status and type. For the next page, pass
        the last task's ``seq`` as ``after``: a page then costs the same however deep."""
        tasks = await ctx.run(queue.list, status, type, limit, offset, after)
        return {"tasks": [t.to_dict() for t in tasks], "count": len(tasks)}

    return api
