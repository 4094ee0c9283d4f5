"""Chaos on loopback: kill the workers and the server at random while tasks flow.

A real server (SQLite file) and three real worker processes, a 2 s lease,
and a producer thread submitting 3,000 tasks over HTTP, each with an
idempotency key, resending (the same key) whenever the server is away or
answers 5xx. Meanwhile a seeded ``random.Random`` SIGKILLs the workers
(restarted after a moment) and the server (restarted on the same file and
port, so the workers must find it again) several times each.

Once the chaos stops and the system settles, every task that got a 202 (or
a 200: the key was already used, the first answer lost on the way) must be
on the server, ``completed`` or ``failed`` (the dead letter): none lost,
none stuck. The handler (``chaos_handlers.py``) records each execution, so
the summary also says how many tasks ran more than once: delivery is at
least once, never exactly once.

``CHAOS_SEED=N`` draws the kills another way.
"""

from __future__ import annotations

import collections
import os
import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from queue_system.client import ApiError, ServerUnreachable
from queue_system.task import FINISHED

from live import LiveSystem, wait_for

SEED = int(os.environ.get("CHAOS_SEED", "20250917"))
TASKS = 3000
SUBMIT_SECONDS = 30.0      # the producer spreads its tasks over this long
CHAOS_SECONDS = 30.0       # kills go on at least this long (and until the quotas are met)
CHAOS_CAP = 90.0           # ...but never longer
LEASE = "2"
WORKERS = ("worker-1", "worker-2", "worker-3")
QUOTA = {"server": 4, **{name: 3 for name in WORKERS}}  # kills each target must get
MAX_RETRIES = 3
POISON_EVERY = 97          # every 97th task always fails: the dead letter is never empty
PRODUCER_DEADLINE = 120.0  # seconds: only against hangs, not a speed check
SETTLE_DEADLINE = 120.0
TESTS = Path(__file__).resolve().parent


class Producer(threading.Thread):
    """Submits TASKS tasks one by one, paced over SUBMIT_SECONDS, each until answered."""

    def __init__(self, url: str, stop: threading.Event):
        super().__init__(name="chaos-producer", daemon=True)
        self.url = url
        self.stop = stop
        self.accepted = {}  # idempotency key -> task id (answered 202, or 200)
        self.answers = collections.Counter()  # 202 / 200
        self.retried = 0    # submissions that needed more than one request
        self.resends = collections.Counter()  # requests sent again, by why
        self.refused = []   # 4xx answers: none expected
        self.crashed = None

    def run(self) -> None:
        try:
            started = time.monotonic()
            with httpx.Client(base_url=self.url, timeout=5.0) as http:
                for i in range(TASKS):
                    delay = started + i * SUBMIT_SECONDS / TASKS - time.monotonic()
                    if delay > 0 and self.stop.wait(delay):
                        return
                    if not self.submit(http, i):
                        return
        except BaseException as exc:  # shown in the summary, not lost in a thread
            self.crashed = f"{type(exc).__name__}: {exc}"

    def submit(self, http: httpx.Client, i: int) -> bool:
        key = f"chaos-{SEED}-{i}"
        body = {"type": "chaos", "payload": {"n": i, "poison": i % POISON_EVERY == 0},
                "max_retries": MAX_RETRIES, "idempotency_key": key}
        sends = 0
        while not self.stop.is_set():
            sends += 1
            try:
                response = http.post("/tasks", json=body)
                why = response.status_code
            except httpx.TransportError as exc:
                response, why = None, type(exc).__name__
            if response is not None and response.status_code in (200, 202):
                self.accepted[key] = response.json()["id"]
                self.answers[response.status_code] += 1
                self.retried += sends > 1
                return True
            if response is not None and response.status_code < 500 \
                    and response.status_code != 429:
                self.refused.append((key, response.status_code, response.text[:200]))
                return True
            self.resends[why] += 1
            self.stop.wait(0.05)
        return False


