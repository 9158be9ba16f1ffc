"""The /mail page: who may read it, listing and reading the embedded mode's e-mails, the failed
sends support must see, and nothing a strict Content-Security-Policy would block."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from libs.db import Database, Role, User
from libs.settings import Settings
from services.notification.app import create_app
from services.notification.handlers import HANDLERS, build_deps
from services.notification.views import EMAIL_CSP
from tests.support.notification import SmtpSink, run_handler, seed_people, session_events


@pytest.fixture(name="db")
def db_fixture(sqlite_url: str) -> Iterator[Database]:
    database = Database(sqlite_url)
    yield database
    database.dispose()


def _client(settings: Settings, db: Database) -> FlaskClient:
    return create_app(settings, db=db, checks={}).test_client()


def _sign_in(client: FlaskClient, user_id: str) -> None:
    with client.session_transaction() as cookie:
        cookie["user_id"] = user_id


def _support(db: Database) -> str:
    with db.uow(all_orgs=True) as uow:
        user = User(
            org_id=None, email="support@headshots.example", display_name="Sam", role=Role.SUPPORT.value
        )
        uow.session.add(user)
        uow.commit()
        return user.id


def test_the_embedded_mailbox_lists_and_shows_every_email(tmp_path: Path, db: Database):
    people = seed_people(db)
    settings = Settings(VAR_DIR=str(tmp_path / "var"), DATABASE_URL=db.url, SECRET_KEY="s")
    events = session_events(people)
    deps = build_deps(settings, db)
    for name in ("submitted", "completed"):
        run_handler(HANDLERS, events[name], db, deps)
    client = _client(settings, db)  # HOST is 127.0.0.1 and no SMTP: the local demo reads freely

    index = client.get("/")
    assert index.status_code == 200
    page = index.get_data(as_text=True)
    assert "We have your photos" in page and "Your headshots are ready" in page
    assert "Every e-mail so far was sent." in page
    key = f"{events['completed'].message_id}.ready"
    assert f'href="/{key}"' in page

    read = client.get(f"/{key}")
    assert read.status_code == 200
    text = read.get_data(as_text=True)
    assert "Bea Employee &lt;bea@acme.example&gt;" in text and "12 new headshots" in text
    assert f'src="/{key}/html"' in text and 'sandbox="' in text
    for html in (page, text):
        assert "<script" not in html and 'style="' not in html and " on" + "click=" not in html
    assert read.headers["Cache-Control"] == "private, no-store"

    frame = client.get(f"/{key}/html")
    assert frame.status_code == 200 and frame.mimetype == "text/html"
    assert frame.headers["Content-Security-Policy"] == EMAIL_CSP
    assert "See my headshots" in frame.get_data(as_text=True)


@pytest.mark.parametrize(
    "key", ["..%2F..%2Fheadshots.db", "not-a-key", "00000000-0000-0000-0000-000000000000.ready"]
)
def test_anything_but_an_existing_email_is_404(tmp_path: Path, db: Database, key: str):
    settings = Settings(VAR_DIR=str(tmp_path / "var"), DATABASE_URL=db.url, SECRET_KEY="s")
    (tmp_path / "var").mkdir(exist_ok=True)
    (tmp_path / "var" / "secret.txt").write_text("no")
    client = _client(settings, db)
    assert client.get(f"/{key}").status_code == 404
    assert client.get(f"/{key}/html").status_code == 404


def test_outside_the_local_demo_only_support_may_look_and_sees_failed_sends(tmp_path: Path, db: Database):
    people = seed_people(db)
    with SmtpSink() as sink:
        sink.refuse.add("bea@acme.example")
        settings = Settings(
            VAR_DIR=str(tmp_path / "var"),
            DATABASE_URL=db.url,
            SECRET_KEY="s",
            SMTP_URL=sink.url,
            HOST="0.0.0.0",
        )
        run_handler(HANDLERS, session_events(people)["completed"], db, build_deps(settings, db))
    client = _client(settings, db)
    assert client.get("/").status_code == 404  # signed out
    _sign_in(client, people.user_id)
    assert client.get("/").status_code == 404  # an employee
    _sign_in(client, _support(db))
    page = client.get("/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "failed" in text and "550" in text and "ready" in text
    assert "bea@acme.example" not in text  # the ledger holds ids, not addresses


def test_a_loopback_host_with_smtp_is_not_the_local_demo(tmp_path: Path, db: Database):
    settings = Settings(
        VAR_DIR=str(tmp_path / "var"), DATABASE_URL=db.url, SECRET_KEY="s", SMTP_URL="smtp://x"
    )
    assert _client(settings, db).get("/").status_code == 404
