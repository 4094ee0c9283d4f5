"""Run notebooks top to bottom and save them with their outputs (``make notebook``).

What ``jupyter nbconvert --execute --to notebook --inplace`` does, with only
what ``requirements-dev.txt`` installs (``jupyter_client``, ``nbformat`` and
``ipykernel``, which nbval needs anyway): start a kernel on this Python in the
notebook's folder, as ``pytest --nbval-current-env`` does, run each code cell
and keep its outputs. A cell
that raises stops the run, prints the error and leaves the file unchanged.

    .venv/bin/python notebooks/execute.py notebooks/*.ipynb
"""

from __future__ import annotations

import queue
import sys
import time
from pathlib import Path

import nbformat
from ipykernel.kernelspec import RESOURCES, get_kernel_dict
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager

CELL_TIMEOUT = 300  # seconds


class ThisPython(KernelSpecManager):
    """Every kernel is ipykernel on the Python running this script (nbval's
    ``--nbval-current-env``), whatever other kernels this machine has installed."""

    def get_kernel_spec(self, kernel_name):
        return KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())


def start_kernel(cwd: str):
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())
    manager.start_kernel(cwd=cwd)
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
    except BaseException:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
        raise
    return manager, client


def run_cell(client, source: str):
    """Execute one cell; returns (execution_count, outputs, error or None)."""
    msg_id = client.execute(source, store_history=True, allow_stdin=False)
    outputs, count, error = [], None, None
    deadline = time.monotonic() + CELL_TIMEOUT
    while True:
        try:
            msg = client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"a cell ran for more than {CELL_TIMEOUT} s") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "status" and content["execution_state"] == "idle":
            break
        if kind == "execute_input":
            count = content["execution_count"]
        elif kind == "clear_output":
            outputs.clear()
        elif kind == "stream" and outputs and outputs[-1].output_type == "stream" \
                and outputs[-1].name == content["name"]:
            outputs[-1].text += content["text"]  # one block per stream, as Jupyter saves it
        elif kind in ("stream", "display_data", "execute_result", "error"):
            outputs.append(nbformat.v4.output_from_msg(msg))
            if kind == "error":
                error = content
    client.get_shell_msg(timeout=CELL_TIMEOUT)  # the execute_reply
    return count, outputs, error


def execute(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    manager, client = start_kernel(cwd=str(path.parent.resolve()))
    started = time.monotonic()
    try:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            count, outputs, error = run_cell(client, cell.source)
            cell.execution_count, cell.outputs = count, outputs
            if error is not None:
                print(f"{path}: cell {index} raised {error['ename']}: {error['evalue']}",
                      file=sys.stderr)
                print("\n".join(error["traceback"]), file=sys.stderr)
                return False
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    nbformat.validate(nb)
    nbformat.write(nb, path)
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
