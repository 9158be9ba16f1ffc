"""A session's timeline: every event it went through, who handled each one, the state changes with
the time spent in each stage, preparation decisions, support actions and failure reasons.

    timeline = load_timeline(db_session, hs, now=now)
    for entry in timeline.entries: print(entry.at, entry.title, entry.handled_by)
    for stage in timeline.stages: print(stage.state, stage.seconds)

The outbox (kept after sending) is the source of events; ``processed_messages`` says which
consumer handled each and when; the audit log adds what people did. Events carry no personal info,
so nothing here can show any after erasure.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from libs.contracts import (
    MODEL_TRAINED,
    PHOTOS_PROCESSED,
    SESSION_APPROVED,
    SESSION_COMPLETED,
    SESSION_FAILED,
    SESSION_PROGRESS,
    SESSION_REJECTED,
    SESSION_SUBMITTED,
    SessionState,
    stage_label,
)
from libs.db import AuditLog, HeadshotSession, OutboxMessage, Photo, ProcessedMessage

S = SessionState

# The state an event shows the session has reached (session.progress names its stage itself).
STATE_AFTER: dict[str, SessionState] = {
    SESSION_SUBMITTED.routing_key: S.SUBMITTED,
    SESSION_APPROVED.routing_key: S.QUEUED,
    SESSION_REJECTED.routing_key: S.REJECTED,
    PHOTOS_PROCESSED.routing_key: S.TRAINING,
    MODEL_TRAINED.routing_key: S.GENERATING,
    SESSION_COMPLETED.routing_key: S.COMPLETED,
    SESSION_FAILED.routing_key: S.FAILED,
}


@dataclass(frozen=True)
class Handled:
    consumer: str
    at: datetime


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # "event" or "action"
    title: str  # the routing key, or the audited action
    detail: str = ""  # a readable summary of the event's data
    state: str | None = None  # the state this entry shows the session entered
    message_id: str | None = None
    sent_at: datetime | None = None
    publish_error: str | None = None
    handled_by: tuple[Handled, ...] = ()


@dataclass(frozen=True)
class Stage:
    state: str
    label: str
    started: datetime
    ended: datetime | None  # None: the session is still in it

    def seconds(self, now: datetime) -> float:
        return ((self.ended or now) - self.started).total_seconds()


@dataclass(frozen=True)
class PhotoDecision:
    photo_id: str
    decision: str | None
    reason: str | None
    quality: float | None


@dataclass
class Timeline:
    entries: list[Entry] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)
    photos: list[PhotoDecision] = field(default_factory=list)
    failure_reason: str | None = None


def _summary(routing_key: str, data: dict[str, Any]) -> str:
    """A short, readable line for an event's data (no personal info exists here)."""
    if not data:
        return ""
    if routing_key == SESSION_PROGRESS.routing_key:
        return f"{data.get('stage')}: {data.get('done')} of {data.get('total')}"
    if routing_key == SESSION_APPROVED.routing_key:
        return "approved automatically" if data.get("auto") else "approved by a reviewer"
    if routing_key in (SESSION_FAILED.routing_key, SESSION_REJECTED.routing_key):
        stage = f" at {data['stage']}" if data.get("stage") else ""
        return f"{data.get('reason', '')}{stage}"
    if routing_key == PHOTOS_PROCESSED.routing_key:
        return f"{len(data.get('photo_ids') or [])} photos prepared"
    if routing_key == SESSION_SUBMITTED.routing_key:
        return (
            f"{data.get('photo_count')} photos, {len(data.get('styles') or [])} styles, {data.get('package')}"
        )
    if routing_key == MODEL_TRAINED.routing_key:
        return f"{data.get('engine')} model in {float(data.get('seconds') or 0):.0f} s"
    parts = [f"{k}={v}" for k, v in data.items() if not isinstance(v, list | dict)]
    return ", ".join(parts)[:200]


def event_entry(row: OutboxMessage, handled: list[Handled]) -> Entry:
    try:
        data = json.loads(row.body).get("data") or {}
    except (ValueError, AttributeError):
        data = {}
    state = STATE_AFTER.get(row.routing_key)
    if row.routing_key == SESSION_PROGRESS.routing_key and data.get("stage") in {s.value for s in S}:
        state = S(data["stage"])
    return Entry(
        at=row.created_at,
        kind="event",
        title=row.routing_key,
        detail=_summary(row.routing_key, data),
        state=state.value if state else None,
        message_id=row.message_id,
        sent_at=row.sent_at,
        publish_error=row.last_error if row.sent_at is None else None,
        handled_by=tuple(sorted(handled, key=lambda h: h.at)),
    )


def stages_of(entries: list[Entry]) -> list[Stage]:
    """Consecutive state changes: each stage lasts until the next different state begins."""
    stages: list[Stage] = []
    for entry in sorted(entries, key=lambda e: e.at):
        if entry.state is None or (stages and stages[-1].state == entry.state):
            continue
        if stages:
            stages[-1] = Stage(stages[-1].state, stages[-1].label, stages[-1].started, entry.at)
        stages.append(Stage(entry.state, stage_label(entry.state), entry.at, None))
    return stages


def assemble(
    outbox: list[OutboxMessage],
    processed: list[ProcessedMessage],
    audits: list[AuditLog],
    photos: list[Photo],
    failure_reason: str | None = None,
) -> Timeline:
    by_message: dict[str, list[Handled]] = defaultdict(list)
    for p in processed:
        by_message[p.message_id].append(Handled(p.consumer, p.processed_at))
    entries = [event_entry(row, by_message.get(row.message_id, [])) for row in outbox]
    for a in audits:
        detail = ", ".join(f"{k}: {v}" for k, v in (a.detail or {}).items())
        state = (a.detail or {}).get("to")
        entries.append(Entry(at=a.created_at, kind="action", title=a.action, detail=detail, state=state))
    entries.sort(key=lambda e: e.at)
    return Timeline(
        entries=entries,
        stages=stages_of(entries),
        photos=[PhotoDecision(p.id, p.decision, p.decision_reason, p.quality_score) for p in photos],
        failure_reason=failure_reason,
    )


def load_timeline(db_session: Session, hs: HeadshotSession) -> Timeline:
    outbox = list(
        db_session.scalars(
            select(OutboxMessage).where(OutboxMessage.session_id == hs.id).order_by(OutboxMessage.id)
        )
    )
    ids = [row.message_id for row in outbox]
    processed = (
        list(db_session.scalars(select(ProcessedMessage).where(ProcessedMessage.message_id.in_(ids))))
        if ids
        else []
    )
    audits = list(db_session.scalars(select(AuditLog).where(AuditLog.target == hs.id).order_by(AuditLog.id)))
    photos = list(
        db_session.scalars(select(Photo).where(Photo.session_id == hs.id).order_by(Photo.created_at))
    )
    return assemble(outbox, processed, audits, photos, hs.failure_reason)
