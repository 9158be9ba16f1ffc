"""Helpers shared by the review tests (unit, integration, e2e): sessions in a given state, person
models, org settings and outbox reading, written straight to the database."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from libs.contracts import SESSION_SUBMITTED, Message, SessionState, new_message
from libs.db import (
    ChosenStyle,
    Database,
    HeadshotSession,
    Organization,
    OutboxMessage,
    PersonModel,
    Photo,
    utcnow,
)


def make_session(
    db: Database,
    org_id: str,
    user_id: str,
    state: str | SessionState = SessionState.SUBMITTED,
    *,
    age_minutes: int = 0,
    photos: int = 0,
    full_name: str = "Bea Employee",
) -> str:
    """A session in ``state`` (written directly, as if it got there), with chosen styles."""
    when = utcnow() - timedelta(minutes=age_minutes)
    with db.uow(org_id=org_id) as uow:
        hs = HeadshotSession(
            org_id=org_id,
            user_id=user_id,
            state=str(state),
            package_id="executive",
            format_id="portrait",
            full_name=full_name,
            gender="female",
            eye_color="brown",
            glasses="no_glasses",
            created_at=when,
            submitted_at=when,
        )
        uow.session.add(hs)
        uow.session.flush()
        uow.session.add(ChosenStyle(org_id=org_id, session_id=hs.id, style_id="navy:shirt", position=0))
        uow.session.add(
            ChosenStyle(
                org_id=org_id, session_id=hs.id, style_id="studio-grey:suit", preselected=True, position=1
            )
        )
        for i in range(photos):
            uow.session.add(
                Photo(
                    org_id=org_id,
                    session_id=hs.id,
                    original_key=f"test/{hs.id}/{i}.png",
                    clean_key=f"test/{hs.id}/{i}.jpg",
                    width=512,
                    height=512,
                )
            )
        uow.commit()
        return hs.id


def submitted_message(org_id: str, session_id: str) -> Message:
    return new_message(
        SESSION_SUBMITTED,
        org_id=org_id,
        session_id=session_id,
        package="executive",
        format="portrait",
        styles=["navy:shirt", "studio-grey:suit"],
        photo_count=4,
    )


def make_person_model(db: Database, org_id: str, session_id: str, *, retired: bool = False) -> str:
    with db.uow(org_id=org_id) as uow:
        model = PersonModel(
            org_id=org_id,
            session_id=session_id,
            engine="studio",
            path=f"models/{session_id}",
            retired_at=utcnow() if retired else None,
        )
        uow.session.add(model)
        uow.commit()
        return model.id


def set_org(db: Database, org_id: str, **values: Any) -> None:
    with db.uow(org_id=org_id) as uow:
        org = uow.session.get(Organization, org_id)
        assert org is not None
        for name, value in values.items():
            setattr(org, name, value)
        uow.commit()


def session_state(db: Database, org_id: str, session_id: str) -> str:
    with db.session(org_id=org_id) as s:
        hs = s.get(HeadshotSession, session_id)
        assert hs is not None
        return hs.state


def outbox(db: Database, routing_key: str, session_id: str | None = None) -> list[dict[str, Any]]:
    """The bodies of the outbox rows with ``routing_key`` (of one session, if given), oldest first."""
    query = select(OutboxMessage.body).where(OutboxMessage.routing_key == routing_key)
    if session_id is not None:
        query = query.where(OutboxMessage.session_id == session_id)
    with db.session(all_orgs=True) as s:
        return [json.loads(b) for b in s.scalars(query.order_by(OutboxMessage.id))]


# --- the console in a test client ----------------------------------------------------------------
def store_photo(blobs: Any, db: Database, org_id: str, session_id: str) -> str:
    """Put a real JPEG in the blob store as the session's (first) clean photo; its photo id."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (640, 480), (120, 90, 60)).save(out, "JPEG")
    key = blobs.put(out.getvalue(), kind="clean", ext="jpg")
    with db.uow(org_id=org_id) as uow:
        photo = Photo(
            org_id=org_id, session_id=session_id, original_key=key, clean_key=key, width=640, height=480
        )
        uow.session.add(photo)
        uow.commit()
        return photo.id


def console_sign_in(app: Any, settings: Any, user: Any) -> Any:
    """A test client signed in through the user's console link; returns (client, csrf token)."""
    import re

    from services.review.views_sign_in import admin_invite_url

    client = app.test_client()
    path = admin_invite_url(settings, user).removeprefix(settings.public_url).removeprefix("/review")
    response = client.get(path)
    assert response.status_code == 303, response.data[:300]
    page = client.get("/queue")
    match = re.search(rb'name="csrf-token" content="([^"]+)"', page.data)
    assert match, page.data[:300]
    return client, match.group(1).decode()


# --- fixtures (defined as <name>_fixture with name="<name>"; test modules import them) ------------
import pytest  # noqa: E402


@pytest.fixture(name="review_settings")
def review_settings_fixture(tmp_path: Any, sqlite_url: str) -> Any:
    from libs.settings import Settings

    return Settings(VAR_DIR=str(tmp_path / "var"), DATABASE_URL=sqlite_url, SECRET_KEY="test-secret")


@pytest.fixture(name="db")
def db_fixture(review_settings: Any) -> Any:
    database = Database(review_settings.database_url)
    yield database
    database.dispose()


@pytest.fixture(name="demo")
def demo_fixture(db: Database) -> Any:
    from libs.db.demo import seed_demo

    return seed_demo(db)


@pytest.fixture(name="blobs")
def blobs_fixture(review_settings: Any) -> Any:
    from libs.storage import LocalBlobStore

    return LocalBlobStore(review_settings.blob_dir)


@pytest.fixture(name="app")
def app_fixture(review_settings: Any, db: Database, blobs: Any) -> Any:
    from services.review.app import create_app
    from tests.support.openapi import OpenApiCheckedClient

    app = create_app(review_settings, db=db, blobs=blobs, checks={})
    app.test_client_class = OpenApiCheckedClient  # every org API answer a test sees matches the document
    return app
