"""A session's timeline: every event it went through, who handled each one, the state changes with
the time spent in each stage, preparation decisions, support actions and failure reasons.

    timeline = load_timeline(db_session, hs, now=now)
    for entry in timeline.entries: print(entry.at, entry.title, entry.handled_by)
    for stage in timeline.stages: print(stage.state, stage.seconds)

The outbox (kept after sending) is the source of events; ``processed_messages`` says which
consumer handled each and when; the audit log adds what people did; the notification ledgers add
every try at an e-mail or a webhook (attempt number, outcome, latency, the answer or the error),
so a retry or a resend shows where it happened among the state changes. Events carry no personal info,
so nothing here can show any after erasure.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
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
from libs.db import AuditLog, HeadshotSession, OutboxMessage, Photo, ProcessedMessage, webhooks
from services.ops.deliveries import EmailRow, WebhookRow, session_deliveries

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


# The audit action of the console's "resend" on a webhook delivery (its target: the delivery id).
WEBHOOK_RESEND = webhooks.RESEND  # the audit action of a resend (console or CLI)


@dataclass(frozen=True)
class Handled:
    consumer: str
    at: datetime


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # "event", "action", "email" or "webhook"
    title: str  # the routing key, the audited action, the e-mail's template or the webhook's event
    detail: str = ""  # a readable summary of the event's data
    state: str | None = None  # the state this entry shows the session entered
    message_id: str | None = None
    sent_at: datetime | None = None
    publish_error: str | None = None
    handled_by: tuple[Handled, ...] = ()
    # e-mails and webhooks: one entry per try
    attempt: int | None = None
    outcome: str | None = None  # sent / pending / failed (e-mail), delivered / failed (webhook)
    latency_ms: float | None = None
    status_code: int | None = None
    answer: str | None = None  # the SMTP server's reply, or the first KB of the endpoint's answer
    error: str | None = None


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


def delivery_entries(emails: Sequence[EmailRow], webhooks: Sequence[WebhookRow]) -> list[Entry]:
    """One entry per try of each e-mail and webhook delivery; one for those not tried yet."""
    entries: list[Entry] = []
    for e in emails:
        title = f"e-mail: {e.kind}"
        detail = e.subject or ""
        if not e.tries:
            entries.append(Entry(e.created_at, "email", title, detail, outcome=e.status, error=e.last_error))
        for t in e.tries:
            entries.append(
                Entry(
                    t.at,
                    "email",
                    title,
                    detail,
                    attempt=t.number,
                    outcome=t.outcome,
                    latency_ms=t.latency_ms,
                    answer=t.answer,
                    error=t.error,
                )
            )
    for w in webhooks:
        title = f"webhook: {w.kind}"
        due = (
            f"next try at {w.next_attempt_at:%H:%M:%S}" if w.status == "pending" and w.next_attempt_at else ""
        )
        if not w.tries:
            entries.append(Entry(w.created_at, "webhook", title, due, outcome=w.status, error=w.last_error))
        for i, t in enumerate(w.tries):
            entries.append(
                Entry(
                    t.at,
                    "webhook",
                    title,
                    due if i == len(w.tries) - 1 else "",
                    attempt=t.number,
                    outcome=t.outcome,
                    latency_ms=t.latency_ms,
                    status_code=t.status_code,
                    answer=t.answer,
                    error=t.error,
                )
            )
    return entries


def assemble(
    outbox: list[OutboxMessage],
    processed: list[ProcessedMessage],
    audits: list[AuditLog],
    photos: list[Photo],
    failure_reason: str | None = None,
    deliveries: Sequence[Entry] = (),
) -> Timeline:
    by_message: dict[str, list[Handled]] = defaultdict(list)
    for p in processed:
        by_message[p.message_id].append(Handled(p.consumer, p.processed_at))
    entries = [event_entry(row, by_message.get(row.message_id, [])) for row in outbox]
    for a in audits:
        detail = ", ".join(f"{k}: {v}" for k, v in (a.detail or {}).items())
        state = (a.detail or {}).get("to")
        entries.append(Entry(at=a.created_at, kind="action", title=a.action, detail=detail, state=state))
    entries.extend(deliveries)
    entries.sort(key=lambda e: e.at)
    return Timeline(
        entries=entries,
        stages=stages_of(entries),
        photos=[PhotoDecision(p.id, p.decision, p.decision_reason, p.quality_score) for p in photos],
        failure_reason=failure_reason,
    )


def load_timeline(db_session: Session, hs: HeadshotSession, mail_dir: Path | None = None) -> Timeline:
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
    emails, webhooks = session_deliveries(db_session, hs.id, mail_dir)
    if webhooks:  # an org admin's "resend" is audited against the delivery, not the session
        audits += db_session.scalars(
            select(AuditLog).where(
                AuditLog.action == WEBHOOK_RESEND,
                AuditLog.org_id == hs.org_id,
                AuditLog.target.in_([str(w.id) for w in webhooks]),
            )
        )
    deliveries = delivery_entries(emails, webhooks)
    return assemble(outbox, processed, audits, photos, hs.failure_reason, deliveries)
