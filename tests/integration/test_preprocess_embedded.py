"""The embedded mode as the launcher runs it: a person submits through intake, the session is approved
(what review does for an organization without manual review: queued + session.approved in one
transaction), and the preprocess worker thread prepares the photos and publishes photos.processed on
its own, through the in-process broker and the outbox relay thread.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select

from libs.contracts import PHOTOS_PROCESSED, SessionState
from libs.db import HeadshotSession, Organization, OutboxMessage
from libs.db.demo import seed_demo
from libs.messaging.testing import wait_for
from services import launcher
from services.intake.app import create_app
from tests.support.intake import (
    COMPLETE_INFO,
    intake_settings_for,
    sign_in,
)
from tests.support.photos import astronaut, jpeg, mirrored
from tests.support.preprocess import approved, session_state

pytestmark = pytest.mark.integration


def test_a_submitted_and_approved_session_reaches_photos_processed_on_its_own(
    tmp_path: Path, sqlite_url: str
):
    settings = intake_settings_for(tmp_path, sqlite_url)
    running = launcher.start(settings, only={"intake", "preprocess"}, web=False)
    try:
        db = running.platform.db
        demo = seed_demo(db)
        with db.session(all_orgs=True) as s:
            org = s.get(Organization, demo.org_id)
            assert org is not None and not org.manual_review

        app = create_app(settings, db=db, blobs=running.platform.blobs, checks={})
        bea = sign_in(app, settings, demo.employees[0])
        for data in (jpeg(astronaut()), jpeg(mirrored(astronaut()))):
            uploaded = bea.client.post(
                bea.api("/photos"),
                data={"photo": (io.BytesIO(data), "me.jpg")},
                headers=bea.headers,
                content_type="multipart/form-data",
            )
            assert uploaded.status_code == 201, uploaded.data
        assert bea.client.put(bea.api("/info"), json=COMPLETE_INFO, headers=bea.headers).status_code == 200
        styles = {"styles": ["navy:shirt"], "format": "portrait"}
        assert bea.client.put(bea.api("/styles"), json=styles, headers=bea.headers).status_code == 200
        confirm = {"agree_terms": True, "best_photos": True}
        assert (
            bea.client.post(bea.api("/submit"), json=confirm, headers=bea.headers).json["state"]
            == "submitted"
        )

        with db.uow(org_id=demo.org_id) as uow:  # straight approval, as review does it
            hs = uow.get_for_update(HeadshotSession, bea.session_id)
            assert hs is not None
            hs.move_to(SessionState.QUEUED)
            uow.add_message(approved(demo.org_id, hs.id))
            uow.commit()

        def processed_and_sent() -> bool:
            with db.session(all_orgs=True) as s:
                row = s.scalar(
                    select(OutboxMessage).where(
                        OutboxMessage.session_id == bea.session_id,
                        OutboxMessage.routing_key == PHOTOS_PROCESSED.routing_key,
                    )
                )
                return row is not None and row.sent_at is not None

        wait_for(processed_and_sent, "photos.processed to be published", timeout=90)
        assert session_state(db, demo.org_id, bea.session_id) == (SessionState.PREPROCESSING, None)
        status = bea.client.get(bea.api("/status")).json
        assert status["state"] == "preprocessing"
    finally:
        running.shutdown()
