"""The generation worker's writes: each one a short unit of work of its own, committed at once.

A session takes minutes (tens on a GPU); the consumer's own transaction would hold every image
until the end. Instead each step below locks the session row, checks it is still the worker's to
change, writes its rows and outbox events, and commits, so the waiting page sees every image land
and a restarted worker resumes from what is stored. The database is the source of truth: these
functions never trust what the worker remembers.

    state = start_training(ref, uow, hs, photo_count)    # preprocessing → training (or resume)
    record_model(ref, model, seconds, total)              # PersonModel row, training → generating
    check_generating(ref)                                 # before each image: still ours? (a read)
    checkpoint = Checkpoint(ref, blobs, total)
    checkpoint.hold(rendered); checkpoint.tick()          # Headshot rows + headshot.generated each,
                                                          # one session.progress; a few images per commit
    complete(ref, total)                                  # generating → completed + session.completed
    fail(ref, stage, reason)                              # → failed + session.failed

Every function raises :class:`SessionGone` when the session was deleted (or failed by someone
else) meanwhile: the worker then stops and removes what it made. Headshots are the one write
grouped: a transaction per image was most of what the worker cost on top of the studio engine, so
:class:`Checkpoint` records a few at a time (about half a second late at most), and a cheap read
before each image keeps a deletion noticed within one image.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, Table, bindparam, insert, select, update

from libs.contracts import (
    HEADSHOT_GENERATED,
    MODEL_TRAINED,
    SESSION_COMPLETED,
    SESSION_FAILED,
    SESSION_PROGRESS,
    SessionState,
    new_message,
    transition,
)
from libs.db import Database, Headshot, HeadshotSession, PersonModel, UnitOfWork, new_id, utcnow
from libs.storage import BlobStore
from services.generation.plan import Shot
from services.generation.results import StoredImages, delete_images

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

    def params(self) -> dict[str, str]:
        """The bound parameters of this module's Core statements about the session."""
        return {"sid": self.session_id, "org": self.org_id}

    def lock(self, uow: UnitOfWork, *allowed: str) -> HeadshotSession:
        hs = uow.get_for_update(HeadshotSession, self.session_id)
        if hs is None or hs.state not in allowed:
            raise SessionGone(self.session_id, hs.state if hs else None)
        return hs


def start_training(ref: Ref, uow: UnitOfWork, hs: HeadshotSession, photo_count: int) -> str:
    """preprocessing → training, in the transaction that locked ``hs`` (``ref.lock``) to read the
    session's inputs. Returns the state the worker resumes from (training or generating)."""
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


def check_generating(ref: Ref) -> None:
    """The cheap check made before each image is stored (one indexed read, no lock, no write, no ORM):
    raises :class:`SessionGone` once the session is no longer generating, so a deleted session stops
    within one image even while its images wait for their checkpoint."""
    with ref.db.engine.connect() as conn:
        state = conn.scalar(_STATE, ref.params())
    if state != S.GENERATING:
        raise SessionGone(ref.session_id, state)


@dataclass(frozen=True)
class Recorded:
    """What :func:`record_headshots` did with each headshot, in order: how many were stored once it
    was recorded, or None when another run had stored that shot already (``unused``: those files of
    ours that no row refers to, for the caller to delete)."""

    done: list[int | None]
    unused: list[StoredImages]


