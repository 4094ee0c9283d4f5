"""The command line: run a scenario, see the figures, keep the plots and tables.

A lab bench for the lesson::

    python -m sim scenarios                       # the presets, one line each
    python -m sim show --scenario spike           # a preset as JSON, to copy and edit
    python -m sim run --scenario spike --replications 10 --plot spike.png --csv out/
    python -m sim run --config my.json --workers 5 --seed 7

``run`` prints each summary figure (with its 95% interval when replicated,
one that never leaves the figure's range: see ``replications``) beside the
textbook's value where one applies; ``--csv`` writes the first
run's tasks, attempts and time series, every run's summary and, with two or
more replications, the confidence intervals.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import os
import sys
from typing import List, Optional

from queue_system.arguments import positive

from .compare import no_theory_reason, predictions
from .model import simulate
from .replications import figure_interval, replicate
from .scenario import MAX_SAMPLES, PRESETS, Scenario, preset
from .summary import FIGURES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sim",
                                     description="Simulate the task queue with SimPy.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("scenarios", help="list the preset scenarios")
    show = sub.add_parser("show", help="print a scenario as JSON")
    run = sub.add_parser("run", help="simulate a scenario")
    for p in (show, run):
        add_scenario_options(p)
    run.add_argument("--replications", type=positive(int), default=1,
                     help="independent runs (seeds), at least 1")
    run.add_argument("--processes", type=positive(int), default=1,
                     help="run replications in parallel, at least 1")
    run.add_argument("--plot", help="write the dashboard to this PNG/SVG/PDF file")
    run.add_argument("--csv", help="write CSV tables into this directory "
                                   "(confidence_intervals.csv with 2 or more replications)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    live = sub.add_parser("live", help="play a scenario on a real server and real workers")
    add_scenario_options(live)
    live.add_argument("--speedup", type=positive(float), default=30.0,
                      help="play every duration this many times faster (default 30: an hour "
                           "in two minutes)")
    live.add_argument("--url", help="drive a server already running (default: start one on "
                                    "127.0.0.1); the scenario's lease and backoff are then the "
                                    "server's own")
    live.add_argument("--folder", help="where the run's database and logs go (default: a "
                                       "temporary folder)")
    live.add_argument("--plot", help="write the live run's dashboard to this PNG/SVG/PDF file")
    live.add_argument("--csv", help="write the live run's tables into this directory")
    live.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def add_scenario_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default="steady", help="a preset name (see 'scenarios')")
    p.add_argument("--config", help="a JSON file describing the scenario (may name a preset)")
    p.add_argument("--workers", type=int, help="override the number of workers")
    p.add_argument("--duration", type=float, help="override the simulated seconds")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument("--failure-p", type=float, help="override the failure probability")


def load_scenario(args) -> Scenario:
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            try:
                scenario = Scenario.from_json(f.read())
            except ValueError as e:  # bad JSON, or a bad field: say which file
                raise ValueError(f"{args.config}: {e}") from None
    else:
        scenario = preset(args.scenario)
    changes = {"workers": args.workers, "duration": args.duration, "seed": args.seed,
               "failure_p": args.failure_p}
    return scenario.replace(**{k: v for k, v in changes.items() if v is not None})


def strict_json(value):
    """``value`` ready for strict JSON: numpy numbers as Python ones, NaN and infinity as
    None (null). JSON has no NaN: ``json.dump`` would write the bare word NaN, which
    strict readers (and browsers) refuse."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value  # strings, None, True
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value) if math.isfinite(value) else None


def cmd_scenarios(out) -> None:
    width = max(len(n) for n in PRESETS)
    for name, scenario in PRESETS.items():
        print(f"{name:<{width}}  {scenario.description}", file=out)


