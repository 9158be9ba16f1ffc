"""How long is left, from the measured stage durations of recent sessions, and the queue position.

Durations come from the outbox (every session's timeline): the time between the events that
open and close each stretch of the work, the median over the last RECENT completed sessions::

    waiting     session.approved  -> photos.processed   (queued + preparing the photos)
    training    photos.processed  -> model.trained
    generating  model.trained     -> session.completed

A page is told "about 12 minutes", never a false precision; with no measurements yet it is told
nothing. The review by an org admin has no estimate: it is a person's decision.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from libs.contracts import MODEL_TRAINED, PHOTOS_PROCESSED, SESSION_APPROVED, SESSION_COMPLETED, SessionState
from libs.db import Database, HeadshotSession, OutboxMessage, utcnow

S = SessionState
RECENT = 20
CACHE_SECONDS = 60.0
# (name, opening event, closing event)
STRETCHES = (
    ("waiting", SESSION_APPROVED.routing_key, PHOTOS_PROCESSED.routing_key),
    ("training", PHOTOS_PROCESSED.routing_key, MODEL_TRAINED.routing_key),
    ("generating", MODEL_TRAINED.routing_key, SESSION_COMPLETED.routing_key),
)
# Which stretches are still ahead in each state (the first one is the current one).
AHEAD = {
    S.SUBMITTED: ("waiting", "training", "generating"),
    S.QUEUED: ("waiting", "training", "generating"),
    S.PREPROCESSING: ("waiting", "training", "generating"),
    S.TRAINING: ("training", "generating"),
    S.GENERATING: ("generating",),
}


def measure(db_session: Session, recent: int = RECENT) -> dict[str, float]:
    """Median seconds of each stretch over the last ``recent`` completed sessions (all orgs)."""
    ids = list(
        db_session.scalars(
            select(HeadshotSession.id)
            .where(HeadshotSession.state == S.COMPLETED, HeadshotSession.completed_at.is_not(None))
            .order_by(HeadshotSession.completed_at.desc())
            .limit(recent)
        )
    )
    if not ids:
        return {}
    keys = {key for _name, start, end in STRETCHES for key in (start, end)}
    rows = db_session.execute(
        select(OutboxMessage.session_id, OutboxMessage.routing_key, func.min(OutboxMessage.created_at))
        .where(OutboxMessage.session_id.in_(ids), OutboxMessage.routing_key.in_(keys))
        .group_by(OutboxMessage.session_id, OutboxMessage.routing_key)
    ).all()
    seen: dict[str, dict[str, datetime]] = defaultdict(dict)
    for session_id, key, at in rows:
        seen[str(session_id)][key] = at
    durations: dict[str, list[float]] = defaultdict(list)
    for times in seen.values():
        for name, start, end in STRETCHES:
            if start in times and end in times and times[end] >= times[start]:
                durations[name].append((times[end] - times[start]).total_seconds())
    return {name: round(statistics.median(values), 1) for name, values in durations.items()}


def remaining_seconds(
    state: str, done: int, total: int, measured: dict[str, float], in_state_seconds: float
) -> float | None:
    """Seconds left for a session in ``state``; None when unknown (no measurements, a review)."""
    ahead = AHEAD.get(S(state)) if state in S._value2member_map_ else None
    if not ahead or any(name not in measured for name in ahead):
        return None
    current, *later = ahead
    if current == "generating" and total > 0:
        left = measured[current] * (1 - min(done, total) / total)
    else:
        # Never promise "done" while the stage runs: keep a tenth of it in hand.
        left = max(measured[current] - in_state_seconds, measured[current] * 0.1)
    return round(left + sum(measured[name] for name in later), 1)


def queue_position(db_session: Session, hs: HeadshotSession) -> int | None:
    """1 for the next session to start, across every organization; None when not queued."""
    if hs.state != S.QUEUED:
        return None
    ahead = db_session.scalar(
        select(func.count())
        .select_from(HeadshotSession)
        .where(
            HeadshotSession.state == S.QUEUED,
            HeadshotSession.updated_at < hs.updated_at,
            HeadshotSession.id != hs.id,
        )
    )
    return int(ahead or 0) + 1


class StageTimes:
    """The measured durations, recomputed at most once a minute (cheap, shared by every page)."""

    def __init__(self, db: Database, ttl: float = CACHE_SECONDS) -> None:
        self.db = db
        self.ttl = ttl
        self._lock = threading.Lock()
        self._value: dict[str, float] = {}
        self._at = -float("inf")

    def get(self) -> dict[str, float]:
        with self._lock:
            if time.monotonic() - self._at > self.ttl:
                with self.db.session(all_orgs=True) as db_session:
                    self._value = measure(db_session)
                self._at = time.monotonic()
            return dict(self._value)


def seconds_since(moment: datetime | None) -> float:
    return 0.0 if moment is None else max(0.0, (utcnow() - moment).total_seconds())
