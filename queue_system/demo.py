"""The demo: the lesson's whole system on one machine, in one command.

It starts what ``docker compose up`` would (a producer API on a SQLite
file and three workers, as separate processes), submits the lesson's
sample tasks (an email, an image, ten reports), shows the queue draining
with a progress bar, then prints the final counts and what each worker
did, and stops every process cleanly (workers first, warm shutdown).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import List, Optional

from .client import QueueClient, ServerUnreachable
from .local import stop_all
from .localhost import dashboard_address, free_port, port_is_free, wait_for
from .stores import store_url

BAR_WIDTH = 30


def wait_until_healthy(client: QueueClient, process: subprocess.Popen, store: str,
                       seconds: float = 20) -> None:
    """Wait for *our* server: another one already on the port must not be mistaken for it."""
    def answer():
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} "
                               "(is the port already taken?)")
        try:
            return client.health()["store"]
        except ServerUnreachable:
            return None
    try:
        answered = wait_for(answer, seconds, "the server")
    except TimeoutError:
        raise RuntimeError(f"the server did not answer within {seconds:.0f} s") from None
    if answered != store_url(store):
        raise RuntimeError(f"another server answers on {client.url} ({answered}); "
                           "choose another --port")


def interrupt(signum, frame):
    raise KeyboardInterrupt


def progress_line(stats: dict) -> str:
    total = stats["total"] or 1
    finished = stats["completed"] + stats["failed"]
    filled = BAR_WIDTH * finished // total
    return (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {100 * finished // total:3d}%  "
            f"pending {stats['pending'] + stats['scheduled']:3d}  "
            f"processing {stats['processing']:2d}  completed {stats['completed']:3d}  "
            f"dead letter {stats['failed']:2d}")


BATCH = 1000  # tasks per submit_many request: the API's limit
DEMO_PORT = 3000  # the lesson's port


def lesson_tasks(reports: int) -> List[dict]:
    """The lesson's step 2: an email, an image, then reports 1..N."""
    return ([{"type": "email", "payload": {"to": "user@example.com", "subject": "Hello"}},
             {"type": "image", "payload": {"url": "https://example.com/image.jpg"}}]
            + [{"type": "report", "payload": {"id": i}} for i in range(1, reports + 1)])


def run_demo(fast: bool = False, workers: int = 3, reports: int = 10, failure_rate: float = 0.2,
             port: int = 0, store: Optional[str] = None, out=sys.stdout) -> int:
    folder = tempfile.mkdtemp(prefix="queue-demo-")
    store = store or os.path.join(folder, "queue.db")
    # The README's address, where the dashboard is, unless something already uses it.
    port = port or (DEMO_PORT if port_is_free(DEMO_PORT) else free_port())
    url = f"http://127.0.0.1:{port}"
    work = ["--min-work", "0.05", "--max-work", "0.2"] if fast else []
    python = [sys.executable, "-m", "queue_system"]
    log_path = os.path.join(folder, "processes.log")
    log = open(log_path, "w")
    say = lambda text: print(text, file=out, flush=True)  # noqa: E731

    # `kill` (SIGTERM) stops the demo like Ctrl-C does: its processes are stopped too.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
    say(f"Starting the producer API on {url} (tasks stored in {store})")
    server = subprocess.Popen(python + ["serve", "--port", str(port), "--store", store,
                                        "--backoff", "exponential:0.2:2" if fast else
                                        "exponential:1:10", "--log-level", "warning"],
                              stdout=log, stderr=subprocess.STDOUT)
    processes = [server]
    client = QueueClient(url)
    try:
        wait_until_healthy(client, server, store)
        say(f"Dashboard: {dashboard_address(port)} (the API's documentation at /docs)")
        for n in range(1, workers + 1):
            processes.insert(0, subprocess.Popen(
                python + ["worker", "--url", url, "--id", f"worker-{n}",
                          "--failure-rate", str(failure_rate), *work],
                stdout=log, stderr=subprocess.STDOUT))
        say(f"Started {workers} workers (failure rate {failure_rate:.0%}, work "
            f"{'0.05-0.2' if fast else '1-3'} s per task); their logs: {log_path}")
        everything, tasks = lesson_tasks(reports), []
        for start in range(0, len(everything), BATCH):  # the API takes up to 1000 at once
            tasks += client.submit_many(everything[start:start + BATCH])
        say(f"Submitted {len(tasks)} tasks: 1 email, 1 image, {reports} reports\n")
        stats = watch(client, out)
        say("\nFinal stats:")
        for name in ("completed", "failed", "pending", "scheduled", "processing", "total"):
            label = "failed (dead letter)" if name == "failed" else name
            say(f"  {label:<22}{stats[name]:>5}")
        all_tasks = client.all_tasks()
        say(f"  {'failed attempts retried':<22}{sum(t.retries for t in all_tasks if t.status == 'completed'):>5}\n")
        say(per_worker_table(all_tasks))
        return 0 if stats["completed"] + stats["failed"] == stats["total"] else 1
    finally:
        # Windows has no SIGTERM to send to another process: terminate() stops it at once.
        how = "warm shutdown" if os.name != "nt" else "stopped at once: Windows has no SIGTERM"
        say(f"\nStopping the workers ({how}), then the server...")
        stop_all(processes[:-1], grace=15)  # SIGTERM (warm shutdown), SIGKILL after 15 s
        stop_all(processes[-1:], grace=15)
        client.close()
        log.close()
        say("All processes stopped.")


def watch(client: QueueClient, out, timeout: float = 600) -> dict:
    """Show progress until every task is completed or dead-lettered."""
    interactive = out.isatty()
    last, deadline = None, time.monotonic() + timeout
    while True:
        stats = client.stats()
        line = progress_line(stats)
        if interactive:
            print(f"\r{line}", end="", file=out, flush=True)
        elif line != last:
            print(line, file=out, flush=True)
        last = line
        if stats["completed"] + stats["failed"] == stats["total"] or time.monotonic() > deadline:
            if interactive:
                print(file=out)
            return stats
        time.sleep(0.1)


def per_worker_table(tasks) -> str:
    """Who did what: tasks completed, and tasks dead-lettered, by the last worker to hold them."""
    completed = Counter(t.worker_id for t in tasks if t.status == "completed")
    dead = Counter(t.worker_id for t in tasks if t.status == "failed")
    rows = [f"  {'worker':<12}{'completed':>10}{'dead-lettered':>15}"]
    for worker in sorted(set(completed) | set(dead)):
        rows.append(f"  {worker:<12}{completed[worker]:>10}{dead[worker]:>15}")
    return "Per worker (the worker that made the last attempt):\n" + "\n".join(rows)
