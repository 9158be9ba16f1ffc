"""Support staff in a real browser (phone-sized, under the strict CSP every app will send): find
a failed session, read its timeline, retry it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Response
from playwright.sync_api import Page, expect
from werkzeug.serving import make_server

from libs.contracts import SESSION_APPROVED, SESSION_COMPLETED, SESSION_FAILED, SESSION_SUBMITTED
from libs.db import Database
from libs.db.demo import DemoData, seed_demo
from libs.settings import Settings
from libs.storage import LocalBlobStore
from libs.web import invite_url
from tests.support.ops import (
    SUBMITTED,
    Tried,
    make_session,
    outbox_for,
    record_email,
    record_webhook,
    state_of,
)

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
    for name in ("Queues", "Dead letters", "Workers", "Mail", "Webhooks", "Audit log"):
        page.get_by_role("link", name=name, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.locator("#audit")).to_contain_text("session.retried")
    assert violations == []


def test_support_follows_a_sessions_emails_and_webhooks_try_by_try(page: Page, ops_server: LiveOps) -> None:
    demo, db = ops_server.demo, ops_server.db
    violations: list[str] = []
    page.on(
        "console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None
    )
    hs = make_session(
        db,
        demo,
        "completed",
        events=[(SESSION_SUBMITTED, SUBMITTED), (SESSION_COMPLETED, {"headshot_count": 12})],
    )
    soon = datetime.now(UTC) + timedelta(seconds=5)  # after the events: the tries come last
    record_email(
        db,
        hs,
        "ready",
        status="sent",
        at=soon,
        tries=[
            Tried(0, "pending", latency_ms=31.0, error="SMTP server answered 451 try again later"),
            Tried(60, "sent", latency_ms=12.0, answer="250 2.0.0 Ok: queued as 4XbYz"),
        ],
    )
    record_webhook(
        db,
        hs,
        SESSION_COMPLETED.routing_key,
        status="pending",
        at=soon,
        tries=[Tried(1, "failed", latency_ms=840.0, status_code=503, answer="busy, come back later",
                     error="the endpoint answered 503")],
    )  # fmt: skip

    page.goto(invite_url(ops_server.settings, demo.support, "/invite/"))
    page.goto(f"{ops_server.url}/sessions/{hs}")
    timeline = page.locator("#timeline")
    expect(timeline.locator(".entry .title")).to_have_text(
        [
            SESSION_SUBMITTED.routing_key,
            SESSION_COMPLETED.routing_key,
            "e-mail: ready",
            f"webhook: {SESSION_COMPLETED.routing_key}",
            "e-mail: ready",
        ]
    )
    retried = timeline.locator(".entry.email").nth(1)
    expect(retried).to_contain_text("attempt 2")
    expect(retried).to_contain_text("queued as 4XbYz")
    expect(timeline.locator(".entry.email").first).to_contain_text("451 try again later")
    hook = timeline.locator(".entry.webhook")
    expect(hook).to_contain_text("HTTP 503")
    expect(hook).to_contain_text("840 ms")
    expect(hook).to_contain_text("busy, come back later")

    # The session's e-mails, from the timeline's link: recipient, subject, status, tries.
    page.get_by_role("link", name="e-mails", exact=True).click()
    row = page.locator("tbody.delivery")
    expect(row).to_have_count(1)
    expect(row.locator(".recipient")).to_have_text(demo.employees[0].email)
    expect(row.locator(".subject")).to_have_text("Your headshots are ready")
    expect(row.locator("tr.try").first).to_be_hidden()
    row.get_by_text("2 tries").click()
    expect(row.locator("tr.try")).to_have_count(2)
    expect(row.locator("tr.try").first).to_contain_text("451 try again later")

    # A filter it cannot use is answered next to the field, and kept for fixing.
    page.get_by_label("Session").fill("not a session!")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#session-error")).to_have_text("A session id, or its start.")
    expect(page.get_by_label("Session")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Session").fill(hs[:8])
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody.delivery")).to_have_count(1)

    page.get_by_role("link", name="Webhooks", exact=True).click()
    page.locator('select[name="status"]').select_option("pending")
    page.get_by_role("button", name="Filter").click()
    delivery = page.locator("tbody.delivery")
    expect(delivery).to_have_count(1)
    delivery.get_by_text("1 try").click()
    expect(delivery.locator("tr.try")).to_contain_text("503")
    expect(delivery.locator("tr.try .excerpt")).to_have_text("busy, come back later")
    assert violations == []
