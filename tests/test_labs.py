"""The labs as a series: their shape, their links, their size, and `make lab`.

nbval (in `make test`) runs each lab and compares its outputs; these tests
check what nbval does not: that every lab opens with what it teaches and
ends with its key takeaways, that the links between labs lead somewhere,
that the saved files stay light, and that `make lab` really opens
JupyterLab on them from a fresh clone.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import nbformat
import pytest

from live import ROOT, free_port, wait_for

NOTEBOOKS = ROOT / "notebooks"
SERIES = ["00-start-here", "01-the-queue-step-by-step", "02-over-http", "03-fault-tolerance",
          "04-exercises", "05-scaling-and-docker-compose", "06-traffic-spikes-and-capacity",
          "07-queueing-theory", "08-predict-then-verify"]
LABS = SERIES[1:] + ["04-solutions"]
MAX_BYTES = 500 * 1024


def read(name):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def links(text):
    return re.findall(r"\]\(([^)\s]+\.ipynb)\)", text)


def test_the_folder_holds_the_series_and_nothing_else():
    found = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert found == sorted(SERIES + ["04-solutions"])


@pytest.mark.parametrize("name", LABS)
def test_a_lab_opens_with_its_box_and_ends_with_its_takeaways(name):
    cells = read(name).cells
    first, last = cells[0].source, cells[-1].source
    assert cells[0].cell_type == "markdown" and re.search(r"^# \d\d ", first, re.MULTILINE)
    for line in ("**What you will learn:**", "**What you need:**", "**About how long:**"):
        assert re.search(r"^> " + re.escape(line), first, re.MULTILINE), (name, line)
    assert any(c.cell_type == "markdown" and "## Key takeaways (*à retenir*)" in c.source
               for c in cells[-2:]), name
    index = "00-start-here.ipynb"
    assert index in links(first) and index in links(last), "a link to the index, top and bottom"


@pytest.mark.parametrize("position", range(1, len(SERIES)))
def test_links_lead_to_the_previous_and_the_next_lab(position):
    names = [SERIES[position]] + (["04-solutions"] if SERIES[position] == "04-exercises" else [])
    for name in names:
        cells = read(name).cells
        for text in (cells[0].source, cells[-1].source):
            found = links(text)
            assert f"{SERIES[position - 1]}.ipynb" in found, (name, "previous")
            if position + 1 < len(SERIES):
                assert f"{SERIES[position + 1]}.ipynb" in found, (name, "next")


@pytest.mark.parametrize("name", SERIES + ["04-solutions"])
def test_every_link_leads_to_a_file_that_exists(name):
    for cell in read(name).cells:
        if cell.cell_type == "markdown":
            for target in re.findall(r"\]\(([^)#\s]+)\)", cell.source):
                if not target.startswith(("http://", "https://")):
                    assert (NOTEBOOKS / target).exists(), (name, target)


@pytest.mark.parametrize("name", SERIES + ["04-solutions"])
def test_a_saved_lab_is_light_and_names_the_python3_kernel(name):
    assert (NOTEBOOKS / f"{name}.ipynb").stat().st_size < MAX_BYTES
    notebook = read(name)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in notebook.cells if c.cell_type == "code"]
    if name != "04-exercises":  # the students' copy is saved without outputs
        assert all(c.execution_count for c in code), "saved after a full run (make notebook)"
    ignored = [c for c in code if c.source.startswith("# NBVAL_IGNORE_OUTPUT")]
    assert len(ignored) <= 2, "only what truly varies may escape the comparison"
    for cell in code:
        assert "NBVAL_IGNORE_OUTPUT" not in cell.source or cell in ignored, \
            "the marker works only alone on the first line"


def test_the_labs_run_strictly():
    [options] = re.findall(r"^addopts = (.*)$", (ROOT / "pytest.ini").read_text(), re.MULTILINE)
    assert "--nbval" in options.split() and "--nbval-lax" not in options


# -- make lab ---------------------------------------------------------------------------

async def execute(url: str, code: str, timeout: float = 120) -> str:
    """Run ``code`` in a JupyterLab kernel over its websocket, as the browser does; what it
    printed. Jupyter's messages: an execute_request on the shell channel, then the replies
    to it on iopub until the kernel is idle again."""
    from tornado.websocket import websocket_connect
    socket = await websocket_connect(url)
    msg_id = uuid.uuid4().hex
    await socket.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False}}))
    printed = []
    try:
        while True:
            reply = json.loads(await asyncio.wait_for(socket.read_message(), timeout))
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = reply["msg_type"], reply["content"]
            if kind == "stream":
                printed.append(content["text"])
            elif kind == "error":
                raise AssertionError(f"{content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(printed)
    finally:
        socket.close()


def test_make_lab_opens_jupyterlab_on_the_labs():
    """`make lab` on this checkout (CI runs the suite on a fresh clone): it creates
    .venv-lab if needed, then JupyterLab answers on 127.0.0.1 with the labs and a
    python3 kernel that imports the project."""
    port, token = free_port(), "lab-test-token"
    env = dict(os.environ, LAB_PORT=str(port),
               LAB_ARGS=f"--no-browser --ServerApp.token={token} --ServerApp.open_browser=False")
    env.pop("PYTHONPATH", None)
    make = subprocess.Popen(["make", "lab"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    headers = {"Authorization": f"token {token}"}
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            assert make.poll() is None, make.stdout.read().decode()[-3000:]
            try:
                return httpx.get(f"{base}/api/status", headers=headers, timeout=5).status_code == 200
            except httpx.TransportError:
                return False
        wait_for(up, 600, "JupyterLab to answer (the first run installs .venv-lab)", interval=0.5)
        assert httpx.get(f"{base}/lab", headers=headers, timeout=10).status_code == 200
        listing = httpx.get(f"{base}/api/contents", headers=headers, timeout=10).json()
        names = {item["name"] for item in listing["content"]}
        assert {f"{name}.ipynb" for name in SERIES} <= names
        specs = httpx.get(f"{base}/api/kernelspecs", headers=headers, timeout=10).json()
        assert "python3" in specs["kernelspecs"]
        # A kernel starts in the labs' folder, on the lab venv's Python, and imports the
        # project as a lab's set-up cell does.
        session = httpx.post(f"{base}/api/sessions", headers=headers, timeout=30, json={
            "path": "00-start-here.ipynb", "type": "notebook", "name": "",
            "kernel": {"name": "python3"}}).json()
        kernel = session["kernel"]
        code = ("import sys; from labkit import ROOT; import queue_system, sim; "
                "print(sys.prefix, ROOT, queue_system.__file__)")
        printed = asyncio.run(execute(f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels"
                                      f"?token={token}", code))
        prefix, root, package = printed.split()
        assert Path(prefix) == ROOT / ".venv-lab" and Path(root) == ROOT
        assert Path(package).is_relative_to(ROOT)
        httpx.delete(f"{base}/api/sessions/{session['id']}", headers=headers, timeout=30)
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        try:
            make.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
    lab_python = ROOT / ".venv-lab" / "bin" / "python"
    check = subprocess.run([str(lab_python), "-c", "import queue_system, sim, compose, jupyterlab"],
                           cwd=NOTEBOOKS, env=dict(env, PYTHONPATH=str(ROOT)),
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    dev = subprocess.run([sys.executable, "-c", "import jupyterlab"], capture_output=True)
    assert dev.returncode != 0, "JupyterLab stays out of the test venv"
