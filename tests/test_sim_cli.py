"""The command line: list presets, run with replications, write CSV and plots."""

import io
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from sim.cli import main
from sim.presets import PRESETS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*argv):
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_scenarios_lists_the_presets():
    result = subprocess.run([sys.executable, "-m", "sim", "scenarios"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    for name in ("steady", "spike", "worker-crash", "priorities", "scheduled"):
        assert name in result.stdout
    assert len(result.stdout.strip().splitlines()) == len(PRESETS)


def test_run_writes_tables_and_plot(tmp_path):
    plot, csv = tmp_path / "spike.png", tmp_path / "out"
    code, text = run_cli("run", "--scenario", "spike", "--replications", "3", "--duration", "2400",
                         "--plot", str(plot), "--csv", str(csv))
    assert code == 0
    assert "mean_wait" in text and "95% interval" in text
    with open(plot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    tasks = pd.read_csv(csv / "tasks.csv")
    summary = pd.read_csv(csv / "summary.csv")
    assert len(summary) == 3 and len(tasks) == summary["created"].iloc[0]
    assert {"type", "priority", "created", "start_1", "end_1", "attempts", "status", "wait",
            "time_in_system"} <= set(tasks.columns)
    assert {"time", "queue_length", "in_progress", "busy_workers", "dead_letter"} <= \
        set(pd.read_csv(csv / "timeseries.csv").columns)
    assert (csv / "confidence_intervals.csv").exists() and (csv / "attempts.csv").exists()


def test_run_json_and_config_file(tmp_path):
    config = tmp_path / "s.json"
    config.write_text(json.dumps({"preset": "steady", "workers": 4, "duration": 600, "warmup": 60}))
    code, text = run_cli("run", "--config", str(config), "--json", "--seed", "3")
    assert code == 0
    data = json.loads(text)
    assert data["scenario"] == "steady"
    util = data["figures"]["utilisation"]
    assert 0 < util["mean"] < 1 and util["theory"] == 1.2 * 2 / 4


def test_show_prints_loadable_json():
    code, text = run_cli("show", "--scenario", "worker-crash")
    assert code == 0 and json.loads(text)["failure_p"] == 0.2


def test_unknown_preset_is_an_error():
    code, _ = run_cli("run", "--scenario", "nope")
    assert code == 2


# -- bad input: a one-line error naming the problem, exit 2, never a traceback or a hang --

def run_process(*argv, timeout=60):
    """The real command, in its own process: a hang fails the test (timeout), not the suite."""
    return subprocess.run([sys.executable, "-m", "sim", *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


class Ran:
    """What a run of the command gave: exit status and its two outputs."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_in_process(capsys, *argv):
    """``main`` called directly (faster than a process); argparse's exit is caught too."""
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)


def refused(result, *words):
    """Exit 2, one line on stderr naming the problem (each of ``words``), no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and "error" in lines[-1], result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    return result.stderr


def write_config(tmp_path, data):
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_a_run_by_task_count_without_a_duration_runs_and_says_why_theory_is_missing(tmp_path):
    # Poisson: the rate is known without a horizon, so theory applies.
    config = write_config(tmp_path, {"duration": None, "max_tasks": 100})
    result = run_process("run", "--config", config, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["figures"]["arrival_rate"]["theory"] == 1.0 and data["theory_note"] is None
    # A changing rate: no average without a horizon; the reason is shown.
    config = write_config(tmp_path, {"duration": None, "max_tasks": 100, "producers": [
        {"arrivals": {"piecewise": [[0, 1], [30, 2]]}}]})
    result = run_process("run", "--config", config)
    assert result.returncode == 0, result.stderr
    assert "no theory" in result.stdout and "no duration" in result.stdout


@pytest.mark.parametrize("data,words", [
    ({"workers": "3"}, ["workers", "'3'"]),
    ({"workers": 2.5}, ["workers", "whole number"]),
    ({"workers": True}, ["workers"]),
    ({"failure_p": "0.2"}, ["failure_p"]),
    ({"max_retries": 0}, ["max_retries"]),
    ({"lease_seconds": 0}, ["lease_seconds"]),
    ({"seed": "x"}, ["seed"]),
    ({"wrokers": 3}, ["wrokers"]),
    ([1, 2], ["JSON object"]),
    ({"preset": ["steady"]}, ["preset"]),
    ({"producers": [{"bogus": 1}]}, ["producers[0]", "bogus"]),
    ({"producers": "web"}, ["producers", "JSON array"]),
    ({"producers": [{"mix": [{"type": "a", "bogus": 1}]}]}, ["producers[0]", "mix[0]", "bogus"]),
    ({"producers": [{"mix": [{"type": ""}]}]}, ["mix[0]", "type"]),
    ({"producers": [{"mix": [{"share": "1"}]}]}, ["mix[0]", "share"]),
    ({"producers": [{"mix": [{"service": {"uniform": [3, 1]}}]}]}, ["service", "uniform"]),
    ({"producers": [{"mix": [{"service": {"exponential": [2]}}]}]}, ["service", "exponential"]),
    ({"producers": [{"mix": [{"delay": {"gamma": 1}}]}]}, ["delay", "gamma"]),
    ({"backoff": {"kind": "fixed", "bogus": 1}}, ["backoff", "bogus"]),
    ({"backoff": {"kind": "fixed", "base": "1"}}, ["backoff", "base"]),
    ({"backoff": 5}, ["backoff"]),
    ({"producers": [{"arrivals": {"bogus": 1}}]}, ["arrivals", "bogus"]),
    ({"producers": [{"arrivals": {"poisson": "2"}}]}, ["arrivals", "poisson"]),
    ({"producers": [{"arrivals": {"poisson": -1}}]}, ["arrivals", "poisson"]),
    ({"producers": [{"arrivals": {"piecewise": [[0]]}}]}, ["piecewise", "[0]"]),
    ({"producers": [{"arrivals": {"piecewise": 5}}]}, ["piecewise"]),
    ({"producers": [{"arrivals": {"piecewise": [[0, 1], [0, 2]]}}]}, ["piecewise", "increase"]),
    ({"producers": [{"arrivals": {"recorded": [1, "2"]}}]}, ["recorded"]),
    ({"producers": [{"arrivals": {"recorded": [-1, 2]}}]}, ["recorded"]),
])
def test_a_mistyped_or_misspelt_scenario_field_is_named(tmp_path, capsys, data, words):
    refused(run_in_process(capsys, "run", "--config", write_config(tmp_path, data)), *words)


def test_bad_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{workers: 3}")
    refused(run_process("run", "--config", str(path)), "broken.json")


@pytest.mark.parametrize("argv,words", [
    (["--workers", "100000"], ["workers", "10,000"]),
    (["--workers", "0"], ["workers"]),
    (["--duration", "inf"], ["duration", "finite"]),
    (["--duration", "nan"], ["duration", "finite"]),
    (["--failure-p", "nan"], ["failure_p"]),
])
def test_out_of_range_overrides_are_refused(capsys, argv, words):
    refused(run_in_process(capsys, "run", "--scenario", "steady", *argv), *words)


def test_absurd_numbers_are_refused_instead_of_hanging(tmp_path):
    text = refused(run_process("run", "--config", write_config(tmp_path, {"sample_every": 1e-9})),
                   "sample_every")
    assert "0.0036" in text  # the smallest step allowed over the default 3600 s
    refused(run_process("run", "--config", write_config(
        tmp_path, {"producers": [{"arrivals": {"poisson": 1e9}}]})), "tasks")
    refused(run_process("run", "--config", write_config(tmp_path, {"crash_rate": 1e9})), "crash")


def test_a_rate_that_falls_to_zero_for_good_ends_the_arrivals(tmp_path):
    # Thinning used to spin forever once the last segment's rate was zero.
    for ending in ({"duration": 100}, {"duration": None, "max_tasks": 1000}):
        config = write_config(tmp_path, {"producers": [
            {"arrivals": {"piecewise": [[0, 1], [10, 0]]}}], **ending})
        result = run_process("run", "--config", config, "--json", timeout=30)
        assert result.returncode == 0, result.stderr
        assert 0 < json.loads(result.stdout)["figures"]["arrival_rate"]["mean"] < 10


def test_a_run_without_a_duration_keeps_its_time_series_bounded(tmp_path):
    config = write_config(tmp_path, {"duration": None, "max_tasks": 50, "sample_every": 1e-9})
    result = run_process("run", "--config", config, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "time series stops" in result.stderr and "sample_every" in result.stderr


@pytest.mark.parametrize("option,value", [("--replications", "0"), ("--replications", "-3"),
                                          ("--processes", "0"), ("--processes", "-1"),
                                          ("--replications", "two")])
def test_replications_and_processes_must_be_positive(capsys, option, value):
    result = run_in_process(capsys, "run", "--scenario", "steady", option, value)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert option in result.stderr


def no_nan(constant):
    raise AssertionError(f"not strict JSON: {constant}")


def test_json_output_is_strict_with_null_for_missing_values():
    # One run: no interval; the overload preset (a capacity): no theory for most figures.
    for argv in (["--scenario", "overload"], ["--scenario", "steady", "--replications", "2"]):
        code, text = run_cli("run", *argv, "--duration", "600", "--json")
        assert code == 0
        data = json.loads(text, parse_constant=no_nan)
        assert any(row["theory"] is None for row in data["figures"].values())
    assert data["figures"]["mean_wait"]["low"] is not None  # two runs: an interval
    code, text = run_cli("run", "--scenario", "overload", "--duration", "600", "--json")
    assert json.loads(text, parse_constant=no_nan)["figures"]["mean_wait"]["low"] is None


def test_confidence_intervals_csv_only_with_several_replications(tmp_path):
    # As sim/README.md says: one run has no interval, so no such file.
    code, _ = run_cli("run", "--scenario", "overload", "--duration", "300", "--csv", str(tmp_path / "one"))
    assert code == 0 and (tmp_path / "one" / "summary.csv").exists()
    assert not (tmp_path / "one" / "confidence_intervals.csv").exists()
    code, _ = run_cli("run", "--scenario", "overload", "--duration", "300", "--replications", "2",
                      "--csv", str(tmp_path / "two"))
    assert code == 0 and (tmp_path / "two" / "confidence_intervals.csv").exists()
    with open(os.path.join(ROOT, "sim", "README.md"), encoding="utf-8") as f:
        assert "`confidence_intervals.csv`, only with `--replications` 2 or more" in f.read()
