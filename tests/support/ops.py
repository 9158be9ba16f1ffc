"""Helpers shared by the ops tests (unit, integration, e2e). It holds no tests itself.

hs_id = make_session(db, demo, "failed", events=[(SESSION_SUBMITTED, SUBMITTED)], idle=timedelta(hours=2))
support = sign_in_support(app, settings, demo.support)
support.post(f"/sessions/{hs_id}/retry")
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from libs.contracts import EventType, new_message
from libs.db import (
    AuditLog,
    Database,
    EmailAttempt,
    EmailSend,
    HeadshotSession,
    OutboxMessage,
    User,
    WebhookAttempt,
    WebhookDelivery,
)
from libs.db.demo import DemoData, seed_demo
from libs.settings import Settings
from libs.storage import LocalBlobStore
from libs.web import invite_url
from services import WEB_MOUNTS
from tests.support.openapi import DocumentedApi, OpenApiCheckedClient

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
SUBMITTED = {"package": "executive", "format": "portrait", "styles": ["navy:suit"], "photo_count": 4}


def make_session(
    db: Database,
    demo: DemoData,
    state: str,
    *,
    events: list[tuple[EventType, dict[str, Any]]] = (),  # type: ignore[assignment]
    idle: timedelta = timedelta(0),
    org_id: str | None = None,
    user: User | None = None,
    full_name: str | None = None,
    failure_reason: str | None = None,
) -> str:
    """A session put straight into ``state`` (setup, not a journey), with outbox rows for ``events``
    and its last change ``idle`` ago (the outbox rows too)."""
    user = user or demo.employees[0]
    org_id = org_id or user.org_id or demo.org_id
    with db.uow(org_id=org_id) as uow:
        hs = HeadshotSession(
            org_id=org_id,
            user_id=user.id,
            state=state,
            package_id="executive",
            format_id="portrait",
            full_name=full_name,
            failure_reason=failure_reason,
        )
        uow.session.add(hs)
        uow.flush()
        for event, data in events:
            uow.add_message(new_message(event, org_id=org_id, session_id=hs.id, **data))
        uow.commit()
        session_id = hs.id
    if idle:
        backdate(db, session_id, idle)
    return session_id


def backdate(db: Database, session_id: str, idle: timedelta, now: datetime | None = None) -> None:
    """Move the session and its events ``idle`` before ``now`` (the real clock by default; a test
    with a fixed NOW passes it, or minutes between import and run would reorder its events)."""
    then = (now or datetime.now(UTC)) - idle
    with db.session(all_orgs=True) as s:
        s.execute(
            update(HeadshotSession)
            .where(HeadshotSession.id == session_id)
            .values(updated_at=then, created_at=then)
        )
        s.execute(update(OutboxMessage).where(OutboxMessage.session_id == session_id).values(created_at=then))
        s.commit()


@dataclass(frozen=True)
class Tried:
    """One try to record: seconds after the start, outcome, and the answer or the error."""

    after: float
    outcome: str
    latency_ms: float = 20.0
    status_code: int | None = None
    answer: str | None = None
    error: str | None = None


def record_email(
    db: Database,
    session_id: str,
    template: str,
    *,
    status: str,
    tries: list[Tried],
    at: datetime,
    subject: str | None = "Your headshots are ready",
) -> int:
    """An e-mail send with its tries, as the notification service records them (setup)."""
    with db.session(all_orgs=True) as s:
        hs = s.get(HeadshotSession, session_id)
        assert hs is not None
        send = EmailSend(
            org_id=hs.org_id,
            message_id=str(uuid.uuid4()),
            template=template,
            session_id=hs.id,
            user_id=hs.user_id,
            status=status,
            attempts=len(tries),
            subject=subject,
            last_error=tries[-1].error if tries else None,
            sent_at=at + timedelta(seconds=tries[-1].after) if status == "sent" and tries else None,
            created_at=at,
        )
        s.add(send)
        s.flush()
        for n, t in enumerate(tries, 1):
            s.add(
                EmailAttempt(
                    org_id=hs.org_id,
                    send_id=send.id,
                    attempt=n,
                    started_at=at + timedelta(seconds=t.after),
                    latency_ms=t.latency_ms,
                    outcome=t.outcome,
                    reply=t.answer,
                    error=t.error,
                )
            )
        s.commit()
        return send.id


def record_webhook(
    db: Database, session_id: str, event: str, *, status: str, tries: list[Tried], at: datetime
) -> int:
    """A webhook delivery with its tries (setup)."""
    with db.session(all_orgs=True) as s:
        hs = s.get(HeadshotSession, session_id)
        assert hs is not None
        delivery = WebhookDelivery(
            org_id=hs.org_id,
            message_id=str(uuid.uuid4()),
            event=event,
            session_id=hs.id,
            body="{}",
            status=status,
            attempts=len(tries),
            step=len(tries),
            last_error=tries[-1].error if tries else None,
            next_attempt_at=at + timedelta(minutes=5) if status == "pending" else None,
            created_at=at,
        )
        s.add(delivery)
        s.flush()
        for n, t in enumerate(tries, 1):
            s.add(
                WebhookAttempt(
                    org_id=hs.org_id,
                    delivery_id=delivery.id,
                    attempt=n,
                    attempted_at=at + timedelta(seconds=t.after),
                    url="https://hooks.acme.example/headshots",
                    status_code=t.status_code,
                    latency_ms=t.latency_ms,
                    error=t.error,
                    response_excerpt=t.answer,
                )
            )
        s.commit()
        return delivery.id


def state_of(db: Database, session_id: str) -> str:
    with db.session(all_orgs=True) as s:
        hs = s.get(HeadshotSession, session_id)
        assert hs is not None
        return hs.state


def outbox_for(db: Database, session_id: str, routing_key: str | None = None) -> list[OutboxMessage]:
    with db.session(all_orgs=True) as s:
        query = select(OutboxMessage).where(OutboxMessage.session_id == session_id)
        if routing_key:
            query = query.where(OutboxMessage.routing_key == routing_key)
        return list(s.scalars(query.order_by(OutboxMessage.id)))


def audit_actions(db: Database, target: str | None = None) -> list[str]:
    with db.session(all_orgs=True) as s:
        query = select(AuditLog.action).order_by(AuditLog.id)
        if target:
            query = query.where(AuditLog.target == target)
        return list(s.scalars(query))


def count(db: Database, model: Any) -> int:
    with db.session(all_orgs=True) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


@dataclass
class OpsClient:
    client: FlaskClient
    user: User
    csrf: str

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True) -> Any:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.csrf
        return self.client.post(path, data=form)


def sign_in(
    app: Flask, settings: Settings, user: User, path: str = f"{WEB_MOUNTS['ops']}/invite/"
) -> OpsClient:
    """Sign in through a signed link as a browser would, then read the page's CSRF token.

    The ops app is tested on its own, so the mount prefix is cut from the link."""
    client = app.test_client()
    link = invite_url(settings, user, path).removeprefix(settings.public_url).removeprefix(WEB_MOUNTS["ops"])
    client.get(link)
    page = client.get("/workers")  # any page: the token is in every page's head
    match = CSRF_META.search(page.get_data(as_text=True))
    return OpsClient(client, user, match.group(1) if match else "")


def sign_in_other(app: Flask, settings: Settings, user: User) -> OpsClient:
    """An org admin or employee signed in (through the same cookie every app shares)."""
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie["user_id"] = user.id
        cookie["csrf"] = "known-token"
    return OpsClient(client, user, "known-token")


# --- fixtures (import them into a test module: ``from tests.support.ops import ops_app_fixture, ...``) ----


@pytest.fixture(name="ops_settings")
def ops_settings_fixture(tmp_path: Path, sqlite_url: str) -> Settings:
    return Settings(
        VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=sqlite_url,
        BROKER_URL=f"memory://{uuid.uuid4().hex[:8]}/",
        SECRET_KEY="test-secret",
    )


@pytest.fixture(name="ops_db")
def ops_db_fixture(ops_settings: Settings) -> Iterator[Database]:
    database = Database(ops_settings.database_url)
    yield database
    database.dispose()


@pytest.fixture(name="demo")
def demo_fixture(ops_db: Database) -> DemoData:
    return seed_demo(ops_db)


@pytest.fixture(name="ops_blobs")
def ops_blobs_fixture(ops_settings: Settings) -> LocalBlobStore:
    return LocalBlobStore(ops_settings.blob_dir)


@pytest.fixture(name="ops_app")
def ops_app_fixture(
    ops_settings: Settings, ops_db: Database, ops_blobs: LocalBlobStore, demo: DemoData
) -> Flask:
    from services.ops.app import create_app

    app = create_app(ops_settings, db=ops_db, blobs=ops_blobs, checks={})
    # Only support staff may read the ops document: read it as a support tool would, signed in.
    DocumentedApi.read_as(app, sign_in_other(app, ops_settings, demo.support).client)
    app.test_client_class = OpenApiCheckedClient  # every API answer a test sees matches the document
    return app


@pytest.fixture(name="support")
def support_fixture(ops_app: Flask, ops_settings: Settings, demo: DemoData) -> OpsClient:
    return sign_in(ops_app, ops_settings, demo.support)