class Chaos:
    """Kills and restarts the server and the workers, at random (seeded)."""

    def __init__(self, live: LiveSystem, rng: random.Random, folder: Path):
        self.live = live
        self.rng = rng
        self.folder = folder
        self.kills = collections.Counter()
        self.restart_at = {}        # worker -> when to start it again (monotonic)
        self.outages = []           # seconds the server was away, per kill
        self.unexpected_exits = []  # (worker, exit code): workers that left by themselves
        self.restarts = collections.Counter()

    def start_server(self) -> None:
        self.live.start_server("--lease", LEASE, "--backoff", "fixed:0.2")

    def start_worker(self, name: str) -> None:
        self.live.start_worker(
            name, "--handlers", "chaos_handlers:HANDLERS", "--concurrency", "4",
            "--poll-wait", "1", "--log-level", "warning",
            env={"PYTHONPATH": str(TESTS), "CHAOS_LOG_DIR": str(self.folder),
                 "CHAOS_WORKER_ID": name})
        self.restarts[name] += 1

    def tend_workers(self) -> None:
        """Start the workers whose time has come; restart any that exited on its own."""
        now = time.monotonic()
        for name, at in list(self.restart_at.items()):
            if now >= at:
                del self.restart_at[name]
                self.start_worker(name)
        for name in WORKERS:
            process = self.live.processes[name]
            if name not in self.restart_at and process.poll() is not None:
                self.unexpected_exits.append((name, process.returncode))
                assert len(self.unexpected_exits) < 10, (
                    f"workers keep exiting by themselves: {self.unexpected_exits}\n"
                    + self.live.log(name)[-3000:])
                self.start_worker(name)

    def strike(self, producer: Producer) -> None:
        """One kill: mostly of a target still short of its quota."""
        candidates = ["server"] + [name for name in WORKERS if name not in self.restart_at]
        wanting = [target for target in candidates if self.kills[target] < QUOTA[target]]
        victim = self.rng.choice(wanting if wanting and self.rng.random() < 0.8 else candidates)
        if victim == "server":
            self.live.kill(self.live.server)  # SIGKILL: no shutdown, no flush
            self.kills["server"] += 1
            self.kills["server while submitting"] += producer.is_alive()
            down = time.monotonic()
            time.sleep(self.rng.uniform(0.1, 1.5))  # nobody answers the workers, the producer
            self.start_server()  # same port, same file; returns once /health answers
            self.outages.append(time.monotonic() - down)
        else:
            self.live.kill(self.live.processes[victim])
            self.kills[victim] += 1
            self.restart_at[victim] = time.monotonic() + self.rng.uniform(0.1, 2.5)

    def quotas_met(self) -> bool:
        return all(self.kills[target] >= n for target, n in QUOTA.items())

    def run(self, producer: Producer) -> None:
        started = time.monotonic()
        next_strike = started + self.rng.uniform(1.0, 2.5)
        while True:
            self.tend_workers()
            now = time.monotonic()
            if now >= next_strike:
                if (now - started >= CHAOS_SECONDS and self.quotas_met()
                        and not producer.is_alive()) or now - started >= CHAOS_CAP:
                    break
                self.strike(producer)
                next_strike = time.monotonic() + self.rng.uniform(0.8, 2.5)
            time.sleep(0.02)
        for name in list(self.restart_at):  # the chaos is over: everyone back to work
            self.restart_at[name] = 0
        self.tend_workers()


def read_executions(folder: Path):
    """The handler's records: per task, its starts, its successes, and its workers."""
    starts, oks, fails = collections.Counter(), collections.Counter(), collections.Counter()
    workers = collections.defaultdict(set)
    torn = 0
    for path in sorted(folder.glob("*.executions")):
        for line in path.read_text(encoding="utf-8").splitlines():
            fields = line.split("\t")
            if len(fields) != 5:
                torn += 1
                continue
            event, task_id, worker = fields[:3]
            {"start": starts, "ok": oks, "fail": fails}[event][task_id] += 1
            if event == "start":
                workers[task_id].add(worker)
    return starts, oks, fails, workers, torn


