"""Goal (b): end-to-end no-op tasks per second, 5,000 tasks, 2 worker processes.

    /work/main/.venv/bin/python bench/bench_end_to_end.py            # 3 rounds of each
    /work/main/.venv/bin/python bench/bench_end_to_end.py --sweep    # try worker settings

Both systems run here, in one run, rounds interleaved (ours, huey, ours...):

* ours: ``python -m queue_system serve`` on a SQLite file in a temp dir with
  its durable defaults (WAL, synchronous=FULL, a 202 or an ack answered only
  after the commit), and 2 worker processes (``python -m queue_system
  worker``) doing no work. 5,000 tasks are submitted through ``/tasks/batch``
  (1,000 per request); the clock runs from the first submit until ``/stats``
  counts 5,000 more completed tasks (polled every 10 ms).
* huey 3.5.4: ``SqliteHuey`` on a temp file (its defaults), its consumer run
  the idiomatic way, ``huey_consumer MODULE.huey -k process -w 2`` (one
  consumer, 2 worker processes). The no-op task appends one byte to a counter
  file (one ``write`` on an ``O_APPEND`` descriptor: microseconds, against
  huey's own committed SQLite transaction per dequeue), so "all ran" is the
  file's size. 5,000 tasks are enqueued one ``noop()`` call at a time (huey
  has no batch enqueue); the clock runs from the first enqueue until the file
  holds 5,000 more bytes.

Before each timed round, each system is warmed up: our two workers have each
completed a task, huey's consumer has run two, so process start-up is not
timed. Rates are tasks / seconds; the table shows the best and the median of
the rounds, and the goal compares the medians.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from common import PYTHON, OurServer, Processes, summary, wait_for

NO_WORK = ["--min-work", "0", "--max-work", "0", "--failure-rate", "0"]
HUEY_CONSUMER = str(Path(PYTHON).with_name("huey_consumer"))

# The module huey's consumer imports (written into the round's temp dir).
HUEY_MODULE = '''\
import os
from huey import SqliteHuey

huey = SqliteHuey(filename=os.environ["HUEY_BENCH_DB"])
_counter = None


@huey.task()
def noop():
    """Does nothing but count itself: one byte appended to the counter file."""
    global _counter
    if _counter is None:  # opened once per worker process
        _counter = os.open(os.environ["HUEY_BENCH_COUNTER"],
                           os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(_counter, b".")
'''


# -- ours -------------------------------------------------------------------------------

def run_ours(tasks: int, concurrency: int, prefetch: int, batch: int = 1000) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-ours-") as folder, \
            Processes(Path(folder)) as procs:
        server = OurServer(procs, os.path.join(folder, "queue.db"))
        client = server.client
        workers = [server.start_worker(f"worker-{n}", *NO_WORK, "--concurrency", str(concurrency),
                                       "--prefetch", str(prefetch)) for n in (1, 2)]
        # Warm up: one task at a time until each worker has completed one.
        seen = set()
        for _ in range(200):
            task = client.submit("noop", {})
            done = wait_for(lambda: (lambda t: t if t.status == "completed" else None)(
                client.get(task.id)), 30, "a warm-up task")
            seen.add(done.worker_id)
            if len(seen) == 2:
                break
        before = client.stats()["completed"]

        start = time.perf_counter()
        for first in range(0, tasks, batch):
            client.submit_many({"type": "noop", "payload": {"n": n}}
                               for n in range(first, min(first + batch, tasks)))
        submitted = time.perf_counter()
        stats = wait_for(lambda: (lambda s: s if s["completed"] - before >= tasks else None)(
            client.stats()), 300, f"{tasks} tasks to complete")
        seconds = time.perf_counter() - start

        assert stats["failed"] == stats["pending"] == stats["processing"] == 0, stats
        for worker in workers:
            procs.stop(worker)
        procs.stop(server.process)
        client.close()
        return {"seconds": seconds, "rate": tasks / seconds, "submit_s": submitted - start}


# -- huey ----------------------------------------------------------------------------------

def run_huey(tasks: int, workers: int = 2) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-huey-") as folder, \
            Processes(Path(folder)) as procs:
        counter = os.path.join(folder, "counter")
        Path(counter).touch()
        (Path(folder) / "hueybench.py").write_text(HUEY_MODULE)
        env = {"HUEY_BENCH_DB": os.path.join(folder, "huey.db"), "HUEY_BENCH_COUNTER": counter}
        os.environ.update(env)
        # The producer side: the same module, so the task has the same name.
        sys.path.insert(0, folder)
        sys.modules.pop("hueybench", None)
        module = importlib.import_module("hueybench")
        sync, = module.huey.storage.conn.execute("PRAGMA synchronous").fetchone()
        consumer = procs.start("huey", [HUEY_CONSUMER, "hueybench.huey", "-k", "process",
                                        "-w", str(workers), "-q"], cwd=folder, env=env)
        ran = lambda: os.stat(counter).st_size  # noqa: E731

        for _ in range(2):  # warm up
            module.noop()
        wait_for(lambda: ran() >= 2, 30, "huey's warm-up tasks")
        before = ran()

        start = time.perf_counter()
        for _ in range(tasks):
            module.noop()
        submitted = time.perf_counter()
        wait_for(lambda: ran() - before >= tasks, 300, f"huey to run {tasks} tasks", 0.005)
        seconds = time.perf_counter() - start

        procs.stop(consumer, signal.SIGINT)  # huey's graceful signal
        module.huey.storage.close()
        sys.path.remove(folder)
        return {"seconds": seconds, "rate": tasks / seconds, "submit_s": submitted - start,
                "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[sync]}


# -- the table --------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2,
                        help="threads per worker process (default 2)")
    parser.add_argument("--prefetch", type=int, default=100,
                        help="tasks per claim (default 100, the server's --max-claim)")
    parser.add_argument("--sweep", action="store_true",
                        help="only ours, once per worker setting, to choose the settings")
    parser.add_argument("--skip-huey", action="store_true")
    args = parser.parse_args(argv)

    if args.sweep:
        print(f"{'concurrency':>11} {'prefetch':>8} {'tasks/s':>8} {'seconds':>8}")
        for concurrency in (1, 2, 4):
            for prefetch in (1, 10, 50, 100):
                r = run_ours(args.tasks, concurrency, prefetch)
                print(f"{concurrency:>11} {prefetch:>8} {r['rate']:>8.0f} {r['seconds']:>8.2f}",
                      flush=True)
        return 0

    ours, huey = [], []
    for n in range(1, args.rounds + 1):
        r = run_ours(args.tasks, args.concurrency, args.prefetch)
        ours.append(r["rate"])
        print(f"round {n}: ours {r['rate']:6.0f} tasks/s ({r['seconds']:.2f} s, "
              f"submitting took {r['submit_s']:.2f} s)", flush=True)
        if not args.skip_huey:
            h = run_huey(args.tasks)
            huey.append(h["rate"])
            print(f"round {n}: huey {h['rate']:6.0f} tasks/s ({h['seconds']:.2f} s, "
                  f"enqueueing took {h['submit_s']:.2f} s, synchronous={h['synchronous']})",
                  flush=True)

    print()
    print(f"End to end, {args.tasks} no-op tasks, 2 worker processes, {args.rounds} rounds "
          f"({os.cpu_count()} CPUs)")
    line = "{:<34} {:<38} {:>9} {:>9}"
    print(line.format("system", "settings", "best/s", "median/s"))
    print(line.format(*["-" * w for w in (34, 38, 9, 9)]))
    best, median = summary(ours)
    print(line.format("ours (HTTP, durable, acknowledged)",
                      f"2 workers, --concurrency {args.concurrency} --prefetch {args.prefetch}",
                      f"{best:.0f}", f"{median:.0f}"))
    if huey:
        h_best, h_median = summary(huey)
        print(line.format("huey 3.5.4 SqliteHuey", "huey_consumer -k process -w 2",
                          f"{h_best:.0f}", f"{h_median:.0f}"))
    print(line.format("Celery + Redis broker", "measured earlier, not run here", "", "~400"))
    print(line.format("RQ", "measured earlier, not run here", "", "~175"))
    print()
    if huey:
        verdict = "PASS" if median >= h_median else "FAIL"
        print(f"goal (b): ours >= huey, same run (medians): {median:.0f} vs {h_median:.0f} "
              f"tasks/s ({median / h_median:.2f}x): {verdict}")
        return 0 if verdict == "PASS" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
