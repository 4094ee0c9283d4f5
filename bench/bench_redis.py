"""The Redis store end to end: ours on Redis, ours on SQLite, and RQ, in one run.

    bench/.venv/bin/python bench/bench_redis.py [--tasks 5000] [--rounds 3]

No-op tasks per second, 2 worker processes each, rounds interleaved
(ours on Redis, ours on SQLite, RQ, then again):

* one ``redis-server`` (Debian's 7.0) on a free loopback port, in a temp
  folder, with durable settings: ``--appendonly yes --appendfsync always``
  (every answer waits for the append-only file's fsync). Emptied between
  rounds. Ours on Redis and RQ both use it.
* ours on Redis: ``python -m queue_system serve --store redis://...`` and 2
  ``python -m queue_system worker`` processes doing no work, as in
  ``bench_end_to_end.py``: 5,000 tasks through ``/tasks/batch`` (1,000 per
  request), timed from the first submit until ``/stats`` counts them all
  completed. Defaults, and tuned (``--concurrency 2 --prefetch 500``, the
  server ``--max-claim 500``).
* ours on SQLite: the same, on a SQLite file with its durable defaults (WAL,
  ``synchronous=FULL``).
* RQ 2.12: two ``rq worker --worker-class rq.worker.SimpleWorker`` processes
  (no fork per job) on the same Redis, a no-op job that appends one byte to
  a counter file (so "all ran" is the file's size); 5,000 jobs enqueued with
  ``Queue.enqueue_many`` (one pipeline per 1,000, as our batches), timed from
  the first enqueue until the file holds 5,000 more bytes.

Every process logs warnings only. Each system is warmed up before it is
timed (each worker has run a task). Ours is timed until ``/stats`` counts
the tasks completed; RQ until its jobs have run (each appends its byte
before RQ records it finished), which if anything favours RQ. Goals, on the
medians: ours on Redis at least as fast as ours on SQLite (same settings),
and at least 10x RQ.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from common import PYTHON, DurableRedis, Processes, summary, wait_for
from bench_end_to_end import run_ours

import redis

RQ = str(Path(PYTHON).with_name("rq"))
REDIS_SERVER = shutil.which("redis-server")

RQ_MODULE = '''\
import os


def noop():
    """Appends one byte to the counter: "all ran" is the file's size."""
    with open(os.environ["RQ_BENCH_COUNTER"], "ab") as counter:
        counter.write(b".")
'''


def run_rq(tasks: int, redis_url: str, batch: int = 1000) -> dict:
    from rq import Queue, Worker
    with tempfile.TemporaryDirectory(prefix="bench-rq-") as folder, \
            Processes(Path(folder)) as procs:
        counter = os.path.join(folder, "counter")
        Path(counter).touch()
        (Path(folder) / "rqbench.py").write_text(RQ_MODULE)
        env = {"RQ_BENCH_COUNTER": counter}
        sys.path.insert(0, folder)
        import importlib
        sys.modules.pop("rqbench", None)
        module = importlib.import_module("rqbench")
        connection = redis.Redis.from_url(redis_url)
        queue = Queue("bench", connection=connection)
        workers = [procs.start(f"rq-{n}", [RQ, "worker", "bench", "--url", redis_url,
                                           "--worker-class", "rq.worker.SimpleWorker",
                                           "--logging_level", "WARNING", "--name", f"rq-{n}"],
                               cwd=folder, env=env) for n in (1, 2)]
        ran = lambda: os.stat(counter).st_size  # noqa: E731

        def both_warm():  # warm up: one job at a time until each worker has run one
            done = {w.name for w in Worker.all(connection=connection)
                    if w.successful_job_count > 0}
            if len(done) < 2:
                queue.enqueue(module.noop)
            return len(done) >= 2
        wait_for(both_warm, 60, "both RQ workers to run a warm-up job", 0.05)
        wait_for(lambda: queue.count == 0, 30, "RQ's warm-up jobs to be taken")
        before = ran()

        start = time.perf_counter()
        for first in range(0, tasks, batch):
            queue.enqueue_many([Queue.prepare_data(module.noop)
                                for _ in range(first, min(first + batch, tasks))])
        wait_for(lambda: ran() - before >= tasks, 600, f"RQ to run {tasks} jobs", 0.005)
        seconds = time.perf_counter() - start
        for worker in workers:
            procs.stop(worker, signal.SIGTERM)
        connection.close()
        sys.path.remove(folder)
        return {"seconds": seconds, "rate": tasks / seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if REDIS_SERVER is None:
        print("needs redis-server: apt-get install -y redis-server", file=sys.stderr)
        return 2
    tuned = (["--concurrency", "2", "--prefetch", "500"], ("--max-claim", "500"))
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
        server = DurableRedis(Path(folder))
        try:
            configs = [
                ("ours on Redis", "defaults", lambda: run_ours(
                    args.tasks, [], store=server.url)),
                ("ours on SQLite", "defaults", lambda: run_ours(args.tasks, [])),
                ("ours on Redis", "tuned", lambda: run_ours(
                    args.tasks, tuned[0], server_flags=tuned[1], store=server.url)),
                ("ours on SQLite", "tuned", lambda: run_ours(
                    args.tasks, tuned[0], server_flags=tuned[1])),
                ("RQ 2.12, 2 SimpleWorkers", "defaults", lambda: run_rq(args.tasks, server.url)),
            ]
            rates = {n: [] for n in range(len(configs))}
            for round_ in range(1, args.rounds + 1):
                for n, (system, settings, run) in enumerate(configs):
                    server.flush()
                    result = run()
                    rates[n].append(result["rate"])
                    print(f"round {round_}: {system} ({settings}): {result['rate']:6.0f} "
                          f"tasks/s ({result['seconds']:.2f} s)", flush=True)
            settings = server.settings
        finally:
            server.close()
    medians = {}
    print(f"\nEnd to end, {args.tasks} no-op tasks, 2 worker processes, {args.rounds} rounds "
          f"({os.cpu_count()} CPUs); Redis: {settings}; SQLite: WAL, synchronous=FULL\n")
    print("| system | settings | best/s | median/s |")
    print("| --- | --- | --- | --- |")
    for n, (system, settings_, _) in enumerate(configs):
        best, medians[n] = summary(rates[n])
        print(f"| {system} | {settings_} | {best:.0f} | {medians[n]:.0f} |")
    print()
    verdicts = []
    for goal, ok, text in [
            ("redis >= sqlite, defaults", medians[0] >= medians[1],
             f"{medians[0]:.0f} vs {medians[1]:.0f} tasks/s ({medians[0] / medians[1]:.2f}x)"),
            ("redis >= sqlite, tuned", medians[2] >= medians[3],
             f"{medians[2]:.0f} vs {medians[3]:.0f} tasks/s ({medians[2] / medians[3]:.2f}x)"),
            ("redis >= 10x RQ", medians[0] >= 10 * medians[4],
             f"{medians[0]:.0f} vs {medians[4]:.0f} tasks/s ({medians[0] / medians[4]:.1f}x)")]:
        verdicts.append(ok)
        print(f"goal ({goal}): {text}: {'PASS' if ok else 'FAIL'}")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
