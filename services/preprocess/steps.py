"""The session's two ends: start (or resume) the preparation, and decide and publish at the end.

    pending = begin(db, message)          # None: nothing to do; else the photos still to prepare
    ... prepare_one(...) for each ...
    finish(uow, message, options)         # in the consumer's transaction, with its processed-message row

``begin`` commits on its own (queued -> preprocessing, progress 0 of N), so the waiting page moves
at once and a worker killed later resumes from ``preprocessing``. ``finish`` chooses the photos and,
in the same transaction as the consumer's record of the message, publishes ``photos.processed``
(the session stays in ``preprocessing``: generation moves it on) or fails the session.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from libs.contracts import PHOTOS_PROCESSED, SESSION_FAILED, Message, SessionState, new_message
from libs.db import Database, HeadshotSession, OutboxMessage, Photo, UnitOfWork
from libs.imaging.quality import PhotoQuality
from services.preprocess.options import PreprocessOptions
from services.preprocess.photos import STAGE, PhotoSource, counts, report_progress
from services.preprocess.selection import Candidate, choose, failure_reason

log = logging.getLogger("headshots.preprocess")

S = SessionState


def begin(db: Database, message: Message) -> list[PhotoSource] | None:
    """Move a queued session to preprocessing (or resume one); the photos still to prepare."""
    with db.uow(org_id=message.org_id) as uow:
        hs = _locked_session(uow, message)
        if hs is None:
            return None
        if hs.state == S.QUEUED:
            hs.move_to(S.PREPROCESSING)
            log.info("session %s: preparing %d photos", hs.id, len(hs.photos))
        elif hs.state == S.PREPROCESSING:
            if already_published(uow, hs.id):
                log.info("session %s: photos already prepared and published; nothing to do", hs.id)
                return None
            log.info("session %s: resuming the preparation of its photos", hs.id)
        else:
            log.warning("session %s is %s, not queued: session.approved ignored", hs.id, hs.state)
            return None
        report_progress(uow, hs, message)
        pending = [
            PhotoSource.of(p) for p in _photos(uow, hs.id) if p.prepared_key is None and p.decision is None
        ]
        uow.commit()
    return pending


def finish(uow: UnitOfWork, message: Message, options: PreprocessOptions) -> None:
    """Decide every photo and publish ``photos.processed``, or fail the session with a reason."""
    hs = _locked_session(uow, message)
    if hs is None:
        return
    if hs.state != S.PREPROCESSING:
        log.warning("session %s is %s: its preparation ends without effect", hs.id, hs.state)
        return
    if already_published(uow, hs.id):
        return  # another worker, handling a duplicate approval, finished first
    photos = _photos(uow, hs.id)
    if any(p.prepared_key is None and p.decision is None for p in photos):
        # A photo added, or left behind by a worker that stopped: fail this attempt, retry later.
        raise RuntimeError(f"session {hs.id} still has unprepared photos")

    numbers = {p.id: n for n, p in enumerate(photos, start=1)}
    prepared = [p for p in photos if p.prepared_key is not None and p.preparation]
    verdicts = choose(
        (_candidate(p, numbers[p.id]) for p in prepared),
        keep_best=options.keep_best,
        min_sharpness=options.min_sharpness,
    )
    by_id = {p.id: p for p in photos}
    for v in verdicts:
        photo = by_id[v.photo_id]
        photo.decision, photo.decision_reason = ("kept" if v.kept else "dropped"), v.reason
        photo.preparation = {**(photo.preparation or {}), "problem": v.problem}
    kept = [v.photo_id for v in verdicts if v.kept]
    total, done = counts(uow, hs.id)
    hs.progress_done, hs.progress_total = done, total

    if len(kept) < options.min_photos:
        problems = [v.problem for v in verdicts] + [
            (p.preparation or {}).get("problem", "unreadable") for p in photos if p.prepared_key is None
        ]
        reason = failure_reason(problems, usable=len(kept), needed=options.min_photos)
        hs.move_to(S.FAILED)
        hs.failure_reason = reason
        uow.add_message(
            new_message(SESSION_FAILED, org_id=message.org_id, session_id=hs.id, stage=STAGE, reason=reason)
        )
        log.warning("session %s failed in preparation: %s", hs.id, reason)
        return
    uow.add_message(new_message(PHOTOS_PROCESSED, org_id=message.org_id, session_id=hs.id, photo_ids=kept))
    log.info("session %s: %d of %d photos kept for training", hs.id, len(kept), total)


def already_published(uow: UnitOfWork, session_id: str) -> bool:
    """Whether this run of the preparation already ended with ``photos.processed``.

    The outbox is the session's timeline: an earlier ``photos.processed`` counts only if no
    ``session.failed`` came after it (a failed session re-queued by support is prepared again).
    """
    last = {
        key: uow.session.scalar(
            select(func.max(OutboxMessage.id)).where(
                OutboxMessage.session_id == session_id, OutboxMessage.routing_key == key
            )
        )
        for key in (PHOTOS_PROCESSED.routing_key, SESSION_FAILED.routing_key)
    }
    processed, failed = last[PHOTOS_PROCESSED.routing_key], last[SESSION_FAILED.routing_key]
    return processed is not None and (failed is None or processed > failed)


def _locked_session(uow: UnitOfWork, message: Message) -> HeadshotSession | None:
    hs = uow.get_for_update(HeadshotSession, message.session_id)
    if hs is None:
        log.warning("session.approved for unknown session %s: ignored", message.session_id)
    return hs


def _photos(uow: UnitOfWork, session_id: str) -> list[Photo]:
    query = select(Photo).where(Photo.session_id == session_id).order_by(Photo.created_at, Photo.id)
    return list(uow.session.scalars(query))


def _candidate(photo: Photo, number: int) -> Candidate:
    measures = photo.preparation or {}
    return Candidate(
        photo_id=photo.id,
        number=number,
        quality=PhotoQuality.from_dict(measures),
        embedding=photo.embedding or [],
        phash=str(measures["phash"]),
    )
