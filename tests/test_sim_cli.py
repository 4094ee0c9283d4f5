"""The command line: list presets, run with replications, write CSV and plots."""

import io
import json
import os
import subprocess
import sys

import pandas as pd

from sim.cli import main
from sim.scenario import PRESETS

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
