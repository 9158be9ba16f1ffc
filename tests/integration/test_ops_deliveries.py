"""What support sees of a session's e-mails and webhooks, on PostgreSQL: the notification service
talks to a real SMTP server (aiosmtpd) that is busy once, and to a real HTTP receiver that answers
503 once; the ops API (checked against its OpenAPI document) shows every try, in order, with the
server's reply, the status code and the answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.contracts import SESSION_COMPLETED
from libs.db import utcnow
from libs.settings import Settings
from services.notification.handlers import HANDLERS, build_deps
from services.notification.transport import TransientMailError
from services.notification.webhooks.dispatcher import WebhookDispatcher
from tests.support.notification import (
    ManualClock,
    SmtpSink,
    WebhookReceiver,
    run_handler,
    seed_people,
    session_events,
)
from tests.support.ops import (  # noqa: F401 (fixtures)
    OpsClient,
    demo_fixture,
    ops_app_fixture,
    ops_blobs_fixture,
    ops_db_fixture,
    support_fixture,
)


@pytest.fixture(name="sink")
def sink_fixture() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(name="ops_settings")
def ops_settings_on_postgres(tmp_path: Path, pg_url: str, sink: SmtpSink) -> Settings:
    return Settings(
        VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=pg_url,
        BROKER_URL=f"memory://{uuid.uuid4().hex[:8]}/",
        SECRET_KEY="test-secret",
        SMTP_URL=sink.url,
        SMTP_TIMEOUT_SECONDS=5.0,
        WEBHOOK_ALLOW_PRIVATE=True,  # the receiver listens on loopback
        WEBHOOK_TIMEOUT_SECONDS=5.0,
    )


def test_support_sees_every_try_of_a_sessions_email_and_webhook(
    support: OpsClient, ops_settings: Settings, ops_db, sink: SmtpSink, receiver: WebhookReceiver
) -> None:
    people = seed_people(ops_db, webhook_url=receiver.url)
    completed = session_events(people)["completed"]
    deps = build_deps(ops_settings, ops_db)
    sink.busy = 1  # the SMTP server answers 451 once
    with pytest.raises(TransientMailError, match="451"):
        run_handler(HANDLERS, completed, ops_db, deps)  # the webhook delivery is recorded all the same
    clock = ManualClock(utcnow())  # from now on: the delivery recorded just before is due
    dispatcher = WebhookDispatcher(ops_db, ops_settings, clock=clock)
    try:
        receiver.status, receiver.answer = 503, b"busy, come back later"
        assert dispatcher.run_once(wait_for_attempts=True) == 1
        run_handler(HANDLERS, completed, ops_db, deps)  # the bus's retry: the e-mail goes
        receiver.status, receiver.answer = 200, b'{"ok":true}'
        clock.advance(minutes=6)  # past the first retry delay
        assert dispatcher.run_once(wait_for_attempts=True) == 1
    finally:
        dispatcher.close()

    entries = support.get(f"/api/v1/ops/sessions/{people.session_id}/timeline").json["entries"]
    tries = [(e["kind"], e["attempt"], e["outcome"], e["status_code"]) for e in entries if e["attempt"]]
    assert sorted(tries, key=lambda t: (t[0], t[1])) == [
        ("email", 1, "pending", None),
        ("email", 2, "sent", None),
        ("webhook", 1, "failed", 503),
        ("webhook", 2, "delivered", 200),
    ]
    hooks = [e for e in entries if e["kind"] == "webhook"]
    assert hooks[0]["answer"] == "busy, come back later" and hooks[1]["answer"] == '{"ok":true}'
    assert all(e["latency_ms"] >= 0 for e in entries if e["attempt"])

    [email] = support.get(f"/api/v1/ops/emails?session={people.session_id}").json["emails"]
    assert (email["recipient"], email["subject"], email["status"], email["attempts"]) == (
        "bea@acme.example",
        "Your headshots are ready",
        "sent",
        2,
    )
    assert "451" in email["tries"][0]["error"] and email["tries"][1]["answer"].startswith("250")
    [delivery] = support.get("/api/v1/ops/webhooks?kind=" + SESSION_COMPLETED.routing_key).json["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 2)
    assert len(sink.messages) == 1 and len(receiver.received) == 2
