"""The dead-letter log: one JSON line per task that used up its retries.

The lesson's exercise 2.3 (*journalisez les tâches échouées dans un fichier
pour inspection manuelle*): when a task enters the dead letter, append it to
a file that a person (or ``grep``, ``jq``, pandas) can read without the
server. Each line is the task as the API shows it (``Task.to_dict()``),
plus ``logged_at``, the time the line was written (ISO 8601, UTC). The file
is only ever appended to, so a replayed task that fails again appears again.

    python -m queue_system serve --dead-letter-log data/dead-letter.jsonl
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from . import json_codec
from .task import Task

log = logging.getLogger("queue_system.server")


def dead_letter_line(task: Task, now: float) -> str:
    """The line logged for ``task`` at time ``now`` (seconds since the epoch), newline included."""
    record: Dict[str, Any] = dict(task.to_dict())
    record["logged_at"] = datetime.fromtimestamp(now, timezone.utc).isoformat()
    return json_codec.dumps(record) + "\n"


class DeadLetterLog:
    """Appends dead-lettered tasks to ``path`` (created if missing, with its folder)."""

    def __init__(self, path: str):
        self.path = path
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        # Opened now, so that a path that cannot be written is refused at start-up.
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, task: Task, now: Optional[float] = None) -> None:
        """Append ``task``'s line. A write that fails (a full disk) is logged, not raised:
        the task is dead-lettered all the same, and ``GET /dead-letter`` still shows it."""
        line = dead_letter_line(task, time.time() if now is None else now)
        with self._lock:
            try:
                self._file.write(line)
                self._file.flush()
            except OSError as exc:
                log.error("could not log dead-lettered task %s to %s: %s", task.id, self.path, exc)

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_dead_letter_log(path: str) -> List[dict]:
    """Every line of a dead-letter log, as dicts (what ``DeadLetterLog`` wrote)."""
    with open(path, encoding="utf-8") as f:
        return [json_codec.loads(line) for line in f if line.strip()]
