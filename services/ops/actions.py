"""What support staff can do to a session, each audited in the same transaction as the change.

    retry_session(uow, Actor(user.id), RetrySession(session_id))          # failed -> queued, preparation runs again
    fail_session(uow, actor, FailSession(session_id, reason="stuck on a dead GPU"))
    erasure = delete_session(uow, actor, DeleteSession(session_id))      # then finish_erasures([erasure], blobs, settings)

Domain errors only (no HTTP here): :class:`SessionNotFound`, :class:`ActionRefused`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import delete

from libs.contracts import (
    SESSION_APPROVED,
    SESSION_FAILED,
    SessionState,
    can_transition,
    new_message,
)
from libs.db import AuditLog, HeadshotSession, StuckCheck, UnitOfWork
from libs.privacy import Erasure, delete_session_data

log = logging.getLogger("headshots.ops")
S = SessionState
IN_FLIGHT = frozenset({S.SUBMITTED, S.IN_REVIEW, S.QUEUED, S.PREPROCESSING, S.TRAINING, S.GENERATING})


class OpsError(Exception):
    code = "ops_error"


class SessionNotFound(OpsError):
    code = "not_found"


class ActionRefused(OpsError):
    code = "action_refused"


@dataclass(frozen=True)
class Actor:
    user_id: str


@dataclass(frozen=True)
class RetrySession:
    session_id: str


@dataclass(frozen=True)
class FailSession:
    session_id: str
    reason: str


@dataclass(frozen=True)
class DeleteSession:
    session_id: str


def audit(uow: UnitOfWork, actor: Actor | None, action: str, hs: HeadshotSession, **detail: object) -> None:
    uow.session.add(
        AuditLog(
            org_id=hs.org_id,
            actor_id=actor.user_id if actor else None,
            action=action,
            target=hs.id,
            detail=detail,
        )
    )


def _locked(uow: UnitOfWork, session_id: str) -> HeadshotSession:
    hs = uow.get_for_update(HeadshotSession, session_id)
    if hs is None:
        raise SessionNotFound(f"No session {session_id}.")
    return hs


def _forget_stuck(uow: UnitOfWork, session_id: str) -> None:
    uow.session.execute(delete(StuckCheck).where(StuckCheck.session_id == session_id))


def retry_session(uow: UnitOfWork, actor: Actor, cmd: RetrySession) -> HeadshotSession:
    """Back to the queue: an automatic approval goes out again so preparation starts over."""
    hs = _locked(uow, cmd.session_id)
    if hs.state != S.FAILED:
        raise ActionRefused(f"Only a failed session can be retried; this one is {hs.state}.")
    previous_reason = hs.failure_reason
    hs.move_to(S.QUEUED)
    hs.failure_reason = None
    hs.progress_done = hs.progress_total = 0
    uow.add_message(
        new_message(SESSION_APPROVED, org_id=hs.org_id, session_id=hs.id, auto=True, reviewer_id=None)
    )
    _forget_stuck(uow, hs.id)
    audit(uow, actor, "session.retried", hs, to=S.QUEUED.value, previous_reason=previous_reason or "")
    uow.commit()
    return hs


def fail_session(uow: UnitOfWork, actor: Actor, cmd: FailSession) -> HeadshotSession:
    reason = cmd.reason.strip()
    if not reason:
        raise ActionRefused("Please give a reason: the person and their admin are told why.")
    hs = _locked(uow, cmd.session_id)
    if hs.state not in IN_FLIGHT:
        raise ActionRefused(f"Only a session in progress can be failed; this one is {hs.state}.")
    stage = hs.state
    hs.move_to(S.FAILED)
    hs.failure_reason = reason[:2000]
    uow.add_message(
        new_message(SESSION_FAILED, org_id=hs.org_id, session_id=hs.id, stage=stage, reason=reason[:2000])
    )
    _forget_stuck(uow, hs.id)
    audit(uow, actor, "session.failed_by_support", hs, to=S.FAILED.value, stage=stage, reason=reason[:2000])
    uow.commit()
    return hs


def delete_session(uow: UnitOfWork, actor: Actor, cmd: DeleteSession) -> Erasure:
    """Delete a session with its personal data (libs.privacy, receipt included); returns the
    erasure whose files libs.privacy.finish_erasures removes after the commit (files are not
    transactional: removing them only once the deletion is recorded means a failed commit never
    leaves a session whose photos are gone)."""
    hs = _locked(uow, cmd.session_id)
    if not can_transition(hs.state, S.DELETED):
        raise ActionRefused(f"This session is already {hs.state}.")
    previous = hs.state
    erasure = delete_session_data(uow, hs, reason="request", actor=actor.user_id)
    _forget_stuck(uow, hs.id)
    kinds = erasure.receipt.kinds
    audit(
        uow,
        actor,
        "session.deleted",
        hs,
        to=S.DELETED.value,
        previous=previous,
        files=kinds.get("photo_files", 0) + kinds.get("headshot_files", 0),
        models=kinds.get("person_models", 0),
    )
    uow.commit()
    return erasure
