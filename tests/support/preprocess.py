"""Sessions with real photos for the preprocess tests (unit, integration) and its benchmark.

hs_id, photo_ids = queued_session(db, blobs, demo, [jpeg(astronaut()), ...])
message = approved(demo.org_id, hs_id)
published(db, PHOTOS_PROCESSED, hs_id)        # the outbox rows of that event, oldest first
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from PIL import Image
from sqlalchemy import select

from libs.contracts import SESSION_APPROVED, EventType, Message, SessionState, decode_message, new_message
from libs.db import Database, HeadshotSession, OutboxMessage, Photo, utcnow
from libs.db.demo import DemoData
from libs.storage import BlobStore

MISSING = b""  # in a photo list: a row whose original is not in the blob store


def queued_session(
    db: Database,
    blobs: BlobStore,
    demo: DemoData,
    originals: Sequence[bytes],
    state: SessionState = SessionState.QUEUED,
) -> tuple[str, list[str]]:
    """A session in ``state`` holding one photo per original (``MISSING``: the blob is absent)."""
    user = demo.employees[0]
    start = utcnow()
    with db.uow(org_id=demo.org_id) as uow:
        hs = HeadshotSession(org_id=demo.org_id, user_id=user.id, package_id="executive", state=state.value)
        uow.session.add(hs)
        uow.session.flush()
        photos = []
        for n, data in enumerate(originals):
            if data == MISSING:
                key, width, height = "originals/2026/01/" + "0" * 31 + f"{n}.jpg", 512, 512
            else:
                key = blobs.put(data, kind="originals", ext="jpg")
                width, height = _size(data)
            photo = Photo(
                org_id=demo.org_id,
                session_id=hs.id,
                original_key=key,
                clean_key=key,  # not read by preprocess
                width=width,
                height=height,
                created_at=start + timedelta(seconds=n),  # the order the person uploaded them
            )
            uow.session.add(photo)
            photos.append(photo)
        uow.commit()
        return hs.id, [p.id for p in photos]


def approved(org_id: str, session_id: str) -> Message:
    return new_message(SESSION_APPROVED, org_id=org_id, session_id=session_id, auto=True, reviewer_id=None)


def published(db: Database, event: EventType, session_id: str) -> list[Message]:
    with db.session(all_orgs=True) as s:
        rows = s.scalars(
            select(OutboxMessage.body)
            .where(OutboxMessage.session_id == session_id, OutboxMessage.routing_key == event.routing_key)
            .order_by(OutboxMessage.id)
        )
        return [decode_message(body) for body in rows]


def photo_rows(db: Database, org_id: str, photo_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The preparation's columns of each photo, in the order given."""
    with db.session(org_id=org_id) as s:
        rows = {p.id: p for p in s.scalars(select(Photo).where(Photo.id.in_(photo_ids)))}
        return [
            {
                "id": i,
                "decision": rows[i].decision,
                "reason": rows[i].decision_reason,
                "score": rows[i].quality_score,
                "prepared_key": rows[i].prepared_key,
                "training_key": rows[i].training_key,
                "original_key": rows[i].original_key,
            }
            for i in photo_ids
        ]


def session_state(db: Database, org_id: str, session_id: str) -> tuple[str, str | None]:
    with db.session(org_id=org_id) as s:
        hs = s.get(HeadshotSession, session_id)
        assert hs is not None
        return hs.state, hs.failure_reason


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size
