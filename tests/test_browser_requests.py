"""A real browser tries to drive the local server from another page, and fails.

Chromium opens a page served from another origin (another port, as
JupyterLab's page would be, and another site) whose script does what a
hostile page can do without asking: a ``text/plain`` fetch that submits a
task, a form posted to ``/task``, an image whose address is ``/dequeue``,
and a script pointed at the server through a name that resolves to it (DNS
rebinding). The server must keep nothing of it, and its log must show each
refusal: the requests did arrive, the server said no.

Needs Debian's Chromium (``apt-get install -y chromium``) and Playwright for
Python; without them the test is skipped on a developer's machine, never
under CI (where ``.ci/run`` installs them).
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from browser import ARGS, CHROMIUM, skip_without_a_browser, sync_playwright
from live import LiveSystem, free_port, wait_for

skip_without_a_browser()

HOSTILE_PAGE = """<!doctype html>
<title>a page of another origin</title>
<form id="form" method="post" action="{api}/task" enctype="text/plain" target="sink">
  <input name='{{"type": "email", "payload": {{"x": "' value='"}}}}'>
</form>
<iframe name="sink"></iframe>
<script>
  window.done = (async () => {{
    // A "simple" request: no preflight, so the browser sends it as is.
    await fetch("{api}/tasks", {{method: "POST", mode: "no-cors",
                                 body: JSON.stringify({{type: "email", payload: {{}}}})}})
      .catch(() => null);
    await new Promise(resolve => {{
      const image = new Image();
      image.onload = image.onerror = resolve;
      image.src = "{api}/dequeue";
    }});
    document.getElementById("form").submit();
    await new Promise(resolve => setTimeout(resolve, 500));
    return "sent";
  }})();
</script>
"""


class PageServer(ThreadingHTTPServer):
    """Serves one HTML page on 127.0.0.1 (the hostile site)."""

    def __init__(self, port, html):
        page = html.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", port), Handler)


@pytest.fixture
def live(tmp_path):
    with LiveSystem(tmp_path) as system:
        system.start_server("--log-level", "info")
        system.client.submit("report", {"n": 1})  # a task for /dequeue to take
        yield system


def open_page(browser, url, **context):
    page = browser.new_context(**context).new_page()
    page.goto(url)
    assert page.evaluate("window.done") == "sent"


@pytest.mark.parametrize("page_host", ["127.0.0.1", "localhost"],
                         ids=["same site, other port (like JupyterLab)", "another site"])
def test_a_page_of_another_origin_cannot_submit_or_take_tasks(browser, live, page_host):
    port = free_port()
    page = PageServer(port, HOSTILE_PAGE.format(api=live.url))
    threading.Thread(target=page.serve_forever, daemon=True).start()
    try:
        open_page(browser, f"http://{page_host}:{port}/")
    finally:
        page.shutdown()
        page.server_close()
    wait_for(lambda: live.log("server").count("[Access] 403") >= 1, 10, "the refusals' log")
    stats = live.client.stats()
    assert stats["total"] == 1 and stats["pending"] == 1, stats  # nothing added, nothing taken
    assert "[Access] 403 POST /tasks from http://" in live.log("server")


REBOUND_PAGE = """<!doctype html>
<script>
  window.done = Promise.all([
    fetch("/tasks", {method: "POST", headers: {"Content-Type": "application/json"},
                     body: JSON.stringify({type: "email", payload: {}})}),
    fetch("/tasks"),
  ]).then(answers => answers.map(answer => answer.status));
</script>
"""


def test_a_rebound_name_cannot_reach_the_local_server(live):
    """DNS rebinding: the attacker's name first served the attacker's page, then resolves
    to 127.0.0.1. The page's requests are same-origin to the browser, which lets it read
    the answers; the server refuses them, as it does not answer to that name."""
    origin = f"http://rebind.evil.example:{live.port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=ARGS + ["--host-resolver-rules=MAP rebind.evil.example 127.0.0.1",
                         # Chromium's own guard (a public page may not call the loopback)
                         # is off here: other browsers have none, and our server must hold.
                         "--disable-features=LocalNetworkAccessChecks,"
                         "PrivateNetworkAccessRespectPreflightResults,"
                         "BlockInsecurePrivateNetworkRequests"])
        try:
            page = browser.new_page()
            # The page itself comes from the attacker (here: from Playwright); what the
            # page then asks of its own origin goes to 127.0.0.1, to our server.
            page.route(f"{origin}/", lambda route: route.fulfill(
                status=200, content_type="text/html", body=REBOUND_PAGE))
            page.goto(f"{origin}/")
            statuses = page.evaluate("window.done")
        finally:
            browser.close()
    assert statuses == [403, 403]
    assert live.client.stats()["total"] == 1
    assert "does not answer to the host 'rebind.evil.example" in live.log("server")
