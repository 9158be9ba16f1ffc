""" "Delete my data": the person deletes one of their sessions, and reads their deletion receipts.

    erasure = delete_my_session(uow, actor, session_id, confirm=True)   # then remove_files after commit
    receipts = my_receipts(uow, actor)                                  # newest first

The deletion itself (rows, blobs, person models, receipt) is libs.privacy's, shared with ops and
the org admin; a worker busy with the session stops when it sees the ``deleted`` state.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from libs.db import DeletionReceipt, UnitOfWork
from libs.privacy import Erasure, delete_session_data
from services.intake.errors import ConfirmationNeeded
from services.intake.sessions import Actor, find_session


def delete_my_session(uow: UnitOfWork, actor: Actor, session_id: str, *, confirm: bool) -> Erasure:
    if not confirm:
        raise ConfirmationNeeded(fields={"confirm": ["Please confirm the deletion."]})
    hs = find_session(uow, actor, session_id, lock=True)  # a deleted session is NotFound too
    return delete_session_data(uow, hs, reason="request", actor=actor.user_id)


def receipt_body(receipt: DeletionReceipt) -> dict[str, Any]:
    return {
        "id": receipt.id,
        "session_id": receipt.session_id,
        "reason": receipt.reason,
        "by": "you"
        if receipt.actor == receipt.user_id
        else ("system" if receipt.actor == "system" else "admin"),
        "kinds": dict(receipt.kinds),
        "created_at": receipt.created_at,
    }


def my_receipts(uow: UnitOfWork, actor: Actor) -> list[dict[str, Any]]:
    rows = uow.session.scalars(
        select(DeletionReceipt)
        .where(DeletionReceipt.user_id == actor.user_id)
        .order_by(DeletionReceipt.created_at.desc(), DeletionReceipt.id.desc())
    )
    return [receipt_body(r) for r in rows]
