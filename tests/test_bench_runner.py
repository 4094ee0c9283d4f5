"""bench/run_all.py keeps the benchmarks' venv in step with the requirements: a runtime
dependency added to requirements.txt must reach an existing bench venv too."""

import importlib.util
import os

from live import ROOT

spec = importlib.util.spec_from_file_location("run_all", ROOT / "bench" / "run_all.py")
run_all = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_all)


def test_the_bench_venv_is_installed_again_when_a_requirements_file_changes(tmp_path):
    marker, runtime, bench = tmp_path / ".installed", tmp_path / "req.txt", tmp_path / "b.txt"
    runtime.write_text("fastapi\n")
    bench.write_text("huey\n")
    assert run_all.needs_install(marker, (bench, runtime))  # never installed
    marker.touch()
    os.utime(runtime, (0, 0))
    os.utime(bench, (0, 0))
    assert not run_all.needs_install(marker, (bench, runtime))
    os.utime(runtime)  # a new runtime requirement, after the install
    assert run_all.needs_install(marker, (bench, runtime))
