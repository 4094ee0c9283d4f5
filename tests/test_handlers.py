"""Handlers: the simulated work a seed makes repeatable, and your own handlers by name."""

import sys
import textwrap

import pytest

from queue_system import Task
from queue_system.worker import SimulatedWork, load_handlers
from queue_system.worker.handlers import SimulatedFailure

from live import LiveSystem, wait_for


def outcome(work, task):
    try:
        return work(task)
    except SimulatedFailure:
        return "failed"


def test_a_seeded_attempt_plays_out_the_same_in_any_worker():
    tasks = [Task(id=f"task-{n}", type="report", payload={"id": n}, attempts=a)
             for n in range(40) for a in (1, 2)]
    one = SimulatedWork(0, 0, 0.5, seed=7)
    other = SimulatedWork(0, 0, 0.5, seed=7)  # another worker process, tasks in another order
    first = [outcome(one, t) for t in tasks]
    second = [outcome(other, t) for t in reversed(tasks)][::-1]
    assert first == second
    assert 10 < first.count("failed") < 70  # about half of 80, not all or none
    # The attempt number is part of the draw: a retry is a new roll of the dice.
    by_attempt = {(t.payload["id"], t.attempts): o for t, o in zip(tasks, first)}
    assert any(by_attempt[(n, 1)] != by_attempt[(n, 2)] for n in range(40))
    # The task's id is not: the same work submitted in another run (another id) plays the same.
    renamed = [t._replace(id=f"other-{t.id}") for t in tasks]
    assert [outcome(SimulatedWork(0, 0, 0.5, seed=7), t) for t in renamed] == first
    assert [outcome(SimulatedWork(0, 0, 0.5, seed=8), t) for t in tasks] != first


@pytest.fixture
def handler_module(tmp_path, monkeypatch):
    (tmp_path / "my_tasks.py").write_text(textwrap.dedent("""
        def shout(task):
            return task.payload["text"].upper()

        HANDLERS = {"shout": shout, None: lambda task: "default"}
        NOT_HANDLERS = {"shout": 42}
        NUMBER_KEYS = {1: shout}
        NUMBER = 3
    """))
    (tmp_path / "broken_tasks.py").write_text("def oops(:\n    pass\n")
    (tmp_path / "raising_tasks.py").write_text("raise RuntimeError('no database here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("my_tasks", "broken_tasks", "raising_tasks"):
        sys.modules.pop(name, None)


def test_handlers_are_found_by_module_and_name(handler_module):
    handlers = load_handlers("my_tasks:HANDLERS")
    assert handlers["shout"](Task("t", "shout", {"text": "hi"})) == "HI"
    assert set(handlers) == {"shout", None}
    assert set(load_handlers("my_tasks:shout")) == {None}  # one function: every type


def test_a_module_alone_means_its_handlers_even_in_a_package(handler_module):
    package = handler_module / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text("HANDLERS = {'bill': lambda task: 'billed'}\n")
    try:
        assert load_handlers("my_tasks")["shout"](Task("t", "shout", {"text": "a"})) == "A"
        assert load_handlers("shop.jobs")["bill"](Task("t", "bill", {})) == "billed"
    finally:
        for name in ("shop", "shop.jobs"):
            sys.modules.pop(name, None)


@pytest.mark.parametrize("spec, message", [
    ("broken_tasks.", "MODULE or MODULE:NAME"),
    ("my tasks", "MODULE or MODULE:NAME"),
    ("no_such_module", "cannot import the handlers' module 'no_such_module'"),
    ("raising_tasks", "'raising_tasks' failed: RuntimeError"),
    ("textwrap", "module 'textwrap' defines no handlers: give it a HANDLERS dict"),
    ("no_such_module:HANDLERS", "cannot import"),
    ("my_tasks:MISSING", "has no 'MISSING'"),
    ("my_tasks:NOT_HANDLERS", "the handler for 'shout' is not a function but int"),
    ("my_tasks:NUMBER_KEYS", "the key 1 is not a task type"),
    ("my_tasks:NUMBER", "must be a function, or a non-empty dict .* not int"),
    (".my_tasks:HANDLERS", "MODULE or MODULE:NAME"),
    ("broken_tasks:HANDLERS", "importing the handlers' module 'broken_tasks' failed: SyntaxError"),
    ("raising_tasks:HANDLERS", "'raising_tasks' failed: RuntimeError: no database here"),
])
def test_bad_handler_names_say_what_is_wrong(handler_module, spec, message):
    with pytest.raises(ValueError, match=message):
        load_handlers(spec)


def test_a_worker_runs_your_handlers(tmp_path, handler_module):
    with LiveSystem(tmp_path) as live:
        live.start_server()
        worker = live.start_worker("own", "--handlers", "my_tasks:HANDLERS",
                                   env={"PYTHONPATH": str(handler_module)})
        shout = live.client.submit("shout", {"text": "hello"})
        other = live.client.submit("email", {})
        done = wait_for(lambda: all(live.client.get(t.id).status == "completed"
                                    for t in (shout, other)), 30, "both tasks")
        assert done and live.client.get(shout.id).result == "HELLO"
        assert live.client.get(other.id).result == "default"
        assert live.stop(worker) == 0


def test_a_worker_with_bad_handlers_exits_with_a_message(tmp_path):
    with LiveSystem(tmp_path) as live:
        worker = live.start_worker("bad", "--handlers", "nowhere:HANDLERS")
        assert worker.wait(timeout=30) == 1
        log = live.log("bad")
    assert "cannot import the handlers' module 'nowhere'" in log and "Traceback" not in log
