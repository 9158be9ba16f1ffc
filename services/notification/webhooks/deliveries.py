"""Recording a webhook delivery (from the event handler); sending one again lives in
libs/db/webhooks.py, shared with the org admin console.

The handler only writes a ``pending`` row, in its own short transaction, keyed by (org, message
id): a redelivered event finds it and adds nothing; an e-mail failure of the same event (which
rolls the handler back) does not take the webhook with it. The dispatcher does the HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from libs.contracts import Message
from libs.db import Database, Organization, WebhookDelivery
from libs.db.webhooks import PENDING
from services.notification.webhooks.payload import payload

log = logging.getLogger("headshots.notification.webhooks")


class WebhookRecorder:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    def record(self, message: Message) -> bool:
        """Add a pending delivery if the organization has a webhook; True if one was added."""
        with self.db.uow(org_id=message.org_id) as uow:
            org = uow.session.get(Organization, message.org_id)
            if org is None or not org.webhook_url:
                return False
            exists = uow.session.scalar(
                select(WebhookDelivery.id).where(WebhookDelivery.message_id == message.message_id)
            )
            if exists is not None:
                return False
            uow.session.add(
                WebhookDelivery(
                    org_id=message.org_id,
                    message_id=message.message_id,
                    event=message.routing_key,
                    session_id=message.session_id,
                    body=payload(message),
                    status=PENDING,
                    next_attempt_at=self.clock(),
                )
            )
            try:
                uow.commit()
            except IntegrityError:  # recorded by another worker a moment ago
                return False
        log.info("webhook %s for %s recorded", message.routing_key, message.message_id[:8])
        return True
