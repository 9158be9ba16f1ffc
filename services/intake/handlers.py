"""Intake's event handlers: plain functions, the unit of work passed in, run by libs/messaging's
consumer inside one transaction (which also records the message as processed and commits).

    HANDLERS[SESSION_REJECTED](message, uow=uow)

Both are safe to run twice: a replayed message finds the work already done and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from libs.contracts import SESSION_COMPLETED, SESSION_REJECTED, EventType, Message, SessionState
from libs.db import HeadshotSession, UnitOfWork
from libs.privacy import erase_personal_info

log = logging.getLogger("headshots.intake")

S = SessionState


def _session(message: Message, uow: UnitOfWork) -> HeadshotSession | None:
    session = uow.session.get(HeadshotSession, message.session_id)
    if session is None or session.org_id != message.org_id:
        log.warning("%s for unknown session %s: ignored", message.routing_key, message.session_id)
        return None
    return session


def handle_session_rejected(message: Message, *, uow: UnitOfWork) -> None:
    """The org admin sent the session back: it returns to onboarding with its photos and answers,
    so the person can fix what was asked and submit again.

    ``{"type": "session.rejected", "session_id": "a51b…", "data": {"reviewer_id": "…", "reason": "…"}}``
    """
    session = _session(message, uow)
    if session is None:
        return
    if session.state == S.ONBOARDING:
        return  # already back (a replayed message)
    if session.state == S.DELETED:
        log.info("session %s was deleted before its rejection arrived: nothing to do", session.id)
        return
    if session.state == S.IN_REVIEW:
        session.move_to(S.REJECTED)  # normally done by review; tolerate a reviewer who only published
    session.move_to(S.ONBOARDING)  # any other state is an illegal move: it raises, and dead-letters
    log.info("session %s back in onboarding after rejection", session.id)


def handle_session_completed(message: Message, *, uow: UnitOfWork) -> None:
    """Every headshot is ready: erase the personal info (name, gender, eye colour, glasses).

    ``{"type": "session.completed", "session_id": "a51b…", "data": {"headshot_count": 12}}``
    """
    session = _session(message, uow)
    if session is None or session.personal_info_erased_at is not None:
        return
    erase_personal_info(uow, session, reason="completion")  # with its receipt
    log.info("personal info of session %s erased", session.id)


HANDLERS: dict[EventType, Callable[..., Any]] = {
    SESSION_REJECTED: handle_session_rejected,
    SESSION_COMPLETED: handle_session_completed,
}
