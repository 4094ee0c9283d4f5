"""The live runner: a scenario played on a real server and real workers, read back as
the simulation's records (short runs: a few dozen tasks, seconds)."""

import json
import math
import subprocess
import sys

import pytest

from queue_system.backoff import Backoff
from queue_system.task import Task
from sim import records as R
from sim.calibration import calibrated, predict
from sim.live import (LiveRun, TimeScale, backoff_argument, check_playable,
                      server_arguments)
from sim.live_handlers import LiveWork
from sim.model import simulate
from sim.plan import arrival_plan
from sim.presets import preset
from sim.summary import FIGURES


def test_time_scale_goes_both_ways():
    scale = TimeScale(30.0, origin=1000.0)
    assert scale.live_seconds(60) == 2.0
    assert scale.live_at(600) == 1020.0
    assert scale.scenario_time(1020.0) == pytest.approx(600)
    assert scale.scenario_time(scale.live_at(123.4)) == pytest.approx(123.4)


def test_the_calibrated_model_pays_the_live_costs_in_scenario_time():
    crash = calibrated(preset("worker-crash"), 30, claim_seconds=0.004, restart_seconds=0.3)
    assert crash.claim_seconds == pytest.approx(0.12)
    assert crash.restart_delay == pytest.approx(30 + 9)  # 0.3 s live is 9 s at 30x
    steady = calibrated(preset("steady"), 30, claim_seconds=0.004, restart_seconds=0.3)
    assert steady.restart_delay == preset("steady").restart_delay  # no crash: nothing to pay
    assert steady.replace(claim_seconds=0) == preset("steady")


def test_a_prediction_adds_each_live_cost_in_turn_on_the_same_seeds():
    crash = preset("worker-crash").replace(duration=600.0, warmup=60.0, seed=5)
    prediction = predict(crash, 30, 3, claim_seconds=0.004, restart_seconds=0.3)
    assert [label for label, _ in prediction.steps] == [
        "textbook", "+ claim round trip", "+ restart start-up"]
    assert [runs.scenario for _, runs in prediction.steps] == [
        crash, calibrated(crash, 30, 0.004, 0.0), prediction.model]
    # Seeds after the live run's own, the same at every step: only the costs differ.
    assert all(runs.seeds == [6, 7, 8] for _, runs in prediction.steps)
    assert prediction.calibrated is prediction.steps[-1][1]
    steady = predict(preset("steady").replace(duration=300.0, warmup=30.0), 30, 2, keep=True)
    assert [label for label, _ in steady.steps] == ["textbook", "+ claim round trip"]
    assert len(steady.calibrated.results) == 2 and not steady.textbook.results
    with pytest.raises(ValueError, match="at least 2"):
        predict(crash, 30, 1)


def test_the_servers_rules_are_the_scenarios_played_faster():
    crash = preset("worker-crash")  # lease 30 s, exponential backoff from 1 s up to 60 s
    assert server_arguments(crash, 30) == ["--lease", "1.0", "--backoff",
                                           f"exponential:{1 / 30!r}:2.0"]
    assert backoff_argument(Backoff("none"), 30) == "none"
    assert backoff_argument(Backoff("fixed", 6.0), 3) == "fixed:2.0"
    assert server_arguments(preset("overload"), 10)[-2:] == ["--capacity", "100"]


@pytest.mark.parametrize("change, speedup, message", [
    ({}, 31, "at most 30"),  # a 30 s lease would be under the server's 1 s
    ({"duration": None, "max_tasks": 10}, 30, "needs a duration"),
    ({}, 0, "positive"),
    ({}, math.inf, "positive"),
    ({"backoff": Backoff("exponential", factor=3.0)}, 30, "factor 2"),
    ({}, 0.001, "prefetch budget above a minute"),
])
def test_what_the_live_system_cannot_play_is_refused_with_the_reason(change, speedup, message):
    with pytest.raises(ValueError, match=message):
        check_playable(preset("worker-crash").replace(**change), speedup)


