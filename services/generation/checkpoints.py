"""The generation worker's writes: each one a short unit of work of its own, committed at once.

A session takes minutes (tens on a GPU); the consumer's own transaction would hold every image
until the end. Instead each step below locks the session row, checks it is still the worker's to
change, writes its rows and outbox events, and commits, so the waiting page sees every image land
and a restarted worker resumes from what is stored. The database is the source of truth: these
functions never trust what the worker remembers.

    begun = begin(db, org_id, session_id)                 # preprocessing → training (or resume)
    record_model(db, ...)                                 # PersonModel row, training → generating
    record_headshot(db, ...)                              # Headshot row + headshot.generated + progress
    complete(db, org_id, session_id, total)               # generating → completed + session.completed
    fail(db, org_id, session_id, stage, reason)           # → failed + session.failed

Every function raises :class:`SessionGone` when the session was deleted (or failed by someone
else) meanwhile: the worker then stops and removes what it made.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from libs.contracts import (
    HEADSHOT_GENERATED,
    MODEL_TRAINED,
    SESSION_COMPLETED,
    SESSION_FAILED,
    SESSION_PROGRESS,
    SessionState,
    new_message,
)
from libs.db import Database, Headshot, HeadshotSession, PersonModel, UnitOfWork, utcnow
from services.generation.plan import Shot
from services.generation.results import StoredImages

log = logging.getLogger("headshots.generation")

S = SessionState
WORKING = (S.TRAINING, S.GENERATING)


class SessionGone(Exception):
    """The session is no longer the worker's: deleted, failed or completed by someone else."""

    def __init__(self, session_id: str, state: str | None) -> None:
        super().__init__(f"session {session_id} is {state or 'gone'}")
        self.state = state

    @property
    def deleted(self) -> bool:
        return self.state in (None, S.DELETED)


@dataclass(frozen=True)
class Ref:
    """Which session a step is about (every write is scoped to its organization)."""

    db: Database
    org_id: str
    session_id: str

    def progress(self, uow: UnitOfWork, stage: str, done: int, total: int) -> None:
        uow.add_message(
            new_message(
                SESSION_PROGRESS,
                org_id=self.org_id,
                session_id=self.session_id,
                stage=stage,
                done=done,
                total=total,
            )
        )

    def lock(self, uow: UnitOfWork, *allowed: str) -> HeadshotSession:
        hs = uow.get_for_update(HeadshotSession, self.session_id)
        if hs is None or hs.state not in allowed:
            raise SessionGone(self.session_id, hs.state if hs else None)
        return hs


def start_training(ref: Ref, photo_count: int) -> str:
    """preprocessing → training. Returns the state the worker resumes from (training or generating)."""
    with ref.db.uow(org_id=ref.org_id) as uow:
        hs = ref.lock(uow, S.PREPROCESSING, *WORKING)
        state = hs.state
        if state == S.PREPROCESSING:
            hs.move_to(S.TRAINING)
            hs.progress_done, hs.progress_total = 0, photo_count
            ref.progress(uow, S.TRAINING, 0, photo_count)
            uow.commit()
            state = S.TRAINING
        return state


def report_training(ref: Ref, done: int, total: int) -> None:
    with ref.db.uow(org_id=ref.org_id) as uow:
        hs = ref.lock(uow, S.TRAINING)
        hs.progress_done, hs.progress_total = done, total
        ref.progress(uow, S.TRAINING, done, total)
        uow.commit()


def current_model(ref: Ref, engine: str) -> PersonModel | None:
    """The session's live person model for ``engine``, if one was recorded (a resumed session)."""
    with ref.db.session(org_id=ref.org_id) as db_session:
        query = (
            select(PersonModel)
            .where(
                PersonModel.session_id == ref.session_id,
                PersonModel.engine == engine,
                PersonModel.retired_at.is_(None),
            )
            .order_by(PersonModel.created_at.desc())
        )
        return db_session.scalars(query).first()


def record_model(ref: Ref, model: PersonModel, seconds: float, total: int, *, new: bool = True) -> None:
    """The person model is ready: record it (``new``) and move training → generating."""
    with ref.db.uow(org_id=ref.org_id) as uow:
        hs = ref.lock(uow, *WORKING)
        if new:
            uow.session.add(model)
        uow.add_message(
            new_message(
                MODEL_TRAINED,
                org_id=ref.org_id,
                session_id=ref.session_id,
                person_model_id=model.id,
                engine=model.engine,
                seconds=round(seconds, 3),
            )
        )
        if hs.state == S.TRAINING:
            hs.move_to(S.GENERATING)
            hs.progress_done, hs.progress_total = 0, total
            ref.progress(uow, S.GENERATING, 0, total)
        uow.commit()


