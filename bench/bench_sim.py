"""Benchmark: tasks simulated per second, our model against two peers.

The system is M/M/3 at utilisation 0.8 (arrivals 2.4/s, service 1/s per
worker), 200,000 tasks, the same for the three contenders:

* ``sim``: our full model (producers, TaskQueue over the simulation store on SimPy's
  clock, workers, per-task records and the DataFrames at the end);
* ``simpy-minimal``: the idiomatic SimPy M/M/c (a process per customer,
  one ``Resource`` with 3 slots, exponential times, waits in a list);
* ``ciw``: Ciw 3.x on the same network, records fetched at the end.

Each contender runs in a fresh subprocess (so one's memory and warm caches
do not help another), best of ``--repeat`` rounds in which each runs once.

Where our model's time goes is shown as a staircase: the same model run
around no queue (a FIFO stub), around a bare index of immutable records,
around that index with the lifecycle's own transitions, and around the
real ``TaskQueue`` (which adds ids, leases, the sweep, counts and version
checks); beside it, the time per task each speed goal allows. Peak memory of our model
is measured twice: tracemalloc's peak of Python allocations during the
run (in its own subprocess, as tracemalloc slows the run down), and the
process's peak resident size (``ru_maxrss``, interpreter and imports
included).

Ciw is not a dependency of the project: install it in a separate venv::

    python3 -m venv bench/.venv
    bench/.venv/bin/pip install -r bench/requirements-bench.txt
    bench/.venv/bin/python bench/bench_sim.py

Without Ciw the script still runs and says Ciw was skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAM, MU, C = 2.4, 1.0, 3


def run_sim(n: int, seed: int, queue=None) -> dict:
    """Our full model; with ``queue``, the model around that in place of TaskQueue (for
    the diagnostics). Timed from building the model to its DataFrames."""
    from sim import mmc_scenario
    from sim.model import Model

    start = time.perf_counter()
    model = Model(mmc_scenario(LAM, MU, C, duration=None, max_tasks=n, sample_every=60.0,
                               seed=seed))
    if queue is not None:
        queue.now = lambda: model.env.now  # the stubs keep no clock of their own
        model.queue = queue
    result = model.run()
    elapsed = time.perf_counter() - start
    return {"elapsed": elapsed, "tasks": int((result.tasks["status"] == "completed").sum()),
            "mean_wait": result.summary["mean_wait"]}


class FifoStub:
    """No queue at all: payloads in a deque. What is left is the model's own machinery."""

    def __init__(self):
        import collections
        from queue_system.task import Task
        self.fifo, self.task = collections.deque(), Task

    def submit(self, type_, payload, **options):
        self.fifo.append(payload)
        now = self.now()
        return self.task(id="stub", type=type_, payload=payload, execute_at=now), True

    def claim(self, worker_id, types=None, lease_seconds=None, limit=1):
        # A lease that never ends: no heartbeats (the model renews a lease that would end
        # before the task could).
        return [self.task(id="stub", type="task", payload=self.fifo.popleft(),
                          lease_expires_at=math.inf)] if self.fifo else []

    def complete(self, *args):
        return None

    fail = heartbeat = complete  # never called: no failures, short tasks

    def next_wakeup(self):
        return None

    def stats(self):  # the model's sampler, once a simulated minute: not worth keeping counts
        return dict.fromkeys(("pending", "scheduled", "processing", "failed"), 0)


class BareQueue(FifoStub):
    """The least any queue of immutable task records does: a new record per step, kept in a
    dict, the ready ones on a heap. With ``rules``, each record comes from the lifecycle's
    own transition (``new_task``, ``claim``, ``complete``, with their checks); without, it
    is built directly. No clock, ids, lease heap, sweep, counts or version check: those
    are what TaskQueue adds on top."""

    def __init__(self, rules: bool):
        import heapq
        import itertools
        from queue_system import lifecycle
        from queue_system.task import Task
        self.rules, self.lifecycle, self.task, self.record = rules, lifecycle, Task, tuple.__new__
        self.tasks, self.ready, self.push, self.pop = {}, [], heapq.heappush, heapq.heappop
        self.ids = itertools.count()

    def submit(self, type_, payload, priority="normal", max_retries=3, delay=None):
        task_id, now = next(self.ids), self.now()
        if self.rules:
            task = self.lifecycle.new_task(task_id, type_, payload, now, priority, max_retries)
        else:  # all the fields, in Task's order: the least it costs to make a record
            task = self.record(self.task, (task_id, type_, payload, "pending", priority, now, now,
                                           0, max_retries, 0, None, None, None, None, None,
                                           None, None, now, None, 0, task_id))
        self.tasks[task_id] = task
        self.push(self.ready, (1, task_id, task))
        return task, True

    def claim(self, worker_id, types=None, lease_seconds=None, limit=1):
        if not self.ready:
            return []
        task = self.pop(self.ready)[-1]
        if self.rules:
            task = self.lifecycle.claim(task, self.now(), worker_id, "lease", math.inf)
        else:
            t = task
            task = self.record(self.task, (t[0], t[1], t[2], "processing", t[4], t[5], t[6], t[7],
                                           t[8], t[9] + 1, None, None, worker_id, "lease", math.inf,
                                           0.0, None, 0.0, t[18], t[19] + 1, t[20]))
        self.tasks[task.id] = task
        return [task]

    def complete(self, task_id, lease_id):
        task = self.tasks.pop(task_id)
        if self.rules:
            return self.lifecycle.complete(task, self.now(), lease_id, None)
        t = task
        return self.record(self.task, (t[0], t[1], t[2], "completed", t[4], t[5], t[6], t[7], t[8],
                                       t[9], None, None, t[12], None, None, t[15], 0.0, 0.0,
                                       t[18], t[19] + 1, t[20]))


