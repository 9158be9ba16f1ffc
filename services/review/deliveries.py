"""The organization's webhook deliveries as its admin handles them: send one again, or send a
signed test event to the endpoint. Both go through the delivery ledger (libs/db/webhooks.py) the
notification service's dispatcher works from, so a test is signed, checked and retried exactly as
a real event is, and its outcome shows in the same list.

    delivery = send_test_event(uow, reviewer, now)       # pending, due now; the caller commits
    delivery = resend(uow, reviewer, delivery_id, now)   # its retry schedule starts over
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from libs.contracts import WEBHOOK_TESTED, new_message
from libs.contracts.webhooks import webhook_body
from libs.db import UnitOfWork, WebhookDelivery, webhooks
from libs.db.webhooks import PENDING
from services.review.audit import audit
from services.review.decisions import Reviewer
from services.review.errors import Conflict, NotFound
from services.review.orgsettings import load_org


def tested_event_body(message_id: str, occurred_at: datetime, org_id: str, data: dict[str, Any]) -> str:
    """The same envelope as every webhook (docs/notification.md), with no session and no state."""
    return webhook_body(
        message_id=message_id,
        event=WEBHOOK_TESTED,
        occurred_at=occurred_at,
        org_id=org_id,
        session_id=None,
        state=None,
        data={**data, "test": True},
    )


def send_test_event(uow: UnitOfWork, reviewer: Reviewer, now: datetime) -> WebhookDelivery:
    org = load_org(uow, reviewer.org_id)
    if not org.webhook_url:
        raise Conflict("Set a webhook endpoint (and save) before sending a test event.")
    if not org.webhook_secret:
        raise Conflict("Create a signing secret before sending a test event: every webhook is signed.")
    waiting = uow.session.scalar(
        select(WebhookDelivery.id).where(
            WebhookDelivery.event == WEBHOOK_TESTED.routing_key, WebhookDelivery.status == PENDING
        )
    )
    if waiting is not None:
        raise Conflict("A test event is already on its way: its outcome will show in the deliveries list.")
    message = new_message(WEBHOOK_TESTED, org_id=org.id, session_id=None, requested_by=reviewer.user_id)
    delivery = webhooks.send_test(
        uow,
        org.id,
        message_id=message.message_id,
        event=message.routing_key,
        body=tested_event_body(message.message_id, now, org.id, message.data),
        now=now,
    )
    audit(uow, reviewer, "webhook.test", str(delivery.id), before={}, after={"status": delivery.status})
    return delivery


def resend(uow: UnitOfWork, reviewer: Reviewer, delivery_id: int, now: datetime) -> WebhookDelivery:
    """Send a delivery again: its retry schedule starts over, due now (audited, status before/after,
    by libs.db.webhooks, as the notification CLI's resend is)."""
    try:
        return webhooks.resend(uow, delivery_id, now, actor_id=reviewer.user_id)
    except webhooks.DeliveryNotFound:  # tenant-scoped: another org's delivery is not found
        raise NotFound("No such webhook delivery.") from None
