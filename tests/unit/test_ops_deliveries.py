"""E-mails and webhook deliveries in ops: the Mail and Webhooks pages and their JSON twins (every
answer checked against the published OpenAPI document), and every try on a session's timeline,
in order with its state changes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import update
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from libs.contracts import SESSION_COMPLETED, SESSION_SUBMITTED
from libs.db import AuditLog, Database, EmailSend, HeadshotSession, OutboxMessage
from libs.db.demo import DemoData
from libs.settings import Settings
from libs.storage import LocalBlobStore
from libs.web import invite_url
from services import WEB_MOUNTS
from tests.support.notification import run_handler, seed_people, session_events
from tests.support.ops import (  # noqa: F401 (fixtures)
    SUBMITTED,
    OpsClient,
    Tried,
    backdate,
    demo_fixture,
    make_session,
    ops_app_fixture,
    ops_blobs_fixture,
    ops_db_fixture,
    ops_settings_fixture,
    record_email,
    record_webhook,
    support_fixture,
)

# A minute back: the sessions' last webhook try (302 s after completion) must lie in the past even
# when a test runs within seconds of this module's import (alone, not after the whole suite).
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)


def _session_with_deliveries(db: Database, demo: DemoData) -> tuple[str, int, int]:
    """A completed session: submitted 10 min ago, completed 5 min ago; its "ready" e-mail failed
    once (451) then went out; its webhook got a 503, then a 200."""
    hs = make_session(
        db,
        demo,
        "completed",
        events=[(SESSION_SUBMITTED, SUBMITTED), (SESSION_COMPLETED, {"headshot_count": 12})],
    )
    backdate(db, hs, timedelta(minutes=10), now=NOW)
    completed_at = NOW - timedelta(minutes=5)
    with db.session(all_orgs=True) as s:
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.session_id == hs, OutboxMessage.routing_key == SESSION_COMPLETED.routing_key)
            .values(created_at=completed_at)
        )
        s.commit()
    email = record_email(
        db,
        hs,
        "ready",
        status="sent",
        at=completed_at,
        tries=[
            Tried(1, "pending", latency_ms=31.0, error="SMTP server answered 451 try again later"),
            Tried(61, "sent", latency_ms=12.0, answer="250 2.0.0 Ok: queued as 4XbYz"),
        ],
    )
    hook = record_webhook(
        db,
        hs,
        SESSION_COMPLETED.routing_key,
        status="delivered",
        at=completed_at,
        tries=[
            Tried(2, "failed", latency_ms=840.0, status_code=503, answer="busy, come back later",
                  error="the endpoint answered 503"),
            Tried(302, "delivered", latency_ms=45.0, status_code=200, answer='{"ok": true}'),
        ],
    )  # fmt: skip
    return hs, email, hook


def test_the_timeline_shows_every_try_in_order_with_the_state_changes(
    support: OpsClient, ops_db: Database, demo: DemoData
) -> None:
    hs, _, hook = _session_with_deliveries(ops_db, demo)
    with ops_db.session(all_orgs=True) as s:  # the org admin pressed "resend" between the two tries
        s.add(
            AuditLog(
                org_id=demo.org_id,
                actor_id=demo.admin.id,
                action="webhook.resend",
                target=str(hook),
                detail={"event": SESSION_COMPLETED.routing_key},
                created_at=NOW - timedelta(minutes=1),
            )
        )
        # the same number in another organization's audit is another delivery: not this session's
        s.add(AuditLog(org_id=demo.other_org_id, action="webhook.resend", target=str(hook), detail={}))
        s.commit()
    entries = support.get(f"/api/v1/ops/sessions/{hs}/timeline").json["entries"]
    brief = [(e["kind"], e["title"], e["attempt"], e["outcome"]) for e in entries]
    assert brief == [
        ("event", SESSION_SUBMITTED.routing_key, None, None),
        ("event", SESSION_COMPLETED.routing_key, None, None),
        ("email", "e-mail: ready", 1, "pending"),
        ("webhook", f"webhook: {SESSION_COMPLETED.routing_key}", 1, "failed"),
        ("email", "e-mail: ready", 2, "sent"),
        ("action", "webhook.resend", None, None),
        ("webhook", f"webhook: {SESSION_COMPLETED.routing_key}", 2, "delivered"),
    ]
    retry = entries[3]
    assert (retry["status_code"], retry["latency_ms"], retry["answer"]) == (
        503,
        840.0,
        "busy, come back later",
    )
    assert retry["error"] == "the endpoint answered 503"
    assert entries[4]["answer"] == "250 2.0.0 Ok: queued as 4XbYz"

    page = support.get(f"/sessions/{hs}").get_data(as_text=True)
    timeline = page[page.index('id="timeline"') :]
    assert timeline.index("e-mail: ready") < timeline.index("attempt 2")
    assert "HTTP 503" in timeline and "840 ms" in timeline and "busy, come back later" in timeline
    assert "451 try again later" in timeline and "queued as 4XbYz" in timeline


def test_a_resend_from_the_notification_cli_shows_on_the_timeline_as_the_systems(
    support: OpsClient, ops_settings: Settings, ops_db: Database, demo: DemoData, monkeypatch
) -> None:
    """Support resends on the command line: audited like the console's button, so the session's
    timeline and the audit page show it — done by the system, through the CLI."""
    from services.notification.__main__ import main as notification_cli

    hs, _, hook = _session_with_deliveries(ops_db, demo)
    monkeypatch.setenv("DATABASE_URL", ops_settings.database_url)
    assert notification_cli(["resend", "--org", demo.other_org_id, str(hook)]) == 2  # not theirs
    assert notification_cli(["resend", "--org", demo.org_id, str(hook)]) == 0

    entries = support.get(f"/api/v1/ops/sessions/{hs}/timeline").json["entries"]
    actions = [e for e in entries if e["kind"] == "action"]
    assert [e["title"] for e in actions] == ["webhook.resend"]  # the refused one left nothing
    assert entries[-1] == actions[0]  # after every try so far
    detail = actions[0]["detail"]
    assert "before: {'status': 'delivered'}" in detail and "after: {'status': 'pending'}" in detail
    assert "via: notification CLI" in detail
    page = support.get(f"/audit?action=webhook.resend&target={hook}").get_data(as_text=True)
    assert page.count("webhook.resend</") == 1 and '<span class="muted">system</span>' in page


def test_the_mail_page_lists_recorded_emails_with_their_tries(
    support: OpsClient, ops_db: Database, demo: DemoData, ops_settings: Settings
) -> None:
    hs, email, _ = _session_with_deliveries(ops_db, demo)
    other = make_session(ops_db, demo, "failed", user=demo.other_employee)
    record_email(
        ops_db,
        other,
        "failed",
        status="failed",
        at=NOW,
        subject="We could not finish your headshots",
        tries=[Tried(0, "failed", error="SMTP server answered 550 <address> no such mailbox")],
    )
    page = support.get("/mail").get_data(as_text=True)
    rows = re.findall(r'<tbody class="delivery" data-email="(\d+)">(.*?)</tbody>', page, re.S)
    assert len(rows) == 2
    newest, ready = rows[0][1], rows[1][1]
    assert demo.other_employee.email in newest and "We could not finish your headshots" in newest
    assert "550 &lt;address&gt; no such mailbox" in newest and f"/sessions/{other}" in newest
    assert rows[1][0] == str(email)
    assert demo.employees[0].email in ready and "Your headshots are ready" in ready
    assert (
        ">sent<" in ready and "2 tries" in ready and "queued as 4XbYz" in ready and f"/sessions/{hs}" in ready
    )
    assert 'class="preview"' not in page  # no .eml file was written for these

    # the embedded mode's file, once it exists, opens in the mail viewer
    with ops_db.session(all_orgs=True) as s:
        send = s.get(EmailSend, email)
        assert send is not None
        key = f"{send.message_id}.ready"
    ops_settings.mail_dir.mkdir(parents=True)
    (ops_settings.mail_dir / f"{key}.eml").write_text("Subject: Your headshots are ready\n\nHello\n")
    page = support.get("/mail").get_data(as_text=True)
    assert f'class="preview" href="{ops_settings.public_url}/mail/{key}"' in page

    failed_only = support.get("/mail?status=failed").get_data(as_text=True)
    assert "We could not finish" in failed_only and "Your headshots are ready" not in failed_only
    by_session = support.get(f"/mail?session={hs[:8]}").get_data(as_text=True)
    assert "Your headshots are ready" in by_session and "We could not finish" not in by_session
    assert 'data-status="sent">1</span>' in by_session and 'data-status="failed">0</span>' in by_session


def test_the_mail_and_webhook_pages_answer_bad_filters_field_by_field(support: OpsClient) -> None:
    bad = support.get("/mail?status=lost&session=not-an-id!&page=0")
    body = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert 'id="status-error"' in body and "One of: sending, pending, sent, failed." in body
    assert 'id="session-error"' in body and "A session id, or its start." in body
    assert 'id="page-error"' in body and 'name="session" value="not-an-id!"' in body
    hooks = support.get("/webhooks?kind=DROP TABLE")
    assert hooks.status_code == 400 and 'id="kind-error"' in hooks.get_data(as_text=True)


def test_the_webhooks_page_shows_each_try_with_status_latency_and_answer(
    support: OpsClient, ops_db: Database, demo: DemoData
) -> None:
    hs, _, hook = _session_with_deliveries(ops_db, demo)
    page = support.get("/webhooks").get_data(as_text=True)
    [row] = re.findall(rf'<tbody class="delivery" data-webhook="{hook}">(.*?)</tbody>', page, re.S)
    assert SESSION_COMPLETED.routing_key in row and ">delivered<" in row and f"/sessions/{hs}" in row
    tries = re.findall(r'<tr class="try outcome-(\w+)"><td>(\d+)</td>.*?<td>(\d+) ms</td>', row, re.S)
    assert tries == [("failed", "1", "840"), ("delivered", "2", "45")]
    assert "503" in row and "busy, come back later" in row and "{&#34;ok&#34;: true}" in row
    assert "data-webhook" not in support.get("/webhooks?status=pending").get_data(as_text=True)


def test_the_api_lists_emails_and_webhooks_as_documented(
    support: OpsClient, ops_db: Database, demo: DemoData
) -> None:
    hs, email, hook = _session_with_deliveries(ops_db, demo)
    emails = support.get(f"/api/v1/ops/emails?session={hs}&kind=ready").json
    [e] = emails["emails"]
    assert (e["id"], e["recipient"], e["subject"], e["status"], e["attempts"]) == (
        email,
        demo.employees[0].email,
        "Your headshots are ready",
        "sent",
        2,
    )
    assert [(t["number"], t["outcome"], t["answer"]) for t in e["tries"]] == [
        (1, "pending", None),
        (2, "sent", "250 2.0.0 Ok: queued as 4XbYz"),
    ]
    assert emails["counts"] == {"sending": 0, "pending": 0, "sent": 1, "failed": 0}
    hooks = support.get("/api/v1/ops/webhooks?status=delivered").json
    assert [d["id"] for d in hooks["deliveries"]] == [hook]
    assert [t["status_code"] for t in hooks["deliveries"][0]["tries"]] == [503, 200]

    bad = support.get("/api/v1/ops/emails?status=lost")
    assert bad.status_code == 400 and bad.json["error"]["code"] == "bad_filter"
    assert bad.json["error"]["fields"] == {"status": ["One of: sending, pending, sent, failed."]}
    assert set(support.get("/api/v1/ops/emails?page=x").json["error"]["fields"]) == {"page"}
    assert support.get("/api/v1/ops/webhooks?session=zz").status_code == 400
    missing = support.get("/api/v1/ops/sessions/00000000-0000-0000-0000-000000000000/timeline")
    assert missing.status_code == 404


def test_the_recipient_is_hidden_once_the_sessions_personal_info_is_erased(
    support: OpsClient, ops_db: Database, demo: DemoData
) -> None:
    hs, email, _ = _session_with_deliveries(ops_db, demo)
    address = demo.employees[0].email
    assert support.get(f"/api/v1/ops/emails?session={hs}").json["emails"][0]["recipient"] == address
    with ops_db.session(all_orgs=True) as s:
        s.execute(update(HeadshotSession).where(HeadshotSession.id == hs).values(personal_info_erased_at=NOW))
        s.commit()
    [e] = support.get(f"/api/v1/ops/emails?session={hs}").json["emails"]
    assert (e["id"], e["recipient"], e["status"]) == (email, None, "sent")  # the record stays, unnamed
    page = support.get(f"/mail?session={hs}").get_data(as_text=True)
    assert f'data-email="{email}"' in page and address not in page


def test_a_session_email_recorded_without_its_recipient_is_named_through_the_sessions_owner(
    support: OpsClient, ops_db: Database, demo: DemoData
) -> None:
    """Rows written before the notification service recorded the person keep their recipient."""
    hs, email, _ = _session_with_deliveries(ops_db, demo)
    with ops_db.session(all_orgs=True) as s:
        s.execute(update(EmailSend).where(EmailSend.id == email).values(user_id=None))
        s.commit()
    [e] = support.get(f"/api/v1/ops/emails?session={hs}").json["emails"]
    assert (e["id"], e["user_id"], e["recipient"]) == (email, demo.employees[0].id, demo.employees[0].email)


def test_the_document_lists_the_api_under_api_v1_ops(support: OpsClient) -> None:
    doc = support.get("/api/v1/ops/openapi.json").json
    assert {
        "/api/v1/ops/sessions",
        "/api/v1/ops/sessions/{session_id}/timeline",
        "/api/v1/ops/emails",
        "/api/v1/ops/webhooks",
    } <= set(doc["paths"])
    assert not [p for p in doc["paths"] if not p.startswith("/api/v1/ops/")]
    assert support.get("/api/v1/sessions").status_code == 404  # the old place is gone


def test_what_the_notification_service_records_is_what_support_sees(
    ops_app: Flask, ops_settings: Settings, ops_db: Database, ops_blobs: LocalBlobStore, demo: DemoData
) -> None:
    """The real notification handler sends (embedded mode: an .eml file); the ops Mail page and the
    session's timeline show that send and its try, and "read" opens the e-mail in the mail viewer
    mounted beside ops, as the launcher mounts them."""
    from services.notification.app import create_app as create_mail_app
    from services.notification.handlers import HANDLERS, build_deps

    people = seed_people(ops_db)
    completed = session_events(people)["completed"]
    run_handler(HANDLERS, completed, ops_db, build_deps(ops_settings, ops_db))
    with ops_db.session(all_orgs=True) as s:  # the event names no person: the send records who it was for
        [send] = s.query(EmailSend).all()
        assert (send.session_id, send.user_id) == (people.session_id, people.user_id)

    mail_app = create_mail_app(ops_settings, db=ops_db, blobs=ops_blobs, checks={})
    ops, mail = WEB_MOUNTS["ops"], WEB_MOUNTS["notification"]
    site = Client(DispatcherMiddleware(Flask("nothing-at-root"), {ops: ops_app, mail: mail_app}))
    link = invite_url(ops_settings, demo.support, f"{ops}/invite/").removeprefix(ops_settings.public_url)
    assert site.get(link).status_code == 303  # signed in as support staff

    page = site.get(f"{ops}/mail").get_data(as_text=True)
    [row] = re.findall(r'<tbody class="delivery" data-email="\d+">(.*?)</details>', page, re.S)
    key = f"{completed.message_id}.ready"
    assert "bea@acme.example" in row and "Your headshots are ready" in row and ">sent<" in row
    assert f"{ops}/sessions/{people.session_id}" in row and f"written as {key}.eml" in row
    href = re.search(r'class="preview" href="([^"]+)"', row)
    assert href is not None and href.group(1) == f"{ops_settings.public_url}{mail}/{key}"
    opened = site.get(href.group(1).removeprefix(ops_settings.public_url))
    assert opened.status_code == 200 and "Your headshots are ready" in opened.get_data(as_text=True)

    timeline = site.get(f"{ops}/sessions/{people.session_id}").get_data(as_text=True)
    assert "e-mail: ready" in timeline and "attempt 1" in timeline and f"written as {key}.eml" in timeline
