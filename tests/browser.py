"""Playwright driving Debian's Chromium (/usr/bin/chromium), never a downloaded browser.

Without Chromium the browser tests are skipped with the reason, except under CI=true, where a
missing browser is a failure: CI must prove the pages work.
"""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("MEMPORTAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# The flags keep Chromium off the network (this machine allows loopback only).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
# Every page reports what its Content-Security-Policy blocked, and the test fails on it.
CSP_WATCH = """
document.addEventListener("securitypolicyviolation", function (event) {
  console.error("CSP violation: " + event.violatedDirective + " blocked " + (event.blockedURI || "inline"));
});
"""


def chromium_or_skip():
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    reason = f"no Chromium at {CHROMIUM}: install it with 'apt-get install chromium'"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: browser tests must run)")
    pytest.skip(reason)


@pytest.fixture
def browser_page(monkeypatch):
    executable = chromium_or_skip()
    # Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a
    # thread with a running loop unless told it is safe (it is: the loop is Playwright's).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()
        # ORM calls made while Playwright ran used connections of its context: close them here,
        # or PostgreSQL keeps a session open and the test database cannot be dropped.
        from django.db import connections

        connections.close_all()


def sign_in(page, base_url, username, password):
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


@pytest.fixture
def strict_page(browser_page):
    """The browser's page, failing the test on a CSP violation or a script error."""
    problems = []
    browser_page.context.add_init_script(CSP_WATCH)
    browser_page.on("console", lambda message: problems.append(message.text) if (
        "Content Security Policy" in message.text or "CSP violation" in message.text) else None)
    browser_page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    yield browser_page
    assert problems == []


def no_serious_violations(page):
    """axe-core (vendored) finds no serious or critical violation on the page as it is."""
    page.evaluate(AXE.read_text())  # through the DevTools protocol: no script element the CSP would refuse
    found = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ["violations"]});
        return result.violations.filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => v.id + ": " + v.nodes.map(n => n.target.join(" ")).slice(0, 3).join(", "));
    }""")
    assert found == [], page.url


def fits_375px(page):
    """At 375 px wide the page scrolls only down: nothing wider than the viewport."""
    size = page.viewport_size
    page.set_viewport_size({"width": 375, "height": 800})
    try:
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{page.url} is {width} px wide at 375 px"
    finally:
        page.set_viewport_size(size)
