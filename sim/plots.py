"""Plots: what happened, drawn so a student sees it at a glance.

Like the dashboard on an operations screen: the queue length and busy
workers over time (with the traffic spike shaded), how long tasks of each
priority waited, how much work got done and how busy the workers were,
and the simulation's figures set beside the textbook's. Every axis says
its unit and every title says what is shown. Plots are written to files
(the ``Agg`` backend): no screen needed.
"""

from __future__ import annotations

from typing import Dict, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .model import Result  # noqa: E402
from .replications import Replications  # noqa: E402

PRIORITY_COLOURS = {"high": "tab:red", "normal": "tab:blue", "low": "tab:green"}


def _minutes(seconds):
    return np.asarray(seconds) / 60.0


def _shade_spikes(ax, result: Result) -> None:
    for i, (start, end) in enumerate(result.scenario.busy_windows()):
        ax.axvspan(start / 60, min(end, result.end) / 60, color="orange", alpha=0.15,
                   label="traffic spike" if i == 0 else None)
    if result.scenario.warmup > 0:
        ax.axvspan(0, result.scenario.warmup / 60, color="grey", alpha=0.12, label="warm-up (ignored)")


def plot_queue(result: Result, ax) -> None:
    """Queue length and busy workers over time, spike shaded."""
    ts = result.timeseries
    t = _minutes(ts["time"])
    ax.step(t, ts["queue_length"], where="post", color="tab:blue", label="tasks waiting (pending)")
    if ts["scheduled"].any():
        ax.step(t, ts["scheduled"], where="post", color="tab:purple", alpha=0.7,
                label="tasks scheduled / in backoff")
    ax.set_xlabel("simulated time (minutes)")
    ax.set_ylabel("tasks in the queue")
    ax2 = ax.twinx()
    # Busy workers jump between 0 and c every few seconds: a one-minute average reads better.
    step = float(np.median(np.diff(ts["time"]))) if len(ts) > 1 else 60.0
    window = max(1, int(round(60.0 / step)))
    busy = ts["busy_workers"].rolling(window, min_periods=1).mean()
    ax2.plot(t, busy, color="tab:orange", lw=1.2, label="busy workers (1-minute average)")
    ax2.set_ylabel("busy workers")
    ax2.set_ylim(0, result.scenario.workers * 1.25 + 0.5)
    crashes = result.attempts.loc[result.attempts["outcome"] == "crashed", "end"]
    if len(crashes):
        # A crash mid-task: its task waits for the lease to end before anyone retries it.
        ax.plot(_minutes(crashes), np.zeros(len(crashes)), "x", color="red", ms=7,
                label="worker crashed holding a task")
    _shade_spikes(ax, result)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right", fontsize=8)
    ax.set_title("Queue length and busy workers over time")


def plot_waits(result: Result, ax) -> None:
    """Distribution of waits per priority, as cumulative curves (what share waited at most x)."""
    tasks = result.tasks
    done = tasks[(tasks["created"] >= result.scenario.warmup) & tasks["wait"].notna()]
    for priority, group in done.groupby("priority", observed=True):
        waits = np.sort(group["wait"].to_numpy())
        if len(waits) == 0:
            continue
        share = np.arange(1, len(waits) + 1) / len(waits)
        ax.step(waits, share, where="post", color=PRIORITY_COLOURS[priority],
                label=f"{priority} (n={len(waits):,}, mean {waits.mean():.1f} s)")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("wait before completion or dead letter (s, log scale above 1 s)")
    ax.set_ylabel("share of tasks that waited at most x")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Wait-time distribution per priority")


def plot_throughput(result: Result, ax, bins: int = 60) -> None:
    """Completed tasks per second and worker utilisation, per time bin."""
    end = result.end
    edges = np.linspace(0, end, bins + 1)
    width = edges[1] - edges[0]
    tasks = result.tasks
    done = tasks.loc[tasks["status"] == "completed", "finished"].to_numpy()
    counts, _ = np.histogram(done, edges)
    centres = _minutes((edges[:-1] + edges[1:]) / 2)
    ax.bar(centres, counts / width, width=width / 60 * 0.9, color="tab:green", alpha=0.6,
           label="throughput (completed tasks/s)")
    ax.set_xlabel("simulated time (minutes)")
    ax.set_ylabel("throughput (tasks/s)")
    # Busy time per bin from the attempt intervals, divided by the workers' capacity.
    a = result.attempts
    starts, ends = a["start"].to_numpy(), a["end"].to_numpy()
    busy = np.array([np.clip(np.minimum(ends, hi) - np.maximum(starts, lo), 0, None).sum()
                     for lo, hi in zip(edges[:-1], edges[1:])])
    ax2 = ax.twinx()
    ax2.plot(centres, 100 * busy / (result.scenario.workers * width), color="black", lw=1.2,
             label="utilisation (%)")
    ax2.set_ylabel("worker utilisation (%)")
    ax2.set_ylim(0, 105)
    _shade_spikes(ax, result)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="lower right", fontsize=8)
    ax.set_title("Throughput and utilisation over time")


def plot_theory(summary: Dict[str, float], theory: Dict[str, float], ax,
                ci: Optional["object"] = None) -> None:
    """Bars: simulation (with its 95% interval if replicated) beside theory, per figure."""
    # A ratio to zero means nothing (no failures: no dead letter): such figures are left out.
    names = [n for n in theory if n in summary and theory[n]]
    if not names:
        ax.text(0.5, 0.5, "no textbook formula applies to this scenario",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    x = np.arange(len(names))
    sim_values = [summary[n] for n in names]
    errors = None
    if ci is not None:
        errors = [ci.loc[n, "half_width"] if n in ci.index else 0 for n in names]
    # Figures have different units: show each as a ratio to its theoretical value.
    ratio = [s / theory[n] if theory[n] else np.nan for s, n in zip(sim_values, names)]
    err = None if errors is None else [e / theory[n] if theory[n] else 0 for e, n in zip(errors, names)]
    ax.bar(x - 0.2, [1.0] * len(names), 0.4, color="lightgrey", label="theory (= 1)")
    ax.bar(x + 0.2, ratio, 0.4, yerr=err, capsize=3, color="tab:blue",
           label="simulation" + (" (95% interval)" if err else ""))
    for xi, n, s in zip(x, names, sim_values):
        ax.text(xi, 0.02, f"th {theory[n]:.3g}\nsim {s:.3g}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels([n.replace("_", " ") for n in names], rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("simulation / theory (ratio, 1 = agreement)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Simulation against theory")


def dashboard(result: Result, theory: Dict[str, float], path: str,
              replications: Optional[Replications] = None) -> str:
    """The four plots on one page, written to ``path`` (PNG, SVG or PDF by its extension)."""
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    plot_queue(result, axes[0, 0])
    plot_waits(result, axes[0, 1])
    plot_throughput(result, axes[1, 0])
    summary = result.summary
    ci = None
    if replications is not None and len(replications.seeds) > 1:
        ci = replications.ci()
        summary = {n: ci.loc[n, "mean"] for n in ci.index}
    plot_theory(summary, theory, axes[1, 1], ci)
    reps = f", {len(replications.seeds)} replications" if replications is not None else ""
    fig.suptitle(f"Scenario '{result.scenario.name}': {result.scenario.workers} workers, "
                 f"{len(result.tasks):,} tasks in {result.end / 60:.0f} simulated minutes "
                 f"(seed {result.seed}{reps})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
