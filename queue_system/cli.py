"""The command line: ``python -m queue_system COMMAND``.

    serve        run the HTTP server (the lesson's producer) on a SQLite file
    worker       run a worker against a server
    submit       enqueue a task
    stats        counts per status
    health       is the server up? (for container healthchecks)
    tasks        list tasks, or show one
    dead-letter  list the dead letter, or send a task back
    purge        delete old completed and dead-lettered tasks
    demo         a server and three workers on this machine, with live progress

Settings come from flags, or from the environment variables the lesson's
compose file uses (``PORT``, ``QUEUE_URL``, ``WORKER_ID``...): a flag wins.
A server's token is read from ``QUEUE_TOKEN`` (a worker's from
``QUEUE_WORKER_TOKEN`` first), never from a flag: other users of the
machine can read a process's flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import socket
import sys
from typing import List, Optional

from .arguments import byte_size, duration, or_none, positive, short_text, within
from .backoff import Backoff
from .client import ApiError, QueueClient, ServerUnreachable, worker_token
from .errors import QueueError
from .limits import Limits
from .queue import MAX_LEASE_SECONDS, MIN_LEASE_SECONDS
from .task import PRIORITIES, STATUSES

DEFAULT_URL = "http://127.0.0.1:3000"


def env(name: str, default):
    """A setting from the environment; argparse converts and checks it like a flag."""
    return os.environ.get(name, default)


PORT = within(int, 0, 65535)
LEASE = within(float, MIN_LEASE_SECONDS, MAX_LEASE_SECONDS)
WORK_SECONDS = within(float, 0, 24 * 3600)


def fraction(text):
    value = float(text)
    if not 0 <= value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def backoff_policy(text):
    try:
        return Backoff.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def prefetch_size(text):
    if text.strip().lower() == "auto":
        return "auto"
    return positive(int, 1000)(text)


prefetch_size.__name__ = "prefetch"


def json_value(text):
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m queue_system",
        description="The lesson's task queue: a producer API, workers, retries, a dead letter, "
                    "priorities and scheduled tasks.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP server (the producer API)",
                                description="Run the queue's HTTP API. Tasks are kept in a SQLite "
                                            "file by default, so a restart loses nothing.")
    serve.add_argument("--host", default=env("HOST", "127.0.0.1"),
                       help="address to listen on (HOST; default 127.0.0.1, 0.0.0.0 in Docker)")
    serve.add_argument("--port", type=PORT, default=env("PORT", "3000"),
                       help="port (PORT; default 3000, as in the lesson)")
    serve.add_argument("--store", "--db", dest="store",
                       default=env("QUEUE_STORE", env("QUEUE_DB", "sqlite:///data/queue.db")),
                       help="where tasks are kept: sqlite:///PATH (a file, created if missing), "
                            "memory:// or redis://HOST:PORT/DB; a bare path is a SQLite file "
                            "(QUEUE_STORE, or QUEUE_DB; default sqlite:///data/queue.db)")
    serve.add_argument("--lease", type=LEASE, default=env("LEASE_SECONDS", "15"),
                       help="seconds a worker holds a task without a heartbeat "
                            "(LEASE_SECONDS; default 15)")
    serve.add_argument("--backoff", type=backoff_policy, default=env("BACKOFF", "exponential:1:60"),
                       help="delay before a retry: none, fixed:SECONDS or exponential:BASE:MAX "
                            "(BACKOFF; default exponential:1:60)")
    serve.add_argument("--allowed-host", action="append", metavar="NAME",
                       default=[h for h in env("ALLOWED_HOSTS", "").split(",") if h.strip()],
                       help="a host name the server answers to besides localhost and 127.0.0.1 "
                            "(repeatable; ALLOWED_HOSTS, comma-separated)")
    add_limits(serve)
    serve.add_argument("--dead-letter-log", metavar="FILE", default=env("DEAD_LETTER_LOG", None),
                       help="append a JSON line to FILE for every task that enters the dead "
                            "letter (DEAD_LETTER_LOG; default: no log)")
    add_log_level(serve)
    serve.epilog = ("Access: set QUEUE_TOKEN in the environment and every route but /health "
                    "needs 'Authorization: Bearer <token>'; set QUEUE_WORKER_TOKEN too and "
                    "only its holders may claim, complete or fail tasks. Unset, the server is "
                    "open to whoever can reach it.")

    worker = commands.add_parser("worker", help="run a worker",
                                 description="Claim tasks from the server, run the lesson's "
                                             "simulated handlers, report results.")
    add_url(worker)
    worker.add_argument("--id", type=short_text,
                        default=env("WORKER_ID", f"worker-{socket.gethostname()}-{os.getpid()}"),
                        help="this worker's name, 1 to 200 characters (WORKER_ID)")
    worker.add_argument("--concurrency", type=positive(int),
                        default=env("WORKER_CONCURRENCY", "1"),
                        help="tasks run at once, one thread each (WORKER_CONCURRENCY; default 1)")
    worker.add_argument("--types", default=env("WORKER_TYPES", ""),
                        help="only these task types, comma-separated (WORKER_TYPES; default all)")
    worker.add_argument("--min-work", type=WORK_SECONDS, default=env("WORK_MIN_SECONDS", "1"),
                        help="shortest simulated work in seconds (WORK_MIN_SECONDS; default 1)")
    worker.add_argument("--max-work", type=WORK_SECONDS, default=env("WORK_MAX_SECONDS", "3"),
                        help="longest simulated work in seconds (WORK_MAX_SECONDS; default 3)")
    worker.add_argument("--failure-rate", type=fraction, default=env("FAILURE_RATE", "0.2"),
                        help="chance that an attempt fails (FAILURE_RATE; default 0.2)")
    worker.add_argument("--lease", type=LEASE, default=env("LEASE_SECONDS", None),
                        help="lease to ask for, in seconds (LEASE_SECONDS; default: the server's)")
    worker.add_argument("--prefetch", type=prefetch_size, default=env("WORKER_PREFETCH", "auto"),
                        help="tasks claimed per request by each thread: auto, or a number "
                             "(WORKER_PREFETCH; default auto: hold at most 100 ms of tasks not "
                             "yet started, by the mean duration so far, so tasks of 1 ms are "
                             "claimed 100 at a time and the lesson's 1-3 s tasks one at a time; "
                             "a number is at most the server's --max-claim, 100 by default)")
    worker.add_argument("--prefetch-budget", type=positive(float, 60),
                        default=env("WORKER_PREFETCH_BUDGET", "0.1"),
                        help="with --prefetch auto, the seconds of claimed work not yet started "
                             "a thread may hold (WORKER_PREFETCH_BUDGET; default 0.1); a run "
                             "played N times faster (python -m sim live) divides it by N")
    worker.add_argument("--poll-wait", type=positive(float, 60), default=env("WORKER_POLL_WAIT", "2"),
                        help="seconds an idle claim waits on the server (long poll); a new "
                             "task wakes it at once (default 2)")
    worker.add_argument("--seed", type=int, default=None,
                        help="seed of the simulated work: an attempt's time and outcome then "
                             "depend only on the seed, the task's type and payload and its "
                             "attempt number (so tasks with the same type and payload succeed "
                             "or fail together)")
    worker.add_argument("--handlers", metavar="MODULE[:NAME]", default=env("WORKER_HANDLERS", None),
                        help="run your own handlers instead of the simulated work (whose "
                             "--min-work, --max-work, --failure-rate and --seed are then unused): "
                             "MODULE's HANDLERS, a dict from task type to function, or MODULE:NAME, "
                             "such a dict or one function (WORKER_HANDLERS); avoid module names "
                             "of the standard library, such as queue")
    add_log_level(worker)

    submit = commands.add_parser("submit", help="enqueue a task",
                                 description="Enqueue a task, e.g. "
                                             "submit email '{\"to\": \"ada@example.org\"}'")
    add_url(submit)
    submit.add_argument("type", help="task type: email, image, report...")
    submit.add_argument("payload", nargs="?", type=json_value, default={},
                        help="JSON payload (default {})")
    submit.add_argument("--priority", choices=PRIORITIES, default="normal")
    submit.add_argument("--max-retries", type=int, default=3,
                        help="failures before the dead letter (default 3: at most 3 attempts)")
    submit.add_argument("--delay", type=within(float, 0, 10 ** 9),
                        help="run no sooner than this many seconds from now")
    submit.add_argument("--key", type=short_text,
                        help="idempotency key, 1 to 200 characters: resending with it adds nothing")
    submit.add_argument("--count", type=positive(int), default=1, help="submit this many copies")

    stats = commands.add_parser("stats", help="counts per status")
    add_url(stats)

    health = commands.add_parser("health", help="exit 0 if the server answers, 1 if not",
                                 description="Ask the server's /health; for container "
                                             "healthchecks. Without --url or QUEUE_URL it asks "
                                             "this machine's PORT (default 3000).")
    health.add_argument("--url", default=env("QUEUE_URL", f"http://127.0.0.1:{env('PORT', 3000)}"),
                        help="the server (QUEUE_URL; default http://127.0.0.1:$PORT)")

    tasks = commands.add_parser("tasks", help="list tasks, or show one")
    add_url(tasks)
    tasks.add_argument("id", nargs="?", help="show this task in full")
    tasks.add_argument("--status", choices=STATUSES)
    tasks.add_argument("--limit", type=positive(int), default=20)

    dead = commands.add_parser("dead-letter", help="list the dead letter, or send a task back",
                               description="List tasks that used up their retries; "
                                           "--replay ID sends one back to the queue.")
    add_url(dead)
    dead.add_argument("--replay", metavar="ID", help="send this task back, retries reset")
    dead.add_argument("--replay-all", action="store_true", help="send every dead task back")

    purge = commands.add_parser("purge", help="delete old completed and dead-lettered tasks",
                                description="Delete the tasks that finished (completed or "
                                            "dead-lettered) longer ago than --older-than. Waiting "
                                            "and running tasks are never deleted. serve "
                                            "--retention does the same on a timer.")
    add_url(purge)
    purge.add_argument("--older-than", type=duration, required=True, metavar="AGE",
                       help="such as 7d, 12h, 30m or 90s (0: every finished task)")

    demo = commands.add_parser("demo", help="a server and three workers, with live progress",
                               description="Start a server on a SQLite file and three worker "
                                           "processes on this machine, submit the lesson's tasks "
                                           "(an email, an image, ten reports), show progress until "
                                           "everything is done or dead-lettered, and stop cleanly.")
    demo.add_argument("--fast", action="store_true",
                      help="work 0.05-0.2 s instead of the lesson's 1-3 s")
    demo.add_argument("--workers", type=positive(int), default=3)
    demo.add_argument("--reports", type=positive(int, 100_000), default=10,
                      help="how many report tasks (default 10, as in the lesson; at most 100,000)")
    demo.add_argument("--failure-rate", type=fraction, default=0.2)
    demo.add_argument("--port", type=PORT, default=0,
                      help="server port (default 3000, the dashboard's address in the README; "
                           "a free one if 3000 is taken)")
    demo.add_argument("--store", "--db", dest="store", default=None,
                      help="the server's store URL, as serve's --store "
                           "(default: a temporary SQLite file)")
    return parser


def add_log_level(parser):
    parser.add_argument("--log-level", default=env("LOG_LEVEL", "info"),
                        choices=["debug", "info", "warning", "error"],
                        help="how much to print (LOG_LEVEL; default info)")


LIMIT_TYPES = {"bytes": byte_size, "seconds": duration, "count": positive(int)}


def add_limits(parser) -> None:
    """One flag per field of ``Limits``, with its environment variable and its default."""
    group = parser.add_argument_group("limits", "what one request, one worker or the queue "
                                                "may take (sizes: 16K, 1M; durations: 30s, 7d)")
    for field in dataclasses.fields(Limits):
        unit, default = field.metadata["unit"], field.default
        kind = LIMIT_TYPES[unit]
        if default is None:
            kind, shown = or_none(kind), "none"
        else:
            shown = f"{default:g}" if unit != "bytes" else _size(default)
        name = field.name.upper()
        group.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, type=kind,
                           metavar={"bytes": "SIZE", "seconds": "TIME", "count": "N"}[unit],
                           default=env(name, None if default is None else str(default)),
                           help=f"{field.metadata['help']} ({name}; default {shown})")


def _size(count: int) -> str:
    for unit, size in (("G", 2 ** 30), ("M", 2 ** 20), ("K", 2 ** 10)):
        if count % size == 0:
            return f"{count // size}{unit}"
    return str(count)


def limits_from(args) -> Limits:
    return Limits(**{field.name: getattr(args, field.name) for field in dataclasses.fields(Limits)})


def add_url(parser):
    parser.add_argument("--url", default=env("QUEUE_URL", DEFAULT_URL),
                        help=f"the server (QUEUE_URL; default {DEFAULT_URL})")


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args) or 0
    except ServerUnreachable as exc:
        print(f"error: {exc}. Is the server running? Start it with: python -m queue_system serve",
              file=sys.stderr)
    except ApiError as exc:
        print(f"error: the server answered {exc.status}: {exc.message}", file=sys.stderr)
    except QueueError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1


def run_serve(args) -> int:
    from .server.serve import serve
    serve(host=args.host, port=args.port, store=args.store, lease_seconds=args.lease,
          backoff=args.backoff, limits=limits_from(args), log_level=args.log_level,
          dead_letter_log=args.dead_letter_log, allowed_hosts=args.allowed_host)
    return 0


def run_worker(args) -> int:
    from .worker import SimulatedWork, Worker, lesson_handlers, load_handlers
    from .worker.prefetch import Prefetch
    if args.handlers:
        sys.path.insert(0, os.getcwd())  # MODULE may sit in the folder the worker runs from
        handlers = load_handlers(args.handlers)
    else:
        handlers = lesson_handlers(SimulatedWork(args.min_work, args.max_work, args.failure_rate,
                                                 seed=args.seed))
    logging.basicConfig(level=args.log_level.upper(), format="%(message)s", stream=sys.stdout)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    types = [t.strip() for t in args.types.split(",") if t.strip()] or None
    lease = float(args.lease) if args.lease is not None else None
    with QueueClient(args.url, token=worker_token()) as client:
        prefetch = Prefetch(None if args.prefetch == "auto" else args.prefetch,
                            budget=args.prefetch_budget)
        worker = Worker(client, args.id, handlers, concurrency=args.concurrency,
                        types=types, lease_seconds=lease, prefetch=prefetch,
                        poll_wait=args.poll_wait)
        worker.run()
    if worker.refused is not None:
        raise worker.refused  # main() prints the server's reason and exits 1
    return 0


def run_submit(args) -> int:
    options = {"priority": args.priority, "max_retries": args.max_retries}
    if args.delay is not None:
        options["delay"] = args.delay
    if args.key is not None:
        options["idempotency_key"] = args.key
    with QueueClient(args.url) as client:
        for _ in range(args.count):
            task = client.submit(args.type, args.payload, **options)
            print(f"{task.id}  {task.status}  {task.type}  priority={task.priority}")
    return 0


def run_stats(args) -> int:
    with QueueClient(args.url) as client:
        print(json.dumps(client.stats(), indent=2))
    return 0


def run_health(args) -> int:
    with QueueClient(args.url, timeout=3) as client:
        answer = client.health()
    print(f"{args.url}: {answer['status']}, {answer['tasks']} tasks ({answer['store']})")
    return 0


def run_tasks(args) -> int:
    with QueueClient(args.url) as client:
        if args.id:
            print(json.dumps(client.get(args.id).to_dict(), indent=2, ensure_ascii=False))
            return 0
        print_tasks(client.tasks(status=args.status, limit=args.limit))
    return 0


def run_dead_letter(args) -> int:
    with QueueClient(args.url) as client:
        if args.replay:
            task = client.replay(args.replay)
            print(f"{task.id} sent back: {task.status}")
        elif args.replay_all:
            dead = client.all_tasks(status="failed")
            for task in dead:
                client.replay(task.id)
            print(f"{len(dead)} task(s) sent back")
        else:
            print_tasks(client.all_tasks(status="failed"))
    return 0


def run_purge(args) -> int:
    with QueueClient(args.url) as client:
        deleted = client.purge(args.older_than)
    print(f"{deleted} finished task(s) deleted")
    return 0


def print_tasks(tasks) -> None:
    if not tasks:
        print("(no tasks)")
        return
    print(f"{'id':<35} {'type':<10} {'status':<11} {'priority':<8} {'tries':>5}  error")
    for task in tasks:
        print(f"{task.id:<35} {task.type[:10]:<10} {task.status:<11} {task.priority:<8} "
              f"{task.retries:>2}/{task.max_retries:<2}  {task.error or ''}")


def run_demo(args) -> int:
    from .demo import run_demo as demo
    return demo(fast=args.fast, workers=args.workers, reports=args.reports,
                failure_rate=args.failure_rate, port=args.port, store=args.store)


COMMANDS = {"serve": run_serve, "worker": run_worker, "submit": run_submit, "stats": run_stats, "health": run_health,
            "tasks": run_tasks, "dead-letter": run_dead_letter, "purge": run_purge,
            "demo": run_demo}
