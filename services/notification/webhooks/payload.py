"""The webhook body and its signature (documented for receivers in docs/notification.md).

body = payload(message)                       # JSON text: ids, state, counts; no personal info
signature = sign(secret, timestamp, body)     # hex HMAC-SHA256 of f"{timestamp}.{body}"
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from libs.contracts import (
    SESSION_APPROVED,
    SESSION_COMPLETED,
    SESSION_FAILED,
    SESSION_REJECTED,
    SESSION_SUBMITTED,
    EventType,
    Message,
    SessionState,
)
from libs.contracts.webhooks import webhook_body

EVENT_HEADER = "X-Headshots-Event"
ID_HEADER = "X-Headshots-Event-Id"
TIMESTAMP_HEADER = "X-Headshots-Timestamp"
SIGNATURE_HEADER = "X-Headshots-Signature"

S = SessionState

# The state each event leaves the session in (not read back from the database: a retried delivery
# must send the same bytes, whatever happened to the session since).
WEBHOOK_EVENTS: dict[EventType, SessionState] = {
    SESSION_SUBMITTED: S.SUBMITTED,
    SESSION_APPROVED: S.QUEUED,
    SESSION_REJECTED: S.REJECTED,
    SESSION_COMPLETED: S.COMPLETED,
    SESSION_FAILED: S.FAILED,
}


def _data(message: Message) -> dict[str, Any]:
    d = message.data
    if message.event is SESSION_SUBMITTED:
        return {
            "package": d["package"],
            "format": d["format"],
            "photo_count": d["photo_count"],
            "style_count": len(d["styles"]),
        }
    if message.event is SESSION_APPROVED:
        return {"auto": d["auto"]}
    if message.event is SESSION_REJECTED:
        return {"reviewer_id": d["reviewer_id"]}  # the reason is free text a person wrote: not sent
    if message.event is SESSION_COMPLETED:
        return {"headshot_count": d["headshot_count"]}
    if message.event is SESSION_FAILED:
        return {"stage": d["stage"]}
    raise ValueError(f"{message.event} is not a webhook event")


def payload(message: Message) -> str:
    """``{"id", "type", "occurred_at", "org_id", "session_id", "state", "data"}`` as compact JSON."""
    return webhook_body(
        message_id=message.message_id,
        event=message.event,
        occurred_at=message.occurred_at,
        org_id=message.org_id,
        session_id=message.session_id,
        state=WEBHOOK_EVENTS[message.event].value,
        data=_data(message),
    )


def sign(secret: str, timestamp: int, body: str) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()


def verify(
    secret: str, timestamp: str, body: str, signature: str, *, now: float, tolerance: int = 300
) -> bool:
    """What a receiver does (the docs show the same in a standalone snippet)."""
    try:
        age = now - int(timestamp)
    except ValueError:
        return False
    expected = sign(secret, int(timestamp), body)
    return abs(age) <= tolerance and hmac.compare_digest(expected, signature)
