"""Webhooks on a real HTTP receiver (http.server on loopback) and a real SQLite database: signed
bodies without personal info, the retry schedule walked with a clock moved by hand, resend,
refused addresses, and a slow endpoint that holds nobody else."""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from libs.contracts import SESSION_SUBMITTED
from libs.db import Database, Organization, WebhookAttempt, WebhookDelivery, utcnow
from libs.db.webhooks import DeliveryNotFound, resend
from libs.messaging.testing import wait_for
from libs.settings import Settings
from services.notification.handlers import HANDLERS, build_deps
from services.notification.transport import TransientMailError
from services.notification.webhooks.addresses import RefusedEndpoint, is_public, resolve_endpoint
from services.notification.webhooks.deliveries import WebhookRecorder
from services.notification.webhooks.dispatcher import WebhookDispatcher
from services.notification.webhooks.payload import verify
from tests.support.notification import (
    ManualClock,
    SmtpSink,
    WebhookReceiver,
    body_json,
    run_handler,
    seed_people,
    self_signed,
    session_events,
    verify_headshots_webhook,
)

SECRET = "whsec-test"


@pytest.fixture(name="db")
def db_fixture(sqlite_url: str) -> Iterator[Database]:
    database = Database(sqlite_url)
    yield database
    database.dispose()


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def _settings(tmp_path: Path, db: Database, **more: Any) -> Settings:
    values: dict[str, Any] = {
        "VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": db.url,
        "SECRET_KEY": "test-secret",
        "WEBHOOK_ALLOW_PRIVATE": True,  # the receiver listens on loopback
        "WEBHOOK_TIMEOUT_SECONDS": 5.0,
    }
    values.update(more)
    return Settings(**values)


def _deliveries(db: Database) -> list[WebhookDelivery]:
    with db.session(all_orgs=True) as s:
        return list(s.query(WebhookDelivery).order_by(WebhookDelivery.id))


def _attempts(db: Database) -> list[WebhookAttempt]:
    with db.session(all_orgs=True) as s:
        return list(s.query(WebhookAttempt).order_by(WebhookAttempt.id))


