"""The arrival plan: when each task of a scenario arrives, of which kind, how far ahead.

A producer's arrivals are drawn from its own random streams (the arrival
times, the draw of each task's kind in the mix, the delay of a scheduled
one), seeded from the run's seed and the producer's number. The
simulation reads them as it goes; the live runner (``live``) reads the very
same plan and submits it to a real server. So a simulated run and a live
run of one scenario and seed send the same tasks at the same (scenario)
times: any difference between the two comes from what happens after.
"""

from __future__ import annotations

import heapq
import math
import random
from typing import Iterator, List, NamedTuple, Optional

from .scenario import Producer, Scenario


class Arrival(NamedTuple):
    """One task to submit: at ``time`` (seconds from the start), its ``kind`` (index into
    ``Scenario.kinds()``), type and priority, and ``delay`` (execute_at ahead), or None."""

    time: float
    kind: int
    type: str
    priority: str
    delay: Optional[float]


def producer_arrivals(producer: Producer, seed, index: int, first_kind: int,
                      horizon: float = math.inf) -> Iterator[Arrival]:
    """Producer ``index``'s arrivals up to ``horizon``, drawn as the simulation draws them.

    ``first_kind`` is the index of its first kind in ``Scenario.kinds()``."""
    rng = random.Random(f"{seed}:arrivals:{index}")
    mix_draw = random.Random(f"{seed}:mix:{index}").random
    delay_rng = random.Random(f"{seed}:delay:{index}")
    total = sum(k.share for k in producer.mix)
    cumulative, acc = [], 0.0
    for k in producer.mix:
        acc += k.share / total
        cumulative.append(acc)
    # Per kind: (kind index, type, priority, delay sampler or None when never delayed).
    kinds = [(first_kind + i, k.type, k.priority,
              None if k.delay.kind == "fixed" and k.delay.a == 0 else k.delay.sampler(delay_rng))
             for i, k in enumerate(producer.mix)]
    last = len(cumulative) - 1
    for t in producer.arrivals.times_from(rng, 0.0, horizon):
        if t > horizon:
            return
        if last == 0:
            kind, type_, priority, delay = kinds[0]
        else:
            u = mix_draw()
            j = 0
            while j < last and u >= cumulative[j]:
                j += 1
            kind, type_, priority, delay = kinds[j]
        yield Arrival(t, kind, type_, priority, None if delay is None else delay())


def arrival_plan(scenario: Scenario, seed: Optional[int] = None) -> List[Arrival]:
    """Every producer's arrivals merged in time order, within the scenario's duration and
    ``max_tasks``: the tasks a run of ``scenario`` submits."""
    seed = scenario.seed if seed is None else seed
    horizon = math.inf if scenario.duration is None else scenario.duration
    streams, first = [], 0
    for index, producer in enumerate(scenario.producers):
        streams.append(producer_arrivals(producer, seed, index, first, horizon))
        first += len(producer.mix)
    merged = heapq.merge(*streams, key=lambda arrival: arrival.time)
    limit = scenario.max_tasks
    plan = []
    for arrival in merged:
        if limit is not None and len(plan) >= limit:
            break
        plan.append(arrival)
    return plan
