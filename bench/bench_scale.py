"""Costs that do not grow with the tasks stored: 10,000 tasks against 1,000,000.

A queue that has run for a while holds its history. For each store (SQLite,
and Redis when ``redis-server`` is installed) and each size, a fresh store
is filled with that many tasks (95% completed, 5% pending, as the store's
own ``insert`` writes them, so its counts are kept as usual), a real server
is started on it with its durable defaults (SQLite ``synchronous=FULL``;
Redis ``appendfsync always``), and one client times each request, one
after another:

* ``POST /task``: the lesson's submit, whose answer carries the counts;
* ``POST /tasks``: the plain submit;
* ``GET /stats`` and ``GET /health``, which count;
* ``GET /tasks?after=SEQ``: a page of 100 from the middle of the history,
  by cursor;
* ``GET /tasks?offset=N``: the same page by offset, the lesson's paging,
  kept for it: it walks every task it skips, so it is the contrast here;
* claim + complete of one task, as a worker does.

It prints the median and the 90th percentile of each at both sizes, side by
side, and the ratio of the medians. The goal: every request but the offset
page within 1.5x at 1,000,000 of what it costs at 10,000, on each store.

Run from the repository root::

    python bench/bench_scale.py [--sizes 10000 1000000] [--requests 200] [--stores sqlite redis]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DurableRedis, OurServer, Processes  # noqa: E402

import httpx  # noqa: E402

from queue_system import lifecycle  # noqa: E402
from queue_system.stores import SQLiteStore, open_store  # noqa: E402

STEP = 50_000  # tasks per transaction while filling
PAGE = 100


def fill(where: str, size: int) -> int:
    """``size`` tasks, 95% completed; returns the seq of the task in the middle."""
    # Filling is set-up, not measured: SQLite without syncs.
    store = SQLiteStore(where, synchronous="off") if "://" not in where else open_store(where)
    now = time.time() - 3600
    middle = None
    for start in range(0, size, STEP):
        with store.transaction():
            for n in range(start, min(size, start + STEP)):
                task = lifecycle.new_task(f"task-{n}", "report", {"id": n}, now)
                if n % 20:  # 19 in 20 ran already
                    task = task._replace(status="completed", attempts=1, result={"ok": True},
                                         claimed_at=now, finished_at=now, worker_id="w")
                task = store.insert(task)
                if n == size // 2:
                    middle = task.seq
    counts = store.count_by_status()
    store.close()
    assert sum(counts.values()) == size, counts
    return middle


def timed(call, requests: int):
    """Milliseconds per call: (median, p90)."""
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)]


def measure(store: str, size: int, requests: int, folder: Path) -> dict:
    if store != "redis":
        return measure_on(str(folder / f"q{size}.db"), size, requests, folder)
    (folder / f"redis{size}").mkdir()
    server = DurableRedis(folder / f"redis{size}")
    try:
        return measure_on(server.url, size, requests, folder)
    finally:
        server.close()


def measure_on(where: str, size: int, requests: int, folder: Path) -> dict:
    started = time.perf_counter()
    middle = fill(where, size)
    print(f"  {where.split(':')[0]}: {size:,} tasks stored in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    with Processes(folder) as procs:
        server = OurServer(procs, where)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            def ok(answer):
                assert answer.status_code < 300, answer.text
                return answer

            def claim_complete():
                task = ok(http.post("/tasks/claim", json={"worker_id": "bench"})).json()["tasks"][0]
                ok(http.post(f"/tasks/{task['id']}/complete", json={"lease_id": task["lease_id"]}))
            figures = {
                "POST /task (lesson)": lambda: ok(http.post("/task", json={"type": "email"})),
                "POST /tasks": lambda: ok(http.post("/tasks", json={"type": "email"})),
                "GET /stats": lambda: ok(http.get("/stats")),
                "GET /health": lambda: ok(http.get("/health")),
                "GET /tasks?after= (cursor)": lambda: ok(http.get(
                    "/tasks", params={"after": middle, "limit": PAGE})),
                "GET /tasks?offset= (the lesson's paging)": lambda: ok(http.get(
                    "/tasks", params={"offset": size // 2, "limit": PAGE})),
                "claim + complete": claim_complete,
            }
            for call in figures.values():
                call()  # warm up
            # The offset page is the contrast, and slow by design: 20 of them say enough.
            return {name: timed(call, min(requests, 20) if "offset" in name else requests)
                    for name, call in figures.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--stores", nargs="+", choices=("sqlite", "redis"),
                        default=["sqlite", "redis"] if shutil.which("redis-server")
                        else ["sqlite"])
    args = parser.parse_args()
    small, large = args.sizes
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        results = {(store, size): measure(store, size, args.requests, Path(folder))
                   for store in args.stores for size in (small, large)}
    print(f"\nMilliseconds per request, median / p90, one client, {args.requests} each\n")
    print(f"| store | request | {small:,} tasks | {large:,} tasks | ratio of medians "
          "| goal (1.5x) |")
    print("| --- | --- | --- | --- | --- | --- |")
    failed = 0
    for store in args.stores:
        for name in results[store, small]:
            (m1, p1), (m2, p2) = results[store, small][name], results[store, large][name]
            ratio = m2 / m1
            contrast = "offset" in name
            verdict = "(contrast)" if contrast else ("PASS" if ratio <= 1.5 else "FAIL")
            failed += verdict == "FAIL"
            print(f"| {store} | {name} | {m1:.2f} / {p1:.2f} | {m2:.2f} / {p2:.2f} "
                  f"| {ratio:.2f}x | {verdict} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
