"""The command line: every command against a real server, and its errors.

Errors must be a message and a non-zero exit, never a traceback.
"""

import json
import os
import subprocess
import sys

import pytest

from live import ROOT, LiveSystem, free_port


def cli(*args, env=None, timeout=120):
    environment = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "queue_system", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with LiveSystem(tmp_path_factory.mktemp("cli")) as system:
        system.start_server("--backoff", "none")
        yield system


def test_help_explains_every_command():
    answer = cli("--help")
    assert answer.returncode == 0
    for command in ("serve", "worker", "submit", "stats", "tasks", "dead-letter", "demo"):
        assert command in answer.stdout
        assert cli(command, "--help").returncode == 0
    assert "QUEUE_URL" in cli("worker", "--help").stdout
    assert "PORT" in cli("serve", "--help").stdout


def test_submit_stats_tasks(live):
    answer = cli("submit", "email", '{"to": "ada@example.org"}', "--priority", "high",
                 "--url", live.url)
    assert answer.returncode == 0, answer.stderr
    task_id = answer.stdout.split()[0]
    shown = json.loads(cli("tasks", task_id, "--url", live.url).stdout)
    assert shown["payload"] == {"to": "ada@example.org"} and shown["priority"] == "high"
    stats = json.loads(cli("stats", env={"QUEUE_URL": live.url}).stdout)  # the lesson's variable
    assert stats["total"] >= 1
    assert task_id in cli("tasks", "--status", "pending", "--url", live.url).stdout


def test_submit_count_delay_and_key(live):
    answer = cli("submit", "report", "--count", "3", "--delay", "60", "--url", live.url)
    assert answer.returncode == 0 and answer.stdout.count("scheduled") == 3
    first = cli("submit", "report", "--key", "once", "--url", live.url).stdout.split()[0]
    again = cli("submit", "report", "--key", "once", "--url", live.url).stdout.split()[0]
    assert first == again


def test_dead_letter_list_and_replay(live):
    task = live.client.submit("doomed", {}, max_retries=1)
    [held] = live.client.claim("cli-test", types=["doomed"])
    assert held.id == task.id
    live.client.fail(held.id, held.lease_id, "boom")
    listing = cli("dead-letter", "--url", live.url)
    assert task.id in listing.stdout and "boom" in listing.stdout
    assert cli("dead-letter", "--replay", task.id, "--url", live.url).returncode == 0
    assert live.client.get(task.id).status == "pending"
    refused = cli("dead-letter", "--replay", task.id, "--url", live.url)
    assert refused.returncode == 1 and "409" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.parametrize("args, expected", [
    (["submit", "email", "{not json"], "not valid JSON"),
    (["submit", "email", "--priority", "urgent"], "invalid choice"),
    (["worker", "--failure-rate", "2"], "between 0 and 1"),
    (["worker", "--concurrency", "0"], "more than 0"),
    (["serve", "--backoff", "sometimes"], "expected none"),
    (["launch"], "invalid choice"),
    (["worker", "--id", ""], "1 to 200 characters"),
    (["worker", "--id", "w" * 201], "1 to 200 characters"),
    (["submit", "email", "--key", ""], "1 to 200 characters"),
])
def test_bad_arguments_are_refused_with_a_message(args, expected):
    answer = cli(*args)
    assert answer.returncode == 2
    assert expected in answer.stderr and "Traceback" not in answer.stderr


def test_bad_environment_values_are_refused_like_flags():
    answer = cli("serve", env={"PORT": "three thousand"})
    assert answer.returncode == 2 and "invalid int value" in answer.stderr
    nameless = cli("worker", env={"WORKER_ID": ""})
    assert nameless.returncode == 2 and "--id" in nameless.stderr


def test_a_worker_whose_claims_are_refused_stops_and_says_why(live):
    # A wrong URL: the server answers every claim with a 404, and would forever.
    answer = cli("worker", "--url", live.url + "/queue", timeout=30)
    assert answer.returncode == 1 and "Traceback" not in answer.stderr
    assert "error: the server answered 404" in answer.stderr


def test_unreachable_server_is_a_message_not_a_traceback(tmp_path):
    answer = cli("stats", "--url", "http://127.0.0.1:9")
    assert answer.returncode == 1
    assert "Is the server running?" in answer.stderr and "Traceback" not in answer.stderr