def run_sim_without_queue(n: int, seed: int) -> dict:
    return run_sim(n, seed, FifoStub())


def run_sim_bare_index(n: int, seed: int) -> dict:
    return run_sim(n, seed, BareQueue(rules=False))


def run_sim_bare_rules(n: int, seed: int) -> dict:
    return run_sim(n, seed, BareQueue(rules=True))


def run_queue_ops(n: int, seed: int) -> dict:
    """Diagnostic only: what each TaskQueue call costs as the model makes it (the model's
    store, sequential ids, a short queue, collector paused as during a run), in us.

    Each call is timed on its own, and the timer's own cost is taken off."""
    import gc
    import random
    from queue_system.queue import TaskQueue, sequential_ids
    from sim.store import SimulationStore

    clock = [0.0]
    queue = TaskQueue(SimulationStore(), lambda: clock[0],
                      rng=random.Random(seed),
                      make_id=sequential_ids(), make_lease_id=sequential_ids("lease-"))
    tick = time.perf_counter_ns
    spent = dict.fromkeys(("submit", "claim", "complete", "empty claim", "timer"), 0)
    rounds = min(n, 50_000)
    gc.disable()
    for i in range(rounds):
        clock[0] += 1 / LAM  # leases run out behind, as in the model: stale entries to drop
        t0 = tick()
        queue.submit("task", i, priority="normal", max_retries=3)
        t1 = tick()
        task = queue.claim("worker-1")[0]
        t2 = tick()
        queue.complete(task.id, task.lease_id)
        t3 = tick()
        queue.claim("worker-1")
        t4 = tick()
        tick()
        t5 = tick()
        spent["submit"] += t1 - t0
        spent["claim"] += t2 - t1
        spent["complete"] += t3 - t2
        spent["empty claim"] += t4 - t3
        spent["timer"] += t5 - t4
    gc.enable()
    timer = spent.pop("timer")
    return {name: (total - timer) / rounds / 1000 for name, total in spent.items()}


def run_simpy_minimal(n: int, seed: int) -> dict:
    import random
    import simpy

    rng = random.Random(seed)
    waits = []

    def customer(env, server):
        arrive = env.now
        with server.request() as request:
            yield request
            waits.append(env.now - arrive)
            yield env.timeout(rng.expovariate(MU))

    def source(env, server):
        for _ in range(n):
            env.process(customer(env, server))
            yield env.timeout(rng.expovariate(LAM))

    start = time.perf_counter()
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=C)
    env.process(source(env, server))
    env.run()
    elapsed = time.perf_counter() - start
    return {"elapsed": elapsed, "tasks": len(waits), "mean_wait": sum(waits) / len(waits)}


def run_ciw(n: int, seed: int) -> dict:
    import ciw

    start = time.perf_counter()
    network = ciw.create_network(arrival_distributions=[ciw.dists.Exponential(rate=LAM)],
                                 service_distributions=[ciw.dists.Exponential(rate=MU)],
                                 number_of_servers=[C])
    ciw.seed(seed)
    simulation = ciw.Simulation(network)
    simulation.simulate_until_max_customers(n, method="Finish")
    records = simulation.get_all_records()
    elapsed = time.perf_counter() - start
    return {"elapsed": elapsed, "tasks": len(records),
            "mean_wait": sum(r.waiting_time for r in records) / len(records)}


def peak_memory_sim(n: int, seed: int) -> dict:
    import resource
    import tracemalloc

    import sim  # noqa: F401  (imports are not the run: load pandas, SimPy... first)
    tracemalloc.start()
    run_sim(n, seed)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"tracemalloc_peak_mb": peak / 2**20,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def maxrss_sim(n: int, seed: int) -> dict:
    import resource
    out = run_sim(n, seed)
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


