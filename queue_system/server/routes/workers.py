"""Workers: claim tasks (waiting for some if asked), keep their leases, report outcomes.

A claim with ``wait`` is a long poll: a claim that finds nothing parks the
worker where the store thread sees it, and the next request that makes
work hands that work to it in the same commit (``long_poll``). A worker's
report of its last tasks rides on its claim of the next (``acks``), so in
steady state a worker makes one request per task.
"""


import asyncio
import functools
import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...errors import QueueError
from .. import schemas
from ..context import ServerContext
from ..errors import FastJSON
from ..long_poll import wait_for_work

log = logging.getLogger("queue_system.server")

HELD_TASK = {200: {"model": schemas.TaskOut}, **schemas.LEASE_ERRORS}  # acting on a held task


async def claim_waiting(ctx: ServerContext, request: Request, worker_id: str, types,
                        lease_seconds, limit: int, wait: float) -> list:
    """Claim up to ``limit`` tasks for ``worker_id``, waiting up to ``wait`` s for some."""
    queue = ctx.queue
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait

    def claim_and_next_wakeup():
        return queue.claim(worker_id, types, lease_seconds, limit), queue.next_wakeup()

    def give_back(tasks: list) -> None:
        """Release tasks claimed for a long poll that was cancelled (the server stopping).
        Called from the store thread: it only queues the releases."""
        for task in tasks:
            ctx.committer.submit(queue.release, task.id, task.lease_id, makes_work=True)

    ctx.workers.heard(worker_id, lease_seconds)
    while True:
        # Take the event before looking, so a task enqueued meanwhile still wakes us.
        signal = ctx.signal.current()
        if wait and await request.is_disconnected():
            return []  # the worker left while we waited: claim nothing for it
        tasks, wakeup = await ctx.run(claim_and_next_wakeup)
        remaining = deadline - loop.time()
        if not tasks and remaining > 0:
            if wakeup is not None:  # a scheduled task falls due, or a lease ends
                remaining = min(remaining, max(wakeup - queue.clock(), 0.001))
            waiter = ctx.waiting.park(worker_id, types, lease_seconds, limit)
            with ctx.workers.waiting(worker_id):
                tasks = await wait_for_work(ctx.waiting, waiter, signal, remaining, give_back)
            if not tasks:
                continue  # woken, or the wait ran out: look again
        if tasks and wait and await request.is_disconnected():
            # The worker left while we waited (stopped, killed): give them back.
            for task in tasks:
                await ctx.run(queue.release, task.id, task.lease_id, makes_work=True)
            # Wake the live pollers: they were woken with us, found nothing (we had
            # it) and now wait for a lease that no longer exists.
            ctx.wake_workers()
            return []
        ctx.metrics.on_claimed(tasks)
        for task in tasks:
            log.info("[Queue] Dequeued task %s by %s", task.id, worker_id)
        return tasks


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(tags=["workers"])
    queue = ctx.queue
    ClaimIn, HeartbeatIn = schemas.worker_bodies(ctx.limits)

    async def record_outcomes(acks: list) -> list:
        """Complete or fail each reported attempt alone; one result per report."""
        for number, item in enumerate(acks):
            ctx.check_depth(item.result, f"acks.{number}.result")

        def one(item: schemas.AckIn):
            if item.ok:
                return queue.complete(item.id, item.lease_id, item.result)
            return queue.fail(item.id, item.lease_id, item.error)
        results, recorded = [], []
        # A failure may send its task back at once; a completion never makes work.
        reported = await ctx.committer.run_each(
            one, acks, makes_work=any(not item.ok for item in acks),
            first=functools.partial(queue.prefetch, [item.id for item in acks]))
        for item, (ok, value) in zip(acks, reported):
            if ok:
                ctx.announce(value)
                recorded.append((value, item.ok))
                results.append({"id": value.id, "status": value.status})
            elif isinstance(value, QueueError):  # each outcome alone: one fails no other
                results.append({"id": item.id, "error": value.message, "code": value.status_code})
            else:
                log.error("ack of task %s failed: %r", item.id, value)
                results.append({"id": item.id, "error": f"{type(value).__name__}: {value}",
                                "code": 500})
        if recorded:  # one worker's reports: heard from once
            ctx.workers.heard(recorded[0][0].worker_id)
            ctx.metrics.on_reported(recorded)
        return results

    @api.post("/tasks/claim", responses={
        200: {"model": schemas.ClaimOut}, **schemas.NO_TASK, **schemas.BODY_ERRORS})
    async def claim(body: ClaimIn, request: Request):
        """Take up to ``max_tasks`` ready tasks, each under a lease; wait up to ``wait`` s.

        With ``acks``, the outcomes of the tasks the worker finished are recorded first,
        each alone as ``POST /tasks/ack`` does, and committed before the answer, which
        is then a 200 with their results under ``acks``, tasks or none: a worker makes
        one request per round, the report of the last and the claim of the next."""
        results = await record_outcomes(body.acks) if body.acks else None
        tasks = await claim_waiting(ctx, request, body.worker_id, body.types, body.lease_seconds,
                                    body.max_tasks, body.wait)
        if results is not None:
            return FastJSON({"tasks": [t.to_dict() for t in tasks], "acks": results})
        if not tasks:
            return Response(status_code=204)
        return FastJSON({"tasks": [t.to_dict() for t in tasks]})

    @api.post("/tasks/{task_id}/heartbeat", responses=HELD_TASK)
    async def heartbeat(task_id: str, body: HeartbeatIn):
        """Extend the lease of a task you hold; 409 if the lease is stale."""
        task = await ctx.run(queue.heartbeat, task_id, body.lease_id, body.lease_seconds)
        ctx.workers.heard(task.worker_id, body.lease_seconds)
        return task.to_dict()

    @api.post("/tasks/{task_id}/complete", responses=HELD_TASK)
    async def complete(task_id: str, body: schemas.CompleteIn):
        """Record success with a result; 409 if the lease is stale or the task not in progress."""
        ctx.check_depth(body.result, "result")
        return (await ctx.finish(queue.complete, task_id, body.lease_id, body.result,
                                 ok=True)).to_dict()

    @api.post("/tasks/{task_id}/fail", responses=HELD_TASK)
    async def fail(task_id: str, body: schemas.FailIn):
        """Record a failed attempt: retried after the backoff, or dead-lettered."""
        return (await ctx.finish(queue.fail, task_id, body.lease_id, body.error,
                                 ok=False)).to_dict()

    @api.post("/tasks/{task_id}/release", responses=HELD_TASK)
    async def release(task_id: str, body: schemas.ReleaseIn):
        """Give a held task back unfinished (a worker shutting down); no failure counted.

        With ``started: false`` (the default) its handler never began, and the claim no
        longer counts in ``attempts``; with ``started: true`` the attempt still counts."""
        task = await ctx.finish(queue.release, task_id, body.lease_id, body.started,
                                makes_work=True)
        if not body.started:
            ctx.metrics.on_given_back(task)
        return task.to_dict()

    @api.post("/tasks/ack", responses={200: {"model": schemas.AckOut}, **schemas.BODY_ERRORS})
    async def ack(body: schemas.AckBatchIn):
        """Report many finished attempts in one request; each succeeds or fails alone."""
        return {"results": await record_outcomes(body.acks)}

    return api
