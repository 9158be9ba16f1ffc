"""Retention: uploads and person models of sessions completed or failed more than the organization's
``retention_days`` ago are deleted; headshots stay until the person or their admin deletes them.

    report = run_retention(settings, db, blobs, now)            # one round (the ops worker's loop)
    due = due_for_retention(db, now)                            # what would go (the dry run)

Safe with several instances: a round first claims its period (:func:`claim_period` locks the job's
row in ``job_runs``), so only one instance runs per RETENTION_CHECK_SECONDS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select
from sqlalchemy.exc import IntegrityError

from libs.contracts import SessionState
from libs.db import Database, HeadshotSession, JobRun, Organization, PersonModel, Photo
from libs.privacy.erasure import purge_uploads, remove_files
from libs.settings import Settings
from libs.storage import BlobStore

log = logging.getLogger("headshots.privacy")
JOB = "retention"
ENDED = (SessionState.COMPLETED.value, SessionState.FAILED.value)


@dataclass(frozen=True)
class Due:
    org_id: str
    session_id: str
    state: str
    ended_at: datetime
    photos: int
    person_models: int


@dataclass
class RetentionReport:
    ran: bool = False
    sessions: list[str] = field(default_factory=list)
    files: int = 0


def claim_period(db: Database, job: str, now: datetime, every: timedelta) -> bool:
    """True for exactly one caller per period across every instance sharing the database."""
    with db.uow(all_orgs=True) as uow:
        row = uow.get_for_update(JobRun, job)
        if row is None:
            uow.session.add(JobRun(job=job, ran_at=now))
            try:
                uow.commit()
            except IntegrityError:  # another instance inserted it first: theirs is this period
                return False
            return True
        if row.ran_at + every > now:
            return False
        row.ran_at = now
        uow.commit()
        return True


def due_for_retention(db: Database, now: datetime) -> list[Due]:
    """Sessions past their org's retention with uploads or live person models left."""
    has_photos = exists().where(Photo.session_id == HeadshotSession.id)
    has_models = exists().where(
        PersonModel.session_id == HeadshotSession.id, PersonModel.retired_at.is_(None)
    )
    due: list[Due] = []
    with db.session(all_orgs=True) as s:
        rows = s.execute(
            select(HeadshotSession, Organization.retention_days)
            .join(Organization, Organization.id == HeadshotSession.org_id)
            .where(HeadshotSession.state.in_(ENDED), or_(has_photos, has_models))
            .order_by(HeadshotSession.updated_at)
        ).all()
        for hs, days in rows:
            ended = hs.completed_at or hs.updated_at
            if ended + timedelta(days=days) > now:
                continue
            photos = len(s.scalars(select(Photo.id).where(Photo.session_id == hs.id)).all())
            models = len(
                s.scalars(
                    select(PersonModel.id).where(
                        PersonModel.session_id == hs.id, PersonModel.retired_at.is_(None)
                    )
                ).all()
            )
            due.append(Due(hs.org_id, hs.id, hs.state, ended, photos, models))
    return due


def run_retention(
    settings: Settings, db: Database, blobs: BlobStore, now: datetime, *, claim: bool = True
) -> RetentionReport:
    """One retention round (skipped when another instance has this period already)."""
    report = RetentionReport()
    if claim and not claim_period(db, JOB, now, timedelta(seconds=settings.RETENTION_CHECK_SECONDS)):
        return report
    report.ran = True
    for item in due_for_retention(db, now):
        with db.uow(org_id=item.org_id) as uow:
            hs = uow.get_for_update(HeadshotSession, item.session_id)
            if hs is None or hs.state not in ENDED:
                continue  # deleted or retried meanwhile
            erasure = purge_uploads(uow, hs)
            if erasure is None:
                continue
            uow.commit()
        report.files += remove_files(erasure, blobs, settings.person_model_dir)
        report.sessions.append(item.session_id)
        log.info("retention: session %s uploads and person models deleted (%s)", hs.id, erasure.receipt.kinds)
    return report
