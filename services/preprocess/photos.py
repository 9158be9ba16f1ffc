"""One photo at a time, each in its own transaction: a worker killed mid-session loses one photo's work.

    outcome = prepare_one(db, blobs, options, message, source)   # "prepared", "dropped", "skipped", "stopped"

``source`` (a :class:`PhotoSource`, listed by ``steps.begin``) names a photo not yet prepared:

1. if the session is still in preprocessing (a one-row read), read the original blob and run
   :func:`libs.imaging.prepare.prepare_photo` with no transaction open;
2. write both crops under keys derived from the photo's id (a second run rewrites the same files,
   never adds new ones);
3. in one transaction, under the session's row lock: if the session is still in preprocessing and
   the photo still undecided (another worker may have handled a duplicate approval), record the
   result on the photo, count the photos done, and write ``session.progress`` to the outbox.

A missing or unreadable original, or one with no face, drops that photo with its reason; the others
go on. Anything else (the blob store or the database failing) raises, and the message is retried.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select

from libs.contracts import SESSION_PROGRESS, Message, SessionState, new_message
from libs.db import Database, HeadshotSession, Photo, UnitOfWork
from libs.imaging import PhotoRejected
from libs.imaging.prepare import PreparedPhoto, prepare_photo
from libs.storage import BlobError, BlobNotFound, BlobStore, derived_key
from services.preprocess.options import PreprocessOptions
from services.preprocess.selection import MISSING, NO_FACE, UNREADABLE

log = logging.getLogger("headshots.preprocess")

STAGE = SessionState.PREPROCESSING.value

# What a person reads for each photo the preparation could not use.
_REJECTED = {
    "no_face": (NO_FACE, "no face found"),
    "corrupt": (UNREADABLE, "the original file is damaged and could not be read"),
    "unsupported_format": (UNREADABLE, "the original file is not a JPEG, PNG or HEIC photo"),
    "too_many_pixels": (UNREADABLE, "the original photo has too many pixels"),
    "file_too_large": (UNREADABLE, "the original file is too large"),
}


@dataclass(frozen=True)
class PhotoSource:
    """What preparing a photo needs to know of its row, read when the session's work begins."""

    photo_id: str
    original_key: str
    created_at: datetime

    @classmethod
    def of(cls, photo: Photo) -> PhotoSource:
        return cls(photo.id, photo.original_key, photo.created_at)


def prepare_one(
    db: Database, blobs: BlobStore, options: PreprocessOptions, message: Message, source: PhotoSource
) -> str:
    """Prepare and record one photo; returns what happened (see the module's docstring)."""
    photo_id = source.photo_id
    if not _still_preparing(db, message):
        return "stopped"  # deleted or failed meanwhile: write no blob that nothing would point to
    prepared, problem = _prepare(blobs, options, source)
    keys = _store(blobs, source, prepared) if prepared is not None else None

    with db.uow(org_id=message.org_id) as uow:
        hs = uow.get_for_update(HeadshotSession, message.session_id)
        if hs is None or hs.state != STAGE:
            log.info(
                "session %s left %s while photo %s was prepared: stopping",
                message.session_id,
                STAGE,
                photo_id,
            )
            return "stopped"
        photo = uow.session.get(Photo, photo_id)
        if photo is None or photo.session_id != hs.id or _is_done(photo):
            return "skipped"  # deleted, or recorded by another worker handling a duplicate approval
        if prepared is not None and keys is not None:
            _record_prepared(photo, prepared, keys)
            outcome = "prepared"
        else:
            code, reason = problem or (UNREADABLE, "could not be prepared")
            photo.decision, photo.decision_reason = "dropped", reason
            photo.preparation = {"problem": code}
            outcome = "dropped"
        uow.flush()
        report_progress(uow, hs, message)
        uow.commit()
    log.info("photo %s of session %s %s", photo_id, message.session_id, outcome)
    return outcome


def report_progress(uow: UnitOfWork, hs: HeadshotSession, message: Message) -> None:
    """Count the photos done, store it on the session and write ``session.progress`` (same transaction)."""
    total, done = counts(uow, hs.id)
    hs.progress_done, hs.progress_total = done, total
    uow.add_message(
        new_message(
            SESSION_PROGRESS, org_id=message.org_id, session_id=hs.id, stage=STAGE, done=done, total=total
        )
    )


def counts(uow: UnitOfWork, session_id: str) -> tuple[int, int]:
    """(photos of the session, photos already prepared or dropped)."""
    done = func.count().filter(or_(Photo.prepared_key.is_not(None), Photo.decision.is_not(None)))
    row = uow.session.execute(select(func.count(), done).where(Photo.session_id == session_id)).one()
    return int(row[0]), int(row[1])


def _still_preparing(db: Database, message: Message) -> bool:
    with db.session(org_id=message.org_id) as s:
        state = s.scalar(select(HeadshotSession.state).where(HeadshotSession.id == message.session_id))
    return state == STAGE


def _is_done(photo: Photo) -> bool:
    return photo.prepared_key is not None or photo.decision is not None


def _prepare(
    blobs: BlobStore, options: PreprocessOptions, source: PhotoSource
) -> tuple[PreparedPhoto | None, tuple[str, str] | None]:
    try:
        data = blobs.get(source.original_key)
    except (BlobNotFound, BlobError):
        log.warning("photo %s: original %s is missing", source.photo_id, source.original_key)
        return None, (MISSING, "the original photo is missing from storage")
    try:
        return prepare_photo(data, training_side=options.training_side, limits=options.limits), None
    except PhotoRejected as refused:
        log.warning("photo %s dropped: %s", source.photo_id, refused)
        return None, _REJECTED.get(refused.code, (UNREADABLE, refused.message))


def _store(blobs: BlobStore, source: PhotoSource, prepared: PreparedPhoto) -> tuple[str, str]:
    prepared_key = derived_key("prepared", "jpg", source=f"{source.photo_id}/prepared", at=source.created_at)
    training_key = derived_key("training", "jpg", source=f"{source.photo_id}/training", at=source.created_at)
    blobs.put_at(prepared_key, prepared.prepared_jpeg)
    blobs.put_at(training_key, prepared.training_jpeg)
    return prepared_key, training_key


def _record_prepared(photo: Photo, prepared: PreparedPhoto, keys: tuple[str, str]) -> None:
    photo.prepared_key, photo.training_key = keys
    photo.quality_score = prepared.quality.score
    photo.embedding = list(prepared.embedding)
    photo.preparation = {
        **prepared.quality.to_dict(),
        "phash": prepared.phash,
        "roll_degrees": prepared.roll_degrees,
    }