def test_every_session_event_reaches_the_endpoint_signed_and_without_personal_info(tmp_path, db, receiver):
    people = seed_people(db, webhook_url=receiver.url)
    settings = _settings(tmp_path, db)
    deps = build_deps(settings, db)
    events = session_events(people)
    for name in ("submitted", "approved", "rejected", "completed", "failed", "invited"):
        run_handler(HANDLERS, events[name], db, deps)
        run_handler(HANDLERS, events[name], db, deps)  # redelivered: recorded once
    assert receiver.received == []  # handlers only record; the dispatcher posts
    dispatcher = WebhookDispatcher(db, settings)
    try:
        # one attempt per organization at a time: five rounds for five deliveries
        for _ in range(5):
            assert dispatcher.run_once(wait_for_attempts=True) == 1
        assert dispatcher.run_once(wait_for_attempts=True) == 0
    finally:
        dispatcher.close()

    assert [body_json(r)["type"] for r in receiver.received] == [
        str(events[name].event) for name in ("submitted", "approved", "rejected", "completed", "failed")
    ]
    for r in receiver.received:
        body = r.body.decode()
        timestamp, signature = r.headers["X-Headshots-Timestamp"], r.headers["X-Headshots-Signature"]
        expected = hmac.new(SECRET.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
        assert hmac.compare_digest(signature, expected)
        assert verify_headshots_webhook(SECRET, r.headers, r.body)  # the docs' snippet
        assert not verify_headshots_webhook("another-secret", r.headers, r.body)
        assert abs(time.time() - int(timestamp)) < 300
        assert verify(SECRET, timestamp, body, signature, now=time.time())
        assert not verify(SECRET, timestamp, body + " ", signature, now=time.time())
        assert not verify(SECRET, timestamp, body, signature, now=time.time() + 301)  # a replay
        data = body_json(r)
        assert r.headers["X-Headshots-Event-Id"] == data["id"]
        assert r.headers["Content-Type"] == "application/json"
        assert data["org_id"] == people.org_id and data["session_id"] == people.session_id
        for personal in ("Bea", "bea@", "sunglasses", "out of memory"):
            assert personal not in body
    completed = body_json(receiver.received[3])
    assert completed["state"] == "completed" and completed["data"] == {"headshot_count": 12}
    assert completed["id"] == events["completed"].message_id
    assert body_json(receiver.received[0])["data"] == {
        "package": "executive",
        "format": "portrait",
        "photo_count": 4,
        "style_count": 2,
    }
    assert [d.status for d in _deliveries(db)] == ["delivered"] * 5
    attempts = _attempts(db)
    assert [a.status_code for a in attempts] == [200] * 5
    assert attempts[0].response_excerpt == '{"ok":true}' and attempts[0].latency_ms > 0


def test_a_failing_endpoint_walks_the_retry_schedule_then_gives_up(tmp_path, db, receiver):
    receiver.status = 503
    receiver.answer = b"x" * 5000
    people = seed_people(db, webhook_url=receiver.url)
    settings = _settings(tmp_path, db)
    clock = ManualClock()
    start = clock()
    WebhookRecorder(db, clock).record(session_events(people)["completed"])
    dispatcher = WebhookDispatcher(db, settings, clock=clock)
    try:
        tried_at = []
        for offset in (
            timedelta(0),
            timedelta(0),
            timedelta(minutes=5),
            timedelta(minutes=15),
            timedelta(hours=1),
            timedelta(hours=6),
        ):
            if offset:
                clock.advance(seconds=offset.total_seconds() - 1)
                assert dispatcher.run_once(wait_for_attempts=True) == 0  # not due yet
                clock.advance(seconds=1)
            assert dispatcher.run_once(wait_for_attempts=True) == 1
            tried_at.append(clock() - start)
        clock.advance(days=2)
        assert dispatcher.run_once(wait_for_attempts=True) == 0  # given up
        [delivery] = _deliveries(db)
        assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 6, None)
        assert tried_at == [
            timedelta(0),
            timedelta(0),
            timedelta(minutes=5),
            timedelta(minutes=20),
            timedelta(hours=1, minutes=20),
            timedelta(hours=7, minutes=20),
        ]
        attempts = _attempts(db)
        assert len(attempts) == 6 and len(receiver.received) == 6
        assert all(a.status_code == 503 and a.error == "the endpoint answered 503" for a in attempts)
        assert attempts[0].response_excerpt == "x" * 1024  # the first KB only

        # the admin fixes the endpoint and presses "resend"
        receiver.status = 200
        with db.uow(org_id=people.org_id) as uow:
            resend(uow, delivery.id, clock(), actor_id=people.admin_id)
            uow.commit()
        with pytest.raises(DeliveryNotFound), db.uow(org_id=people.other_org_id) as uow:
            resend(uow, delivery.id, clock(), actor_id=None)  # another tenant's delivery
        assert dispatcher.run_once(wait_for_attempts=True) == 1
        [delivery] = _deliveries(db)
        assert (delivery.status, delivery.attempts) == ("delivered", 7)
        # attempts are numbered across the resend: the redelivery is the seventh
        assert [a.attempt for a in _attempts(db)] == [1, 2, 3, 4, 5, 6, 7]
        assert _attempts(db)[-1].status_code == 200 and _attempts(db)[-1].error is None
    finally:
        dispatcher.close()


def test_an_unreachable_endpoint_is_an_attempt_with_an_error(tmp_path, db):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    people = seed_people(db, webhook_url=f"http://127.0.0.1:{port}/hook")
    settings = _settings(tmp_path, db)
    WebhookRecorder(db, ManualClock()).record(session_events(people)["failed"])
    dispatcher = WebhookDispatcher(db, settings, clock=ManualClock())
    try:
        assert dispatcher.run_once(wait_for_attempts=True) == 1
    finally:
        dispatcher.close()
    [attempt] = _attempts(db)
    assert attempt.status_code is None and "ConnectionRefusedError" in (attempt.error or "")
    assert _deliveries(db)[0].status == "pending"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.10/hook",
        "http://172.16.0.5/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_non_public_addresses_are_refused(url):
    with pytest.raises(RefusedEndpoint, match="refused"):
        resolve_endpoint(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    ["ftp://hooks.example.com/", "file:///etc/passwd", "http://user:pw@hooks.example.com/", "http:///x"],
)
def test_malformed_endpoints_are_refused(url):
    with pytest.raises(RefusedEndpoint):
        resolve_endpoint(url, allow_private=True)


def test_private_addresses_pass_only_when_allowed_and_public_ones_always():
    assert resolve_endpoint("http://127.0.0.1:9/x?y=1", allow_private=True).path == "/x?y=1"
    assert is_public("93.184.216.34") and is_public("2606:4700::1111")
    assert not is_public("100.64.0.1")  # carrier-grade NAT is not the internet either


