"""Run every benchmark in turn; each prints our figures beside the peers'.

    python bench/run_all.py            # all of them (about 10 minutes)
    python bench/run_all.py store sim  # only some

The peers (persist-queue, huey, Ciw) are not dependencies of the project:
every benchmark runs in its own venv, ``bench/.venv``, created here from
``bench/requirements-bench.txt`` the first time (the project's runtime
requirements plus the peers), and brought up to date when either
requirements file changes.
"""

import os
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCH_VENV = HERE / ".venv"
BENCHMARKS = {
    "store": "bench_store.py",            # (a) durable store operations per second
    "end-to-end": "bench_end_to_end.py",  # (b) HTTP system against huey, 5,000 no-op tasks
    "recovery": "bench_recovery.py",      # (c) time until a killed worker's task runs again
    "sim": "bench_sim.py",                # the simulation against minimal SimPy and Ciw
    "live": "bench_live.py",              # presets played live against the simulation's prediction
    "scale": "bench_scale.py",            # request costs at 10,000 and at 1,000,000 stored tasks
    "redis": "bench_redis.py",            # ours on Redis against ours on SQLite and RQ
}


REQUIREMENTS = (HERE / "requirements-bench.txt", ROOT / "requirements.txt",
                ROOT / "requirements-redis.txt", ROOT / "requirements-sim.txt")


def needs_install(marker: Path, requirements=REQUIREMENTS) -> bool:
    """Whether the venv was never installed, or a requirements file changed since (a new
    runtime dependency would otherwise be missing from an old bench venv)."""
    if not marker.exists():
        return True
    installed = marker.stat().st_mtime
    return any(path.stat().st_mtime > installed for path in requirements)


def bench_python() -> str:
    python = BENCH_VENV / "bin" / "python"
    marker = BENCH_VENV / ".installed"
    if not python.exists():
        print(f"creating {BENCH_VENV} for the benchmarks' peers...", flush=True)
        venv.create(BENCH_VENV, with_pip=True)
    if needs_install(marker):
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r",
                        str(HERE / "requirements-bench.txt")], check=True)
        marker.touch()
    return str(python)


def main(names) -> int:
    failed = 0
    for name in names or BENCHMARKS:
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
            return 2
        python = bench_python()
        print(f"\n=== {name}: {BENCHMARKS[name]} ===", flush=True)
        done = subprocess.run([python, str(HERE / BENCHMARKS[name])], cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
        failed += done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
