"""Predict, then verify: four presets played live, against the simulation's prediction.

    /work/main/.venv/bin/python bench/bench_live.py                 # the four presets
    /work/main/.venv/bin/python bench/bench_live.py --presets spike --speedup 30

For each of ``steady``, ``spike``, ``worker-crash`` and ``priorities``: the
scenario is played live (``sim.live.LiveRun``: a real server and real worker
processes on 127.0.0.1, an hour played 30 times faster, so 2 minutes), then
simulated 20 times at each step of its calibration (``sim.calibration.predict``,
as ``sim live`` predicts): the textbook's worker, then with the live costs.

The costs are this machine's, as the live run measured them (``sim live
--calibrate run``): its claim round trip and its restarts' start-up, never
the figures compared. The prediction with the defaults measured on the
project machine is shown beside it: a machine with a slower disk has a
longer round trip, and at 80% load that moves the waits a lot.

Each of throughput, utilisation, mean wait and p95 wait passes if the live
value falls inside the simulation's 95% prediction interval, or within 10%
of the simulated mean where that interval is narrower than 10%
(``sim.verify.verdict``). With 16 figures each judged at 95%, an all-PASS
run is not guaranteed even when the model is right: about 1 run in 2 would
have one FAIL if the figures were independent (they are not: a preset's
four figures move together).

Not a test: a live run's timing depends on the machine's load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim.calibration import calibrated, costs_of_run, predict  # noqa: E402
from sim.live import LiveRun  # noqa: E402
from sim.replications import replicate  # noqa: E402
from sim.presets import preset  # noqa: E402
from sim.verify import CLOSE, INSIDE, compare  # noqa: E402

PRESETS = ("steady", "spike", "worker-crash", "priorities")
CHECKED = ("throughput", "utilisation", "mean_wait", "p95_wait")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--speedup", type=float, default=30.0)
    parser.add_argument("--replications", type=int, default=20)
    args = parser.parse_args(argv)
    verdicts = []
    for name in args.presets:
        scenario = preset(name)
        began = time.monotonic()
        runner = LiveRun(scenario, args.speedup)
        live = runner.run()
        played = time.monotonic() - began
        claim, restart = costs_of_run(live, args.speedup, runner.restart_seconds)
        measured = predict(scenario, args.speedup, args.replications, claim, restart)
        # The project machine's defaults, on the same seeds, for comparison only.
        defaults = replicate(calibrated(scenario, args.speedup), args.replications,
                             first_seed=scenario.seed + 1)
        table = compare(live.summary, measured.calibrated.runs, CHECKED)
        restarts = ""
        if scenario.crash_rate > 0:
            count = len(runner.restart_seconds)
            restarts = (f", restart start-up {restart:.2f} s over {count}" if count
                        else f", no restart (start-up {restart:.2f} s, the default)")
        print(f"\n{name}: played live in {played:.0f} s at {args.speedup:g}x; measured claim "
              f"round trip {claim * 1000:.1f} ms{restarts}")
        print(f"{'figure':<14}{'textbook':>10}{'defaults':>10}{'measured':>10}"
              f"{'95% prediction':>22}{'live':>10}{'diff':>7}  verdict")
        for figure, row in table.iterrows():
            ok = row["verdict"] in (INSIDE, CLOSE)
            verdicts.append(ok)
            print(f"{figure:<14}{measured.textbook.runs[figure].mean():>10.4g}"
                  f"{defaults.runs[figure].mean():>10.4g}{row['simulated']:>10.4g}"
                  f"{'[%.4g, %.4g]' % (row['low'], row['high']):>22}{row['live']:>10.4g}"
                  f"{row['difference']:>+7.0%}  {row['verdict']}: {'PASS' if ok else 'FAIL'}",
                  flush=True)
    print(f"\n{sum(verdicts)} of {len(verdicts)} figures agree")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
