"""Who may use the server: the names it answers to, the pages it refuses, the tokens.

Three checks, made on the request's headers before its body is read:

1. **Host** (against DNS rebinding). A server bound to the loopback answers
   only to ``localhost``, ``127.0.0.1`` and ``[::1]`` (and the names given
   with ``--allowed-host``): a web page that made its own domain point at
   127.0.0.1 still sends its own name, and is refused. JupyterLab does the same.
   A server bound to every interface (Docker) answers any name, except to a
   browser: a browser must reach it by an IP address, ``localhost``, or a
   name given with ``--allowed-host``.
2. **Origin** (against cross-site requests). A web page may send requests to
   any address, the teacher's local server included, and for a "simple"
   request (a ``text/plain`` POST, an image) the browser does not ask first.
   Browsers mark such requests: ``Origin`` names the page's site and
   ``Sec-Fetch-Site`` says ``cross-site``. A request from another origin is
   refused with 403, and so is a browser's body that is not declared JSON
   (a page can only send JSON cross-site after asking, and we never say
   yes). curl, the worker and the CLI send neither header: unaffected.
3. **Tokens** (``QUEUE_TOKEN``, ``QUEUE_WORKER_TOKEN``). Unset, the server is
   open, as in the lesson. With ``QUEUE_TOKEN``, every route but ``/health``
   (and the API's documentation, and the dashboard's page and files: it asks
   for the token before it reads anything) needs ``Authorization: Bearer <token>``,
   else 401. With ``QUEUE_WORKER_TOKEN`` too, the routes that act on work
   already submitted (claim, heartbeat, complete, fail..., and the
   operator's replay from the dead letter and purge) need the worker's
   token, so a student who may submit tasks cannot complete, replay or
   delete someone else's (403).

Browsers without ``Sec-Fetch-*`` headers (Safari before 16.4, Firefox before
90) send no ``Origin`` with an image's GET either: on an open server such a
page could still make ``GET /dequeue`` take a task (its lease then runs out
and the task is retried). A token closes that too.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import FrozenSet, Optional

from ..limits import TOKEN_TEXT

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
# Open without a token: no data in them. The dashboard's page asks for the token itself.
OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/"})
OPEN_PREFIXES = ("/docs/assets/", "/dashboard/assets/")
# The routes that act on work already submitted: a worker's (take, extend, finish or give
# back a task) and an operator's (replay from the dead letter, purge).
WORKER_ROUTE = re.compile(r"^/(tasks/claim|tasks/ack|dequeue|complete/[^/]+|fail/[^/]+"
                          r"|tasks/[^/]+/(heartbeat|complete|fail|release)"
                          r"|tasks/purge|dead-letter/[^/]+/replay)$")
HOST_PORT = re.compile(r"^(\[[^\]]*\]|[^:]*)(:[0-9]*)?$")


@dataclass(frozen=True)
class Access:
    """The server's access settings: its tokens (``QUEUE_TOKEN``, ``QUEUE_WORKER_TOKEN``)
    and the host names it answers to (``serve --allowed-host``)."""

    token: Optional[str] = None
    worker_token: Optional[str] = None
    # Host names the server answers to; None: any (a server bound to all interfaces).
    allowed_hosts: Optional[FrozenSet[str]] = field(default=None)

    @classmethod
    def for_bind(cls, host: str, token: Optional[str] = None,
                 worker_token: Optional[str] = None, extra_hosts=()) -> "Access":
        """Bound to the loopback: only local names (and ``extra_hosts``); elsewhere, any
        name unless some are given."""
        for name, value in (("QUEUE_TOKEN", token), ("QUEUE_WORKER_TOKEN", worker_token)):
            if value and not TOKEN_TEXT.match(value):
                raise ValueError(f"{name} must be visible ASCII characters without spaces "
                                 "(it travels in an HTTP header)")
        names = {name.lower() for name in extra_hosts}
        if host in ("127.0.0.1", "localhost", "::1") or host.startswith("127."):
            names |= LOOPBACK_HOSTS | {host}
        return cls(token or None, worker_token or None, frozenset(names) if names else None)

    @property
    def is_open(self) -> bool:
        return self.token is None and self.worker_token is None

    def refusal(self, method: str, path: str, headers: dict) -> Optional[tuple]:
        """``(status, message)`` if this request is refused, else None."""
        host = headers.get(b"host")
        origin = headers.get(b"origin")
        browser = origin is not None or b"sec-fetch-site" in headers
        if host is not None and (self.allowed_hosts is not None or browser):
            match = HOST_PORT.match(host.decode("latin-1").lower())
            name = match.group(1) if match else None
            if self.allowed_hosts is not None:
                known = name in self.allowed_hosts
            else:  # any name, but a browser only by address: no rebinding of a DNS name
                known = name is not None and (name == "localhost" or _is_address(name))
            if not known:
                return 403, (f"this server does not answer to the host {host.decode('latin-1')!r}"
                             " (--allowed-host adds a name)")
        if browser:
            problem = self._browser_problem(method, path, headers, origin, host)
            if problem:
                return 403, problem
        if self.is_open or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return None
        return self._token_problem(path, headers.get(b"authorization"))

    @staticmethod
    def _browser_problem(method, path, headers, origin, host) -> Optional[str]:
        site = headers.get(b"sec-fetch-site", b"same-origin")
        if origin is not None:
            own = host is not None and origin in (b"http://" + host, b"https://" + host)
            if not own:
                return (f"requests from web pages of another origin "
                        f"({origin.decode('latin-1')}) are refused")
        elif site not in (b"same-origin", b"none"):
            # No Origin but another site: an image, a link. Following a link to a page is
            # fine; anything else from another site (/dequeue takes a task!) is not.
            if not (method == "GET" and headers.get(b"sec-fetch-mode") == b"navigate"
                    and path != "/dequeue"):
                return "requests from web pages of another site are refused"
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if kind != b"application/json":
                return "a web page must send its body as application/json"
        return None

    def _token_problem(self, path: str, authorization: Optional[bytes]) -> Optional[tuple]:
        given = None
        if authorization is not None:
            scheme, _, value = authorization.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                given = value.strip()
        is_worker = self.worker_token is not None and _same(given, self.worker_token)
        is_user = self.token is not None and _same(given, self.token)
        if WORKER_ROUTE.match(path) and self.worker_token is not None:
            if is_worker:
                return None
            if is_user:
                return 403, ("this token may submit and read tasks, not act on them: "
                             "that needs the worker token")
            return 401, "this route needs the worker token: Authorization: Bearer <token>"
        if is_worker or is_user or self.token is None:
            return None
        if given is None:
            return 401, "this server needs a token: Authorization: Bearer <QUEUE_TOKEN>"
        return 401, "wrong token"


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
        return True
    except ValueError:
        return False


def _same(given: Optional[str], expected: str) -> bool:
    # Compared in constant time: how long a wrong token takes to refuse tells nothing.
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


log = logging.getLogger("queue_system.server")


class AccessGuard:
    """ASGI middleware: refuses what ``Access`` refuses, before the body is read.

    Each refusal is logged, so a teacher sees a page or a student knocking; at most
    one line a second, so that a flood of refusals cannot fill the disk with its log."""

    def __init__(self, app, access: Access):
        self.app = app
        self.access = access
        self._logged_at = -1.0
        self._unlogged = 0

    def _log(self, method: str, path: str, headers: dict, status: int, message: str) -> None:
        now = time.monotonic()
        if now - self._logged_at < 1.0:
            self._unlogged += 1
            return
        since = f" ({self._unlogged} more refused since the last line)" if self._unlogged else ""
        self._logged_at, self._unlogged = now, 0
        origin = headers.get(b"origin", b"").decode("latin-1")
        log.warning("[Access] %d %s %s%s: %s%s", status, method, path,
                    f" from {origin}" if origin else "", message, since)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])  # the last of a repeated header wins
        refused = self.access.refusal(scope["method"], scope["path"], headers)
        if refused is None:
            return await self.app(scope, receive, send)
        status, message = refused
        self._log(scope["method"], scope["path"], headers, status, message)
        body = json.dumps({"error": message}).encode()
        extra = [(b"www-authenticate", b'Bearer realm="queue_system"')] if status == 401 else []
        # Closed after the refusal: a refused client keeps no connection (and no slot).
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")] + extra})
        await send({"type": "http.response.body", "body": body})
