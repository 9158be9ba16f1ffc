"""The review queue and the admin's decisions: approve (→ queued + ``session.approved``) or reject
with a reason (→ rejected + ``session.rejected``; intake takes it back to onboarding).

Each decision locks the session row first (``UnitOfWork.get_for_update``), so when two admins
decide the same session at once the second waits, then finds it no longer in review and gets
:class:`AlreadyDecided`: exactly one decision and one event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select

from libs.contracts import SESSION_APPROVED, SESSION_REJECTED, SessionState, new_message
from libs.db import HeadshotSession, UnitOfWork, User, utcnow
from services.review.audit import audit
from services.review.errors import AlreadyDecided, Invalid, NotFound

S = SessionState
MAX_REASON = 2000


@dataclass(frozen=True)
class Reviewer:
    """The org admin deciding (the signed-in admin, or the owner of an API key)."""

    user_id: str | None
    org_id: str


@dataclass(frozen=True)
class Approve:
    session_id: str


@dataclass(frozen=True)
class Reject:
    session_id: str
    reason: str


def in_review(uow: UnitOfWork, *, limit: int = 200) -> list[tuple[HeadshotSession, User]]:
    """Sessions waiting for a decision, oldest submission first, with their person."""
    rows = uow.session.execute(
        select(HeadshotSession, User)
        .join(User, User.id == HeadshotSession.user_id)
        .where(HeadshotSession.state == S.IN_REVIEW)
        .order_by(func.coalesce(HeadshotSession.submitted_at, HeadshotSession.created_at), HeadshotSession.id)
        .limit(limit)
    ).all()
    return [(hs, user) for hs, user in rows]


def find_session(uow: UnitOfWork, session_id: str) -> HeadshotSession:
    """A session of the admin's org (tenant-scoped: another org's id is simply not found)."""
    hs = uow.session.scalar(select(HeadshotSession).where(HeadshotSession.id == session_id))
    if hs is None or hs.state == S.DELETED:
        raise NotFound("No such session.")
    return hs


def _lock_in_review(uow: UnitOfWork, session_id: str) -> HeadshotSession:
    hs = uow.get_for_update(HeadshotSession, session_id)
    if hs is None or hs.state == S.DELETED:
        raise NotFound("No such session.")
    if hs.state != S.IN_REVIEW:
        raise AlreadyDecided("This session has already been decided (or is not waiting for review).")
    return hs


def approve(uow: UnitOfWork, reviewer: Reviewer, command: Approve) -> HeadshotSession:
    hs = _lock_in_review(uow, command.session_id)
    before = hs.state
    hs.move_to(S.QUEUED)
    hs.review_reason = None
    hs.reviewed_by, hs.reviewed_at = reviewer.user_id, utcnow()
    uow.add_message(
        new_message(
            SESSION_APPROVED, org_id=hs.org_id, session_id=hs.id, auto=False, reviewer_id=reviewer.user_id
        )
    )
    audit(uow, reviewer, "session.approve", hs.id, before={"state": before}, after={"state": hs.state})
    return hs


def clean_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise Invalid("Please say why.", {"reason": ["Please tell the person what to change."]})
    if len(text) > MAX_REASON:
        raise Invalid("Please shorten the reason.", {"reason": [f"At most {MAX_REASON} characters."]})
    return text


def reject(uow: UnitOfWork, reviewer: Reviewer, command: Reject) -> HeadshotSession:
    reason = clean_reason(command.reason)
    hs = _lock_in_review(uow, command.session_id)
    before = hs.state
    hs.move_to(S.REJECTED)
    hs.review_reason = reason
    hs.reviewed_by, hs.reviewed_at = reviewer.user_id, utcnow()
    # The event's reviewer_id is required by the contract; an API key acting alone names its org.
    uow.add_message(
        new_message(
            SESSION_REJECTED,
            org_id=hs.org_id,
            session_id=hs.id,
            reviewer_id=reviewer.user_id or f"org:{reviewer.org_id}",
            reason=reason,
        )
    )
    # The reason stays on the session (erased with it): free text may quote the person.
    audit(uow, reviewer, "session.reject", hs.id, before={"state": before}, after={"state": hs.state})
    return hs


@dataclass(frozen=True)
class BulkResult:
    approved: list[str]
    skipped: list[str]  # already decided, or not found


def approve_many(uow: UnitOfWork, reviewer: Reviewer, session_ids: Iterable[str]) -> BulkResult:
    """Approve every session still in review; the others are reported, not failed."""
    approved: list[str] = []
    skipped: list[str] = []
    for sid in dict.fromkeys(session_ids):  # de-duplicated, order kept
        try:
            approve(uow, reviewer, Approve(sid))
            approved.append(sid)
        except (AlreadyDecided, NotFound):
            skipped.append(sid)
    return BulkResult(approved, skipped)