@pytest.mark.parametrize("name", ["scheduled", "priorities"])
def test_the_plan_is_the_simulations_own_arrivals(name):
    scenario = preset(name).replace(duration=600.0, warmup=0.0)
    plan = arrival_plan(scenario)
    tasks = simulate(scenario).tasks
    assert len(plan) == len(tasks) > 100
    assert [a.time for a in plan] == list(tasks["created"])
    assert [a.kind for a in plan] == list(tasks["kind"])
    delayed = [a.time + a.delay if a.delay is not None else a.time for a in plan]
    assert delayed == pytest.approx(list(tasks["ready"]))


def test_a_live_attempt_draws_its_time_and_outcome_from_the_scenario(tmp_path):
    scenario = preset("worker-crash")  # service uniform 1-3 s, 20% of attempts fail
    work = LiveWork(scenario, speedup=1000.0, log_path=str(tmp_path / "attempts.jsonl"))
    draws = [work.draw(row, 0, 1) for row in range(2000)]
    assert draws[:50] == [work.draw(row, 0, 1) for row in range(50)]  # seeded: replayable
    assert all(1.0 <= seconds <= 3.0 for seconds, _ in draws)
    assert 0.17 < sum(fails for _, fails in draws) / len(draws) < 0.23
    task = Task("t1", "email", {"row": 7, "kind": 0}, attempts=2, worker_id="worker-2")
    seconds, fails = work.draw(7, 0, 2)
    try:
        work(task)
    except Exception as exc:
        assert fails and "failure" in str(exc)
    else:
        assert not fails
    start, end = [json.loads(line) for line in
                  (tmp_path / "attempts.jsonl").read_text().splitlines()]
    assert start["row"] == end["row"] == 7 and start["attempt"] == end["attempt"] == 2
    assert start["worker"] == "worker-2" and end["ok"] is not fails
    assert end["end"] - start["start"] >= seconds / 1000.0


def test_a_short_live_run_accounts_for_every_task_and_has_every_figure(tmp_path):
    # 60 s of the lesson's failures and crashes at 20x: about 60 tasks in 3 s.
    scenario = preset("worker-crash").replace(duration=60.0, warmup=0.0, workers=3,
                                              crash_rate=1 / 20, restart_delay=10.0)
    runner = LiveRun(scenario, 20.0, folder=str(tmp_path))
    result = runner.run()
    # Each restart's start-up was timed: a new process, ready to claim, within seconds.
    assert runner.restart_seconds and all(0 < s < 10 for s in runner.restart_seconds)
    planned = [a for a in arrival_plan(scenario) if a.time <= scenario.duration]
    tasks, attempts = result.tasks, result.attempts
    assert len(tasks) == len(planned) >= 30
    assert list(tasks["kind"]) == [a.kind for a in planned]
    statuses = tasks["status"].value_counts()
    assert statuses.sum() == len(tasks) and statuses["completed"] > len(tasks) / 2
    assert set(attempts["task"]) <= set(tasks.index)
    for row, task in tasks[tasks["status"] == "completed"].iterrows():
        mine = attempts[attempts["task"] == row]
        assert list(mine["outcome"]).count("completed") == 1, (row, mine)
        done = mine[mine["outcome"] == "completed"]["end"].iloc[0]
        assert task["finished"] == done <= scenario.duration  # at its attempt's end
        assert (mine["start"] <= done).all()
    assert (attempts["outcome"] == "crashed").any()  # 9 crashes are expected: some hit work
    assert (attempts["end"] >= attempts["start"]).all()
    assert attempts["end"].max() <= scenario.duration + 1e-6
    assert set(result.summary) == set(simulate(scenario).summary) >= set(FIGURES)
    assert result.summary["created"] == len(tasks)
    assert 0 < result.summary["utilisation"] <= 1
    assert len(result.timeseries) > 10 and result.timeseries["time"].max() <= scenario.duration


