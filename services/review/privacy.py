"""The org admin deletes a member's data (every session of theirs), and reads the org's deletion receipts.

    erasures = delete_member_data(uow, reviewer, user_id)   # commit, then remove_files(...) for each
    receipts = org_receipts(uow)                             # newest first, ids and counts only

The deletion itself is libs.privacy's, shared with intake and ops.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from libs.contracts import SessionState
from libs.db import DeletionReceipt, HeadshotSession, UnitOfWork
from libs.privacy import Erasure, delete_session_data
from services.review.decisions import Reviewer
from services.review.invites import _member
from services.review.orgsettings import audit


def delete_member_data(uow: UnitOfWork, reviewer: Reviewer, user_id: str) -> list[Erasure]:
    """Every session of the member, whatever its state (work in progress stops). The account
    itself stays (deactivate it to stop its links); an unknown member is NotFound."""
    user = _member(uow, user_id)
    ids = uow.session.scalars(
        select(HeadshotSession.id).where(
            HeadshotSession.user_id == user.id, HeadshotSession.state != SessionState.DELETED.value
        )
    ).all()
    erasures = []
    for session_id in ids:
        hs = uow.get_for_update(HeadshotSession, session_id)
        if hs is not None and hs.state != SessionState.DELETED:
            erasures.append(
                delete_session_data(uow, hs, reason="request", actor=reviewer.user_id or "org-api-key")
            )
    audit(uow, reviewer, "members.delete_data", user.id, sessions=len(erasures))
    return erasures


def receipt_body(receipt: DeletionReceipt) -> dict[str, Any]:
    return {
        "id": receipt.id,
        "session_id": receipt.session_id,
        "user_id": receipt.user_id,
        "reason": receipt.reason,
        "actor": receipt.actor,
        "kinds": dict(receipt.kinds),
        "created_at": receipt.created_at,
    }


def org_receipts(uow: UnitOfWork, limit: int = 200) -> list[dict[str, Any]]:
    rows = uow.session.scalars(  # tenant-scoped: this organization's only
        select(DeletionReceipt)
        .order_by(DeletionReceipt.created_at.desc(), DeletionReceipt.id.desc())
        .limit(limit)
    )
    return [receipt_body(r) for r in rows]
