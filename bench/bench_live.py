"""Predict, then verify: four presets played live, against the simulation's prediction.

    /work/main/.venv/bin/python bench/bench_live.py                 # the four presets
    /work/main/.venv/bin/python bench/bench_live.py --presets spike --speedup 30

For each of ``steady``, ``spike``, ``worker-crash`` and ``priorities``: the
scenario is played live (``python -m sim live``'s ``run_live``: a real server
and real worker processes on 127.0.0.1, an hour played 30 times faster, so
2 minutes), then simulated 20 times with the live system's claim round trip
(``sim.live.calibrated``) and 20 times without. Each of throughput,
utilisation, mean wait and p95 wait passes if the live value falls inside
the simulation's 95% prediction interval, or within 10% of the simulated
mean where that interval is narrower than 10% (``sim.verify.verdict``).
The table shows both predictions, so what calibration changed is in view.
With 16 figures each judged at 95%, an all-PASS run is not guaranteed even
when the model is right: about 1 run in 2 would have one FAIL if the figures
were independent (they are not: a preset's four figures move together).

Not a test: a live run's timing depends on the machine's load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim.live import LIVE_CLAIM_SECONDS, calibrated, run_live  # noqa: E402
from sim.replications import replicate  # noqa: E402
from sim.scenario import preset  # noqa: E402
from sim.verify import CLOSE, INSIDE, claim_round_trip, compare  # noqa: E402

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
        live = run_live(scenario, args.speedup)
        played = time.monotonic() - began
        # Seeds after the live run's own, as `sim live` does.
        plain = replicate(scenario, args.replications, first_seed=scenario.seed + 1)
        model = calibrated(scenario, args.speedup)
        table = compare(live.summary, replicate(model, args.replications,
                                                first_seed=scenario.seed + 1).runs, CHECKED)
        measured = claim_round_trip(live) / args.speedup * 1000
        print(f"\n{name}: played live in {played:.0f} s at {args.speedup:g}x; claim round trip "
              f"{LIVE_CLAIM_SECONDS * 1000:.1f} ms in the model, {measured:.1f} ms measured")
        print(f"{'figure':<14}{'no calib.':>10}{'simulated':>11}{'95% prediction':>22}"
              f"{'live':>10}{'diff':>7}  verdict")
        for figure, row in table.iterrows():
            ok = row["verdict"] in (INSIDE, CLOSE)
            verdicts.append(ok)
            print(f"{figure:<14}{plain.runs[figure].mean():>10.4g}{row['simulated']:>11.4g}"
                  f"{'[%.4g, %.4g]' % (row['low'], row['high']):>22}{row['live']:>10.4g}"
                  f"{row['difference']:>+7.0%}  {row['verdict']}: {'PASS' if ok else 'FAIL'}",
                  flush=True)
    print(f"\n{sum(verdicts)} of {len(verdicts)} figures agree")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
