"""A session's events as a waiting page sees them, read from the outbox (the replay log).

Every pushed event has the same shape, live or replayed::

    {"id": 1234,                        # the outbox row's id: the page's cursor
     "type": "headshot.generated",
     "at": "2026-11-29T12:00:00+00:00",
     "data": {"headshot_id": "…", "style": "navy:suit", "done": 3, "total": 12}}

Ids grow with every row of the outbox (all sessions share it), so "what came after id N" is one
indexed query (``ix_outbox_session``). Rows count once committed, published or not: a row the relay
has published but not yet marked sent may already have gone by live, and a page must not miss it.
The live copy that follows a replayed row is a duplicate the page drops by id.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from libs.contracts import ContractError, Message, decode_message
from libs.db import OutboxMessage

# Replaying more than this is pointless: the page gets the current state instead.
MAX_REPLAY = 500

# Data fields a page never needs (who reviewed it is not the employee's business).
_HIDDEN = frozenset({"reviewer_id"})


def pushed(outbox_id: int, message: Message) -> dict[str, Any]:
    return {
        "id": outbox_id,
        "type": message.routing_key,
        "at": message.occurred_at.isoformat(),
        "data": {k: v for k, v in message.data.items() if k not in _HIDDEN},
    }


def events_after(
    db_session: Session, session_id: str, after_id: int, limit: int = MAX_REPLAY
) -> list[dict[str, Any]]:
    """The session's committed events with an outbox id above ``after_id``, oldest first."""
    rows = db_session.execute(
        select(OutboxMessage.id, OutboxMessage.body)
        .where(
            OutboxMessage.session_id == session_id,
            OutboxMessage.id > after_id,
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    ).all()
    events = []
    for row_id, body in rows:
        try:
            events.append(pushed(row_id, decode_message(body)))
        except ContractError:
            continue  # an outbox row is validated when written; an old version is simply not shown
    return events


def last_event_id(db_session: Session, session_id: str) -> int:
    """The newest outbox id of the session (0 when none): a fresh page's cursor. The state is read
    after it, so it already includes every event up to it."""
    found = db_session.scalar(
        select(func.max(OutboxMessage.id)).where(OutboxMessage.session_id == session_id)
    )
    return int(found or 0)


def outbox_id_of(db_session: Session, message_id: str) -> int | None:
    """The outbox id of a message published without the relay's header (older relays)."""
    found = db_session.scalar(select(OutboxMessage.id).where(OutboxMessage.message_id == message_id))
    return int(found) if found is not None else None


def latest_reason(db_session: Session, session_id: str, routing_key: str) -> str | None:
    body = db_session.scalar(
        select(OutboxMessage.body)
        .where(OutboxMessage.session_id == session_id, OutboxMessage.routing_key == routing_key)
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    )
    if body is None:
        return None
    try:
        reason = json.loads(body)["data"]["reason"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(reason)
