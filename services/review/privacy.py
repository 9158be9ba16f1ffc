"""The org admin deletes a member's data (every session of theirs), and reads the org's deletion receipts.

    erasures = delete_member_data(uow, reviewer, user_id, settings.mail_dir)  # commit, then remove_files
    receipts = org_receipts(uow)                             # newest first, ids and counts only

The deletion itself is libs.privacy's, shared with intake and ops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from libs.contracts import SessionState
from libs.db import DeletionReceipt, HeadshotSession, UnitOfWork
from libs.privacy import Erasure, delete_session_data, erase_account
from services.review import apikeys
from services.review.audit import audit
from services.review.decisions import Reviewer
from services.review.errors import Conflict
from services.review.invites import _member


def delete_member_data(
    uow: UnitOfWork, reviewer: Reviewer, user_id: str, mail_dir: Path | None = None
) -> list[Erasure]:
    """Every session of the member, whatever its state (work in progress stops), then their account:
    address and name pseudonymised, deactivated (their links stop working), the API keys they
    created revoked, their e-mails in the embedded mailbox listed for removal. What the org keeps
    (the account's id, role and dates, the receipts, the audit log) holds no personal data.
    An unknown member is NotFound; nothing left to delete gives no erasure."""
    user = _member(uow, user_id)
    if user.id == reviewer.user_id:
        raise Conflict("You cannot delete your own account here: ask another admin of your organization.")
    actor = reviewer.user_id or "org-api-key"
    ids = uow.session.scalars(
        select(HeadshotSession.id).where(
            HeadshotSession.user_id == user.id, HeadshotSession.state != SessionState.DELETED.value
        )
    ).all()
    erasures = []
    for session_id in ids:
        hs = uow.get_for_update(HeadshotSession, session_id)
        if hs is not None and hs.state != SessionState.DELETED:
            erasures.append(delete_session_data(uow, hs, reason="request", actor=actor))
    was_active = user.active
    account = erase_account(uow, user, actor=actor, mail_dir=mail_dir)
    if account is not None:
        erasures.append(account)
        apikeys.revoke_keys_of(uow, reviewer, user.id, why="creator erased")
    if erasures:
        audit(
            uow,
            reviewer,
            "members.delete_data",
            user.id,
            before={"sessions": len(ids), "account": "active" if was_active else "deactivated"},
            after={"sessions": 0, "account": "erased" if account else "already erased"},
        )
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
