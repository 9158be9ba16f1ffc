"""The body every webhook POST carries (documented for receivers in docs/notification.md): written
once here, for the notification service's deliveries and the review console's test event.

    webhook_body(message_id=..., event=SESSION_COMPLETED, occurred_at=..., org_id=..., session_id=...,
                 state="completed", data={"headshot_count": 12})
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from libs.contracts.events import EventType


def webhook_body(
    *,
    message_id: str,
    event: EventType,
    occurred_at: datetime,
    org_id: str,
    session_id: str | None,
    state: str | None,
    data: dict[str, Any],
) -> str:
    """``{"id", "type", "occurred_at", "org_id", "session_id", "state", "data"}`` as compact JSON with
    sorted keys: the bytes a retry sends again and the signature covers."""
    body = {
        "id": message_id,
        "type": event.routing_key,
        "occurred_at": occurred_at.isoformat(),
        "org_id": org_id,
        "session_id": session_id,
        "state": state,
        "data": data,
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True)