CONTENDERS = {"sim": run_sim, "simpy-minimal": run_simpy_minimal, "ciw": run_ciw,
              "sim-no-queue": run_sim_without_queue, "sim-bare-index": run_sim_bare_index,
              "sim-bare-rules": run_sim_bare_rules, "queue-ops": run_queue_ops,
              "sim-memory": peak_memory_sim, "sim-rss": maxrss_sim}


def in_subprocess(name: str, n: int, seed: int) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, __file__, "--child", name, "--tasks", str(n),
                          "--seed", str(seed)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender; the best counts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(CONTENDERS[args.child](args.tasks, args.seed)))
        return

    print(f"M/M/{C}, lambda={LAM}/s, mu={MU}/s (utilisation {LAM / (C * MU):.1f}), "
          f"{args.tasks:,} tasks, best of {args.repeat}; Python {sys.version.split()[0]}")
    # Round by round, each contender once per round: a slow spell of this shared machine
    # then falls on all of them rather than on whichever happened to be running.
    contenders = ("sim", "simpy-minimal", "ciw", "sim-no-queue", "sim-bare-index",
                  "sim-bare-rules")
    best: dict = {}
    for i in range(args.repeat):
        for name in contenders:
            if "error" in best.get(name, {}):
                continue  # skipped (Ciw not installed, say): no use trying again
            out = in_subprocess(name, args.tasks, args.seed + i)
            if "error" in out or name not in best or out["elapsed"] < best[name]["elapsed"]:
                best[name] = out
    rates = {name: out["tasks"] / out["elapsed"] for name, out in best.items() if "error" not in out}
    for name in ("sim", "simpy-minimal", "ciw"):
        out = best[name]
        if "error" in out:
            print(f"  {name:<14} skipped: {out['error']}")
            continue
        print(f"  {name:<14} {rates[name]:>9,.0f} tasks/s  ({out['elapsed']:.2f} s, "
              f"{out['tasks']:,} tasks, mean wait {out['mean_wait']:.3f} s)")
    # The first goals asked (at least 1x and 2.5x), and issue 15's as restated for the
    # readable rules (at least 0.85x Ciw: see bench/README.md).
    goals = [("simpy-minimal", 1.0), ("ciw", 2.5), ("ciw", 0.85)]
    # Where a task's time goes: the same model around ever more of a queue.
    us = {name: 1e6 / rate for name, rate in rates.items()}
    steps = [("sim-no-queue", "no queue (a FIFO stub)"),
             ("sim-bare-index", "a bare index (records in a dict, a heap)"),
             ("sim-bare-rules", "that index with the lifecycle's transitions"),
             ("sim", "TaskQueue, the real thing")]
    for name, _ in steps:  # a diagnostic that failed says why, rather than vanish
        if "error" in best.get(name, {}):
            print(f"  diagnostic {name} failed: {best[name]['error']}")
    if all(name in us for name, _ in steps):
        print("  diagnostic: our model, us per task, around " + "; ".join(
            f"{label} {us[name]:.1f}" for name, label in steps))
        print("  the goals allow, per task: " + ", ".join(
            f"{factor:g}x {peer} {us[peer] / factor:.1f} us" for peer, factor in goals if peer in us))
    ops = min((in_subprocess("queue-ops", args.tasks, args.seed + i) for i in range(args.repeat)),
              key=lambda out: sum(out.values()) if "error" not in out else float("inf"))
    if "error" not in ops:
        print("  diagnostic: TaskQueue per call, as the model calls it: "
              + ", ".join(f"{name} {us:.1f} us" for name, us in ops.items())
              + " (a task takes a submit, a claim, a complete, and an empty claim now and then)")
    memory = in_subprocess("sim-memory", args.tasks, args.seed)
    rss = in_subprocess("sim-rss", args.tasks, args.seed)
    if "error" not in memory and "error" not in rss:
        print(f"  sim peak memory: {memory['tracemalloc_peak_mb']:.1f} MB of Python allocations "
              f"(tracemalloc), {rss['maxrss_mb']:.1f} MB peak resident size of the whole process")
    print(f"  theory: M/M/{C} mean wait {_mmc_wait():.3f} s")
    print("Goals:")
    if "sim" in rates:
        for peer, factor in goals:
            if peer in rates:
                ratio = rates["sim"] / rates[peer]
                print(f"  [{'PASS' if ratio >= factor else 'FAIL'}] sim >= {factor:g}x {peer}: "
                      f"{rates['sim']:,.0f} vs {factor * rates[peer]:,.0f} tasks/s ({ratio:.2f}x)")
    if "error" not in memory:
        peak = memory["tracemalloc_peak_mb"]
        print(f"  [{'PASS' if peak < 150 else 'FAIL'}] sim peak memory < 150 MB at "
              f"{args.tasks:,} tasks: {peak:.1f} MB")


def _mmc_wait() -> float:
    from sim.theory import mmc
    return mmc(LAM, MU, C)["Wq"]


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
