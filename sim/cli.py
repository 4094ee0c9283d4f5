"""The command line: run a scenario, see the figures, keep the plots and tables.

A lab bench for the lesson::

    python -m sim scenarios                       # the presets, one line each
    python -m sim show --scenario spike           # a preset as JSON, to copy and edit
    python -m sim run --scenario spike --replications 10 --plot spike.png --csv out/
    python -m sim run --config my.json --workers 5 --seed 7
    python -m sim live --scenario spike --speedup 30   # the same, on a real server and workers

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
import statistics
import sys
from typing import List, Optional

from queue_system.arguments import positive
from queue_system.client import ApiError, ServerUnreachable

from .compare import no_theory_reason, predictions
from .model import simulate
from .replications import figure_interval, replicate
from .presets import PRESETS, preset
from .scenario import MAX_SAMPLES, Scenario
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
        p.add_argument("--trace", help="a folder written by 'live --csv' or 'run --csv': play "
                                       "its arrivals, with service times and failures fitted "
                                       "from its attempts (what if...?)")
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
    live.add_argument("--url", help="drive a server already running, and otherwise idle "
                                    "(default: start one on 127.0.0.1); its backoff and "
                                    "capacity are then its own, the lease the scenario's")
    live.add_argument("--folder", help="where the run's database and logs go (default: a "
                                       "temporary folder)")
    live.add_argument("--plot", help="write queue length and busy workers over time, the "
                                     "simulation's band behind the live run, to this "
                                     "PNG/SVG/PDF file")
    live.add_argument("--csv", help="write the live run's tables and comparison.csv into this "
                                    "directory")
    live.add_argument("--replications", type=positive(int), default=20,
                      help="simulated runs to predict from (default 20)")
    live.add_argument("--claim-ms", type=float, default=None,
                      help="a live claim's round trip in ms, for the calibrated prediction "
                           "(default: the value measured on the project machine, 4.4 ms)")
    live.add_argument("--calibrate", choices=("defaults", "run"), default="defaults",
                      help="the live costs the prediction adds: 'defaults', measured on the "
                           "project machine (or --claim-ms), or 'run', as this live run "
                           "measured them on this machine (its claim round trip, its "
                           "restarts' start-up)")
    live.add_argument("--json", action="store_true", help="print the comparison as JSON")
    return parser


def add_scenario_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default="steady", help="a preset name (see 'scenarios')")
    p.add_argument("--config", help="a JSON file describing the scenario (may name a preset)")
    p.add_argument("--workers", type=int, help="override the number of workers")
    p.add_argument("--duration", type=float, help="override the simulated seconds")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument("--failure-p", type=float, help="override the failure probability")
    p.add_argument("--lease", type=float, help="override the lease, in seconds")


def load_scenario(args) -> Scenario:
    if getattr(args, "trace", None):
        from .trace import read_trace, scenario_from_trace
        tasks, attempts, base, end = read_trace(args.trace)
        if base is None:  # no scenario.json beside the trace: the one named, or steady
            base = load_base(args)
        return apply_overrides(scenario_from_trace(tasks, attempts, base, end), args)
    return apply_overrides(load_base(args), args)


def load_base(args) -> Scenario:
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            try:
                scenario = Scenario.from_json(f.read())
            except ValueError as e:  # bad JSON, or a bad field: say which file
                raise ValueError(f"{args.config}: {e}") from None
    else:
        scenario = preset(args.scenario)
    return scenario


def apply_overrides(scenario: Scenario, args) -> Scenario:
    changes = {"workers": args.workers, "duration": args.duration, "seed": args.seed,
               "failure_p": args.failure_p, "lease_seconds": args.lease}
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
        write_tables(first, args.csv, runs=reps.runs if reps is not None else None)
        if reps is not None:  # one run has no interval: the file would be all blanks
            reps.ci().to_csv(os.path.join(args.csv, "confidence_intervals.csv"))
        print(f"tables written to {args.csv}", file=out if not args.json else sys.stderr)
    if args.plot:
        from .plots import dashboard  # matplotlib only when a plot is asked for
        dashboard(first, theory, args.plot, reps)
        print(f"plot written to {args.plot}", file=out if not args.json else sys.stderr)
    return 0


def cmd_live(args, out) -> int:
    from .calibration import (LIVE_CLAIM_SECONDS, LIVE_RESTART_SECONDS, calibrated,
                              costs_of_run, predict)
    from .live import LiveRun, check_playable
    from .verify import claim_round_trip, compare, format_comparison
    scenario = load_scenario(args)
    check_playable(scenario, args.speedup)
    if args.claim_ms is not None and args.calibrate == "run":
        raise ValueError("--claim-ms and --calibrate run both say what a claim costs: give one")
    claim = LIVE_CLAIM_SECONDS if args.claim_ms is None else args.claim_ms / 1000
    if not (math.isfinite(claim) and claim >= 0):
        raise ValueError("--claim-ms must be a number of milliseconds, zero or more")
    if args.replications < 2:
        raise ValueError("--replications must be at least 2: one run has no interval")
    calibrated(scenario, args.speedup, claim)  # checked now, not after the run
    if args.plot:
        check_plot_path(args.plot)
    token = os.environ.get("QUEUE_WORKER_TOKEN") or os.environ.get("QUEUE_TOKEN") or None
    print(f"Playing '{scenario.name}' live, {args.speedup:g} times faster: "
          f"{scenario.duration / args.speedup:.0f} s", file=sys.stderr)
    runner = LiveRun(scenario, args.speedup, url=args.url, token=token, folder=args.folder,
                     progress=lambda line: print(line, file=sys.stderr, flush=True))
    live = runner.run()
    measured, restarts = claim_round_trip(live) / args.speedup, runner.restart_seconds
    restart = LIVE_RESTART_SECONDS
    if args.calibrate == "run":
        claim, restart = costs_of_run(live, args.speedup, restarts)
    # Where each cost comes from: the run only where it showed it (costs_of_run keeps the
    # default for a cost the run never showed).
    claim_from = ("run" if args.calibrate == "run" and math.isfinite(measured)
                  else "claim-ms" if args.claim_ms is not None else "default")
    restart_from = "run" if args.calibrate == "run" and restarts else "default"
    described = {"run": "measured by this run", "claim-ms": "--claim-ms",
                 "default": "the project machine's default"}
    print(f"Predicting from {args.replications} simulated runs...", file=sys.stderr)
    prediction = predict(scenario, args.speedup, args.replications, claim, restart,
                         keep=bool(args.plot))
    model = prediction.model
    table = compare(live.summary, prediction.calibrated.runs)
    table.insert(1, "uncalibrated", [prediction.textbook.runs[name].mean() for name in table.index])
    calibration = {"claim_from": claim_from, "claim_seconds_live": claim,
                   "claim_seconds_scenario": model.claim_seconds,
                   "claim_seconds_measured_live": measured}
    if scenario.crash_rate > 0:
        calibration.update(restart_from=restart_from, restart_seconds_live=restart,
                           restart_seconds_measured_live=(
                               statistics.median(restarts) if restarts else None))
    if args.json:
        json.dump(strict_json({"scenario": scenario.name, "speedup": args.speedup,
                               "replications": args.replications, "calibration": calibration,
                               "comparison": table.to_dict(orient="index")}),
                  out, indent=2, allow_nan=False)
        print(file=out)
    else:
        print(f"Scenario '{scenario.name}' played live {args.speedup:g} times faster, against "
              f"{args.replications} simulated runs; every figure in the scenario's time", file=out)
        seen = (f"this run measured {measured * 1000:.1f} ms" if math.isfinite(measured)
                else "no worker of this run found work waiting")
        print(f"Calibration: a claim's round trip of {claim * 1000:.1f} ms live "
              f"({described[claim_from]}), {model.claim_seconds:.3g} s of scenario time "
              f"({seen})", file=out)
        if scenario.crash_rate > 0:
            seen = (f"this run measured {statistics.median(restarts):.2f} s over {len(restarts)} "
                    "restarts" if restarts else "no restart in this run")
            print(f"             a restarted worker's start-up of {restart:.2f} s live "
                  f"({described[restart_from]}), added to the restart delay ({seen})", file=out)
        for line in format_comparison(table):
            print(line, file=out)
        print("What each cost does to the prediction (simulated means):", file=out)
        for name in ("throughput", "utilisation", "mean_wait", "p95_wait"):
            print(f"  {name:<12}" + " -> ".join(f"{label} {runs.runs[name].mean():.3g}"
                                               for label, runs in prediction.steps), file=out)
    # The calibrated scenario beside the tables: a what-if of this trace (run --trace)
    # starts from the live system's model, its claim round trip included.
    if args.csv:
        write_tables(live, args.csv, scenario=model)
        table.to_csv(os.path.join(args.csv, "comparison.csv"))
        print(f"tables written to {args.csv}", file=out if not args.json else sys.stderr)
    if args.plot:
        from .verify import plot_comparison
        plot_comparison(live, prediction.calibrated.results, args.plot)
        print(f"plot written to {args.plot}", file=out if not args.json else sys.stderr)
    return 0


def check_plot_path(path: str) -> None:
    """Refuse a plot file matplotlib cannot write, before the work that leads to it."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".png", ".svg", ".pdf"):
        raise ValueError(f"--plot {path!r}: give a .png, .svg or .pdf file")


def write_scenario(scenario: Scenario, folder: str) -> None:
    """The scenario beside its tables: a trace run again later (``--trace``) keeps its settings."""
    with open(os.path.join(folder, "scenario.json"), "w", encoding="utf-8") as f:
        f.write(scenario.to_json())


def write_tables(result, folder: str, scenario: Optional[Scenario] = None,
                 runs=None) -> None:
    """A run's tasks, attempts and time series as CSV files in ``folder``, its summary
    (or ``runs``, one summary per replication), and ``scenario`` (by default the run's)
    as ``scenario.json``."""
    import pandas as pd
    os.makedirs(folder, exist_ok=True)
    result.tasks.to_csv(os.path.join(folder, "tasks.csv"))
    result.attempts.to_csv(os.path.join(folder, "attempts.csv"), index=False)
    result.timeseries.to_csv(os.path.join(folder, "timeseries.csv"), index=False)
    if runs is None:
        runs = pd.DataFrame([result.summary], index=pd.Index([result.seed], name="seed"))
    runs.to_csv(os.path.join(folder, "summary.csv"))
    write_scenario(scenario or result.scenario, folder)


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
    except (ValueError, OSError, RuntimeError, ApiError, ServerUnreachable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
