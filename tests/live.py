"""Real processes for end-to-end tests: a server and workers on 127.0.0.1.

Each test starts what it needs on free ports and stops it before it ends:
``LiveSystem`` is the package's ``LocalSystem`` (the labs use it too), which
here kills whatever still runs at the end of the test at once.
"""

from __future__ import annotations

from queue_system.local import ROOT, LocalSystem
from queue_system.localhost import free_port, wait_for  # noqa: F401  (the tests import them from here)


class LiveSystem(LocalSystem):
    """``LocalSystem`` with the quiet server log level the tests read, and no grace at the end."""

    def start_server(self, *extra, wait=True, env=None):
        return super().start_server("--log-level", "warning", *extra, wait=wait, env=env)

    def close(self, grace: float = 0) -> None:
        super().close(grace)


__all__ = ["ROOT", "LiveSystem", "free_port", "wait_for"]
