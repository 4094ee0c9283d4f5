"""Request bodies: capped in size, and always read as JSON.

An ASGI middleware, so it sees the bytes before any parsing. A body
announced larger than the limit is refused at once with 413, and a body
that streams past the limit (no Content-Length) is refused as soon as it
crosses it: a client cannot make the server swallow 1 GiB.

The API speaks only JSON, so a body is read as JSON whatever its
Content-Type says: ``curl -d '{...}'`` without ``-H "Content-Type:
application/json"`` (curl then claims a form) still works, and invalid
JSON gets a clear 400 instead of a puzzling "expected an object".
Some bodies Python's json module would take are refused here with a 400
that says why, before they can reach the store: a body nested too deep
(thousands of ``[`` would exhaust the parser's stack; the app checks
each payload and result against ``--max-depth`` exactly), text that is not valid
Unicode (a lone surrogate such as ``"\ud800"``, which no database or
encoder can store), a leading byte order mark, and NaN, Infinity or
numbers beyond a double's range, which are not JSON and would come back
as ``null``.
"""

from __future__ import annotations

import json
from typing import Optional

import orjson

from ..json_codec import nested_deeper_than
from ..limits import DEFAULT_LIMITS

DEFAULT_MAX_BODY = DEFAULT_LIMITS.max_body
# The API's own nesting around a payload or a result: {"tasks": [{"payload": ...}]}.
ENVELOPE_DEPTH = 3


class BodyLimit:
    def __init__(self, app, max_body: int = DEFAULT_MAX_BODY,
                 max_depth: int = DEFAULT_LIMITS.max_depth):
        self.app = app
        self.max_body = max_body
        self.max_body_depth = max_depth + ENVELOPE_DEPTH

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # Only these methods' bodies are read; any other's is capped in size, then ignored.
        reads_body = scope["method"] in ("POST", "PUT", "PATCH")
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    announced = int(value)
                except ValueError:
                    return await self._refuse(send, 400, "Content-Length is not a number")
                if announced > self.max_body:
                    return await self._refuse_too_large(send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return await self._refuse_too_large(send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if not reads_body:
            body = b""
        problem = body_problem(body, self.max_body_depth) if body else None
        if problem is not None:
            return await self._refuse(send, 400, problem)
        if body:
            scope = dict(scope, headers=[(k, v) for k, v in scope["headers"]
                                         if k != b"content-type"]
                         + [(b"content-type", b"application/json")])
        handed_over = False

        async def receive_again():
            nonlocal handed_over
            if not handed_over:
                handed_over = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only the disconnect is left

        await self.app(scope, receive_again, send)

    async def _refuse_too_large(self, send):
        await self._refuse(send, 413, f"request body larger than {self.max_body} bytes")

    @staticmethod
    async def _refuse(send, status: int, message: str):
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def body_problem(body: bytes, max_depth: int) -> Optional[str]:
    """Why ``body`` is refused before parsing, or None.

    orjson parses strict JSON and refuses all of the above. Other invalid
    JSON is left to the API's parser, whose message says where it broke."""
    too_deep = (f"the body is nested more than {max_depth} levels deep: a payload or "
                f"result may nest at most {max_depth - ENVELOPE_DEPTH} (--max-depth)")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
    else:
        # As many brackets as the limit cannot nest deeper: most bodies stop here.
        if body.count(b"[") + body.count(b"{") > max_depth and nested_deeper_than(value, max_depth):
            return too_deep
        return None
    if "depth limit" in reason or "ecursion" in reason:
        # orjson stops at 1024 levels, where Python's json module would crash.
        return too_deep
    if "byte order mark" in reason:
        return "the body starts with a byte order mark (BOM): send the JSON text without it"
    if "surrogate" in reason or "UTF-8" in reason:
        return "the body is not valid UTF-8 text (a lone surrogate such as \\ud800?)"
    try:
        json.loads(body)
    except ValueError:
        return None
    # Only the json module took it: NaN, Infinity, or a number that overflows a double.
    return "numbers must be finite: NaN, Infinity and numbers beyond 1.8e308 are not JSON"
