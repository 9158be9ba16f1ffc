"""Support staff in a real browser (phone-sized, under the strict CSP every app will send): find
a failed session, read its timeline, retry it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Response
from playwright.sync_api import Page, expect
from werkzeug.serving import make_server

from libs.contracts import SESSION_APPROVED, SESSION_FAILED, SESSION_SUBMITTED
from libs.db import Database
from libs.db.demo import DemoData, seed_demo
from libs.settings import Settings
from libs.storage import LocalBlobStore
from libs.web import invite_url
from tests.support.ops import SUBMITTED, make_session, outbox_for, state_of

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "frame-ancestors 'none'; form-action 'self'"
)


@dataclass
class LiveOps:
    url: str
    settings: Settings
    db: Database
    demo: DemoData


@pytest.fixture
def ops_server(tmp_path: Path, sqlite_url: str) -> Iterator[LiveOps]:
    from services.ops.app import create_app

    settings = Settings(
        VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=sqlite_url,
        BROKER_URL=f"memory://{uuid.uuid4().hex[:8]}/",
        SECRET_KEY="e2e-secret",
    )
    db = Database(settings.database_url)
    app = create_app(settings, db=db, blobs=LocalBlobStore(settings.blob_dir), checks={})

    @app.after_request
    def _csp(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        return response

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="ops-e2e", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield LiveOps(url, settings.replace(PUBLIC_URL=url), db, seed_demo(db))
    finally:
        server.shutdown()
        thread.join(10)
        db.dispose()


def test_support_finds_a_failed_session_reads_its_timeline_and_retries_it(
    page: Page, ops_server: LiveOps
) -> None:
    demo, db = ops_server.demo, ops_server.db
    violations: list[str] = []
    page.on(
        "console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    make_session(db, demo, "completed")
    make_session(db, demo, "queued", user=demo.other_employee)
    failed = make_session(
        db,
        demo,
        "failed",
        events=[
            (SESSION_SUBMITTED, SUBMITTED),
            (SESSION_APPROVED, {"auto": True, "reviewer_id": None}),
            (SESSION_FAILED, {"stage": "preprocessing", "reason": "no photo had a usable face"}),
        ],
        failure_reason="no photo had a usable face",
    )

    page.goto(invite_url(ops_server.settings, demo.support, "/invite/"))
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    expect(page.locator('.count[data-state="failed"]')).to_have_text("1")

    page.get_by_role("link", name="failed 1").click()
    rows = page.locator("tr.session-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("no photo had a usable face")
    rows.first.get_by_role("link").click()

    timeline = page.locator("#timeline")
    expect(timeline.locator(".entry .title")).to_have_text(
        [SESSION_SUBMITTED.routing_key, SESSION_APPROVED.routing_key, SESSION_FAILED.routing_key]
    )
    expect(timeline).to_contain_text("no photo had a usable face at preprocessing")
    expect(page.locator("#failure-reason")).to_have_text("no photo had a usable face")
    expect(page.locator(".stages .stage")).to_have_count(3)

    page.get_by_role("button", name="Retry: back to the queue").click()
    expect(page.get_by_role("status")).to_contain_text("Sent back to the queue")
    expect(page.locator("#state")).to_have_text("queued")
    expect(timeline.locator(".entry.action .title")).to_have_text(["session.retried"])
    assert state_of(db, failed) == "queued"
    assert len(outbox_for(db, failed, SESSION_APPROVED.routing_key)) == 2  # the retry's approval
    assert violations == []

    # The other pages open too, under the same policy.
    for name in ("Queues", "Dead letters", "Workers", "Mail", "Audit log"):
        page.get_by_role("link", name=name, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.locator("#audit")).to_contain_text("session.retried")
    assert violations == []