def test_the_command_line_plays_a_scenario_and_says_why_it_cannot(tmp_path):
    played = subprocess.run(
        [sys.executable, "-m", "sim", "live", "--scenario", "spike", "--duration", "60",
         "--speedup", "30", "--replications", "5", "--json", "--folder", str(tmp_path),
         "--csv", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120)
    assert played.returncode == 0, played.stderr
    report = json.loads(played.stdout)
    assert set(report["comparison"]) == set(FIGURES)
    assert {"simulated", "low", "high", "live", "difference", "verdict", "uncalibrated"} <= set(
        report["comparison"]["mean_wait"])
    assert report["calibration"]["claim_seconds_scenario"] == pytest.approx(0.0044 * 30)
    assert report["calibration"]["claim_from"] == "default"
    assert "submitted" in played.stderr  # progress shown while it runs
    assert (tmp_path / "out" / "attempts.csv").exists()
    assert (tmp_path / "out" / "comparison.csv").exists()
    # Calibrated on this machine: the prediction pays the round trip this run measured
    # (overload: work always waits, so every claim is measured).
    measured = subprocess.run(
        [sys.executable, "-m", "sim", "live", "--scenario", "overload", "--duration", "60",
         "--speedup", "30", "--replications", "3", "--json", "--calibrate", "run",
         "--folder", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert measured.returncode == 0, measured.stderr
    calibration = json.loads(measured.stdout)["calibration"]
    assert calibration["claim_from"] == "run"
    assert 0 < calibration["claim_seconds_live"] == calibration["claim_seconds_measured_live"]
    assert calibration["claim_seconds_scenario"] == pytest.approx(
        calibration["claim_seconds_live"] * 30)
    refused = subprocess.run(
        [sys.executable, "-m", "sim", "live", "--scenario", "worker-crash", "--speedup", "60"],
        capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "at most 30" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_success_its_worker_was_killed_before_reporting_counts_as_a_crash(tmp_path):
    """The log says it succeeded; the server never heard (the kill came first): the task
    ran again, or was dead-lettered, or was still held at the end. As in the model, the
    attempt crashed; its work ended when the log says. The server's count of attempts
    names the attempt that completed a task."""
    run = LiveRun(preset("worker-crash"), 30.0, folder=str(tmp_path))
    run.end_live, run.run_id = 100.0, "r1"
    first, second = tmp_path / "a-0.jsonl", tmp_path / "a-1.jsonl"
    lines = lambda *entries: "".join(json.dumps({"run": "r1", **e}) + "\n" for e in entries)  # noqa: E731
    first.write_text(lines(
        {"row": 0, "attempt": 1, "start": 10.0}, {"row": 0, "attempt": 1, "end": 11.0, "ok": True},
        {"row": 1, "attempt": 1, "start": 11.2}, {"row": 1, "attempt": 1, "end": 12.0, "ok": True},
        {"row": 3, "attempt": 1, "start": 5.0}, {"row": 3, "attempt": 1, "end": 6.0, "ok": True},
        {"row": 2, "attempt": 1, "start": 12.1},
        {"row": 9, "attempt": 1, "start": 1.0, "run": "another run"}))
    second.write_text(lines(
        {"row": 0, "attempt": 2, "start": 20.0}, {"row": 0, "attempt": 2, "end": 21.0, "ok": True},
        # Attempt 2 of row 3 was claimed with a prefetched batch, never started: no line.
        {"row": 3, "attempt": 3, "start": 22.0}, {"row": 3, "attempt": 3, "end": 23.0, "ok": True},
        {"row": 2, "attempt": 2, "start": 30.0}))
    run.incarnations = [[0, first, 12.5], [0, second, None]]
    done = lambda attempts: Task("t", "email", {}, status="completed", attempts=attempts)  # noqa: E731
    tasks = {0: done(2), 1: done(1), 2: Task("t2", "email", {}, status="processing", attempts=2),
             3: done(3)}
    assert sorted(run._attempts(tasks)) == [
        (0, 1, 0, 10.0, 11.0, R.CRASHED),    # succeeded, unreported, ran again
        (0, 2, 0, 20.0, 21.0, R.OK),
        (1, 1, 0, 11.2, 12.0, R.OK),         # reported before the kill: it completed the task
        (2, 1, 0, 12.1, 12.5, R.CRASHED),    # cut short by the kill
        (2, 2, 0, 30.0, 100.0, R.UNFINISHED),  # still running at the end
        (3, 1, 0, 5.0, 6.0, R.CRASHED),      # unreported, though the next logged is not 2
        (3, 3, 0, 22.0, 23.0, R.OK),
    ]  # and row 9, another run's task on the same server, is not this run's
    # Row 1 dead-lettered (its lease ran out at its last attempt), or still held by its dead
    # worker when the run ended: either way its success was never reported.
    for status in ("failed", "processing"):
        tasks[1] = Task("t1", "email", {}, status=status, attempts=1)
        assert (1, 1, 0, 11.2, 12.0, R.CRASHED) in run._attempts(tasks)


def test_a_task_is_done_when_its_last_attempt_ends_within_the_run(tmp_path):
    """The server's count of attempts names the last one. A task whose last attempt began
    after the end of the run was not done within it, whatever the server says now."""
    scenario = preset("worker-crash").replace(duration=60.0, warmup=0.0)
    run = LiveRun(scenario, 30.0, folder=str(tmp_path))
    run.scale, run.end_live, run.run_id = TimeScale(30.0, 0.0), 2.0, "r1"  # 60 s at 30x
    log = tmp_path / "a-0.jsonl"
    log.write_text("".join(json.dumps({"run": "r1", **e}) + "\n" for e in (
        {"row": 0, "attempt": 1, "start": 0.2}, {"row": 0, "attempt": 1, "end": 0.3, "ok": False},
        {"row": 0, "attempt": 2, "start": 0.5}, {"row": 0, "attempt": 2, "end": 0.6, "ok": True},
        {"row": 1, "attempt": 1, "start": 1.0}, {"row": 1, "attempt": 1, "end": 1.1, "ok": False},
        {"row": 1, "attempt": 2, "start": 2.1}, {"row": 1, "attempt": 2, "end": 2.2, "ok": True},
        {"row": 2, "attempt": 3, "start": 1.2}, {"row": 2, "attempt": 3, "end": 1.3, "ok": False},
    )))
    run.incarnations = [[0, log, None]]
    run.submitted = [(f"t{row}", 0.1, 0.1) for row in range(3)]
    tasks = {0: Task("t0", "email", {}, status="completed", attempts=2, finished_at=0.61),
             1: Task("t1", "email", {}, status="completed", attempts=2, finished_at=2.21),
             2: Task("t2", "email", {}, status="failed", attempts=3, finished_at=1.31)}
    result = run._result(tasks)
    frame = result.tasks
    assert list(frame["status"]) == ["completed", "in_system", "dead_letter"]
    assert frame["finished"].iloc[0] == pytest.approx(18.0)  # 0.6 s live at 30x
    assert math.isnan(frame["finished"].iloc[1])  # its success came after the end (2 s live)
    assert frame["finished"].iloc[2] == pytest.approx(39.0)  # its last failure, not the commit


@pytest.mark.parametrize("argv, message", [
    (["--config", "CONFIG"], "needs a duration"),
    (["--replications", "1"], "at least 2"),
    (["--plot", "out.gif"], ".png, .svg or .pdf"),
    (["--claim-ms", "nan"], "--claim-ms"),
    (["--claim-ms", "5", "--calibrate", "run"], "give one"),
])
def test_bad_live_options_are_refused_before_anything_starts(tmp_path, argv, message):
    config = tmp_path / "endless.json"
    config.write_text(json.dumps({"preset": "steady", "duration": None, "max_tasks": 50}))
    argv = [str(config) if a == "CONFIG" else a for a in argv]
    refused = subprocess.run([sys.executable, "-m", "sim", "live", "--folder", str(tmp_path),
                              *argv], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert not list(tmp_path.glob("sim-live-*"))  # no run was started
