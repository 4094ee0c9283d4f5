"""The classroom dashboard: the page at ``/``, its files, and the state it draws.

The page is plain HTML, CSS and JavaScript from the package (``static/``):
no build step, nothing from the network. It reads ``GET /dashboard/state``
and acts through the API everyone uses (``POST /tasks/batch`` for a burst,
``POST /tasks`` for a delayed task, ``POST /dead-letter/{id}/replay``), so
the server's tokens and cross-site guard apply to it as to anyone.
"""


from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from .. import schemas
from ..context import ServerContext

STATIC = Path(__file__).resolve().parent.parent / "static"
ASSETS = "/dashboard/assets"


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(tags=["dashboard"])

    @api.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @api.get("/dashboard/state", responses={
        200: {"description": "The queue now, its last minutes, its workers, its dead letter"},
        **schemas.EVERY_ROUTE})
    async def state():
        """What the dashboard draws: counts per status now and over the last minutes,
        throughput and mean wait, the workers and what they hold, the dead letter."""
        return await ctx.dashboard.state()

    return api
