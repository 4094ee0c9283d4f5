"""pyproject.toml and the pinned requirement files say the same thing.

pyproject.toml gives the ranges the package accepts (``pip install .``, and the
extras ``redis``, ``sim``, ``lab``, ``dev``); the requirement files pin the
versions it is tested with (``make test``, the Docker image). They drift apart
silently: a pin moved outside its range, a dependency added on one side only, a
marker dropped (uvloop has no Windows build). ``drift`` names every such
difference; the tests run it on the project, and on broken copies to show that
it sees them. Then: the wheel's packages and data, as setuptools would find them.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import tomllib
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from live import ROOT

# Each group of pyproject's dependencies, and the file that pins it (None: `dependencies`).
LOCKS = {None: "requirements.txt", "redis": "requirements-redis.txt",
         "sim": "requirements-sim.txt", "lab": "requirements-lab.txt",
         "dev": "requirements-dev.txt"}
# The benchmarks run the runtime, the Redis store and the simulation.
BENCH = ("bench/requirements-bench.txt",
         ("requirements.txt", "requirements-redis.txt", "requirements-sim.txt"))


class RequirementFile:
    """A pip requirement file: its own requirements, and the files it includes (``-r``)."""

    def __init__(self, path: Path):
        self.path = path
        self.requirements: List[Requirement] = []
        self.includes: List[Path] = []
        self.problems: List[str] = []
        text = re.sub(r"\\\n", " ", path.read_text())  # pip joins a line ending in \
        for number, line in enumerate(text.splitlines(), 1):
            line = re.sub(r"(^|\s)#.*", "", line).strip()
            if not line:
                continue
            if line.startswith(("-r ", "--requirement ")):
                self.includes.append((path.parent / line.split(None, 1)[1]).resolve())
            elif line.startswith("-"):
                self.problems.append(f"{path.name}:{number}: an option the check does not "
                                     f"know: {line}")
            else:
                self.requirements.append(Requirement(line))

    def closure(self) -> Set[Path]:
        """Every file this one includes, directly or through another."""
        seen: Set[Path] = set()
        todo = list(self.includes)
        while todo:
            path = todo.pop()
            if path not in seen:
                seen.add(path)
                todo += RequirementFile(path).includes
        return seen


def project_groups(pyproject: Path) -> Tuple[Dict[Optional[str], List[Requirement]],
                                              Dict[Optional[str], Set[str]]]:
    """pyproject's dependencies by group (None: the base), without the project's own
    extras, and for each group the extras of its own that it names
    (``queue-system[sim]``), followed through."""
    project = tomllib.loads(pyproject.read_text())["project"]
    name = canonicalize_name(project["name"])
    groups = {None: project.get("dependencies", []),
              **project.get("optional-dependencies", {})}
    direct: Dict[Optional[str], List[Requirement]] = {}
    own: Dict[Optional[str], Set[str]] = {}
    for group, lines in groups.items():
        direct[group], own[group] = [], set()
        for line in lines:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == name:
                own[group] |= requirement.extras
            else:
                direct[group].append(requirement)
    changed = True
    while changed:  # `dev` names `sim`, which might name another
        changed = False
        for group in own:
            more = set().union(*(own.get(extra, set()) for extra in own[group])) - own[group]
            if more:
                own[group] |= more
                changed = True
    return direct, own


def exact_pin(requirement: Requirement) -> Optional[str]:
    """The version ``requirement`` pins (``name==1.2.3``), or None if it pins none."""
    specifiers = list(requirement.specifier)
    if len(specifiers) == 1 and specifiers[0].operator == "==" \
            and "*" not in specifiers[0].version:
        return specifiers[0].version
    return None


def drift(root: Path) -> List[str]:
    """Every difference between ``root``'s pyproject.toml and its requirement files."""
    direct, own = project_groups(root / "pyproject.toml")
    problems: List[str] = []
    for group in set(direct) - set(LOCKS):
        problems.append(f"the extra {group!r} has no requirement file (add it to LOCKS)")
    for group, file_name in LOCKS.items():
        where = "dependencies" if group is None else f"the extra {group!r}"
        if group not in direct:
            problems.append(f"{file_name} pins {where}, which pyproject.toml does not have")
            continue
        lock = RequirementFile(root / file_name)
        problems += lock.problems
        wanted = {canonicalize_name(r.name): r for r in direct[group]}
        pinned: Dict[str, Requirement] = {}
        for requirement in lock.requirements:
            name = canonicalize_name(requirement.name)
            version = exact_pin(requirement)
            if version is None:
                problems.append(f"{file_name}: {requirement} is not pinned (name==version)")
                continue
            if name in pinned:
                problems.append(f"{file_name}: {requirement.name} is pinned twice")
            pinned[name] = requirement
            if name not in wanted:
                problems.append(f"{file_name} pins {requirement.name}, which is not in "
                                f"{where} of pyproject.toml")
                continue
            ranged = wanted[name]
            if not ranged.specifier.contains(version, prereleases=True):
                problems.append(f"{file_name} pins {requirement.name}=={version}, outside "
                                f"{where}'s range {ranged.specifier}")
            if str(ranged.marker or "") != str(requirement.marker or ""):
                problems.append(f"{file_name}: {requirement.name} is for "
                                f"{requirement.marker or 'every platform'}, pyproject.toml's "
                                f"for {ranged.marker or 'every platform'}")
            if ranged.extras != requirement.extras:
                problems.append(f"{file_name}: {requirement.name} with the extras "
                                f"{sorted(requirement.extras)}, pyproject.toml's with "
                                f"{sorted(ranged.extras)}")
        for name, ranged in wanted.items():
            if name not in pinned:
                problems.append(f"{ranged.name} is in {where} of pyproject.toml but not "
                                f"pinned in {file_name}")
        # The files it builds on: the base's, and those of the extras it names.
        expected = set() if group is None else {(root / LOCKS[None]).resolve()}
        expected |= {(root / LOCKS[extra]).resolve() for extra in own[group] if extra in LOCKS}
        problems += [f"the extra {extra!r} that {where} names is not in pyproject.toml"
                     for extra in sorted(own[group] - set(direct))]
        included = lock.closure()
        for path in sorted(expected - included):
            problems.append(f"{file_name} does not include {path.name} (-r)")
        for path in sorted(included - expected):
            problems.append(f"{file_name} includes {path.name}, which {where} does not name")
        seen: Dict[str, str] = {}  # one version per package in everything pip installs
        for path in [root / file_name, *sorted(included)]:
            for requirement in RequirementFile(path).requirements:
                name, version = canonicalize_name(requirement.name), exact_pin(requirement)
                if seen.setdefault(name, version) != version:
                    problems.append(f"{file_name}: {requirement.name} is pinned to "
                                    f"{seen[name]} and to {version}")
    bench, needs = BENCH
    if (root / bench).exists():
        included = RequirementFile(root / bench).closure()
        for name in needs:
            if (root / name).resolve() not in included:
                problems.append(f"{bench} does not include {name} (-r ../{name})")
    return problems


