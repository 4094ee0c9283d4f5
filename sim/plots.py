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
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402
from matplotlib.transforms import ScaledTranslation  # noqa: E402
import numpy as np  # noqa: E402

from .model import Result  # noqa: E402
from .replications import Replications  # noqa: E402
from .summary import FIGURES as FIGURE_UNITS  # noqa: E402

PRIORITY_COLOURS = {"high": "tab:red", "normal": "tab:blue", "low": "tab:green"}
WAIT_TICKS = [0, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]


def _minutes(seconds):
    return np.asarray(seconds) / 60.0


def _shade_spikes(ax, result: Result) -> None:
    for i, (start, end) in enumerate(result.scenario.busy_windows()):
        ax.axvspan(start / 60, min(end, result.end) / 60, color="orange", alpha=0.15,
                   label="traffic spike" if i == 0 else None)
    if result.scenario.warmup > 0:
        ax.axvspan(0, result.scenario.warmup / 60, color="grey", alpha=0.12, label="warm-up (ignored)")


def below_the_axes(ax) -> dict:
    """Legend placement half an inch under the axes (below the tick labels and the
    axis label), whatever the figure's size: a legend there never hides the data."""
    offset = ScaledTranslation(0, -0.5, ax.figure.dpi_scale_trans)
    return {"loc": "upper center", "bbox_to_anchor": (0.5, 0.0),
            "bbox_transform": ax.transAxes + offset}


def _legend_below(ax, *others) -> None:
    """One legend for ``ax`` and its twins, under the plot: it never hides the data."""
    handles, labels = ax.get_legend_handles_labels()
    for other in others:
        more = other.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, ncol=min(len(labels), 3), fontsize=8, frameon=False,
              **below_the_axes(ax))


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
    _legend_below(ax, ax2)
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
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
    longest = float(done["wait"].max()) if len(done) else 1.0
    ticks = [t for t in WAIT_TICKS if t <= max(longest * 1.5, 1.0)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(0, max(longest * 1.1, 1.0))
    ax.set_xlabel("wait before completion or dead letter (s; linear to 1 s, logarithmic above)")
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
    _legend_below(ax, ax2)
    ax.set_title("Throughput and utilisation over time")


def plot_theory(summary: Dict[str, float], theory: Dict[str, float], ax,
                ci: Optional["object"] = None) -> None:
    """Per figure, how far the simulation is from theory, in % of the theoretical value.

    Figures have different units (seconds, tasks, fractions), so each is shown as
    (simulation - theory) / theory: 0 is perfect agreement, and the error bar is the
    simulation's 95% interval when it was replicated. Each bar is labelled with both
    values in their own unit."""
    # A difference relative to zero means nothing (no failures: no dead letter): left out.
    names = [n for n in theory if n in summary and theory[n]]
    if not names:
        ax.text(0.5, 0.5, "no textbook formula applies to this scenario",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    y = np.arange(len(names))
    gap = np.array([100 * (summary[n] / theory[n] - 1) for n in names])
    err = None
    if ci is not None:
        # From the interval's own ends: it need not be centred on the mean (see replications).
        ends = np.array([[100 * (ci.loc[n, end] / theory[n] - 1) if n in ci.index else g
                          for n, g in zip(names, gap)] for end in ("low", "high")])
        err = np.nan_to_num(np.abs(ends - gap))
    ax.barh(y, gap, xerr=err, capsize=3, color="tab:blue", alpha=0.7,
            label="simulation" + (" (95% interval)" if err is not None else ""))
    ax.axvline(0, color="black", lw=1, label="theory")
    reach = max(5.0, float(np.nanmax(np.abs(gap) + (err.max(axis=0) if err is not None else 0))) * 1.3)
    ax.set_xlim(-reach, reach)
    labels = []
    for n in names:
        unit = "" if FIGURE_UNITS.get(n) == "fraction" else " " + FIGURE_UNITS.get(n, "")
        labels.append(f"{n.replace('_', ' ')}\n(theory {theory[n]:.3g}, sim {summary[n]:.3g}{unit})")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("simulation - theory (% of the theoretical value)")
    ax.legend(ncol=2, fontsize=8, frameon=False, **below_the_axes(ax))
    ax.set_title("Simulation against theory")


OUTCOME_COLOURS = {"completed": "tab:green", "failed": "tab:orange", "crashed": "tab:red",
                   "unfinished": "lightgrey"}


def plot_attempts(attempts, ax, start: Optional[float] = None, end: Optional[float] = None,
                  label_tasks: bool = False) -> None:
    """A timeline: each attempt is a bar on its worker's line, coloured by how it ended.

    ``attempts`` has the columns of ``Result.attempts`` (task, worker, start, end,
    outcome; times in seconds), from the simulation or from a live run. A crashed
    attempt ends with a red cross, and a dotted arrow joins it to the same task's
    next attempt: the gap is the time the queue waited for the lease to run out.
    ``start`` and ``end`` zoom in on a window of time."""
    a = attempts
    if start is not None:
        a = a[a["end"] >= start]
    if end is not None:
        a = a[a["start"] <= end]
    workers = sorted(a["worker"].unique(), key=str)
    row = {w: i for i, w in enumerate(workers)}
    for outcome, group in a.groupby("outcome", observed=True):
        ax.barh([row[w] for w in group["worker"]], group["end"] - group["start"],
                left=group["start"], height=0.6, color=OUTCOME_COLOURS.get(outcome, "tab:blue"),
                edgecolor="white", linewidth=0.5, label=f"attempt {outcome}")
    if label_tasks:
        for r in a.itertuples():
            ax.text((r.start + r.end) / 2, row[r.worker], str(r.task), ha="center",
                    va="center", fontsize=7)
    crashed = a[a["outcome"] == "crashed"]
    if len(crashed):
        ax.plot(crashed["end"], [row[w] for w in crashed["worker"]], "x", color="red", ms=9,
                mew=2, label="worker crashed")
    for r in crashed.itertuples():
        later = attempts[(attempts["task"] == r.task) & (attempts["start"] > r.start)]
        later = later.sort_values("start")
        if len(later) and later["worker"].iloc[0] in row:
            nxt = later.iloc[0]
            ax.annotate("", xy=(nxt["start"], row[nxt["worker"]]), xytext=(r.end, row[r.worker]),
                        arrowprops=dict(arrowstyle="->", linestyle=":", color="red"))
            ax.text((r.end + nxt["start"]) / 2, (row[r.worker] + row[nxt["worker"]]) / 2,
                    f"{nxt['start'] - r.start:.0f} s from claim to retry", color="red",
                    ha="center", va="center", fontsize=8,
                    bbox=dict(facecolor="white", edgecolor="red", alpha=0.9, pad=2))
    ax.set_yticks(range(len(workers)))
    ax.set_yticklabels([w if isinstance(w, str) else f"worker-{w + 1}" for w in workers])
    ax.set_ylim(len(workers) - 0.4, -0.6)
    if start is not None or end is not None:
        ax.set_xlim(start if start is not None else a["start"].min(),
                    end if end is not None else a["end"].max())
    ax.set_xlabel("time (s)")
    ax.set_title("Who ran which attempt, and when")
    ax.legend(ncol=5, fontsize=8, frameon=False, **below_the_axes(ax))


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
