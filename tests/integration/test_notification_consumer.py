"""Notification wired to the real bus: the same tests on memory:// + SQLite and on RabbitMQ +
PostgreSQL (`backend`). Events go through the outbox and the relay like every producer's; the
e-mails reach a real SMTP server (aiosmtpd) and the webhooks a real HTTP receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from libs.db import Database, EmailSend
from libs.messaging import Bus
from libs.messaging.testing import commit_to_outbox, publish_raw_body, running, wait_for
from libs.settings import Settings
from services.notification.handlers import HANDLERS, build_deps
from services.notification.webhooks.dispatcher import WebhookDispatcher
from tests.support.notification import SmtpSink, WebhookReceiver, body_json, seed_people, session_events


@pytest.fixture(name="sink")
def sink_fixture() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.stop()


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def _wire(backend: Settings, sink: SmtpSink) -> tuple[Settings, Database, Bus]:
    settings = backend.replace(SMTP_URL=sink.url, WEBHOOK_ALLOW_PRIVATE=True, RETRY_DELAY_MS=200)
    db = Database(settings.database_url)
    bus = Bus(settings, db)
    bus.declare(["notification"])
    return settings, db, bus


def _publish(bus: Bus, db: Database, messages: list) -> None:
    commit_to_outbox(db, messages)
    relay = bus.relay(wake_after_commits=False)
    try:
        assert relay.run_once() == len(messages)
    finally:
        relay.close()


def test_every_event_of_a_session_gives_one_email_and_one_webhook(backend, sink, receiver):
    settings, db, bus = _wire(backend, sink)
    try:
        people = seed_people(db, webhook_url=receiver.url)
        events = session_events(people)
        sink.start()
        with running(bus.consumer("notification", HANDLERS, build_deps(settings, db))) as consumer:
            _publish(bus, db, list(events.values()))
            duplicate = events["completed"]  # the broker delivers it again
            publish_raw_body(
                settings, duplicate.to_json().encode(), duplicate.routing_key, message_id=duplicate.message_id
            )
            wait_for(
                lambda: consumer.stats["handled"] + consumer.stats["duplicate"] == 7,
                "every delivery",
                timeout=60,
            )
        assert consumer.stats["handled"] == 6 and consumer.stats["duplicate"] == 1
        assert sorted(sink.subjects()) == sorted(
            [
                "Acme Corporation invites you to get your headshots",
                "We have your photos",
                "Your photos need another look",
                "Your headshots are ready",
                "We could not finish your headshots",
            ]
        )
        dispatcher = WebhookDispatcher(db, settings)
        try:
            wait_for(
                lambda: dispatcher.run_once(wait_for_attempts=True) == 0 and len(receiver.received) == 5,
                "the webhooks",
            )
        finally:
            dispatcher.close()
        assert sorted(body_json(r)["type"] for r in receiver.received) == sorted(
            str(events[name].event) for name in ("submitted", "approved", "rejected", "completed", "failed")
        )
    finally:
        db.dispose()


def test_smtp_down_then_up_is_retried_by_the_bus_and_sends_one_email(backend, sink):
    settings, db, bus = _wire(backend, sink)
    try:
        people = seed_people(db)
        with running(bus.consumer("notification", HANDLERS, build_deps(settings, db))) as consumer:
            _publish(bus, db, [session_events(people)["completed"]])
            wait_for(
                lambda: consumer.stats["retried"] >= 1, "a retry while the SMTP server is down", timeout=60
            )
            sink.start()
            wait_for(lambda: consumer.stats["handled"] == 1, "the e-mail once the server is up", timeout=60)
        assert sink.subjects() == ["Your headshots are ready"]
        with db.session(all_orgs=True) as s:
            [row] = s.query(EmailSend).all()
            assert row.status == "sent" and row.attempts >= 2
    finally:
        db.dispose()
