"""What-if from a trace: a recorded run becomes a scenario (arrivals as recorded, service
times and failures fitted), on runs whose truth is known: simulated ones."""

import json
import subprocess
import sys

import numpy as np
import pytest

from sim.distributions import Dist
from sim.model import simulate
from sim.trace import fit_duration, read_trace, scenario_from_trace


def test_durations_are_fitted_by_their_mean_and_spread():
    rng = np.random.default_rng(1)
    assert fit_duration([2.0] * 50) == Dist.fixed(2.0)
    uniform = fit_duration(rng.uniform(1, 3, 20_000))
    assert uniform.kind == "uniform"
    assert uniform.a == pytest.approx(1, abs=0.03) and uniform.b == pytest.approx(3, abs=0.03)
    exponential = fit_duration(rng.exponential(2.0, 20_000))
    assert exponential.kind == "exponential" and exponential.a == pytest.approx(2, rel=0.03)
    assert fit_duration([0.0, 0.0]) == Dist.fixed(0.0)
    with pytest.raises(ValueError, match="no durations"):
        fit_duration([])


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    """A recorded run, as `run --csv` writes it: priorities, with 20% failures."""
    folder = tmp_path_factory.mktemp("trace")
    subprocess.run([sys.executable, "-m", "sim", "run", "--scenario", "priorities",
                    "--duration", "1800", "--failure-p", "0.2", "--csv", str(folder)],
                   check=True, capture_output=True, timeout=120)
    return folder


def test_a_trace_plays_its_arrivals_again_with_what_its_attempts_show(trace):
    tasks, attempts, base, end = read_trace(str(trace))
    assert base.name == "priorities" and end == 1800.0
    scenario = scenario_from_trace(tasks, attempts, base, end)
    kinds = {(k.type, k.priority): k for k in scenario.kinds()}
    assert set(kinds) == {("payment", "high"), ("email", "normal"), ("report", "low")}
    for kind in kinds.values():  # the lesson's 1-3 s, found again
        assert kind.service.kind == "uniform"
        assert kind.service.a == pytest.approx(1, abs=0.15) and kind.service.b == pytest.approx(3, abs=0.15)
    assert scenario.failure_p == pytest.approx(0.2, abs=0.03)
    assert scenario.workers == 3 and scenario.duration == 1800.0
    assert scenario.lease_seconds == base.lease_seconds and scenario.max_retries == base.max_retries
    replayed = simulate(scenario).tasks
    assert sorted(replayed["created"]) == sorted(tasks["created"])  # the same arrivals
    for (type_, priority), group in tasks.groupby(["type", "priority"], observed=True):
        mine = replayed[(replayed["type"] == type_) & (replayed["priority"] == priority)]
        assert sorted(mine["created"]) == sorted(group["created"])


def test_what_if_on_a_trace_from_the_command_line(trace):
    def waits(*argv):
        run = subprocess.run([sys.executable, "-m", "sim", "run", "--trace", str(trace),
                              "--json", *argv], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)["figures"]["mean_wait"]["mean"]
    assert waits("--workers", "6") < waits() / 3  # six workers, not three: far less waiting
    shown = subprocess.run([sys.executable, "-m", "sim", "show", "--trace", str(trace),
                            "--lease", "10"], capture_output=True, text=True, timeout=60)
    assert json.loads(shown.stdout)["lease_seconds"] == 10


def test_a_folder_that_is_no_trace_is_refused_in_one_line(tmp_path):
    (tmp_path / "tasks.csv").write_text("task,kind\n0,0\n")
    for folder, message in ((tmp_path / "none", "not a trace, tasks.csv, attempts.csv missing"),
                            (tmp_path, "attempts.csv missing")):
        run = subprocess.run([sys.executable, "-m", "sim", "run", "--trace", str(folder)],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr
    (tmp_path / "attempts.csv").write_text("task,worker\n0,0\n")
    run = subprocess.run([sys.executable, "-m", "sim", "run", "--trace", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "no column" in run.stderr and "Traceback" not in run.stderr
