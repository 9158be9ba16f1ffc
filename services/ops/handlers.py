"""The ops worker: a few events it keeps an eye on, and its periodic checks.

Events (SUBSCRIPTIONS["ops"]): being a consumer records each one in processed_messages, which the
session timeline shows; the handlers themselves only keep the stuck-work records current and log.

Periodic (``run_background``, a thread the launcher starts; a round every OPS_CHECK_SECONDS): sample queue depths for the
Queues page chart, update the /metrics gauges, check for stuck sessions (services/ops/stuck.py),
and run retention once per RETENTION_CHECK_SECONDS across every instance (libs/privacy/retention.py).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import delete

from libs.contracts import MODEL_TRAINED, MODELS_RETIRED, SESSION_FAILED, Message
from libs.db import Database, StuckCheck, UnitOfWork
from libs.messaging.periodic import PeriodicJob
from libs.privacy import run_retention
from libs.settings import Settings
from libs.storage import make_blob_store
from services.ops.sampler import sample_queues, update_gauges
from services.ops.stuck import StuckReport, check_stuck

log = logging.getLogger("headshots.ops")


def handle_session_failed(message: Message, *, uow: UnitOfWork) -> None:
    """A failed session is no longer stuck: support sees it under "failed" instead."""
    uow.session.execute(delete(StuckCheck).where(StuckCheck.session_id == message.session_id))
    log.warning(
        "session %s failed at %s: %s",
        message.session_id,
        message.data.get("stage"),
        message.data.get("reason"),
    )


def handle_model_trained(message: Message, *, uow: UnitOfWork) -> None:
    uow.session.execute(delete(StuckCheck).where(StuckCheck.session_id == message.session_id))


def handle_models_retired(message: Message, *, uow: UnitOfWork) -> None:
    log.info(
        "org %s retired %d person models", message.org_id, len(message.data.get("person_model_ids") or [])
    )


HANDLERS = {
    SESSION_FAILED: handle_session_failed,
    MODEL_TRAINED: handle_model_trained,
    MODELS_RETIRED: handle_models_retired,
}


def ops_round(settings: Settings, db: Database, now: datetime) -> StuckReport:
    """One round of the ops worker: each part runs even if another failed."""
    try:
        sample_queues(db, settings, now=now)
    except Exception:
        log.exception("queue sampling failed")
    try:
        report = check_stuck(db, settings, now=now)
        if report.requeued or report.flagged:
            log.warning("stuck check: %d re-queued, %d flagged", len(report.requeued), len(report.flagged))
    finally:
        try:
            _retention(settings, db, now)
        finally:
            update_gauges(db, now=now)
    return report


def _retention(settings: Settings, db: Database, now: datetime) -> None:
    """Uploads and person models past their org's retention go (one instance per period)."""
    try:
        done = run_retention(settings, db, make_blob_store(settings), now)
        if done.sessions:
            log.info("retention: %d sessions' uploads deleted (%d files)", len(done.sessions), done.files)
    except Exception:
        log.exception("retention round failed; the next period tries again")


OPS_CHECKS = PeriodicJob("ops checks", every=lambda s: s.OPS_CHECK_SECONDS, run=ops_round)


def run_background(settings: Settings, db: Database, stop: threading.Event) -> None:
    """The launcher runs this beside the ops consumer: one round every OPS_CHECK_SECONDS until stop."""
    OPS_CHECKS.run_forever(settings, db, stop)
