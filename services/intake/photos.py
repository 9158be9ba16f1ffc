"""A session's photos: checked and kept at upload (rate limited, at most MAX_PHOTOS), removed on
request, shown as thumbnails.

    photo = upload_photo(db, blobs, settings, actor, session_id, jpeg_bytes)   # or PhotoRefused
    with db.uow(org_id=actor.org_id) as uow:
        delete_photo(uow, blobs, actor, session_id, photo.id)
"""

from __future__ import annotations

import io
import logging
import math
from datetime import datetime, timedelta

from PIL import Image
from sqlalchemy import delete, select

from libs.db import HeadshotSession, Photo, UnitOfWork, UploadAttempt, utcnow
from libs.db.database import Database
from libs.imaging import PhotoLimits, PhotoRejected, check_photo
from libs.settings import Settings
from libs.storage import BlobStore
from services.intake.errors import NotFound, PhotoRefused, RateLimited
from services.intake.sessions import Actor, count_photos, find_session, photos_of, require_editable

log = logging.getLogger("headshots.intake")

MAX_PHOTOS = 20  # per session: enough variety for training, bounded storage per person
RATE_WINDOW = timedelta(seconds=60)  # UPLOADS_PER_MINUTE counts attempts in this window
ATTEMPTS_KEPT = timedelta(minutes=10)  # older attempts are pruned as new ones arrive
THUMB_SIDE = 320

# The extension an original is stored under, from the format check_photo recognised in its bytes.
_ORIGINAL_EXT = {"JPEG": "jpg", "PNG": "png", "HEIF": "heic"}


def upload_photo(
    db: Database,
    blobs: BlobStore,
    settings: Settings,
    actor: Actor,
    session_id: str,
    data: bytes,
    *,
    now: datetime | None = None,
) -> Photo:
    """Check one uploaded photo and keep it if it passes; raise :class:`PhotoRefused` otherwise
    (the photo checks' own code: ``no_face``, ``unsupported_format``...), :class:`RateLimited`
    past UPLOADS_PER_MINUTE attempts.

    Three short steps, so the slow check holds no transaction or lock: (1) count the attempt
    against the rate limit and read the accepted photos' embeddings, (2) run the checks,
    (3) store the blobs, then the row, after re-checking the session under its lock.
    """
    now = now or utcnow()
    with db.uow(org_id=actor.org_id) as uow:
        hs = find_session(uow, actor, session_id, lock=True)
        require_editable(hs)
        _count_attempt(uow, actor, settings.UPLOADS_PER_MINUTE, now)
        accepted = photos_of(uow, hs)
        _require_room(len(accepted))
        others = [p.embedding for p in accepted if p.embedding]
        uow.commit()  # the attempt counts whether or not the photo passes

    try:
        checked = check_photo(data, PhotoLimits.from_settings(settings), others)
    except PhotoRejected as refused:
        raise PhotoRefused(refused.code, refused.message) from None

    clean_key = blobs.put(checked.clean_jpeg, kind="photos", ext="jpg")
    original_key = blobs.put(data, kind="originals", ext=_ORIGINAL_EXT.get(checked.source_format, "bin"))
    try:
        with db.uow(org_id=actor.org_id) as uow:
            hs = find_session(uow, actor, session_id, lock=True)
            require_editable(hs)  # it may have been submitted while the check ran
            _require_room(count_photos(uow, hs))
            face = checked.face
            photo = Photo(
                org_id=actor.org_id,
                session_id=hs.id,
                original_key=original_key,
                clean_key=clean_key,
                width=checked.width,
                height=checked.height,
                face_box={"x": face.x, "y": face.y, "w": face.w, "h": face.h, "score": face.score},
                embedding=list(checked.embedding),
            )
            uow.session.add(photo)
            uow.commit()
    except BaseException:
        blobs.delete(clean_key)
        blobs.delete(original_key)
        raise
    log.info("photo %s accepted for session %s", photo.id, session_id)
    return photo


def _require_room(count: int) -> None:
    if count >= MAX_PHOTOS:
        raise PhotoRefused(
            "too_many_photos",
            f"You already have {MAX_PHOTOS} photos, the most a session can hold. Remove one to add another.",
        )


def _count_attempt(uow: UnitOfWork, actor: Actor, per_minute: int, now: datetime) -> None:
    """Refuse (:class:`RateLimited`) past UPLOADS_PER_MINUTE attempts in the last minute, else
    count this one.

    The attempts live in the database, so the limit holds across processes. The caller holds the
    session's lock, so one person's concurrent uploads are counted one after the other.
    """
    s = uow.session
    s.execute(
        delete(UploadAttempt)
        .where(
            UploadAttempt.org_id == actor.org_id,
            UploadAttempt.user_id == actor.user_id,
            UploadAttempt.created_at < now - ATTEMPTS_KEPT,
        )
        .execution_options(synchronize_session=False)
    )
    recent = list(
        s.scalars(
            select(UploadAttempt.created_at)
            .where(UploadAttempt.user_id == actor.user_id, UploadAttempt.created_at > now - RATE_WINDOW)
            .order_by(UploadAttempt.created_at)
        )
    )
    if len(recent) >= per_minute:
        raise RateLimited(retry_after=max(1, math.ceil((recent[0] + RATE_WINDOW - now).total_seconds())))
    s.add(UploadAttempt(org_id=actor.org_id, user_id=actor.user_id, created_at=now))


def delete_photo(uow: UnitOfWork, blobs: BlobStore, actor: Actor, session_id: str, photo_id: str) -> None:
    hs = find_session(uow, actor, session_id, lock=True)
    require_editable(hs)
    photo = find_photo(uow, hs, photo_id)
    keys = [k for k in (photo.clean_key, photo.original_key, photo.prepared_key) if k]
    uow.session.delete(photo)
    uow.commit()
    for key in keys:  # after the commit: a failed commit must not lose the files of a kept row
        blobs.delete(key)


def find_photo(uow: UnitOfWork, hs: HeadshotSession, photo_id: str) -> Photo:
    photo = uow.session.get(Photo, photo_id)
    if photo is None or photo.session_id != hs.id:
        raise NotFound("photo")
    return photo


def thumbnail(blobs: BlobStore, photo: Photo, side: int = THUMB_SIDE) -> bytes:
    """A small JPEG of the clean photo for the pages (made on request: cheap, nothing to keep)."""
    with Image.open(io.BytesIO(blobs.get(photo.clean_key)), formats=["JPEG"]) as image:
        image.thumbnail((side, side))
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=82)
        return out.getvalue()
