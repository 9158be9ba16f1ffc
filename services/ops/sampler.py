"""What the ops worker records every OPS_CHECK_SECONDS: queue depths (for the last hour's chart)
and the gauges of /metrics (sessions per state, outbox lag, flagged sessions).

    sample_queues(db, settings, now=now)       # one QueueSample row per queue, older than 2 h pruned
    update_gauges(db, now=now)
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from libs.contracts import SessionState
from libs.db import (
    Database,
    HeadshotSession,
    OutboxMessage,
    ProcessedMessage,
    QueueSample,
    StuckCheck,
    WorkerHeartbeat,
)
from libs.settings import Settings
from libs.web.metrics import OUTBOX_LAG, SESSIONS, STUCK
from services.ops.queues import queue_stats

KEEP = timedelta(hours=2)
FORGET_WORKERS = timedelta(days=1)  # a worker gone this long leaves the Workers page


def sample_queues(db: Database, settings: Settings, *, now: datetime) -> int:
    stats = queue_stats(settings)
    with db.session(all_orgs=True) as db_session:
        db_session.add_all(
            QueueSample(sampled_at=now, queue=s.name, ready=s.ready, unacked=s.unacked, consumers=s.consumers)
            for s in stats
        )
        db_session.execute(delete(QueueSample).where(QueueSample.sampled_at < now - KEEP))
        db_session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.last_seen_at < now - FORGET_WORKERS))
        db_session.commit()
    return len(stats)


def depth_history(db: Database, *, since: datetime) -> dict[str, list[tuple[datetime, int]]]:
    """Ready + unacked per queue since ``since``, oldest first."""
    history: dict[str, list[tuple[datetime, int]]] = {}
    with db.session(all_orgs=True) as db_session:
        rows = db_session.execute(
            select(QueueSample.queue, QueueSample.sampled_at, QueueSample.ready, QueueSample.unacked)
            .where(QueueSample.sampled_at >= since)
            .order_by(QueueSample.sampled_at)
        )
        for queue, at, ready, unacked in rows:
            history.setdefault(queue, []).append((at, ready + (unacked or 0)))
    return history


def throughput_history(
    db: Database, *, since: datetime, end: datetime, bucket: timedelta = timedelta(minutes=5)
) -> dict[str, list[tuple[datetime, int]]]:
    """Messages handled per consumer queue in each ``bucket`` since ``since`` (from processed_messages,
    so it is the same in every mode and survives restarts). Each point sits at its bucket's end."""
    buckets = max(1, int((end - since) / bucket))
    counts: dict[str, list[int]] = {}
    with db.session(all_orgs=True) as db_session:
        rows = db_session.execute(
            select(ProcessedMessage.consumer, ProcessedMessage.processed_at).where(
                ProcessedMessage.processed_at >= since
            )
        )
        for consumer, at in rows:
            if at.tzinfo is None:
                at = at.replace(tzinfo=since.tzinfo)
            index = min(int((at - since) / bucket), buckets - 1)
            counts.setdefault(consumer, [0] * buckets)[index] += 1
    return {
        consumer: [(since + bucket * (i + 1), n) for i, n in enumerate(values)]
        for consumer, values in counts.items()
    }


def update_gauges(db: Database, *, now: datetime) -> None:
    with db.session(all_orgs=True) as db_session:
        counts = dict(
            db_session.execute(
                select(HeadshotSession.state, func.count()).group_by(HeadshotSession.state)
            ).all()
        )
        oldest = db_session.scalar(
            select(func.min(OutboxMessage.created_at)).where(OutboxMessage.sent_at.is_(None))
        )
        flagged = db_session.scalar(
            select(func.count())
            .select_from(StuckCheck)
            .join(HeadshotSession, HeadshotSession.id == StuckCheck.session_id)
            .where(StuckCheck.flagged_at.is_not(None), StuckCheck.state == HeadshotSession.state)
        )
    for state in SessionState:
        SESSIONS.labels(state.value).set(counts.get(state.value, 0))
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    OUTBOX_LAG.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    STUCK.set(flagged or 0)