def stored_shots(ref: Ref) -> set[tuple[str, int]]:
    with ref.db.session(org_id=ref.org_id) as db_session:
        rows = db_session.execute(
            select(Headshot.style_id, Headshot.index_in_style).where(Headshot.session_id == ref.session_id)
        )
        return {(style, index) for style, index in rows}


@dataclass(frozen=True)
class Rendered:
    """A headshot ready to record: where it belongs in the plan and what it scored."""

    shot: Shot
    position: int
    images: StoredImages
    likeness: float | None


def record_headshot(ref: Ref, rendered: Rendered, total: int) -> int | None:
    """Store one headshot's row and announce it. Returns how many are stored now, or None when this
    shot was already stored (another worker got there first: the caller drops its files)."""
    shot = rendered.shot
    with ref.db.uow(org_id=ref.org_id) as uow:
        hs = ref.lock(uow, S.GENERATING)
        headshot = Headshot(
            org_id=ref.org_id,
            session_id=ref.session_id,
            style_id=shot.style_id,
            index_in_style=shot.index,
            position=rendered.position,
            blob_key=rendered.images.blob_key,
            thumb_key=rendered.images.thumb_key,
            width=shot.width,
            height=shot.height,
            seed=shot.seed,
            likeness=rendered.likeness,
        )
        uow.session.add(headshot)
        try:
            uow.flush()
        except IntegrityError:
            return None
        done = _count(uow, ref.session_id)
        hs.progress_done, hs.progress_total = done, total
        uow.add_message(
            new_message(
                HEADSHOT_GENERATED,
                org_id=ref.org_id,
                session_id=ref.session_id,
                headshot_id=headshot.id,
                style=shot.style_id,
                done=done,
                total=total,
            )
        )
        ref.progress(uow, S.GENERATING, done, total)
        uow.commit()
        return done


def complete(ref: Ref, total: int) -> int:
    """generating → completed with ``session.completed``; results ordered by likeness within a style."""
    with ref.db.uow(org_id=ref.org_id) as uow:
        hs = ref.lock(uow, S.GENERATING)
        headshots = uow.session.scalars(select(Headshot).where(Headshot.session_id == ref.session_id)).all()
        if len(headshots) < total:
            # Never complete with gaps: the redelivered message renders what is missing.
            raise RuntimeError(f"session {ref.session_id} has {len(headshots)} of {total} headshots")
        _order_by_likeness(list(headshots))
        hs.move_to(S.COMPLETED)
        hs.completed_at = utcnow()
        hs.progress_done = hs.progress_total = len(headshots)
        uow.add_message(
            new_message(
                SESSION_COMPLETED, org_id=ref.org_id, session_id=ref.session_id, headshot_count=len(headshots)
            )
        )
        uow.commit()
        return len(headshots)


def fail(ref: Ref, stage: str, reason: str) -> None:
    """→ failed with ``session.failed(stage, reason)``; a session already out of our hands is left."""
    reason = reason.strip()[:2000] or "unknown error"
    with ref.db.uow(org_id=ref.org_id) as uow:
        hs = uow.get_for_update(HeadshotSession, ref.session_id)
        if hs is None or hs.state not in (S.PREPROCESSING, *WORKING):
            return
        hs.move_to(S.FAILED)
        hs.failure_reason = reason
        uow.add_message(
            new_message(
                SESSION_FAILED, org_id=ref.org_id, session_id=ref.session_id, stage=stage, reason=reason
            )
        )
        uow.commit()
    log.warning("session %s failed while %s: %s", ref.session_id, stage, reason)


def _count(uow: UnitOfWork, session_id: str) -> int:
    query = select(func.count()).select_from(Headshot).where(Headshot.session_id == session_id)
    return int(uow.session.scalar(query) or 0)


def _order_by_likeness(headshots: list[Headshot]) -> None:
    """Within each style, the most alike first; styles keep their plan order. Unscored keep theirs."""
    by_style: dict[str, list[Headshot]] = {}
    for h in sorted(headshots, key=lambda h: h.position):
        by_style.setdefault(h.style_id, []).append(h)
    for group in by_style.values():
        slots = [h.position for h in group]
        ranked = sorted(group, key=lambda h: (h.likeness is None, -(h.likeness or 0.0), h.position))
        for slot, h in zip(slots, ranked, strict=True):
            h.position = slot
