"""The dead letter: tasks that used up their retries, and the operator's replay."""


import logging

from typing import Optional

from fastapi import APIRouter, Query

from .. import schemas
from ..context import ServerContext

log = logging.getLogger("queue_system.server")


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(tags=["dead letter"])
    queue = ctx.queue

    @api.get("/dead-letter", responses={200: {"model": schemas.TaskListOut},
                                         **schemas.QUERY_ERRORS})
    async def dead_letter(limit: int = Query(100, ge=1, le=1000),
                          offset: int = Query(0, ge=0, le=schemas.MAX_OFFSET),
                          after: Optional[int] = schemas.AFTER):
        """Tasks that used up their retries (status ``failed``), in submission order; page
        with ``after``, the last task's ``seq``."""
        tasks = await ctx.run(queue.dead_letter, limit, offset, after)
        return {"tasks": [t.to_dict() for t in tasks], "count": len(tasks)}

    @api.post("/dead-letter/{task_id}/replay", responses={
        200: {"model": schemas.TaskOut}, **schemas.EVERY_ROUTE, **schemas.DEAD})
    async def replay(task_id: str):
        """Send a dead-lettered task back to the queue, retries reset; 409 if not dead."""
        task = await ctx.run(queue.replay, task_id, makes_work=True)
        ctx.wake_workers()
        log.info("[Queue] Task %s sent back from the dead letter", task_id)
        return task.to_dict()

    return api