def test_server_refusal_is_shown(live):
    answer = cli("submit", "email", "--max-retries", "0", "--url", live.url)
    assert answer.returncode == 1 and "400" in answer.stderr and "max_retries" in answer.stderr
    missing = cli("tasks", "no-such-task", "--url", live.url)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_serve_creates_its_database_and_refuses_a_busy_port(live, tmp_path):
    db = tmp_path / "nested" / "folder" / "queue.db"
    port = str(live.port)  # already taken by the module's server
    answer = cli("serve", "--port", port, "--db", str(db), timeout=60)
    assert answer.returncode != 0
    assert db.exists()  # created even though the port was busy
    assert "Traceback" not in answer.stderr


@pytest.mark.parametrize("tokens", [{}, {"QUEUE_TOKEN": "class-secret",
                                         "QUEUE_WORKER_TOKEN": "worker-secret"}],
                         ids=["open", "with tokens"])
def test_demo_runs_the_lesson_end_to_end(tmp_path, tokens):
    """Also on a closed server: the demo's server, workers and progress pass the tokens."""
    answer = cli("demo", "--fast", "--port", str(free_port()), "--db", str(tmp_path / "demo.db"),
                 timeout=300, env=tokens)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    out = answer.stdout
    assert "Submitted 12 tasks" in out
    assert "Dashboard: http://localhost:" in out
    assert "100%" in out and "All processes stopped." in out
    for worker in ("worker-1", "worker-2", "worker-3"):
        assert worker in out
    final = out.split("Final stats:")[1]
    counts = {line.split()[0]: int(line.split()[-1]) for line in final.splitlines()[1:7]
              if line.strip()}
    assert counts["completed"] + counts["failed"] == counts["total"] == 12


def test_demo_refuses_a_port_where_another_server_answers(live, tmp_path):
    answer = cli("demo", "--fast", "--port", str(live.port), "--db", str(tmp_path / "d.db"))
    assert answer.returncode == 1
    assert "choose another --port" in answer.stderr + answer.stdout or \
        "port already taken" in answer.stderr + answer.stdout
    assert "Traceback" not in answer.stderr


def test_demo_stopped_with_sigterm_stops_its_processes(tmp_path):
    import signal
    import time
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    demo = subprocess.Popen([sys.executable, "-m", "queue_system", "demo", "--port",
                             str(free_port()), "--db", str(tmp_path / "d.db")], cwd=ROOT,
                            env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in demo.stdout:
        lines.append(line)
        if line.startswith("Submitted"):
            break
    children = subprocess.run(["pgrep", "-P", str(demo.pid)], capture_output=True,
                              text=True).stdout.split()
    assert len(children) == 4  # the server and three workers
    demo.send_signal(signal.SIGTERM)
    rest = demo.communicate(timeout=60)[0]
    assert "All processes stopped." in rest
    time.sleep(0.2)
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split()[2] == "Z"


@pytest.mark.parametrize("args, expected", [
    (["serve", "--port", "99999"], "at most 65535"),
    (["serve", "--lease", "100000"], "at most 86400"),
    (["serve", "--lease", "nan"], "--lease"),
    (["worker", "--poll-wait", "100"], "at most 60"),
    (["serve", "--backoff", "fixed:nan"], "finite"),
])
def test_out_of_range_settings_are_refused(args, expected):
    answer = cli(*args)
    assert answer.returncode == 2 and expected in answer.stderr and "Traceback" not in answer.stderr


def test_odd_task_ids_and_urls_are_messages(live, tmp_path):
    answer = cli("tasks", "../stats", "--url", live.url)
    assert answer.returncode == 1 and "404" in answer.stderr
    bad_url = cli("stats", "--url", "http://[::1")
    assert bad_url.returncode == 1 and "not a server address" in bad_url.stderr
    not_a_db = cli("serve", "--db", str(tmp_path), "--port", "0")
    assert not_a_db.returncode == 1 and "cannot use the store sqlite:///" in not_a_db.stderr
    for answer in (bad_url, not_a_db):
        assert "Traceback" not in answer.stderr


def test_a_dead_letter_log_that_cannot_be_written_is_a_message(tmp_path):
    answer = cli("serve", "--port", "0", "--db", str(tmp_path / "q.db"),
                 "--dead-letter-log", str(tmp_path), timeout=60)  # a folder, not a file
    assert answer.returncode == 1 and "Traceback" not in answer.stderr
    assert "cannot write the dead-letter log" in answer.stderr
