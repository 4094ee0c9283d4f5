"""Write the students' copy of the exercises, 04-exercises.ipynb, from 04-solutions.ipynb.

The exercises are written once, solved, in 04-solutions.ipynb: nbval runs it, so every
check is known to pass on its solution. The students' copy is derived from it and never
edited by hand:

- in a code cell, each block from ``# BEGIN SOLUTION`` to ``# END SOLUTION`` becomes one
  line at the block's indentation, ``raise NotImplementedError("Exercise N: your code
  here")``, where N is the label of the next check, ``with exercise("N: ...")``;
- in a markdown cell, text between ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->``
  is dropped, and a comment ``<!-- STUDENTS ... -->`` (hidden in the solutions) is shown;
- outputs and execution counts are cleared; cell ids are kept; the metadata is the kernel's
  name and language, nothing that depends on who ran what.

The same solutions always give the same bytes, so a stale copy is easy to tell:

    .venv/bin/python notebooks/make_exercises.py          # write notebooks/04-exercises.ipynb
    .venv/bin/python notebooks/make_exercises.py --check  # exit 1 if that file is out of date

(Both take other paths too: ``make_exercises.py [--check] [SOLUTIONS EXERCISES]``.)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SOLUTIONS = HERE / "04-solutions.ipynb"
EXERCISES = HERE / "04-exercises.ipynb"

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION[ \t]*$")
END = re.compile(r"^[ \t]*# END SOLUTION[ \t]*$")
CHECK = re.compile(r"""with exercise\(\s*["'](?P<label>[^:"']+):""")
MARKDOWN_SOLUTION = re.compile(r"<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->\n?", re.DOTALL)
MARKDOWN_STUDENTS = re.compile(r"<!-- STUDENTS\n(?P<text>.*?)\n-->", re.DOTALL)
METADATA = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"}}


def solution_blocks(source: str) -> list:
    """The blocks of a code cell's source: lists of lines between the markers (markers left out)."""
    blocks, block = [], None
    for number, line in enumerate(source.split("\n"), 1):
        if BEGIN.match(line):
            if block is not None:
                raise ValueError(f"line {number}: BEGIN SOLUTION inside a solution block")
            block = []
        elif END.match(line):
            if block is None:
                raise ValueError(f"line {number}: END SOLUTION without a BEGIN SOLUTION")
            blocks.append(block)
            block = None
        elif block is not None:
            block.append(line)
    if block is not None:
        raise ValueError("a BEGIN SOLUTION is never closed by an END SOLUTION")
    return blocks


def replace_solutions(source: str, stub: str) -> str:
    """``source`` with each solution block, markers included, replaced by ``stub`` indented as it."""
    solution_blocks(source)  # refuses unbalanced markers
    lines, inside = [], False
    for line in source.split("\n"):
        begin = BEGIN.match(line)
        if begin:
            inside = True
            lines.append(begin["indent"] + stub)
        elif END.match(line):
            inside = False
        elif not inside:
            lines.append(line)
    return "\n".join(lines)


def student_markdown(source: str) -> str:
    """Solutions-only text dropped, students-only text shown."""
    return MARKDOWN_STUDENTS.sub(lambda m: m["text"], MARKDOWN_SOLUTION.sub("", source)).strip("\n")


def student_copy(solutions: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The students' notebook: ``solutions`` without its solutions, outputs or run metadata."""
    cells = []
    for index, cell in enumerate(solutions.cells):
        source = cell.source
        if cell.cell_type == "code":
            if solution_blocks(source):
                label = next((m["label"] for later in solutions.cells[index:] if later.cell_type == "code"
                              for m in [CHECK.search(later.source)] if m), None)
                if label is None:
                    raise ValueError(f"cell {cell.get('id')}: a solution with no check after it "
                                     "(with exercise(\"N: ...\"))")
                source = replace_solutions(
                    source, f'raise NotImplementedError("Exercise {label}: your code here")')
            new = nbformat.v4.new_code_cell(source)
        elif cell.cell_type == "markdown":
            source = student_markdown(source)
            if not source.strip():
                continue  # a cell that only held solution text
            new = nbformat.v4.new_markdown_cell(source)
        else:
            new = nbformat.v4.new_raw_cell(source)
        new.id = cell.id
        cells.append(new)
    notebook = nbformat.v4.new_notebook(cells=cells, metadata=METADATA)
    notebook.nbformat, notebook.nbformat_minor = solutions.nbformat, solutions.nbformat_minor
    nbformat.validate(notebook)
    return notebook


def render(notebook: nbformat.NotebookNode) -> str:
    """The file's text, as ``nbformat.write`` would save it."""
    text = nbformat.writes(notebook)
    return text if text.endswith("\n") else text + "\n"


def expected_text(solutions: Path = SOLUTIONS) -> str:
    """What the students' copy of ``solutions`` should hold."""
    return render(student_copy(nbformat.read(solutions, as_version=4)))


def main(argv) -> int:
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    if len(paths) not in (0, 2):
        print("usage: make_exercises.py [--check] [SOLUTIONS EXERCISES]", file=sys.stderr)
        return 2
    solutions, exercises = map(Path, paths) if paths else (SOLUTIONS, EXERCISES)
    text = expected_text(solutions)
    if check:
        if not exercises.exists() or exercises.read_text(encoding="utf-8") != text:
            print(f"{exercises} is out of date with {solutions}: run "
                  f"`.venv/bin/python notebooks/make_exercises.py`", file=sys.stderr)
            return 1
        print(f"{exercises} is up to date")
        return 0
    exercises.write_text(text, encoding="utf-8")
    print(f"{exercises}: written from {solutions.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
