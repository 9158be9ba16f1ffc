"""Notification's event handlers: one e-mail and/or one webhook per event.

    HANDLERS[SESSION_COMPLETED](message, uow=uow, settings=settings, mailer=mailer, webhooks=webhooks)

| event | e-mail (template) | webhook |
| --- | --- | --- |
| session.submitted | confirmation (``submitted``) | yes |
| session.approved | — | yes |
| session.rejected | sent back, the admin's reason and a link to fix it (``rejected``) | yes |
| session.completed | ready, a link to the results (``ready``) | yes |
| session.failed | what happened and what to do (``failed``) | yes |
| member.invited | the expiring sign-in link (``invite``) | — |

The webhook is only recorded here (its own committed row); the dispatcher posts it later, so a slow
endpoint never holds an event. The e-mail is sent here, guarded by the send ledger (mailer.py): a
transient SMTP failure raises and the consumer retries the event; the recorded webhook stays.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from libs.contracts import (
    MEMBER_INVITED,
    SESSION_APPROVED,
    SESSION_COMPLETED,
    SESSION_FAILED,
    SESSION_REJECTED,
    SESSION_SUBMITTED,
    EventType,
    Message,
)
from libs.db import Database, UnitOfWork, utcnow
from libs.settings import Settings
from libs.storage import BlobStore
from services.notification import content
from services.notification.ledger import SendKey, SendLedger
from services.notification.mailer import Mailer
from services.notification.transport import make_transport
from services.notification.webhooks.deliveries import WebhookRecorder
from services.notification.webhooks.dispatcher import WebhookDispatcher


def _key(message: Message, template: str) -> SendKey:
    return SendKey(
        message.org_id,
        message.message_id,
        template,
        session_id=message.session_id,
        user_id=message.data.get("user_id"),
    )


def handle_session_submitted(
    message: Message, *, uow: UnitOfWork, settings: Settings, mailer: Mailer, webhooks: WebhookRecorder
) -> None:
    webhooks.record(message)
    mailer.deliver(_key(message, "submitted"), lambda: content.submitted(uow, settings, message))


def handle_session_approved(message: Message, *, webhooks: WebhookRecorder) -> None:
    webhooks.record(message)


def handle_session_rejected(
    message: Message, *, uow: UnitOfWork, settings: Settings, mailer: Mailer, webhooks: WebhookRecorder
) -> None:
    webhooks.record(message)
    mailer.deliver(_key(message, "rejected"), lambda: content.rejected(uow, settings, message))


def handle_session_completed(
    message: Message, *, uow: UnitOfWork, settings: Settings, mailer: Mailer, webhooks: WebhookRecorder
) -> None:
    webhooks.record(message)
    mailer.deliver(_key(message, "ready"), lambda: content.ready(uow, settings, message))


def handle_session_failed(
    message: Message, *, uow: UnitOfWork, settings: Settings, mailer: Mailer, webhooks: WebhookRecorder
) -> None:
    webhooks.record(message)
    mailer.deliver(_key(message, "failed"), lambda: content.failed(uow, settings, message))


def handle_member_invited(message: Message, *, uow: UnitOfWork, settings: Settings, mailer: Mailer) -> None:
    mailer.deliver(_key(message, "invite"), lambda: content.invite(uow, settings, message))


HANDLERS: dict[EventType, Callable[..., Any]] = {
    SESSION_SUBMITTED: handle_session_submitted,
    SESSION_APPROVED: handle_session_approved,
    SESSION_REJECTED: handle_session_rejected,
    SESSION_COMPLETED: handle_session_completed,
    SESSION_FAILED: handle_session_failed,
    MEMBER_INVITED: handle_member_invited,
}


def send_lease(settings: Settings) -> timedelta:
    """A claim older than this belongs to a worker that died mid-send (a send takes a few SMTP timeouts)."""
    return timedelta(seconds=settings.SMTP_TIMEOUT_SECONDS * 3 + 30)


def build_deps(settings: Settings, db: Database, blobs: BlobStore | None = None) -> dict[str, Any]:
    return {
        "settings": settings,
        "mailer": Mailer(settings, SendLedger(db, send_lease(settings)), make_transport(settings), utcnow),
        "webhooks": WebhookRecorder(db, utcnow),
    }


def run_background(settings: Settings, db: Database, stop: threading.Event) -> None:
    """The webhook dispatcher, run by the launcher in a thread beside the consumer."""
    WebhookDispatcher(db, settings).run_forever(stop)
