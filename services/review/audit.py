"""The organization's audit log: every change an admin makes, with who, when, before and after.

    audit(uow, reviewer, "webhook.resend", str(delivery.id),
          before={"status": "failed"}, after={"status": "pending"}, event="session.completed")

``before`` and ``after`` are required: an entry that changes nothing visible still says so
(``{}``). Secrets and personal data (addresses, names, free text) never go in: the target is an id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from libs.db import AuditLog, UnitOfWork

if TYPE_CHECKING:  # decisions records its own entries through here
    from services.review.decisions import Reviewer


def audit(
    uow: UnitOfWork,
    reviewer: Reviewer,
    action: str,
    target: str,
    *,
    before: dict[str, Any],
    after: dict[str, Any],
    **extra: Any,
) -> None:
    uow.session.add(
        AuditLog(
            org_id=reviewer.org_id,
            actor_id=reviewer.user_id,
            action=action,
            target=target,
            detail={"before": before, "after": after, **extra},
        )
    )
