"""The dashboard in a real browser, against a real server and real workers on loopback.

Headless Chromium (Debian's, driven by Playwright) opens http://127.0.0.1:PORT/
with every request to anywhere else blocked and recorded, and watches the
classroom demo happen: a burst submitted from the page rises and drains, a
task that always fails reaches the dead letter and its button replays it, a
killed worker disappears once its lease runs out and its task is pending
again, and the page carries on after the server restarts. ``/docs`` renders
its routes with no network. A screenshot of the page mid-burst is saved to
``out/dashboard-mid-burst.png``.

Needs Debian's Chromium (``apt-get install -y chromium``) and Playwright for
Python; without them the test is skipped on a developer's machine, never
under CI (where ``.ci/run`` installs them).
"""

import re
import time

import pytest

from browser import expect, skip_without_a_browser
from live import ROOT, LiveSystem, wait_for

SCREENSHOT = ROOT / "out" / "dashboard-mid-burst.png"
LEASE = 2.0  # seconds: a killed worker's task comes back quickly

skip_without_a_browser()


@pytest.fixture
def live(tmp_path):
    with LiveSystem(tmp_path) as system:
        system.start_server("--lease", str(LEASE))
        yield system


class Page:
    """A browser tab on the server that may reach nothing else; it records what it tried
    to reach elsewhere and what the page logged as errors."""

    def __init__(self, browser, base: str):
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.outside, self.errors = [], []

        def route(request_route):
            url = request_route.request.url
            if url.startswith(base):
                request_route.continue_()
            else:
                self.outside.append(url)
                request_route.abort()
        self.context.route("**/*", route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def count(self, status: str) -> int:
        text = self.page.locator(f"#count-{status}").text_content()
        return int(text) if text.strip().isdigit() else -1


def wait_page(condition, what: str, timeout: float = 20):
    return wait_for(lambda: condition() or None, timeout, what)


def test_the_classroom_demo_on_the_dashboard(live, browser):
    tab = Page(browser, live.url)
    page = tab.page
    began = time.monotonic()
    page.goto(f"{live.url}/")
    expect(page.locator("#connection")).to_have_text("live", timeout=10_000)

    # A worker appears in the table once it asks for work.
    live.start_worker("w-email", "--types", "email", "--min-work", "0.3",
                              "--max-work", "0.5", "--failure-rate", "0")
    expect(page.locator('#workers tr[data-worker="w-email"]')).to_be_visible(timeout=15_000)

    # The lesson's loop as one click: 30 tasks rise as pending, then all complete.
    page.fill("#burst-count", "30")
    page.fill("#burst-type", "email")
    page.click("#burst-submit")
    expect(page.locator("#message")).to_contain_text("30 email tasks submitted")
    wait_page(lambda: tab.count("pending") > 0, "the burst to show as pending")
    # Mid-burst: a third done, the rest draining (the chart shows the shape so far).
    wait_page(lambda: tab.count("completed") >= 10, "a third of the burst to complete")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert tab.count("pending") > 0
    wait_page(lambda: tab.count("completed") == 30, "the burst to complete", timeout=60)
    assert tab.count("pending") == 0
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A task that always fails reaches the dead letter; its button sends it back.
    doomed_worker = live.start_worker("w-doomed", "--types", "doomed", "--min-work", "0.01",
                                      "--max-work", "0.02", "--failure-rate", "1")
    doomed = live.client.submit("doomed", {"n": 1}, max_retries=1)
    row = page.locator(f'#dead-letter tr[data-task="{doomed.id}"]')
    expect(row).to_be_visible(timeout=15_000)
    expect(row).to_contain_text("doomed")
    expect(row.locator("td.error")).to_contain_text("Random processing error")
    live.kill(doomed_worker)  # idle: it holds nothing, so the replayed task stays pending
    row.locator("button.replay").click()
    expect(row).to_have_count(0, timeout=10_000)
    wait_page(lambda: tab.count("pending") == 1 and tab.count("failed") == 0,
              "the replayed task to wait again")
    assert live.client.get(doomed.id).status == "pending"

    # A worker killed while it holds a task: listed with its task until its lease runs
    # out, then gone, and the task pending again.
    slow = live.start_worker("w-slow", "--types", "slow", "--min-work", "60",
                             "--max-work", "60", "--failure-rate", "0")
    live.client.submit("slow", {"n": 1})
    holding = page.locator('#workers tr[data-worker="w-slow"]')
    expect(holding).to_contain_text("(slow)", timeout=15_000)
    expect(page.locator('#workers tr[data-worker="w-email"]')).to_contain_text("waiting for work")
    live.kill(slow)
    expect(holding).to_have_count(0, timeout=int((LEASE + 10) * 1000))
    wait_page(lambda: tab.count("processing") == 0 and tab.count("pending") == 2,
              "the killed worker's task to be pending again")

    # The server restarts: the page says so, then carries on.
    live.stop(live.server)
    expect(page.locator("#connection")).to_contain_text("unreachable", timeout=10_000)
    live.start_server("--lease", str(LEASE))
    live.client.submit("report", {"n": 1})
    expect(page.locator("#connection")).to_have_text("live", timeout=15_000)
    wait_page(lambda: tab.count("pending") == 3, "the page to show the new task")

    assert tab.outside == [], f"the page tried the network: {tab.outside}"
    # A failed fetch while the server was down is logged by the browser; nothing else.
    assert [e for e in tab.errors if "ERR_CONNECTION_REFUSED" not in e] == []
    print(f"\nthe browser test ran in {time.monotonic() - began:.1f} s; "
          f"screenshot: {SCREENSHOT}")


def test_on_a_closed_server_the_page_asks_for_the_token_once_per_tab(tmp_path, browser):
    with LiveSystem(tmp_path) as system:
        system.start_server(env={"QUEUE_TOKEN": "class-secret"})
        system.client.close()
        system.client = type(system.client)(system.url, token="class-secret")
        tab = Page(browser, system.url)
        page = tab.page
        page.goto(f"{system.url}/")
        expect(page.locator("#token-form")).to_be_visible(timeout=10_000)
        expect(page.locator("#connection")).to_have_text("needs a token")
        page.fill("#token", "wrong")
        page.click("#token-form button")
        expect(page.locator("#token-form")).to_be_visible(timeout=10_000)  # asked again
        page.fill("#token", "class-secret")
        page.click("#token-form button")
        expect(page.locator("#connection")).to_have_text("live", timeout=10_000)
        # The page's own actions carry it, through the same API and guard as anyone's.
        page.fill("#burst-count", "3")
        page.click("#burst-submit")
        expect(page.locator("#message")).to_contain_text("3 email tasks submitted")
        assert system.client.stats()["total"] == 3
        # Kept for the tab: a reload does not ask again; a new tab (context) does.
        page.reload()
        expect(page.locator("#connection")).to_have_text("live", timeout=10_000)
        assert page.locator("#token-form").is_hidden()
        other = Page(browser, system.url).page
        other.goto(f"{system.url}/")
        expect(other.locator("#token-form")).to_be_visible(timeout=10_000)
        assert tab.outside == []
        # The browser logs each refused request (the 401s before the token); nothing else.
        assert all("401" in error for error in tab.errors), tab.errors


def test_a_replay_refused_to_the_class_token_asks_for_the_worker_token(tmp_path, browser):
    """With QUEUE_WORKER_TOKEN too, the class token may read but not replay: the page
    says so and asks for a token that may (and refuses one no header can carry)."""
    tokens = {"QUEUE_TOKEN": "class-secret", "QUEUE_WORKER_TOKEN": "worker-secret"}
    with LiveSystem(tmp_path) as system:
        system.start_server(env=tokens)
        system.client.close()
        system.client = type(system.client)(system.url, token="worker-secret")
        doomed = system.client.submit("doomed", max_retries=1)
        held = system.client.claim("w1")[0]
        system.client.fail(held.id, held.lease_id, "no such mailbox")
        tab = Page(browser, system.url)
        page = tab.page
        page.goto(f"{system.url}/")
        page.fill("#token", "class-secret")
        page.click("#token-form button")
        row = page.locator(f'#dead-letter tr[data-task="{doomed.id}"]')
        expect(row).to_contain_text("no such mailbox", timeout=10_000)
        row.locator("button.replay").click()
        expect(page.locator("#message")).to_contain_text("worker token")
        expect(page.locator("#token-form")).to_be_visible()
        page.fill("#token", "clé")  # not what an HTTP header carries
        page.click("#token-form button")
        expect(page.locator("#message")).to_contain_text("visible ASCII")
        page.fill("#token", "worker-secret")
        page.click("#token-form button")
        row.locator("button.replay").click()
        expect(row).to_have_count(0, timeout=10_000)
        assert system.client.get(doomed.id).status == "pending"
        assert tab.outside == []


def test_the_api_docs_render_with_no_network(live, browser):
    tab = Page(browser, live.url)
    tab.page.goto(f"{live.url}/docs")
    operations = tab.page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible(timeout=15_000)
    shown = {re.sub(r"\s+", "", path) for path in operations.all_text_contents()}
    assert {"/task", "/tasks/claim", "/dead-letter/{task_id}/replay", "/metrics"} <= shown
    assert tab.outside == [] and tab.errors == []
