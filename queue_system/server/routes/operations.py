"""Operations: is the server up, purge finished tasks, and the metrics for Prometheus."""


from fastapi import APIRouter
from fastapi.responses import Response

from .. import schemas
from ..context import ServerContext


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(tags=["operations"])
    queue = ctx.queue

    @api.get("/health", responses={
        200: {"model": schemas.HealthOut}, 403: schemas.EVERY_ROUTE[403],
        503: schemas.EVERY_ROUTE[503]})
    async def health():
        """200 when the server answers and its store can be read."""
        counts = await ctx.run(queue.stats)
        return {"status": "ok", "store": queue.store.url, "tasks": counts["total"],
                "max_claim": ctx.limits.max_claim}

    @api.post("/tasks/purge", responses={200: {"model": schemas.PurgeOut}, **schemas.BODY_ERRORS})
    async def purge_finished(body: schemas.PurgeIn):
        """Delete completed and dead-lettered tasks that finished more than ``older_than``
        seconds ago (``serve --retention`` does it on a timer). Waiting work is kept."""
        return {"deleted": await ctx.purge(body.older_than)}

    @api.get("/metrics", response_class=Response, responses={
        200: {"content": {ctx.metrics.content_type: {}},
              "description": "The Prometheus text format"}, **schemas.EVERY_ROUTE})
    async def metrics():
        """Counts, rates and histograms in the Prometheus text format, for a scraper."""
        counts = await ctx.run(queue.stats)
        return Response(ctx.metrics.render(counts, ctx.workers.count()),
                        media_type=ctx.metrics.content_type)

    return api
