"""Who may listen to a session's live progress: its signed-in owner, or the holder of a
short-lived progress token for that one session. Everything else is refused with a reason the
gateway logs (the client only ever hears "unauthorized").

    listener = authorize(db, settings, session_id="a51b…", token=None, user=current_user())
"""

from __future__ import annotations

from dataclasses import dataclass

from libs.contracts import SessionState
from libs.db import Database, HeadshotSession, User
from libs.settings import Settings
from libs.web import TokenInvalid, read_progress_token
from libs.web.text import NUL

MAX_ID_LENGTH = 64


class Refused(Exception):
    """A connection that may not listen; ``reason`` is for the log, never for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Listener:
    """An accepted connection: the one session it may hear about, and how it proved it."""

    session_id: str
    org_id: str
    user_id: str
    via: str  # "cookie" or "token"


def authorize(
    db: Database, settings: Settings, *, session_id: object, token: object, user: User | None
) -> Listener:
    if not isinstance(session_id, str) or not 0 < len(session_id) <= MAX_ID_LENGTH:
        raise Refused("no session named")
    if NUL in session_id:  # no id has one, and PostgreSQL cannot even be asked about it
        raise Refused("a NUL character in the session id")
    token_problem = None
    if isinstance(token, str) and token:
        try:
            claims = read_progress_token(settings, token)
        except TokenInvalid as exc:
            token_problem = "expired token" if exc.expired else "forged token"
        else:
            if claims.session_id != session_id:
                raise Refused("token for another session")
            if not _owns(db, claims.org_id, claims.user_id, session_id):
                raise Refused("token for a session that is gone")
            return Listener(session_id, claims.org_id, claims.user_id, via="token")
    # A token that failed does not stop the owner's own cookie from working (an expired token
    # on a page left open for hours, say); without a valid cookie the token's fault is the reason.
    if user is not None and user.org_id is not None:
        if not _owns(db, user.org_id, user.id, session_id):
            raise Refused(f"user {user.id} does not own it")
        return Listener(session_id, user.org_id, user.id, via="cookie")
    raise Refused(token_problem or "not signed in and no token")


def _owns(db: Database, org_id: str, user_id: str, session_id: str) -> bool:
    # Tenant-scoped read: another organization's session is simply not found.
    with db.session(org_id=org_id) as db_session:
        hs = db_session.get(HeadshotSession, session_id)
        return hs is not None and hs.user_id == user_id and hs.state != SessionState.DELETED
