"""The HTTP API: the lesson's producer routes, the queue's full API, and the dashboard.

Every route hands its work to the group committer (one thread owns the
store) and answers once the work is committed: a 202 means the task is on
disk. A worker that asks for a task with ``wait`` is held (long poll) until
a task arrives, which wakes it within milliseconds, or the wait runs out.
Bad input is answered with a 4xx and ``{"error": "what is wrong"}``
(``errors``); the limits it enforces are in ``limits``, and who may call it
in ``access``. Every status a route can answer is in the OpenAPI document
at ``/openapi.json``, with the rules each field must follow.

The routes live in ``routes/``, one router per concern, over one
``ServerContext`` (``context``): the queue, its store thread, the metrics.
"""


import functools
from typing import Optional

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from ..dead_letter_log import DeadLetterLog
from ..limits import DEFAULT_LIMITS, Limits
from ..queue import TaskQueue
from .access import Access, AccessGuard
from .context import ServerContext
from .docs import install_docs
from .errors import FastJSON, install_error_handlers
from .json_body import BodyLimit
from .routes import dashboard, dead_letter, lesson, operations, tasks, workers


def create_app(queue: TaskQueue, *, limits: Limits = DEFAULT_LIMITS,
               max_body: Optional[int] = None,
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
    ctx = ServerContext(queue, limits, dead_letter_log=dead_letter_log, disk_folder=disk_folder)
    app = FastAPI(title="queue_system", version="1.0",
                  summary="The lesson's task queue: priorities, retries, dead letter, "
                          "scheduled tasks and leases.",
                  lifespan=ctx.lifespan, default_response_class=FastJSON,
                  docs_url=None, redoc_url=None)
    install_error_handlers(app)
    for routes in (lesson, tasks, workers, dead_letter, operations, dashboard):
        app.include_router(routes.router(ctx))
    install_docs(app)
    app.mount(dashboard.ASSETS, StaticFiles(directory=str(dashboard.STATIC)), name="dashboard")
    app.openapi = functools.partial(openapi_document, app, access)
    wrapped = AccessGuard(BodyLimit(app, max_body=limits.max_body, max_depth=limits.max_depth),
                          access)
    wrapped.fastapi = app  # for whoever needs the routes or the schema
    wrapped.context = ctx  # the metrics, the workers seen
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