# -- the project's files ------------------------------------------------------------------

def test_pyproject_and_the_requirement_files_agree():
    assert drift(ROOT) == []


def test_the_base_dependencies_are_the_server_and_the_worker_only():
    direct, own = project_groups(ROOT / "pyproject.toml")
    base = {canonicalize_name(r.name) for r in direct[None]}
    assert not own[None]
    for extra in ("sim", "redis", "lab"):
        assert not base & {canonicalize_name(r.name) for r in direct[extra]}, extra
    assert {"fastapi", "uvicorn", "httpx"} <= base
    [uvloop] = [r for r in direct[None] if r.name == "uvloop"]
    assert not uvloop.marker.evaluate({"sys_platform": "win32"})  # no uvloop for Windows
    assert uvloop.marker.evaluate({"sys_platform": "linux"})
    assert own["dev"] >= {"sim", "redis"} and own["lab"] >= {"sim"}


def test_the_console_script_is_the_cli():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert project["scripts"] == {"queue-system": "queue_system.cli:main"}
    from queue_system import cli
    assert callable(cli.main)


def test_the_docker_image_installs_the_runtime_and_the_redis_store_only():
    text = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"-r (\S+)", " ".join(re.findall(r"^RUN pip install .*$", text,
                                                            re.MULTILINE)))
    assert installs == ["requirements.txt", "requirements-redis.txt"]
    for name in installs:
        assert re.search(rf"^COPY .*\b{re.escape(name)}\b", text, re.MULTILINE), name


def test_the_makefile_reinstalls_when_a_file_it_installs_changes():
    text = re.sub(r"\\\n", " ", (ROOT / "Makefile").read_text())
    for venv, lock in (("$(VENV)", "requirements-dev.txt"),
                       ("$(LAB_VENV)", "requirements-lab.txt")):
        [line] = re.findall(rf"^{re.escape(venv)}/\.installed:(.*)$", text, re.MULTILINE)
        named = {(ROOT / word).resolve() for word in line.split()}
        everything = {(ROOT / lock).resolve()} | RequirementFile(ROOT / lock).closure()
        assert everything <= named, sorted(p.name for p in everything - named)


# -- drift, seen in broken copies ---------------------------------------------------------

def copy_of_the_project(tmp_path: Path) -> Path:
    for name in ["pyproject.toml", *LOCKS.values(), BENCH[0]]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    assert drift(tmp_path) == []
    return tmp_path


