"""The webhook delivery ledger's shared operations: the notification service records and sends
deliveries; the org admin console lists them and asks for a resend. Both go through here, so a
resend means the same thing wherever the button is."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from libs.db.database import Database, UnitOfWork
from libs.db.models import WebhookAttempt, WebhookDelivery

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class DeliveryNotFound(LookupError):
    pass


def restart(uow: UnitOfWork, delivery_id: int, now: datetime) -> WebhookDelivery:
    """Start a delivery's retry schedule again from the beginning, due now (in the caller's
    transaction). Another organization's delivery is not found (the unit of work is scoped)."""
    delivery = uow.get_for_update(WebhookDelivery, delivery_id)
    if delivery is None:
        raise DeliveryNotFound(f"no webhook delivery {delivery_id}")
    delivery.status = PENDING
    delivery.step = 0
    delivery.next_attempt_at = now
    return delivery


def resend(db: Database, org_id: str, delivery_id: int, now: datetime) -> WebhookDelivery:
    """:func:`restart` in a transaction of its own (the notification CLI)."""
    with db.uow(org_id=org_id) as uow:
        delivery = restart(uow, delivery_id, now)
        uow.commit()
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