def tails(live: LiveSystem, size: int = 3000) -> str:
    parts = []
    for name in ("server",) + WORKERS:
        parts.append(f"----- {name}.log (last {size} characters) -----\n"
                     + live.log(name)[-size:])
    return "\n".join(parts)


def settled(live: LiveSystem):
    """The server's counts once nothing waits or runs (no task comes in any more)."""
    try:
        stats = live.client.stats()
    except ServerUnreachable:
        return None
    busy = stats["pending"] + stats["scheduled"] + stats["processing"]
    return stats if busy == 0 else None


@pytest.fixture
def live(tmp_path):
    with LiveSystem(tmp_path) as system:  # every process stopped, even if the test fails
        yield system


def test_chaos_kills_lose_no_accepted_task(live, tmp_path):
    began = time.monotonic()
    rng = random.Random(SEED)
    chaos = Chaos(live, rng, tmp_path / "executions")
    stop = threading.Event()
    producer = Producer(live.url, stop)
    try:
        chaos.start_server()
        for name in WORKERS:
            chaos.start_worker(name)
        producer.start()
        chaos.run(producer)
        chaos_ended = time.monotonic()
        producer.join(PRODUCER_DEADLINE)
        assert not producer.is_alive(), "the producer is still submitting (hung?)\n" + tails(live)
        assert live.server.poll() is None, "the server died by itself\n" + tails(live)
        accepted_ids = set(producer.accepted.values())
        try:
            settle_began = time.monotonic()
            final = wait_for(lambda: settled(live), SETTLE_DEADLINE,
                             "every task to finish", 0.2)
            final_wait = time.monotonic() - settle_began
            timed_out = False
        except TimeoutError:
            final, final_wait, timed_out = live.client.stats(), SETTLE_DEADLINE, True
        on_server = {task.id: task for task in live.client.all_tasks()}
    finally:
        stop.set()
        if producer.ident is not None:
            producer.join(10)
    elapsed = time.monotonic() - began

    # -- what the server holds, against what the producer was promised -----------------
    lost = sorted(i for i in accepted_ids if i not in on_server)
    lost = [i for i in lost if _unknown(live, i)]  # ask once more, one by one
    stuck = sorted(i for i in accepted_ids if i in on_server
                   and on_server[i].status not in FINISHED)
    unclaimed = sorted(set(on_server) - accepted_ids)  # stored, never answered: none expected
    wrong_key = sorted(key for key, i in producer.accepted.items()
                       if i in on_server and on_server[i].idempotency_key != key)
    completed = [i for i in accepted_ids if on_server.get(i) and on_server[i].status == "completed"]
    dead = [i for i in accepted_ids if on_server.get(i) and on_server[i].status == "failed"]
    poisoned = {producer.accepted[f"chaos-{SEED}-{n}"] for n in range(0, TASKS, POISON_EVERY)
                if f"chaos-{SEED}-{n}" in producer.accepted}

    # -- what the handlers did -----------------------------------------------------------
    starts, oks, fails, ran_on, torn = read_executions(tmp_path / "executions")
    ran_twice = sum(1 for i in accepted_ids if starts[i] >= 2)
    succeeded_twice = sum(1 for i in accepted_ids if oks[i] >= 2)
    on_two_workers = sum(1 for i in accepted_ids if len(ran_on[i]) >= 2)
    attempts_gt1 = sum(1 for i in accepted_ids if i in on_server and on_server[i].attempts > 1)
    completed_without_run = [i for i in completed if oks[i] == 0]
    more_runs_than_attempts = [i for i in accepted_ids
                               if i in on_server and starts[i] > on_server[i].attempts]
    never_ran = sum(1 for i in accepted_ids if starts[i] == 0)
    cut_short = sum(starts.values()) - sum(oks.values()) - sum(fails.values())
    worker_kills = sum(chaos.kills[name] for name in WORKERS)

    figures = [
        ("seed", SEED),
        ("tasks submitted (keys)", TASKS),
        ("tasks accepted (distinct ids)", len(accepted_ids)),
        ("  answered 202 / 200 (key reused)", f"{producer.answers[202]} / {producer.answers[200]}"),
        ("server's total", final["total"]),
        ("completed", len(completed)),
        ("dead-lettered (failed)", f"{len(dead)} (of which poison: {len(poisoned & set(dead))}"
                                   f" of {len(poisoned)})"),
        ("kills of workers", f"{worker_kills} "
                             f"({', '.join(f'{n}: {chaos.kills[n]}' for n in WORKERS)})"),
        ("kills of the server", f"{chaos.kills['server']} "
                                f"({chaos.kills['server while submitting']} while submitting)"),
        ("server outages (s)", " ".join(f"{s:.1f}" for s in chaos.outages)),
        ("worker starts (first and restarts)", sum(chaos.restarts.values())),
        ("workers that exited by themselves", len(chaos.unexpected_exits)),
        ("submissions retried", producer.retried),
        ("  requests resent, by why", ", ".join(f"{why}: {n}" for why, n
                                               in sorted(producer.resends.items(), key=str))),
        ("submissions refused (4xx)", len(producer.refused)),
        ("tasks lost", len(lost)),
        ("tasks stuck", len(stuck)),
        ("stored but never accepted", len(unclaimed)),
        ("task under another key", len(wrong_key)),
        ("executions (handler starts)", sum(starts.values())),
        ("  cut short by a kill", cut_short),
        ("tasks run twice or more (logs)", ran_twice),
        ("tasks succeeded twice or more (logs)", succeeded_twice),
        ("tasks run by two workers or more (logs)", on_two_workers),
        ("tasks with attempts > 1 (server)", attempts_gt1),
        ("tasks run more often than attempts", len(more_runs_than_attempts)),
        ("completed tasks never run to success", len(completed_without_run)),
        ("tasks never run (dead by lease expiry)", never_ran),
        ("torn log lines", torn),
        ("chaos phase (s)", f"{chaos_ended - began:.1f}"),
        ("settling after it (s)", f"{final_wait:.1f}" + (" TIMED OUT" if timed_out else "")),
        ("run time (s)", f"{elapsed:.1f}"),
    ]
    width = max(len(name) for name, _ in figures)
    summary = "\n".join(["", "===== chaos summary ====="]
                        + [f"{name:<{width}}  {value}" for name, value in figures])
    print(summary)
    if chaos.unexpected_exits:
        print("workers that exited by themselves:", chaos.unexpected_exits)

    assert not lost, (f"LOST {len(lost)} accepted task(s): {lost[:20]}{summary}\n"
                      + tails(live))
    assert not stuck, (f"STUCK {len(stuck)} task(s): "
                       f"{[on_server[i].to_dict() for i in stuck[:5]]}{summary}\n" + tails(live))
    assert producer.crashed is None, producer.crashed + summary
    assert not producer.refused, f"{producer.refused[:5]}{summary}"
    assert len(producer.accepted) == TASKS, "not every submission was answered" + summary
    assert len(accepted_ids) == TASKS == final["total"], summary
    assert not unclaimed and not wrong_key, summary
    assert not completed_without_run, summary
    assert chaos.kills["server"] >= 3, "the server was not killed enough" + summary
    assert all(chaos.kills[name] >= 3 for name in WORKERS), "too few worker kills" + summary
    assert poisoned <= set(dead), "a task that always fails was not dead-lettered" + summary


def _unknown(live: LiveSystem, task_id: str) -> bool:
    try:
        live.client.get(task_id)
    except ApiError as exc:
        return exc.status == 404
    return False