@pytest.mark.parametrize("file_name, old, new, complaint", [
    ("requirements.txt", "fastapi==0.165.0", "fastapi==1.0.0",
     "pins fastapi==1.0.0, outside dependencies's range"),
    ("pyproject.toml", '"httpx>=0.28,<1"', '"httpx>=0.29,<1"',
     "pins httpx==0.28.1, outside"),
    ("requirements-sim.txt", "numpy==2.4.6", "numpy==2.4.6\nleftpad==1.0",
     "pins leftpad, which is not in the extra 'sim'"),
    ("requirements-redis.txt", "hiredis==3.5.0\n", "",
     "hiredis is in the extra 'redis' of pyproject.toml but not pinned"),
    ("requirements-sim.txt", "pandas==3.1.1", "pandas>=3",
     "pandas>=3 is not pinned"),
    ("requirements.txt", 'uvloop==0.23.0; sys_platform != "win32"', "uvloop==0.23.0",
     "uvloop is for every platform"),
    ("pyproject.toml", '"orjson>=3.13,<4",', '"orjson>=3.13,<4",\n    "rich>=13",',
     "rich is in dependencies of pyproject.toml but not pinned in requirements.txt"),
    ("requirements-dev.txt", "-r requirements-sim.txt\n", "",
     "requirements-dev.txt does not include requirements-sim.txt"),
    ("requirements-lab.txt", "-r requirements-sim.txt\n", "-r requirements-redis.txt\n",
     "requirements-lab.txt includes requirements-redis.txt, which the extra 'lab'"),
    ("requirements-dev.txt", "pytest==9.2.0", "pytest==9.2.0\nnumpy==2.4.5",
     "numpy is pinned to 2.4.5 and to 2.4.6"),
    ("pyproject.toml", '"queue-system[sim,redis]",', '"queue-system[sim]",',
     "requirements-dev.txt includes requirements-redis.txt, which the extra 'dev'"),
    ("pyproject.toml", "\nsim = [", "\nsimulation = [",
     "the extra 'simulation' has no requirement file"),
    ("bench/requirements-bench.txt", "-r ../requirements-redis.txt\n", "",
     "bench/requirements-bench.txt does not include requirements-redis.txt"),
])
def test_drift_is_found(tmp_path, file_name, old, new, complaint):
    root = copy_of_the_project(tmp_path)
    path = root / file_name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    problems = drift(root)
    assert any(complaint in problem for problem in problems), problems


def test_a_continued_line_and_comments_are_read_as_pip_reads_them(tmp_path):
    (tmp_path / "base.txt").write_text("a==1\n")
    path = tmp_path / "r.txt"
    path.write_text("# a comment\n-r base.txt\nb==2  # inline\n"
                    'c==3; sys_platform == "linux" \\\n    and python_version == "3.11"\n')
    parsed = RequirementFile(path)
    assert [str(r) for r in parsed.requirements] == [
        "b==2", 'c==3; sys_platform == "linux" and python_version == "3.11"']
    assert parsed.closure() == {(tmp_path / "base.txt").resolve()}


# -- what the wheel holds -----------------------------------------------------------------

def setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def found_packages() -> Set[str]:
    setuptools = pytest.importorskip(
        "setuptools", reason="setuptools finds the packages as `pip install .` would")
    find = setuptools_config()["packages"]["find"]
    finder = (setuptools.find_namespace_packages if find.get("namespaces", True)
              else setuptools.find_packages)
    [where] = find.get("where", ["."])
    return set(finder(where=str(ROOT / where), include=find.get("include", ("*",)),
                      exclude=find.get("exclude", ())))


def test_the_wheel_has_both_packages_and_every_subpackage():
    packages = found_packages()
    assert {"queue_system", "queue_system.server", "queue_system.server.routes",
            "queue_system.stores", "queue_system.worker", "sim"} <= packages
    # Every folder of Python modules is a package of the wheel (a forgotten
    # __init__.py would leave one out), and nothing else is: no tests, no benchmarks.
    for top in ("queue_system", "sim"):
        for folder in [ROOT / top, *(ROOT / top).rglob("*")]:
            if folder.is_dir() and "__pycache__" not in folder.parts \
                    and any(folder.glob("*.py")):
                name = ".".join(folder.relative_to(ROOT).parts)
                assert name in packages, name
    assert all(p.split(".")[0] in ("queue_system", "sim") for p in packages), packages
    assert not any("__pycache__" in p or p.endswith(".static") for p in packages), packages


def test_the_package_data_covers_the_files_the_code_opens():
    """The dashboard's page and its files, served from the installed package."""
    data = setuptools_config().get("package-data", {})
    static = ROOT / "queue_system" / "server" / "static"
    files = [p for p in static.rglob("*") if p.is_file()]
    assert {"index.html", "dashboard.js", "dashboard.css"} <= {p.name for p in files}
    packages = found_packages()
    for path in files:
        covered = False
        for package, patterns in data.items():
            folder = ROOT / Path(*package.split("."))
            if package in packages and folder in path.parents:
                relative = path.relative_to(folder).as_posix()
                covered |= any(fnmatch.fnmatch(relative, pattern) for pattern in patterns)
        assert covered, f"{path.relative_to(ROOT)} would be missing from the wheel"
    # And the code looks for them where the wheel puts them: beside the package.
    from queue_system.server.routes import dashboard
    assert dashboard.STATIC.resolve() == static.resolve()
