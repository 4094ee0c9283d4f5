"""Play a scenario on the live system, and measure it as the simulation measures itself.

The simulation predicts; a live run checks the prediction. ``run_live``
starts a server and the scenario's workers on 127.0.0.1 (or drives a server
already running, ``url``), then plays the scenario for real:

* the producers' tasks are the simulation's own arrival plan (``plan``),
  submitted over HTTP at their times, with their types, priorities and
  delays;
* each attempt is run by a real worker process with the scenario's service
  times and failure probability (``live_handlers``);
* workers crash (SIGKILL) and come back (a new process) as the scenario's
  crash rate and restart delay say, drawn from the same random streams as
  the simulation's crashes.

Every duration is divided by ``speedup`` (arrivals, service, lease, backoff,
delays, restarts): at 30, an hour of class traffic plays in two minutes.
Queueing has no clock of its own, so the same run, read back with every
time multiplied by ``speedup``, is the scenario's run at its own scale.

After the run, every task is read back from the server and every attempt
from the workers' logs, and they become the simulation's records
(``records.Recorder``) in scenario time. The summary is ``summary.summarise``,
the very function a simulated run uses: each figure is computed the same
way in both worlds. What the prediction of a live run adds to the model
(a claim's round trip, a restart's start-up) is in ``calibration``.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from queue_system.backoff import Backoff
from queue_system.client import ApiError, QueueClient, ServerUnreachable
from queue_system.local import LocalSystem
from queue_system.queue import MIN_LEASE_SECONDS
from queue_system.worker.prefetch import DEFAULT_BUDGET

from . import records as R
from .model import Result
from .plan import Arrival, arrival_plan
from .scenario import Scenario
from .summary import summarise

DEFAULT_SPEEDUP = 30.0
STATUS_OF = {"completed": R.COMPLETED, "failed": R.DEAD}  # else still in the system
WORKER_READY_SECONDS = 30.0
MAX_PREFETCH_BUDGET = 60.0  # the worker's --prefetch-budget takes at most a minute
READY_LINE = "Started ("  # what a worker logs once it is ready to claim


@dataclass(frozen=True)
class TimeScale:
    """Scenario seconds and live seconds: ``live = origin + scenario / speedup``."""

    speedup: float
    origin: float = 0.0  # the live time (``time.time()``) of scenario time 0

    def live_seconds(self, seconds: float) -> float:
        return seconds / self.speedup

    def live_at(self, scenario_time: float) -> float:
        return self.origin + scenario_time / self.speedup

    def scenario_time(self, live_time: float) -> float:
        return (live_time - self.origin) * self.speedup


def check_playable(scenario: Scenario, speedup: float) -> None:
    """Refuse, saying why, a scenario the live system cannot play at ``speedup``."""
    if not (isinstance(speedup, (int, float)) and math.isfinite(speedup) and speedup > 0):
        raise ValueError(f"the speed-up must be a positive number, not {speedup!r}")
    if scenario.duration is None:
        raise ValueError("a live run needs a duration (it plays in real time)")
    if scenario.lease_seconds / speedup < MIN_LEASE_SECONDS:
        raise ValueError(f"the lease ({scenario.lease_seconds:g} s) divided by the speed-up "
                         f"would be under the server's {MIN_LEASE_SECONDS:g} s: use a speed-up "
                         f"of at most {scenario.lease_seconds / MIN_LEASE_SECONDS:g}")
    if DEFAULT_BUDGET / speedup > MAX_PREFETCH_BUDGET:
        raise ValueError(f"a speed-up under {DEFAULT_BUDGET / MAX_PREFETCH_BUDGET:g} would give "
                         "the workers a prefetch budget above a minute")
    default = Backoff()
    if scenario.backoff.kind == "exponential" and (
            scenario.backoff.factor != default.factor or scenario.backoff.jitter != default.jitter):
        raise ValueError("the server's --backoff takes exponential:BASE:MAX only, with factor "
                         f"{default.factor:g} and jitter {default.jitter:g}")


def backoff_argument(backoff: Backoff, speedup: float) -> str:
    """The server's ``--backoff`` for ``backoff`` played ``speedup`` times faster."""
    if backoff.kind == "none":
        return "none"
    if backoff.kind == "fixed":
        return f"fixed:{backoff.base / speedup!r}"
    return f"exponential:{backoff.base / speedup!r}:{backoff.max_delay / speedup!r}"


def server_arguments(scenario: Scenario, speedup: float) -> List[str]:
    """``serve`` flags that give the server the scenario's rules, scaled."""
    args = ["--lease", repr(scenario.lease_seconds / speedup),
            "--backoff", backoff_argument(scenario.backoff, speedup)]
    if scenario.capacity is not None:
        args += ["--capacity", str(scenario.capacity)]
    return args