def record_headshots(ref: Ref, batch: Sequence[Rendered], total: int) -> Recorded:
    """Record the rows of headshots whose files are stored: one transaction for the whole batch,
    under the session's row lock. Each headshot is announced (``headshot.generated`` with done of
    total: the waiting page shows it and counts it), then one ``session.progress`` says where the
    batch leaves the session. A shot already stored (another worker got there first) keeps its row.

    Core statements on the transaction's connection, scoped to the organization by hand: this runs
    every few images, and the ORM's unit of work (identity map, flush plan, tenancy criteria on
    every read) cost more than the rows themselves."""
    with ref.db.uow(org_id=ref.org_id) as uow:
        conn = uow.session.connection()
        _lock_generating(conn, ref)
        # Read under the lock: every writer of this session's headshots takes it first, so this is
        # exactly what is stored (no count per image, no constraint error to recover from).
        stored = {
            (style, index): (blob_key, thumb_key)
            for style, index, blob_key, thumb_key in conn.execute(_STORED, ref.params())
        }
        recorded = Recorded([], [])
        rows: list[dict[str, object]] = []
        for rendered in batch:
            shot = rendered.shot
            key = (shot.style_id, shot.index)
            if key in stored:
                recorded.done.append(None)
                if set(rendered.images.keys()) - set(stored[key]):
                    recorded.unused.append(rendered.images)
                continue
            row = {
                "id": new_id(),
                "org_id": ref.org_id,
                "session_id": ref.session_id,
                "style_id": shot.style_id,
                "index_in_style": shot.index,
                "position": rendered.position,
                "blob_key": rendered.images.blob_key,
                "thumb_key": rendered.images.thumb_key,
                "width": shot.width,
                "height": shot.height,
                "seed": shot.seed,
                "likeness": rendered.likeness,
            }
            rows.append(row)
            stored[key] = rendered.images.keys()
            recorded.done.append(len(stored))
        if rows:
            conn.execute(_INSERT_HEADSHOT, rows)
            for row, done in zip(rows, (d for d in recorded.done if d is not None), strict=True):
                uow.add_message(
                    new_message(
                        HEADSHOT_GENERATED,
                        org_id=ref.org_id,
                        session_id=ref.session_id,
                        headshot_id=row["id"],
                        style=row["style_id"],
                        done=done,
                        total=total,
                    )
                )
            ref.progress(uow, S.GENERATING, len(stored), total)
        conn.execute(
            _SET_PROGRESS,
            {**ref.params(), "done": len(stored), "total": total},
        )
        uow.commit()
        return recorded


_SESSIONS: Table = HeadshotSession.__table__  # type: ignore[assignment]
_HEADSHOTS: Table = Headshot.__table__  # type: ignore[assignment]
_BY_SESSION = (
    _SESSIONS.c.id == bindparam("sid"),
    _SESSIONS.c.org_id == bindparam("org"),  # Core statements: scoped to the organization by hand
)
# Takes the session's row lock (PostgreSQL: the row; SQLite: the database's write lock) only while
# it is generating: a deleted or failed session matches nothing.
_LOCK_GENERATING = (
    update(_SESSIONS)
    .where(*_BY_SESSION, _SESSIONS.c.state == S.GENERATING.value)
    .values(state=_SESSIONS.c.state)  # changes nothing but updated_at (its onupdate)
)
_STATE = select(_SESSIONS.c.state).where(*_BY_SESSION)
_SET_PROGRESS = (
    update(_SESSIONS)
    .where(*_BY_SESSION)
    .values(progress_done=bindparam("done"), progress_total=bindparam("total"))
)
_STORED = select(
    _HEADSHOTS.c.style_id, _HEADSHOTS.c.index_in_style, _HEADSHOTS.c.blob_key, _HEADSHOTS.c.thumb_key
).where(_HEADSHOTS.c.session_id == bindparam("sid"), _HEADSHOTS.c.org_id == bindparam("org"))
_INSERT_HEADSHOT = insert(_HEADSHOTS)
_RANKED = select(_HEADSHOTS.c.id, _HEADSHOTS.c.style_id, _HEADSHOTS.c.position, _HEADSHOTS.c.likeness).where(
    _HEADSHOTS.c.session_id == bindparam("sid"), _HEADSHOTS.c.org_id == bindparam("org")
)
_SET_POSITION = (
    update(_HEADSHOTS)
    .where(_HEADSHOTS.c.id == bindparam("hid"), _HEADSHOTS.c.org_id == bindparam("org"))
    .values(position=bindparam("pos"))
)
_COMPLETE = (
    update(_SESSIONS)
    .where(*_BY_SESSION)
    .values(
        state=bindparam("to"),
        completed_at=bindparam("at"),
        progress_done=bindparam("count"),
        progress_total=bindparam("count"),
    )
)


