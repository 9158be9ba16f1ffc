"""The /mail page in a real Chromium, under the strict Content-Security-Policy every app gets:
a person trying the embedded mode opens the list, reads the "ready" e-mail as it would look in a
mail client (a sandboxed frame), and follows nothing the policy would block."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server

from libs.db import Database
from libs.settings import Settings
from services.notification.app import create_app
from services.notification.handlers import HANDLERS, build_deps
from tests.support.notification import run_handler, seed_people, session_events

STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "frame-ancestors 'none'; form-action 'self'"
)


class _StrictCsp:
    """The policy being added to every app, for responses that set none of their own."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: Any, start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if not any(k.lower() == "content-security-policy" for k, _ in headers):
                headers.append(("Content-Security-Policy", STRICT_CSP))
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


@pytest.fixture(name="mail_url")
def mail_url_fixture(tmp_path: Path, sqlite_url: str) -> Iterator[str]:
    settings = Settings(VAR_DIR=str(tmp_path / "var"), DATABASE_URL=sqlite_url, SECRET_KEY="e2e-secret")
    db = Database(sqlite_url)
    people = seed_people(db)
    deps = build_deps(settings, db)
    for name in ("submitted", "completed"):
        run_handler(HANDLERS, session_events(people)[name], db, deps)
    app = DispatcherMiddleware(_not_found, {"/mail": _StrictCsp(create_app(settings, db=db, checks={}))})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="mail-e2e", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/mail/"
    finally:
        server.shutdown()
        thread.join(10)
        db.dispose()


def _not_found(environ: Any, start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


def test_a_person_reads_the_ready_email_in_the_browser(page: Page, mail_url: str):
    violations: list[str] = []
    page.on(
        "console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    page.goto(mail_url)
    assert page.get_by_role("heading", name="E-mails").is_visible()
    # the stylesheet applied: the list is laid out as cards
    assert page.locator(".card").first.evaluate("e => getComputedStyle(e).borderRadius") == "14px"
    page.get_by_role("link", name="Your headshots are ready").click()
    # is_visible() answers at once; after a click the next page may not be there yet: wait for it
    expect(page.get_by_role("heading", name="Your headshots are ready")).to_be_visible()
    frame = page.frame_locator("iframe.email-frame")
    button = frame.get_by_role("link", name="See my headshots")
    expect(button).to_be_visible()
    # the e-mail's own <style> applies inside its frame (its CSP allows inline styles, nothing else)
    assert button.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(58, 86, 212)"
    assert "12 new headshots" in page.locator("pre.email-text").inner_text()
    page.get_by_role("link", name="← All e-mails").click()
    expect(page.get_by_role("link", name="We have your photos")).to_be_visible()
    assert violations == []