class LiveRun:
    """One live run of ``scenario`` (build, then ``run()``); see the module's docstring."""

    def __init__(self, scenario: Scenario, speedup: float = DEFAULT_SPEEDUP, *,
                 url: Optional[str] = None, token: Optional[str] = None,
                 folder: Optional[str] = None,
                 progress: Optional[Callable[[str], None]] = None,
                 progress_every: float = 1.0):
        check_playable(scenario, speedup)
        self.scenario, self.speedup = scenario, float(speedup)
        self.url, self.token = url, token
        self.progress, self.progress_every = progress, progress_every
        self.plan: List[Arrival] = arrival_plan(scenario)
        self.run_id = f"{int(time.time() * 1000):x}"  # tells this run's tasks from others'
        # A folder of its own: the database, the logs and the attempt logs of this run only.
        parent = Path(folder) if folder is not None else Path(tempfile.gettempdir())
        self.folder = parent / f"sim-live-{scenario.name}-{self.run_id}"
        # Per row of the plan: the task's id, created_at and execute_at as the server
        # answered, or None if the server refused it (a full queue).
        self.submitted: List[Optional[tuple]] = []
        self.refused_at: Dict[int, float] = {}
        # Per worker process started: (worker index, attempt log, killed at or None).
        self.incarnations: List[list] = []
        self.samples: List[tuple] = []  # (live time, pending, scheduled, processing, failed)
        self.restart_seconds: List[float] = []  # live seconds from a restart to a ready worker
        self.ending = threading.Event()
        self.errors: List[BaseException] = []

    # -- the run ---------------------------------------------------------------------

    def run(self) -> Result:
        self.folder.mkdir(parents=True)
        scenario_file = self.folder / "scenario.json"
        scenario_file.write_text(self.scenario.to_json())
        self.system = LocalSystem(self.folder)
        with self.system:
            if self.url is None:
                self.system.start_server(*server_arguments(self.scenario, self.speedup),
                                         "--log-level", "warning")
                self.url = self.system.url
            self.client = QueueClient(self.url, token=self.token)
            try:
                tasks = self._play(scenario_file)
            finally:
                self.client.close()
        return self._result(tasks)

    def _play(self, scenario_file: Path) -> Dict[int, object]:
        """Start the workers, play the plan until the end, stop; this run's tasks."""
        self.workers = [self._start_worker(w, scenario_file)
                        for w in range(self.scenario.workers)]
        for w in range(self.scenario.workers):
            self._wait_ready(w)
        self.scale = TimeScale(self.speedup, time.time())
        self.end_live = self.scale.live_at(self.scenario.duration)
        threads = [threading.Thread(target=self._guard(self._submit_plan), daemon=True),
                   threading.Thread(target=self._guard(self._sample), daemon=True)]
        if self.scenario.crash_rate > 0:
            threads += [threading.Thread(target=self._guard(self._crash, w, scenario_file),
                                         daemon=True) for w in range(self.scenario.workers)]
        try:
            for thread in threads:
                thread.start()
            self._report_progress()
        finally:  # even on Ctrl-C: no thread may start a worker once the system closes
            self.ending.set()
            for thread in threads:
                if thread.is_alive():
                    thread.join()
            for process in self.workers:  # frozen as they are at the end: no more attempts
                self.system.kill(process)
        if self.errors:
            raise self.errors[0]
        return self._read_back()

    def _guard(self, fn, *args):
        def run():
            try:
                fn(*args)
            except BaseException as exc:  # reported by run(), after the others stopped
                self.errors.append(exc)
                self.ending.set()
        return run

    # -- workers ----------------------------------------------------------------------

    def _start_worker(self, w: int, scenario_file: Path):
        log = self.folder / f"attempts-{w + 1}-{len(self.incarnations)}.jsonl"
        log.touch()
        self.incarnations.append([w, log, None])
        env = {"SIM_LIVE_SCENARIO": str(scenario_file), "SIM_LIVE_SPEEDUP": repr(self.speedup),
               "SIM_LIVE_ATTEMPTS": str(log)}
        if self.token:
            env["QUEUE_WORKER_TOKEN"] = self.token
        return self.system.start_worker(
            f"worker-{w + 1}", "--url", self.url, "--handlers", "sim.live_handlers",
            "--lease", repr(self.scenario.lease_seconds / self.speedup),
            # The prefetch rule at the scenario's scale, as the simulated worker applies it:
            # 100 ms of the scenario's work, not of the live run's (a 30th of it at 30).
            "--prefetch-budget", repr(DEFAULT_BUDGET / self.speedup),
            "--poll-wait", "1", env=env)

    def _wait_ready(self, w: int) -> None:
        deadline = time.monotonic() + WORKER_READY_SECONDS
        name = f"worker-{w + 1}"
        while READY_LINE not in self.system.log(name):
            if self.workers[w].poll() is not None:
                raise RuntimeError(f"{name} exited:\n" + self.system.log(name)[-2000:])
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start within {WORKER_READY_SECONDS:g} s")
            time.sleep(0.02)

    def _crash(self, w: int, scenario_file: Path) -> None:
        """Worker ``w`` crashes after exponential times, and comes back ``restart_delay``
        later: the simulation's crash stream for this worker, in live time."""
        sc = self.scenario
        rng = random.Random(f"{sc.seed}:crashes:{w}")
        at = 0.0  # scenario time
        while True:
            at += rng.expovariate(sc.crash_rate)
            if self.ending.wait(max(self.scale.live_at(at) - time.time(), 0)):
                return
            self.system.kill(self.workers[w])  # no warm shutdown: a crash
            self._incarnation_of(w)[2] = time.time()
            at += sc.restart_delay
            if self.ending.wait(max(self.scale.live_at(at) - time.time(), 0)):
                return
            name = f"worker-{w + 1}"
            ready_before = self.system.log(name).count(READY_LINE)
            began = time.time()
            self.workers[w] = self._start_worker(w, scenario_file)
            # How long a new process takes to be ready (imports, connecting): a cost of
            # the live restart that the scenario's restart_delay does not have.
            while self.system.log(name).count(READY_LINE) == ready_before:
                if self.ending.wait(0.005) or self.workers[w].poll() is not None:
                    break
            else:
                self.restart_seconds.append(time.time() - began)

    def _incarnation_of(self, w: int) -> list:
        return [i for i in self.incarnations if i[0] == w][-1]

    # -- producers, and watching -----------------------------------------------------------

    def _submit_plan(self) -> None:
        sc = self.scenario
        for row, arrival in enumerate(self.plan):
            pause = self.scale.live_at(arrival.time) - time.time()
            if pause > 0 and self.ending.wait(pause):
                return
            if time.time() > self.end_live:
                return
            options = {"priority": arrival.priority, "max_retries": sc.max_retries}
            if arrival.delay is not None:
                options["delay"] = self.scale.live_seconds(arrival.delay)
            payload = {"row": row, "kind": arrival.kind, "run": self.run_id}
            try:
                task = self.client.submit(arrival.type, payload, **options)
            except ApiError as exc:
                if not (exc.status == 503 and sc.capacity is not None and "full" in exc.message):
                    raise  # not the capacity rule: the run is not the scenario's any more
                self.submitted.append(None)  # the queue is full: refused, as in the model
                self.refused_at[row] = time.time()
                continue
            self.submitted.append((task.id, task.created_at, task.execute_at))

    def _sample(self) -> None:
        sc = self.scenario
        every = sc.sample_every or sc.duration / 2000
        at = 0.0
        while at <= sc.duration:
            pause = self.scale.live_at(at) - time.time()
            if pause > 0 and self.ending.wait(pause):
                return
            try:
                stats = self.client.stats()
            except (ApiError, ServerUnreachable):
                stats = None  # a sample missed: the time series has a gap, nothing more
            if stats is not None:
                self.samples.append((time.time(), stats["pending"], stats["scheduled"],
                                     stats["processing"], stats["failed"]))
            at += every

    def _report_progress(self) -> None:
        """Wait for the end of the run, saying how it goes every ``progress_every`` s."""
        while not self.ending.wait(max(min(self.progress_every,
                                           self.end_live - time.time()), 0)):
            if time.time() >= self.end_live:
                return
            if self.progress is not None:
                now = self.scale.scenario_time(time.time())
                last = self.samples[-1] if self.samples else None
                waiting = f", {last[1]} waiting, {last[3]} in progress" if last else ""
                self.progress(f"{now:7.0f} / {self.scenario.duration:g} s: "
                              f"{len(self.submitted)} submitted{waiting}")

    # -- reading the run back ------------------------------------------------------------------

    def _read_back(self) -> Dict[int, object]:
        """This run's tasks on the server, by row."""
        by_row = {}
        for task in self.client.all_tasks():
            payload = task.payload
            if isinstance(payload, dict) and payload.get("run") == self.run_id:
                by_row[payload["row"]] = task
        return by_row

    def _attempts(self, tasks: Dict[int, object]) -> List[tuple]:
        """(row, attempt number, worker index, start, end, outcome) of every attempt that
        started within the run, in live time.

        A worker's log says when an attempt ended and how, but the server learns it
        only from the worker's next request. An attempt that succeeded, by a worker
        later killed, and that the server did not complete the task by, was never
        reported: its task ran again, went to the dead letter when its lease ran out,
        or was still held when the run ended. Like an attempt the kill cut short, it
        counts as crashed, ending when its work did."""
        logged = []  # (row, attempt, w, start, end or None, ok, killed_at)
        for w, log, killed_at in self.incarnations:
            starts, ends = {}, {}
            for line in log.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut short by the kill
                if entry.get("run") != self.run_id:
                    continue  # another run's task, on a server shared with it (--url)
                key = (entry["row"], entry["attempt"])
                if "start" in entry:
                    starts[key] = entry["start"]
                else:
                    ends[key] = (entry["end"], entry["ok"])
            for (row, attempt), start in starts.items():
                end, ok = ends.get((row, attempt), (None, False))
                logged.append((row, attempt, w, start, end, ok, killed_at))
        # The attempt the server completed each task by: the last, by its count of attempts.
        completed_by = {row: task.attempts for row, task in tasks.items()
                        if task.status == "completed"}
        attempts = []
        for row, attempt, w, start, end, ok, killed_at in logged:
            if start > self.end_live:
                continue
            lost = ok and killed_at is not None and completed_by.get(row) != attempt
            if end is not None and end <= self.end_live and not lost:
                attempts.append((row, attempt, w, start, end, R.OK if ok else R.FAILED))
            elif killed_at is not None and killed_at <= self.end_live:
                # Cut short at the kill; or, a success never reported, when its work ended.
                stop = killed_at if end is None else min(end, killed_at)
                attempts.append((row, attempt, w, start, max(stop, start), R.CRASHED))
            else:
                attempts.append((row, attempt, w, start, self.end_live, R.UNFINISHED))
        return attempts

    def _result(self, tasks: Dict[int, object]) -> Result:
        scale, sc, end_live = self.scale, self.scenario, self.end_live
        attempts = [a for a in self._attempts(tasks) if a[0] < len(self.submitted)]
        outcome_of = {(row, number): (end, outcome)
                      for row, number, _, _, end, outcome in attempts}
        rec = R.Recorder()
        for row, submitted in enumerate(self.submitted):
            kind = self.plan[row].kind
            if submitted is None:
                at = scale.scenario_time(self.refused_at[row])
                rec.task(kind, at, at, at, R.REFUSED)
                continue
            _, created_at, execute_at = submitted
            task = tasks.get(row)
            status = STATUS_OF.get(task.status, R.IN_SYSTEM) if task is not None else R.IN_SYSTEM
            finished = None
            if status != R.IN_SYSTEM:
                # A task is done when its last attempt ends, as in the model (the server
                # commits it a round trip later, with the worker's next claim). The last
                # is the server's count of attempts: one that started after the end of the
                # run is not in the records, and then the task was not done within it.
                end, outcome = outcome_of.get((row, task.attempts), (None, None))
                if outcome == (R.OK if status == R.COMPLETED else R.FAILED):
                    finished = end
                elif status == R.DEAD:  # its last lease ran out: when the server's sweep saw it
                    finished = task.finished_at
            if finished is None or finished > end_live:  # still in the system when it ended
                finished, status = None, R.IN_SYSTEM
            rec.task(kind, scale.scenario_time(created_at),
                     scale.scenario_time(max(execute_at, created_at)),
                     R.NAN if finished is None else scale.scenario_time(finished), status)
        for row, _, w, start, end, outcome in attempts:
            rec.attempt(row, w, scale.scenario_time(start), scale.scenario_time(end), outcome)
        busy_at = _busy_counter(attempts)
        for t, pending, scheduled, processing, failed in self.samples:
            if t <= end_live:
                rec.sample(scale.scenario_time(t), pending, scheduled, processing, busy_at(t),
                           failed)
        attempts_frame = rec.attempts_frame()
        tasks_frame = rec.tasks_frame(sc.kinds(), attempts_frame)
        summary = summarise(sc, tasks_frame, attempts_frame, sc.duration)
        return Result(sc, sc.seed, sc.duration, tasks_frame, attempts_frame,
                      rec.timeseries_frame(), summary)


def _busy_counter(attempts: List[tuple]) -> Callable[[float], int]:
    """How many workers were running an attempt at a live time."""
    by_worker = defaultdict(list)
    for _, _, w, start, end, _ in attempts:
        by_worker[w].append((start, end))
    return lambda t: sum(any(s <= t < e for s, e in spans) for spans in by_worker.values())


def run_live(scenario: Scenario, speedup: float = DEFAULT_SPEEDUP, **options) -> Result:
    """Play ``scenario`` on a live server and workers; its records and summary, in scenario
    time, as ``simulate`` gives them. Options: ``url``, ``token``, ``folder``, ``progress``."""
    return LiveRun(scenario, speedup, **options).run()
