"""How the API answers what went wrong: always ``{"error": "what is wrong"}``, never a trace.

* a rule of the queue refused it (``QueueError``: 404, 409, a full queue's
  503 with ``Retry-After``...): its status and message;
* the body or a parameter does not follow the schema: a 400 in one sentence
  (FastAPI would say 422 with a list);
* the store's engine failed (``StoreUnavailable``, whatever the engine): a 503 with
  ``Retry-After``, nothing was saved, and a line in the log;
* anything else: a 500 that names the error's kind, the trace in the log;
* Starlette's own 404 and 405, the 405 naming every method of the path.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from .. import json_codec
from ..errors import QueueError, StoreUnavailable

log = logging.getLogger("queue_system.server")


class FastJSON(JSONResponse):
    """JSON responses encoded by orjson: the hot routes answer faster."""

    def render(self, content: Any) -> bytes:
        return json_codec.dumps_bytes(content)


def error(status: int, message: str, headers: Optional[dict] = None) -> FastJSON:
    return FastJSON({"error": message}, status_code=status, headers=headers)


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


def allowed_methods(app: FastAPI, request: Request) -> list:
    """The methods some route of ``app`` answers at the request's path."""
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        scope = dict(request.scope, method=method)
        if any(route.matches(scope)[0] == Match.FULL for route in app.router.routes):
            allowed.append(method)
    return allowed


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error ``app`` can meet as this module's docstring says."""

    @app.exception_handler(QueueError)
    async def queue_error(request: Request, exc: QueueError):
        if isinstance(exc, StoreUnavailable) or exc.__cause__ is not None:  # the engine failed
            log.error("the store failed on %s %s: %s", request.method, request.url.path,
                      exc.__cause__ or exc, exc_info=exc)
        retry_after = getattr(exc, "retry_after", None)  # a full queue, a full disk
        return error(exc.status_code, exc.message,
                     None if retry_after is None else {"Retry-After": str(retry_after)})

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        status, message = describe_validation(exc)
        if request.url.path == "/tasks/batch":
            message = f"no task stored: {message}"  # a batch is all or nothing
        return error(status, message)

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
            methods = allowed_methods(app, request)
            if methods:  # else a mounted folder of files: Starlette's own answer stands
                headers = dict(headers or {}, Allow=", ".join(methods))
        return error(exc.status_code, str(exc.detail), headers)
