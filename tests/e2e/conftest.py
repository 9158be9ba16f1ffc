"""Browser fixtures: a real headless Chromium (Debian's, never a downloaded one) driven by
Playwright's sync API, and the intake app served on a random local port.

    def test_x(page, intake_server):
        page.goto(intake_server.invite(intake_server.demo.employees[0]))

Pages fail their test on any uncaught JavaScript error and on any Content-Security-Policy
violation (an inline script or style, a foreign source: what the strict policy of libs/web refuses).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from werkzeug.serving import make_server

from libs.db import Database, User
from libs.db.demo import DemoData, seed_demo
from libs.settings import Settings
from libs.storage import LocalBlobStore
from libs.web import invite_url

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PHONE = {"width": 390, "height": 844}
# expect() waits for a condition up to this long (Playwright's default is 5 s): on a busy 2-core
# machine checking an uploaded photo's face alone has taken longer. A bound, not a speed target.
expect.set_options(timeout=30_000)
# Runs in every page before its own scripts (Playwright injects it outside the page's CSP) and
# reports each violation the page causes, including refused inline styles and scripts.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} ` +
                `at ${e.sourceFile || document.URL}:${e.lineNumber} ${e.sample || ""}`);
});
"""


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install it with `make browser` (apt-get install -y chromium)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class PageErrors:
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) sized like a phone."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=1)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    errors: list[str] = []
    violations: list[str] = []
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: _collect_csp(msg.text, violations))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not violations, f"Content-Security-Policy violations: {violations}"


def _collect_csp(text: str, violations: list[str]) -> None:
    # Our listener's reports, and Chromium's own console line for what it refused.
    if text.startswith("CSP violation") or "Content Security Policy" in text:
        violations.append(text)


@dataclass
class LiveIntake:
    url: str
    settings: Settings
    db: Database
    demo: DemoData

    def invite(self, user: User) -> str:
        return invite_url(self.settings, user)


@pytest.fixture
def intake_server(tmp_path: Path, sqlite_url: str) -> Iterator[LiveIntake]:
    """The intake app alone (SQLite, memory:// broker, blobs in tmp_path) on 127.0.0.1:<random>."""
    from services.intake.app import create_app

    settings = Settings(
        VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=sqlite_url,
        BROKER_URL=f"memory://{uuid.uuid4().hex[:8]}/",
        SECRET_KEY="e2e-secret",
    )
    db = Database(settings.database_url)
    app = create_app(settings, db=db, blobs=LocalBlobStore(settings.blob_dir), checks={})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="intake-e2e", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield LiveIntake(url, settings.replace(PUBLIC_URL=url), db, seed_demo(db))
    finally:
        server.shutdown()
        thread.join(10)
        db.dispose()