def cmd_run(args, out) -> int:
    scenario = load_scenario(args)
    theory = predictions(scenario)
    reps = replicate(scenario, args.replications, processes=args.processes,
                     keep=False) if args.replications > 1 else None
    # The first seed's full run: for the plots and the per-task tables.
    first = simulate(scenario)
    if len(first.timeseries) > MAX_SAMPLES:  # only a run without a duration gets this far
        print(f"note: the time series stops at {first.timeseries['time'].iloc[-1]:g} s of "
              f"{first.end:g} s ({MAX_SAMPLES:,} samples): raise sample_every to cover the run",
              file=sys.stderr)
    rows = {}
    for name in FIGURES:
        if reps is not None:
            rows[name] = figure_interval(name, reps.runs[name])
        else:
            rows[name] = {"mean": first.summary[name], "low": math.nan, "high": math.nan}
        rows[name]["theory"] = theory.get(name, math.nan)
        rows[name]["unit"] = FIGURES[name]
    note = no_theory_reason(scenario)
    if args.json:
        report = {"scenario": scenario.name, "replications": args.replications,
                  "figures": rows, "theory_note": note}
        json.dump(strict_json(report), out, indent=2, allow_nan=False)
        print(file=out)
    else:
        print(f"Scenario '{scenario.name}': {scenario.description}", file=out)
        print(f"{args.replications} run(s) from seed {scenario.seed}, "
              f"{first.end:.0f} s simulated, warm-up {scenario.warmup:.0f} s", file=out)
        if note:
            print(note, file=out)
        print(f"{'figure':<22}{'simulation':>12}{'95% interval':>24}{'theory':>10}  unit", file=out)
        for name, row in rows.items():
            interval = "" if math.isnan(row["low"]) else f"[{row['low']:.4g}, {row['high']:.4g}]"
            th = "" if math.isnan(row["theory"]) else f"{row['theory']:.4g}"
            print(f"{name:<22}{row['mean']:>12.4g}{interval:>24}{th:>10}  {row['unit']}", file=out)
    if args.csv:
        os.makedirs(args.csv, exist_ok=True)
        first.tasks.to_csv(os.path.join(args.csv, "tasks.csv"))
        first.attempts.to_csv(os.path.join(args.csv, "attempts.csv"), index=False)
        first.timeseries.to_csv(os.path.join(args.csv, "timeseries.csv"), index=False)
        runs = reps.runs if reps is not None else None
        if runs is None:
            import pandas as pd
            runs = pd.DataFrame([first.summary], index=pd.Index([first.seed], name="seed"))
        runs.to_csv(os.path.join(args.csv, "summary.csv"))
        if reps is not None:  # one run has no interval: the file would be all blanks
            reps.ci().to_csv(os.path.join(args.csv, "confidence_intervals.csv"))
        print(f"tables written to {args.csv}", file=out if not args.json else sys.stderr)
    if args.plot:
        from .plots import dashboard  # matplotlib only when a plot is asked for
        dashboard(first, theory, args.plot, reps)
        print(f"plot written to {args.plot}", file=out if not args.json else sys.stderr)
    return 0


def cmd_live(args, out) -> int:
    from .live import run_live  # starts processes: only when asked for
    scenario = load_scenario(args)
    token = os.environ.get("QUEUE_WORKER_TOKEN") or os.environ.get("QUEUE_TOKEN") or None
    print(f"Playing '{scenario.name}' live, {args.speedup:g} times faster: "
          f"{scenario.duration / args.speedup:.0f} s", file=sys.stderr)
    result = run_live(scenario, args.speedup, url=args.url, token=token, folder=args.folder,
                      progress=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        json.dump(strict_json({"scenario": scenario.name, "speedup": args.speedup,
                               "figures": result.summary}), out, indent=2, allow_nan=False)
        print(file=out)
    else:
        print(f"Scenario '{scenario.name}' played live, {args.speedup:g} times faster; "
              "figures in the scenario's own time", file=out)
        print(f"{'figure':<22}{'live':>12}  unit", file=out)
        for name, unit in FIGURES.items():
            print(f"{name:<22}{result.summary[name]:>12.4g}  {unit}", file=out)
    write_tables(result, args, out)
    if args.plot:
        from .plots import dashboard
        dashboard(result, predictions(scenario), args.plot)
        print(f"plot written to {args.plot}", file=out if not args.json else sys.stderr)
    return 0


def write_tables(result, args, out) -> None:
    """The run's tasks, attempts, time series and summary as CSV files in ``args.csv``."""
    if not args.csv:
        return
    import pandas as pd
    os.makedirs(args.csv, exist_ok=True)
    result.tasks.to_csv(os.path.join(args.csv, "tasks.csv"))
    result.attempts.to_csv(os.path.join(args.csv, "attempts.csv"), index=False)
    result.timeseries.to_csv(os.path.join(args.csv, "timeseries.csv"), index=False)
    pd.DataFrame([result.summary], index=pd.Index([result.seed], name="seed")).to_csv(
        os.path.join(args.csv, "summary.csv"))
    print(f"tables written to {args.csv}", file=out if not args.json else sys.stderr)


def main(argv: Optional[List[str]] = None, out=None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        if args.command == "scenarios":
            cmd_scenarios(out)
            return 0
        if args.command == "show":
            print(load_scenario(args).to_json(), file=out)
            return 0
        if args.command == "live":
            return cmd_live(args, out)
        return cmd_run(args, out)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
