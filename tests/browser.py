"""Headless Chromium for the browser tests: Debian's ``chromium``, driven by Playwright.

Playwright cannot download its own browser here, so it launches the system's
(``apt-get install -y chromium``; ``.ci/run`` does it). Without it, or
without Playwright, a test module that calls ``skip_without_a_browser()`` is
skipped on a developer's machine, with the way to install both; under CI
(the ``CI`` variable is set) it runs, and fails if they are missing. The
``browser`` fixture (``conftest.py``) launches it.
"""

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover
    expect = sync_playwright = None


def skip_without_a_browser() -> None:
    if not (sync_playwright and os.path.exists(CHROMIUM)) and not os.environ.get("CI"):
        pytest.skip("needs Chromium and Playwright: apt-get install -y chromium; "
                    "pip install -r requirements-dev.txt", allow_module_level=True)


__all__ = ["ARGS", "CHROMIUM", "expect", "skip_without_a_browser", "sync_playwright"]