def _lock_generating(conn: Connection, ref: Ref) -> None:
    """The session's row locked until the transaction ends, if it is still generating; else
    :class:`SessionGone` (with the state it is in)."""
    if conn.execute(_LOCK_GENERATING, ref.params()).rowcount != 1:
        raise SessionGone(ref.session_id, conn.scalar(_STATE, ref.params()))


class Checkpoint:
    """Headshots whose files are stored, held until their rows are recorded: one transaction every
    ``images`` headshots, or at the first image after ``seconds`` since the last one, whichever
    comes first.

        checkpoint = Checkpoint(ref, blobs, total)
        checkpoint.hold(rendered)     # (store thread) its files are written
        checkpoint.tick()             # recorded now if due
        checkpoint.flush()            # recorded now (the end of a pass)
        checkpoint.discard()          # the held files deleted (the session was stopped)

    A slow engine (a GPU image takes seconds) gets a transaction per image, as it lands; a fast one
    (the studio engine's tenth of a second) one per few images, each shown on the waiting page at
    most ``seconds`` (or one image) late. Files are written before their row under keys derived
    from the shot (:func:`~services.generation.results.headshot_keys`): a worker killed with images
    held renders them again on resume, onto the same files. ``hold`` may be called from another
    thread than the rest."""

    def __init__(
        self,
        ref: Ref,
        blobs: BlobStore,
        total: int,
        *,
        images: int = 4,
        seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ref, self.blobs, self.total = ref, blobs, total
        self.images, self.seconds, self.clock = max(1, images), seconds, clock
        self._held: list[Rendered] = []
        self._lock = threading.Lock()
        self.last = clock()

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, rendered: Rendered) -> None:
        with self._lock:
            self._held.append(rendered)

    def tick(self) -> None:
        if self._held and (len(self._held) >= self.images or self.clock() - self.last >= self.seconds):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch = list(self._held)
        if batch:
            recorded = record_headshots(self.ref, batch, self.total)
            for images in recorded.unused:
                delete_images(self.blobs, images.keys())
            with self._lock:
                del self._held[: len(batch)]
        self.last = self.clock()

    def discard(self) -> None:
        with self._lock:
            batch, self._held = self._held, []
        for rendered in batch:
            delete_images(self.blobs, rendered.images.keys())


def complete(ref: Ref, total: int) -> int:
    """generating → completed with ``session.completed``; results ordered by likeness within a style."""
    with ref.db.uow(org_id=ref.org_id) as uow:
        conn = uow.session.connection()
        _lock_generating(conn, ref)
        headshots = conn.execute(_RANKED, ref.params()).all()
        if len(headshots) < total:
            # Never complete with gaps: the redelivered message renders what is missing.
            raise RuntimeError(f"session {ref.session_id} has {len(headshots)} of {total} headshots")
        moves = _likeness_order(headshots)
        if moves:
            conn.execute(_SET_POSITION, [{**move, "org": ref.org_id} for move in moves])
        conn.execute(
            _COMPLETE,
            {
                **ref.params(),
                "to": transition(S.GENERATING, S.COMPLETED).value,
                "at": utcnow(),
                "count": len(headshots),
            },
        )
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


def _likeness_order(headshots: Sequence[Row[Any, Any, Any, Any]]) -> list[dict[str, object]]:
    """Within each style, the most alike first; styles keep their plan order. Unscored keep theirs.
    Returns the position changes (``hid``, ``pos``) for :data:`_SET_POSITION`."""
    by_style: dict[str, list[Row[Any, Any, Any, Any]]] = {}
    for h in sorted(headshots, key=lambda h: h.position):
        by_style.setdefault(h.style_id, []).append(h)
    moves: list[dict[str, object]] = []
    for group in by_style.values():
        slots = [h.position for h in group]
        ranked = sorted(group, key=lambda h: (h.likeness is None, -(h.likeness or 0.0), h.position))
        moves += [
            {"hid": h.id, "pos": slot} for slot, h in zip(slots, ranked, strict=True) if h.position != slot
        ]
    return moves
