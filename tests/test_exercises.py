"""The exercises lab: the students' copy is the solutions minus the solutions, and every check
tells a solved exercise from an unsolved or a wrong one.

04-solutions.ipynb holds the exercises solved; notebooks/make_exercises.py writes the
students' copy, 04-exercises.ipynb, from it. Here: the copy is up to date and holds no
solution; run top to bottom, each of its checks fails with the one-line ``NotSolvedYet``
verdict naming its exercise while every other cell runs; each check passes on its solution;
and each fails, as "not right yet", on a wrong solution. Each notebook runs once (a kernel
per run), shared by the tests through module-scoped fixtures.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOLUTIONS = NOTEBOOKS / "04-solutions.ipynb"
EXERCISES = NOTEBOOKS / "04-exercises.ipynb"
LABELS = ["1", "2.1", "2.2", "2.3", "3", "A", "B"]  # the lesson's 1, 2.1-2.3, 3; go further A, B
CHECK = re.compile(r"""with exercise\(\s*["'](?P<label>[^:"']+):""")

# One wrong answer per exercise: (text of the solution, wrong text, words of the verdict).
MUTATIONS = {
    "1": ("return (PRIORITY_RANK[task.priority], task.execute_at)",
          "return task.priority",  # as text, 'high' < 'low' < 'normal'
          "the keys of a 'high', a 'normal' and a 'low' task"),
    "2.1": ("if retries >= task.max_retries:", "if retries > task.max_retries:",
            "goes to the dead letter"),
    "2.2": ("if len(batch) < page:", "if True:",  # only the first page
            "250 tasks are in the dead letter, dead_tasks returned 100"),
    "2.3": ("json.dumps(record, ensure_ascii=False)",
            "json.dumps(record, ensure_ascii=False, indent=1)",  # not one line per task
            "Write each task as JSON on one line"),
    "3": ("task.execute_at <= now)", "task.execute_at < now)",  # a task due exactly now is late
          "a task due exactly now"),
    "A": ("ceiling = min(max_delay, base * factor ** (retries - 1))",
          "ceiling = base * factor ** (retries - 1)", "above the cap"),
    "B": ('queue.claim(worker_id, types=["email"])', "queue.claim(worker_id)",
          "Claim with types=['email']"),
}

# More wrong answers, run in a second copy of the solutions (at most one per exercise a copy).
MORE_MUTATIONS = {
    "1": ("return (PRIORITY_RANK[task.priority], task.execute_at)",
          "return (PRIORITY_RANK[task.priority], task.updated_at)",  # when it last changed
          "Order by execute_at, the time a task became due"),
    "3": ("    return min((task.execute_at for task in scheduled), default=None)",
          "    return min(scheduled, key=lambda task: task.execute_at, default=None)",  # the task
          "you said Task(id='task-5'"),
    "B": ('queue.claim(worker_id, types=["email"])',  # an answer that raises: still one line
          'queue.claim(worker_id, types=["email"], limit="one")',
          "running the check on your code raised InvalidTask"),
    "2.2": ("tasks, page = [], 100", "tasks, page = [], 10**6",  # one big page, no paging
            "read the dead letter 100 at a time: limit=1000000 is above 100"),
    "A": ("return rng.uniform((1 - jitter) * ceiling, ceiling)",  # within the bounds, but skewed up
          "return max(rng.uniform((1 - jitter) * ceiling, ceiling) for _ in range(2))",
          "they average 0.75 s, give or take 0.023 s. Draw uniformly across the interval"),
}

# Lines too generic to give a solution away (they appear in any Python).
GENERIC = {"try:", "else:", "finally:", "while True:", "pass", "break", "continue", "return", ""}


def load_make_exercises():
    spec = importlib.util.spec_from_file_location("make_exercises", NOTEBOOKS / "make_exercises.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_exercises = load_make_exercises()


def run(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Run every cell, on past errors, in notebooks/ (as nbval and execute.py do)."""
    NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True,
                   record_timing=False, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def label_of(cell):
    match = CHECK.search(cell.source) if cell.cell_type == "code" else None
    return match["label"] if match else None


def checks(notebook):
    return {label_of(cell): cell for cell in notebook.cells if label_of(cell)}


def errors(cell):
    return [o for o in cell.outputs if o.output_type == "error"]


def stdout(cell):
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


@pytest.fixture(scope="module")
def student_run():
    return run(nbformat.read(EXERCISES, as_version=4))


@pytest.fixture(scope="module")
def solutions_run():
    return run(nbformat.read(SOLUTIONS, as_version=4))


def run_mutated(mutations):
    """The solutions with the wrong answers `mutations` put in, without the cell that starts a server."""
    notebook = nbformat.read(SOLUTIONS, as_version=4)
    notebook.cells = [c for c in notebook.cells if "LocalSystem" not in c.source]
    for label, (right, wrong, _) in mutations.items():
        holders = [c for c in notebook.cells if c.cell_type == "code" and right in c.source
                   and make_exercises.solution_blocks(c.source)]
        assert len(holders) == 1 and holders[0].source.count(right) == 1, \
            f"exercise {label}: the solution no longer holds {right!r}; update the mutations"
        holders[0].source = holders[0].source.replace(right, wrong)
    return run(notebook)


@pytest.fixture(scope="module")
def mutated_run():
    """The solutions with one wrong answer per exercise (MUTATIONS)."""
    return run_mutated(MUTATIONS)


@pytest.fixture(scope="module")
def more_mutated_run():
    """The solutions with the other wrong answers (MORE_MUTATIONS)."""
    return run_mutated(MORE_MUTATIONS)


# (a) in sync ------------------------------------------------------------------------------

def test_the_students_copy_is_what_make_exercises_writes():
    assert EXERCISES.read_text(encoding="utf-8") == make_exercises.expected_text(SOLUTIONS), \
        "04-exercises.ipynb is stale: run .venv/bin/python notebooks/make_exercises.py"
    assert make_exercises.main(["--check"]) == 0


def test_check_mode_refuses_a_stale_copy(tmp_path, capsys):
    stale = tmp_path / "04-exercises.ipynb"
    stale.write_text(EXERCISES.read_text(encoding="utf-8").replace("# 04 Exercises", "# 04 Old"),
                     encoding="utf-8")
    assert make_exercises.main(["--check", str(SOLUTIONS), str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert make_exercises.main([str(SOLUTIONS), str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == EXERCISES.read_text(encoding="utf-8")


def test_both_notebooks_hold_the_same_exercises_and_checks():
    solutions = nbformat.read(SOLUTIONS, as_version=4)
    exercises = nbformat.read(EXERCISES, as_version=4)
    assert list(checks(solutions)) == list(checks(exercises)) == LABELS
    for label, cell in checks(solutions).items():
        assert checks(exercises)[label].source == cell.source  # the same asserts, word for word
    stubs = [line.strip() for cell in exercises.cells if cell.cell_type == "code"
             for line in cell.source.splitlines() if "NotImplementedError(" in line]
    blocks = [block for cell in solutions.cells if cell.cell_type == "code"
              for block in make_exercises.solution_blocks(cell.source)]
    assert len(stubs) == len(blocks) == 9  # 2.2 and 3 have two functions each
    assert sorted(set(stubs)) == sorted(f'raise NotImplementedError("Exercise {label}: your code here")'
                                        for label in LABELS)


def test_the_students_copy_has_no_outputs_and_minimal_metadata():
    exercises = nbformat.read(EXERCISES, as_version=4)
    assert exercises.metadata == make_exercises.METADATA
    for cell in exercises.cells:
        assert cell.metadata == {}
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


# (b) no solution text -----------------------------------------------------------------------

def test_the_students_copy_gives_no_solution_away():
    text = EXERCISES.read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "<!-- STUDENTS", "solutions notebook"):
        assert marker not in text
    solutions = nbformat.read(SOLUTIONS, as_version=4)
    hidden = {line.strip() for cell in solutions.cells if cell.cell_type == "code"
              for block in make_exercises.solution_blocks(cell.source) for line in block}
    for cell in solutions.cells:
        if cell.cell_type == "markdown":
            for block in make_exercises.MARKDOWN_SOLUTION.findall(cell.source):
                hidden |= {line.strip() for line in block.splitlines() if "<!--" not in line}
    hidden -= GENERIC
    assert len(hidden) > 30
    shown = {line.strip() for cell in nbformat.read(EXERCISES, as_version=4).cells
             for line in cell.source.splitlines()}
    assert sorted(hidden & shown) == []


# (c) the stubs: each check fails in one line, everything else runs ---------------------------

def test_on_the_stubs_each_check_says_in_one_line_which_exercise_is_not_solved(student_run):
    found = checks(student_run)
    assert list(found) == LABELS
    for label, cell in found.items():
        [error] = errors(cell)
        assert error.ename == "NotSolvedYet", (label, error.ename, error.evalue)
        assert error.evalue.startswith(f"Exercise {label}: ") and "is not solved yet" in error.evalue
        [line] = error.traceback  # the verdict, no traceback
        assert "\n" not in line and "✗" in line and f"Exercise {label}: " in line
        assert "✓" not in stdout(cell)


def test_on_the_stubs_every_other_cell_runs(student_run):
    failed = [(cell.get("id"), errors(cell)[0].ename) for cell in student_run.cells
              if cell.cell_type == "code" and not label_of(cell) and errors(cell)]
    assert failed == []


# (d) the solutions: every check passes ------------------------------------------------------

def test_on_the_solutions_every_check_passes(solutions_run):
    found = checks(solutions_run)
    assert list(found) == LABELS
    for label, cell in found.items():
        assert re.fullmatch(rf"✓ Exercise {re.escape(label)}: [^\n]+: solved\.\n", stdout(cell)), \
            (label, stdout(cell), [e.evalue for e in errors(cell)])
    assert [c.get("id") for c in solutions_run.cells if c.cell_type == "code" and errors(c)] == []


# (e) a wrong answer: its check fails too ----------------------------------------------------

def assert_not_right_yet(notebook, label, words):
    cell = checks(notebook)[label]
    [error] = errors(cell)
    assert error.ename == "NotSolvedYet"
    assert error.evalue.startswith(f"Exercise {label}: ") and "is not right yet: " in error.evalue
    assert words in error.evalue, error.evalue
    [line] = error.traceback
    assert "\n" not in line


@pytest.mark.parametrize("label", list(MUTATIONS))
def test_a_wrong_solution_is_not_right_yet(mutated_run, label):
    assert_not_right_yet(mutated_run, label, MUTATIONS[label][2])


@pytest.mark.parametrize("label", list(MORE_MUTATIONS))
def test_another_wrong_solution_is_not_right_yet(more_mutated_run, label):
    assert_not_right_yet(more_mutated_run, label, MORE_MUTATIONS[label][2])