def test_the_address_is_checked_again_when_delivering(tmp_path, db, receiver, monkeypatch):
    """A name that resolved to a public address when it was set can point home later (DNS
    rebinding): every attempt resolves and checks again, and a refusal gives up at once."""
    people = seed_people(db, webhook_url="http://hooks.example.com/in")
    settings = _settings(tmp_path, db, WEBHOOK_ALLOW_PRIVATE=False)
    WebhookRecorder(db, ManualClock()).record(session_events(people)["completed"])
    real = socket.getaddrinfo

    def rebound(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.example.com":  # the attacker's DNS now answers loopback
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebound)
    dispatcher = WebhookDispatcher(db, settings, clock=ManualClock())
    try:
        assert dispatcher.run_once(wait_for_attempts=True) == 1
    finally:
        dispatcher.close()
    [delivery] = _deliveries(db)
    assert delivery.status == "failed" and "127.0.0.1" in (delivery.last_error or "")
    assert receiver.received == []


def test_no_secret_or_no_endpoint_gives_up_at_once(tmp_path, db, receiver):
    people = seed_people(db, webhook_url=receiver.url, secret=None)
    settings = _settings(tmp_path, db)
    recorder = WebhookRecorder(db, ManualClock())
    assert recorder.record(session_events(people)["completed"]) is True
    dispatcher = WebhookDispatcher(db, settings, clock=ManualClock())
    try:
        dispatcher.run_once(wait_for_attempts=True)
    finally:
        dispatcher.close()
    assert "no webhook secret" in (_deliveries(db)[0].last_error or "")
    assert receiver.received == []
    with db.uow(all_orgs=True) as uow:  # an organization without a webhook gets no delivery at all
        org = uow.session.get(Organization, people.org_id)
        assert org is not None
        org.webhook_url = None
        uow.commit()
    assert recorder.record(session_events(people)["failed"]) is False


def test_a_slow_endpoint_holds_neither_other_organizations_nor_e_mails(tmp_path, db, receiver):
    slow = WebhookReceiver(slow=True)
    try:
        a = seed_people(db, webhook_url=slow.url)
        b = seed_people(db, webhook_url=receiver.url)
        settings = _settings(tmp_path, db)
        recorder = WebhookRecorder(db, ManualClock())
        recorder.record(session_events(a)["completed"])
        recorder.record(session_events(a)["failed"])
        recorder.record(session_events(b)["completed"])
        dispatcher = WebhookDispatcher(db, settings)
        try:
            assert dispatcher.run_once() == 2  # one per organization; a's second waits its turn
            wait_for(lambda: len(receiver.received) == 1, "the fast endpoint to get its delivery")
            assert dispatcher.run_once() == 0  # a is still busy with its first delivery
            assert slow.received == []
            slow.release.set()
            wait_for(lambda: len(slow.received) == 1, "the slow endpoint to answer")
            wait_for(lambda: dispatcher.run_once() == 1, "a's second delivery to start")
            wait_for(lambda: len(slow.received) == 2, "a's second delivery")
        finally:
            slow.release.set()
            dispatcher.close()
    finally:
        slow.close()


def test_an_email_failure_keeps_the_recorded_webhook(tmp_path, db, receiver):
    people = seed_people(db, webhook_url=receiver.url)
    down = SmtpSink()  # never started: the SMTP server is down
    settings = _settings(tmp_path, db, SMTP_URL=down.url)
    with pytest.raises(TransientMailError):
        run_handler(HANDLERS, session_events(people)["submitted"], db, build_deps(settings, db))
    assert [d.event for d in _deliveries(db)] == [str(SESSION_SUBMITTED)]


def test_https_endpoints_are_called_by_name_with_the_certificate_checked(tmp_path, db, monkeypatch):
    """The connection goes to the checked address, but TLS (SNI and the certificate check) and the
    Host header use the endpoint's name."""
    host = "hooks.example.test"
    secure = WebhookReceiver(tls=self_signed(tmp_path, host))
    try:
        port = secure.server.server_address[1]
        real = socket.getaddrinfo
        monkeypatch.setattr(
            socket, "getaddrinfo", lambda h, *a, **k: real("127.0.0.1" if h == host else h, *a, **k)
        )
        people = seed_people(db, webhook_url=f"https://{host}:{port}/in")
        settings = _settings(tmp_path, db)
        recorder = WebhookRecorder(db, utcnow)  # real time: the receiver checks the timestamp
        recorder.record(session_events(people)["completed"])
        dispatcher = WebhookDispatcher(db, settings)
        try:
            dispatcher.run_once(wait_for_attempts=True)  # our certificate is not trusted yet
            [attempt] = _attempts(db)
            assert "CERTIFICATE_VERIFY_FAILED" in (attempt.error or "") and secure.received == []
            monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))  # now it is
            dispatcher.run_once(wait_for_attempts=True)  # the retry due at once
        finally:
            dispatcher.close()
        [received] = secure.received
        assert received.headers["Host"] == f"{host}:{port}"
        assert verify_headshots_webhook(SECRET, received.headers, received.body)
    finally:
        secure.close()
