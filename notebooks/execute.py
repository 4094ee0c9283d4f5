"""Run notebooks top to bottom and save them with their outputs (``make notebook``).

``jupyter nbconvert --execute --inplace`` with only nbclient: each notebook
runs on the ``python3`` kernel of this Python (jupyter_client starts it with
this very interpreter), in the notebook's own folder, as the tests' nbval
does. No timing metadata is written, so a rerun whose outputs are the same
leaves the file unchanged. A cell that raises stops the run, says which,
and leaves the file as it was.

    .venv/bin/python notebooks/execute.py notebooks/*.ipynb
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellControlSignal, CellExecutionError, DeadKernelError

CELL_TIMEOUT = 300  # seconds


def execute(path: Path) -> bool:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                            record_timing=False,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    started = time.monotonic()
    try:
        client.execute()
    except (CellExecutionError, CellControlSignal, DeadKernelError) as error:
        # A cell raised, ran past CELL_TIMEOUT, or took the kernel down.
        print(f"{path}: {type(error).__name__}; the file is left unchanged.\n{error}",
              file=sys.stderr)
        return False
    nbformat.write(notebook, path)
    print(f"{path}: ran in {time.monotonic() - started:.1f} s, "
          f"{path.stat().st_size / 1024:.0f} KB with its outputs")
    return True


def main(argv) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    return 0 if all([execute(Path(name)) for name in argv]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
