"""Stuck work: a session longer in a stage than that stage's limit (settings) is re-queued once by
publishing again the event that starts the stage (a new message, through the outbox), then, if it
is still there after another limit, flagged for support.

    report = check_stuck(db, settings, now=datetime.now(UTC))
    report.requeued, report.flagged      # session ids

What restarts each stage (a lost message or a worker that died mid-way):

| stage | re-published | consumed by |
| --- | --- | --- |
| submitted | session.submitted | review (manual review or straight approval) |
| in_review | nothing: a person decides; flagged only | |
| queued, preprocessing | session.approved (auto, no reviewer) | preprocess |
| training, generating | photos.processed (the kept photos) | generation |

"Time in a stage" is time since the last sign of life: the session row's last change or its last
outbox event (progress events count), so a long generation that keeps producing headshots is not stuck.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from libs.contracts import (
    PHOTOS_PROCESSED,
    SESSION_APPROVED,
    SESSION_SUBMITTED,
    ContractError,
    Message,
    SessionState,
    new_message,
)
from libs.db import AuditLog, ChosenStyle, Database, HeadshotSession, OutboxMessage, Photo, StuckCheck
from libs.settings import Settings

log = logging.getLogger("headshots.ops.stuck")
S = SessionState


def stage_limits(settings: Settings) -> dict[str, int]:
    """Seconds a session may spend in each stage without a sign of life."""
    return {
        S.SUBMITTED.value: settings.STUCK_SUBMITTED_SECONDS,
        S.IN_REVIEW.value: settings.STUCK_REVIEW_SECONDS,
        S.QUEUED.value: settings.STUCK_QUEUED_SECONDS,
        S.PREPROCESSING.value: settings.STUCK_PREPROCESSING_SECONDS,
        S.TRAINING.value: settings.STUCK_TRAINING_SECONDS,
        S.GENERATING.value: settings.STUCK_GENERATING_SECONDS,
    }


def _resubmitted(db_session: Session, hs: HeadshotSession) -> Message:
    """The same submission again (its data from the last session.submitted, else from the rows)."""
    last = db_session.scalar(
        select(OutboxMessage.body)
        .where(OutboxMessage.session_id == hs.id, OutboxMessage.routing_key == SESSION_SUBMITTED.routing_key)
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    )
    if last is not None:
        return new_message(SESSION_SUBMITTED, org_id=hs.org_id, session_id=hs.id, **json.loads(last)["data"])
    styles = list(db_session.scalars(select(ChosenStyle.style_id).where(ChosenStyle.session_id == hs.id)))
    photos = db_session.scalar(select(func.count()).where(Photo.session_id == hs.id)) or 0
    return new_message(
        SESSION_SUBMITTED,
        org_id=hs.org_id,
        session_id=hs.id,
        package=hs.package_id,
        format=hs.format_id or "",
        styles=styles,
        photo_count=max(1, photos),
    )


def _reapproved(db_session: Session, hs: HeadshotSession) -> Message:
    return new_message(SESSION_APPROVED, org_id=hs.org_id, session_id=hs.id, auto=True, reviewer_id=None)


def _reprocessed(db_session: Session, hs: HeadshotSession) -> Message:
    photos = list(
        db_session.scalars(select(Photo).where(Photo.session_id == hs.id).order_by(Photo.created_at))
    )
    kept = [p.id for p in photos if p.decision == "kept"] or [p.id for p in photos if p.prepared_key]
    return new_message(
        PHOTOS_PROCESSED, org_id=hs.org_id, session_id=hs.id, photo_ids=kept or [p.id for p in photos]
    )


RESTART: dict[str, Callable[[Session, HeadshotSession], Message]] = {
    S.SUBMITTED.value: _resubmitted,
    S.QUEUED.value: _reapproved,
    S.PREPROCESSING.value: _reapproved,
    S.TRAINING.value: _reprocessed,
    S.GENERATING.value: _reprocessed,
}


@dataclass
class StuckReport:
    requeued: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)


def last_sign_of_life(db_session: Session, hs: HeadshotSession) -> datetime:
    latest = db_session.scalar(
        select(func.max(OutboxMessage.created_at)).where(OutboxMessage.session_id == hs.id)
    )
    if latest is not None and latest.tzinfo is None:  # SQLite drops the zone in aggregates
        latest = latest.replace(tzinfo=hs.updated_at.tzinfo)
    return max(hs.updated_at, latest) if latest else hs.updated_at


def _candidates(db: Database, limits: dict[str, int], now: datetime) -> list[str]:
    """Sessions due for a decision, found in SQL so a quiet round costs a few index lookups: idle
    past the limit (no row change, no outbox event since the cutoff), and neither flagged already
    nor re-queued within the last limit. Each is checked again under its row lock."""
    ids: list[str] = []
    with db.session(all_orgs=True) as db_session:
        for state, seconds in limits.items():
            cutoff = now - timedelta(seconds=seconds)
            recent_event = (
                select(OutboxMessage.id)
                .where(OutboxMessage.session_id == HeadshotSession.id, OutboxMessage.created_at > cutoff)
                .exists()
            )
            settled = (
                select(StuckCheck.session_id)
                .where(
                    StuckCheck.session_id == HeadshotSession.id,
                    StuckCheck.state == state,
                    or_(StuckCheck.flagged_at.is_not(None), StuckCheck.requeued_at > cutoff),
                )
                .exists()
            )
            query = select(HeadshotSession.id).where(
                HeadshotSession.state == state, HeadshotSession.updated_at <= cutoff, ~recent_event, ~settled
            )
            ids += list(db_session.scalars(query))
    return ids


def check_stuck(db: Database, settings: Settings, *, now: datetime) -> StuckReport:
    limits = stage_limits(settings)
    report = StuckReport()
    for session_id in _candidates(db, limits, now):
        with db.uow(all_orgs=True) as uow:
            hs = uow.get_for_update(HeadshotSession, session_id)
            if hs is None or hs.state not in limits:
                continue  # moved on since the candidates were read
            idle = (now - last_sign_of_life(uow.session, hs)).total_seconds()
            if idle < limits[hs.state]:
                continue
            check = uow.session.get(StuckCheck, hs.id)
            if check is None or check.state != hs.state:
                check = check or StuckCheck(session_id=hs.id, org_id=hs.org_id)
                check.state, check.requeued_at, check.flagged_at = hs.state, None, None
                uow.session.add(check)
            if check.flagged_at is not None:
                continue  # already flagged: support decides
            restart = RESTART.get(hs.state)
            minutes = int(idle // 60)
            message = _restart_message(restart, uow.session, hs) if check.requeued_at is None else None
            if message is not None:
                uow.add_message(message)
                check.requeued_at = now
                _audit(
                    uow.session,
                    hs,
                    "session.requeued_by_stuck_check",
                    event=message.routing_key,
                    idle_minutes=minutes,
                )
                report.requeued.append(hs.id)
                log.info(
                    "session %s idle %d min in %s: published %s again",
                    hs.id,
                    minutes,
                    hs.state,
                    message.routing_key,
                )
            else:
                check.flagged_at = now
                _audit(uow.session, hs, "session.flagged_stuck", state=hs.state, idle_minutes=minutes)
                report.flagged.append(hs.id)
                log.warning(
                    "session %s still idle in %s after %d min: flagged for support", hs.id, hs.state, minutes
                )
            uow.commit()
    return report


def _restart_message(
    restart: Callable[[Session, HeadshotSession], Message] | None, db_session: Session, hs: HeadshotSession
) -> Message | None:
    if restart is None:
        return None
    try:
        return restart(db_session, hs)
    except (ContractError, ValueError, KeyError) as exc:  # the rows cannot make a valid event: flag it
        log.warning("session %s: cannot rebuild the event that restarts %s: %s", hs.id, hs.state, exc)
        return None


def _audit(db_session: Session, hs: HeadshotSession, action: str, **detail: object) -> None:
    db_session.add(AuditLog(org_id=hs.org_id, actor_id=None, action=action, target=hs.id, detail=detail))
