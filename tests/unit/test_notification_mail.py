"""E-mails of a whole session on a real SMTP server (aiosmtpd on loopback) and a real SQLite
database: content, exactly one per event under redelivery, transient and permanent failures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from libs.contracts import SESSION_COMPLETED, new_message
from libs.db import Database, EmailAttempt, EmailSend, HeadshotSession, User
from libs.settings import Settings
from libs.web import read_invite
from services.notification.handlers import HANDLERS, build_deps
from services.notification.ledger import SendInProgress, SendKey, SendLedger
from services.notification.transport import SmtpConfig, TransientMailError
from tests.support.notification import ManualClock, SmtpSink, run_handler, seed_people, session_events


@pytest.fixture(name="db")
def db_fixture(sqlite_url: str) -> Iterator[Database]:
    database = Database(sqlite_url)
    yield database
    database.dispose()


@pytest.fixture(name="sink")
def sink_fixture() -> Iterator[SmtpSink]:
    sink = SmtpSink()  # not started: each test decides when the server is up
    yield sink
    sink.stop()


def _settings(tmp_path: Path, db: Database, sink: SmtpSink, **more: Any) -> Settings:
    return Settings(
        VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=db.url,
        SECRET_KEY="test-secret",
        SMTP_URL=sink.url,
        SMTP_TIMEOUT_SECONDS=5.0,
        PUBLIC_URL="https://headshots.example",
        **more,
    )


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def _sends(db: Database) -> list[EmailSend]:
    with db.session(all_orgs=True) as s:
        return list(s.query(EmailSend).order_by(EmailSend.id))


def _tries(db: Database) -> list[EmailAttempt]:
    with db.session(all_orgs=True) as s:
        return list(s.query(EmailAttempt).order_by(EmailAttempt.id))


def test_a_whole_session_sends_one_email_per_event_even_when_every_event_comes_twice(tmp_path, db, sink):
    people = seed_people(db)
    settings = _settings(tmp_path, db, sink)
    deps = build_deps(settings, db)
    events = session_events(people)
    sink.start()
    for name in ("invited", "submitted", "approved", "rejected", "completed", "failed"):
        run_handler(HANDLERS, events[name], db, deps)
        run_handler(HANDLERS, events[name], db, deps)  # redelivered: found in the ledger

    assert sink.subjects() == [
        "Acme Corporation invites you to get your headshots",
        "We have your photos",
        "Your photos need another look",
        "Your headshots are ready",
        "We could not finish your headshots",
    ]
    assert [s.status for s in _sends(db)] == ["sent"] * 5
    # session events carry no user id: each row names the person the e-mail was built for
    assert [(s.template, s.user_id) for s in _sends(db)] == [
        (t, people.user_id) for t in ("invite", "submitted", "rejected", "ready", "failed")
    ]
    for m in sink.messages:
        assert str(m["To"]) == "Bea Employee <bea@acme.example>"
        assert m.get_content_type() == "multipart/alternative"
        text, html = _parts(m)
        for part in (text, html):
            assert "Hello Bea Employee," in part
            assert "Acme Corporation" in part
            assert "Bea Q. Person" not in part  # the session's personal info is never used
        assert "<style>" in html and "<script" not in html

    invite, submitted, rejected, ready, failed = (_parts(m) for m in sink.messages)
    link = next(w for w in invite[0].split() if "/invite/" in w)
    assert read_invite(settings, link.rsplit("/", 1)[1])["user_id"] == people.user_id
    assert "2 hours" in invite[0]
    assert "4 photos and 2 styles" in submitted[0] and "administrator will look" in submitted[0]
    assert f"https://headshots.example/sessions/{people.session_id}/waiting" in submitted[1]
    assert "Please add a photo without sunglasses." in rejected[0]
    assert f'href="https://headshots.example/sessions/{people.session_id}"' in rejected[1]
    assert "12 new headshots are waiting" in ready[0]
    assert f"https://headshots.example/sessions/{people.session_id}/results" in ready[0]
    assert "learning your likeness" in failed[0] and "out of memory" not in failed[0]
    assert str(sink.messages[3]["Message-ID"]) == f"<{events['completed'].message_id}.ready@localhost>"


def test_a_person_without_a_display_name_is_greeted_neutrally_and_html_is_escaped(tmp_path, db, sink):
    people = seed_people(db, display_name="")
    settings = _settings(tmp_path, db, sink)
    sink.start()
    events = session_events(people)
    rejected = new_message(
        events["rejected"].event,
        org_id=people.org_id,
        session_id=people.session_id,
        reviewer_id="r",
        reason="<b>Too dark</b> & blurry",
    )
    run_handler(HANDLERS, rejected, db, build_deps(settings, db))
    text, html = _parts(sink.messages[0])
    assert text.startswith("Hello,\n")
    assert str(sink.messages[0]["To"]) == "bea@acme.example"
    assert "&lt;b&gt;Too dark&lt;/b&gt; &amp; blurry" in html and "<b>Too dark" not in html
    assert "<b>Too dark</b> & blurry" in text


def test_smtp_down_then_up_is_retried_and_sends_one_email(tmp_path, db, sink):
    people = seed_people(db)
    settings = _settings(tmp_path, db, sink)
    deps = build_deps(settings, db)
    completed = session_events(people)["completed"]

    with pytest.raises(TransientMailError, match="unavailable"):
        run_handler(HANDLERS, completed, db, deps)  # nothing listens on the port yet
    [row] = _sends(db)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "unavailable" in (row.last_error or "")
    assert row.user_id == people.user_id  # read to build the e-mail, recorded even though not sent

    sink.start()
    run_handler(HANDLERS, completed, db, deps)  # what libs/messaging's retry does
    run_handler(HANDLERS, completed, db, deps)  # and a redelivery after that
    assert sink.subjects() == ["Your headshots are ready"]
    [row] = _sends(db)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert row.subject == "Your headshots are ready"
    # every try is recorded: when, how long, and what the server said (or why there was no answer)
    down, up = _tries(db)
    assert (down.send_id, down.attempt, down.outcome, down.reply) == (row.id, 1, "pending", None)
    assert "unavailable" in (down.error or "") and down.latency_ms >= 0
    assert (up.send_id, up.attempt, up.outcome, up.error) == (row.id, 2, "sent", None)
    assert (up.reply or "").startswith("250 ") and up.started_at >= down.started_at


def test_a_4xx_answer_is_transient(tmp_path, db, sink):
    people = seed_people(db)
    deps = build_deps(_settings(tmp_path, db, sink), db)
    sink.start()
    sink.busy = 1
    submitted = session_events(people)["submitted"]
    with pytest.raises(TransientMailError, match="451"):
        run_handler(HANDLERS, submitted, db, deps)
    run_handler(HANDLERS, submitted, db, deps)
    assert len(sink.messages) == 1
    busy, sent = _tries(db)
    assert (busy.attempt, busy.outcome) == (1, "pending") and "451" in (busy.error or "")
    assert (sent.attempt, sent.outcome) == (2, "sent") and (sent.reply or "").startswith("250")


def test_a_refused_address_is_recorded_failed_and_does_not_block_other_emails(tmp_path, db, sink):
    people = seed_people(db)
    deps = build_deps(_settings(tmp_path, db, sink), db)
    sink.start()
    sink.refuse.add("bea@acme.example")
    events = session_events(people)
    run_handler(HANDLERS, events["completed"], db, deps)  # no exception: the event is done
    run_handler(HANDLERS, events["completed"], db, deps)  # and not tried again
    # the next e-mail, to someone else, goes out
    invite_admin = new_message(
        events["invited"].event,
        org_id=people.org_id,
        session_id=None,
        user_id=people.admin_id,
        invited_by=None,
    )
    run_handler(HANDLERS, invite_admin, db, deps)
    failed, sent = _sends(db)
    assert (failed.template, failed.status, failed.attempts) == ("ready", "failed", 1)
    assert "550" in (failed.last_error or "")
    assert sent.status == "sent"
    assert (failed.user_id, sent.user_id) == (people.user_id, people.admin_id)  # whose address failed
    refused, accepted = _tries(db)
    assert (refused.send_id, refused.attempt, refused.outcome) == (failed.id, 1, "failed")
    assert "550" in (refused.error or "") and "bea@acme.example" not in (refused.error or "")
    assert (accepted.send_id, accepted.outcome) == (sent.id, "sent")
    assert [str(m["To"]) for m in sink.messages] == ["Alex Admin <admin@acme.example>"]


def test_an_unknown_session_or_a_deactivated_person_is_a_recorded_failure(tmp_path, db, sink):
    people = seed_people(db)
    deps = build_deps(_settings(tmp_path, db, sink), db)
    sink.start()
    ghost = new_message(
        SESSION_COMPLETED, org_id=people.org_id, session_id="no-such-session", headshot_count=1
    )
    run_handler(HANDLERS, ghost, db, deps)
    other_org = new_message(
        SESSION_COMPLETED, org_id=people.other_org_id, session_id=people.session_id, headshot_count=1
    )
    run_handler(HANDLERS, other_org, db, deps)  # another tenant's session does not exist for it
    with db.uow(all_orgs=True) as uow:
        user = uow.session.get(User, people.user_id)
        assert user is not None
        user.active = False
        uow.commit()
    run_handler(HANDLERS, session_events(people)["invited"], db, deps)
    assert [(s.status, (s.last_error or "").split(" ")[0]) for s in _sends(db)] == [
        ("failed", "no"),
        ("failed", "no"),
        ("failed", "person"),
    ]
    # nobody was found for the first two: no user id is guessed (the invite's event names the person)
    assert [s.user_id for s in _sends(db)] == [None, None, people.user_id]
    assert sink.messages == []


def test_a_fresh_claim_makes_others_wait_and_a_stale_one_is_sent_again(db):
    people = seed_people(db)
    clock = ManualClock()
    ledger = SendLedger(db, lease=timedelta(seconds=60))
    key = SendKey(people.org_id, "5f0c4a4e-0000-4000-8000-000000000001", "ready")
    first = ledger.claim(key, clock())
    assert (first.go, first.attempts, first.resumed) == (True, 1, False)
    with pytest.raises(SendInProgress):
        ledger.claim(key, clock.advance(seconds=30))  # the first worker may still be talking to SMTP
    again = ledger.claim(key, clock.advance(seconds=31))  # it died: the outcome is unknown
    assert (again.go, again.attempts, again.resumed) == (True, 2, True)
    ledger.finish(key, "sent", clock())
    assert ledger.claim(key, clock.advance(hours=1)).go is False


def test_embedded_mode_writes_one_eml_file_per_email(tmp_path, db):
    people = seed_people(db)
    settings = Settings(VAR_DIR=str(tmp_path / "var"), DATABASE_URL=db.url, SECRET_KEY="s")
    deps = build_deps(settings, db)
    events = session_events(people)
    for _ in range(2):
        run_handler(HANDLERS, events["submitted"], db, deps)
    with db.uow(all_orgs=True) as uow:  # a replayed ledger-less world: the file is replaced, not added
        uow.session.query(EmailAttempt).delete()
        uow.session.query(EmailSend).delete()
        uow.commit()
    run_handler(HANDLERS, events["submitted"], db, deps)
    files = sorted(settings.mail_dir.glob("*.eml"))
    assert [f.name for f in files] == [f"{events['submitted'].message_id}.submitted.eml"]
    [attempt] = _tries(db)  # the file transport's "reply" says where the e-mail went
    assert (attempt.outcome, attempt.reply) == ("sent", f"written as {files[0].stem}.eml")
    assert b"We have your photos" in files[0].read_bytes()


def test_a_display_name_cannot_add_headers(tmp_path, db, sink):
    people = seed_people(db, display_name="Eve\r\nBcc: victim@example.com")
    sink.start()
    run_handler(
        HANDLERS, session_events(people)["completed"], db, build_deps(_settings(tmp_path, db, sink), db)
    )
    [message] = sink.messages
    assert message["Bcc"] is None
    assert "victim@example.com" not in str(message["To"]).split("<")[-1]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", ("mail.example.com", 25, "plain", None, None)),
        ("smtp+starttls://u%40x:p%3Aw@mail.example.com", ("mail.example.com", 587, "starttls", "u@x", "p:w")),
        ("smtps://user:pw@mail.example.com:2465", ("mail.example.com", 2465, "tls", "user", "pw")),
    ],
)
def test_smtp_url_forms(url, expected):
    c = SmtpConfig.parse(url)
    assert (c.host, c.port, c.security, c.username, c.password) == expected


def test_a_wrong_smtp_url_is_refused():
    with pytest.raises(ValueError, match="SMTP_URL"):
        SmtpConfig.parse("http://mail.example.com")


def test_the_session_row_is_only_read(tmp_path, db, sink):
    people = seed_people(db)
    sink.start()
    run_handler(
        HANDLERS, session_events(people)["completed"], db, build_deps(_settings(tmp_path, db, sink), db)
    )
    with db.session(all_orgs=True) as s:
        hs = s.get(HeadshotSession, people.session_id)
        assert hs is not None and hs.full_name == "Bea Q. Person"  # erasing is intake's job
