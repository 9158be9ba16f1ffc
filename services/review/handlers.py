"""The policy worker: applies the organization's policy to every submitted session.

    HANDLERS[SESSION_SUBMITTED](message, uow=uow, publish=uow.add_message)

Run by libs/messaging's consumer inside one transaction, which also records the message as
processed: a redelivered message is skipped there, and a replayed one finds the session already
past ``submitted`` here and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from libs.contracts import SESSION_SUBMITTED, EventType, Message, SessionState
from libs.db import HeadshotSession, Organization, UnitOfWork
from services.review.policy import Publish, apply_policy

log = logging.getLogger("headshots.review")


def handle_session_submitted(message: Message, *, uow: UnitOfWork, publish: Publish) -> None:
    """``{"type": "session.submitted", "session_id": "a51b…", "data": {"package": "executive", …}}``"""
    # Locked: an admin's console or a second consumer cannot move the session meanwhile.
    hs = uow.get_for_update(HeadshotSession, message.session_id)
    if hs is None or hs.org_id != message.org_id:
        log.warning("session.submitted for unknown session %s: ignored", message.session_id)
        return
    if hs.state != SessionState.SUBMITTED:
        log.info("session %s is already %s: nothing to decide", hs.id, hs.state)
        return
    org = uow.session.get(Organization, hs.org_id)
    if org is None:  # cannot happen with the foreign key; refuse loudly rather than guess a policy
        raise LookupError(f"organization {hs.org_id} of session {hs.id} not found")
    outcome = apply_policy(uow, hs, org, publish)
    log.info("session %s → %s", hs.id, outcome.state)


HANDLERS: dict[EventType, Callable[..., Any]] = {SESSION_SUBMITTED: handle_session_submitted}
