"""The webhook delivery ledger's shared operations: the notification service records and sends
deliveries; the org admin console lists them and asks for a resend, as does the notification CLI.
All go through here, so a resend means the same thing wherever it is asked for — the retry schedule
starts over and the audit log says who asked:

    delivery = resend(uow, 42, now, actor_id=reviewer.user_id)        # the console: the org admin
    delivery = resend(uow, 42, now, actor_id=None, via=VIA_CLI)       # the CLI: support, as "system"
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from libs.db.database import Database, UnitOfWork
from libs.db.models import AuditLog, WebhookAttempt, WebhookDelivery

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

# The audit action of a resend (its target: the delivery id), whoever asked for it; ops' session
# timeline shows these entries among the delivery's tries.
RESEND = "webhook.resend"
# A resend asked for on the command line has no person behind it in the database (actor_id is a
# user id, None for the system); its entry says where it came from instead.
VIA_CLI = "notification CLI"


class DeliveryNotFound(LookupError):
    pass


def resend(
    uow: UnitOfWork, delivery_id: int, now: datetime, *, actor_id: str | None, via: str | None = None
) -> WebhookDelivery:
    """Start a delivery's retry schedule again from the beginning, due now, and audit it, in the
    caller's transaction. ``actor_id`` is the person who asked (None: the system — support on the
    command line, and then ``via`` says where). The entry's detail: ``{"before": {"status":
    "failed"}, "after": {"status": "pending"}, "event": "session.completed"}`` (+ ``"via"``).
    Another organization's delivery is not found (the unit of work is scoped)."""
    delivery = uow.get_for_update(WebhookDelivery, delivery_id)
    if delivery is None:
        raise DeliveryNotFound(f"no webhook delivery {delivery_id}")
    before = delivery.status
    delivery.status = PENDING
    delivery.step = 0
    delivery.next_attempt_at = now
    detail: dict[str, object] = {
        "before": {"status": before},
        "after": {"status": delivery.status},
        "event": delivery.event,
    }
    if via is not None:
        detail["via"] = via
    uow.session.add(
        AuditLog(
            org_id=delivery.org_id,
            actor_id=actor_id,
            action=RESEND,
            target=str(delivery.id),
            detail=detail,
            created_at=now,
        )
    )
    return delivery


def recent_deliveries(uow: UnitOfWork, limit: int = 20) -> list[WebhookDelivery]:
    """The organization's latest deliveries, newest first (the unit of work is org-scoped)."""
    return list(uow.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)))


def attempts_of(db: Database, org_id: str, delivery_id: int) -> list[dict[str, object]]:
    """A delivery's attempts, oldest first, as plain data (for pages and the CLI)."""
    with db.uow(org_id=org_id) as uow:
        rows = uow.session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.id)
        ).all()
        return [
            {
                "attempt": a.attempt,
                "attempted_at": a.attempted_at.isoformat(),
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "error": a.error,
                "response_excerpt": a.response_excerpt,
            }
            for a in rows
        ]


def send_test(
    uow: UnitOfWork, org_id: str, *, message_id: str, event: str, body: str, now: datetime
) -> WebhookDelivery:
    """Queue a test delivery, due now, in the caller's transaction: the dispatcher signs and posts it
    to the organization's endpoint like any other delivery, and its outcome lands in the same list."""
    delivery = WebhookDelivery(
        org_id=org_id,
        message_id=message_id,
        event=event,
        session_id=None,
        body=body,
        status=PENDING,
        next_attempt_at=now,
    )
    uow.session.add(delivery)
    uow.session.flush()
    return delivery
