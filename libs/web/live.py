"""Short-lived tokens that let a waiting page listen to one session's live progress.

    token = progress_token(settings, session_id=hs.id, org_id=hs.org_id, user_id=hs.user_id)
    claims = read_progress_token(settings, token)     # TokenInvalid when forged or expired

Intake signs one into the waiting page; the gateway accepts it (or the intake session cookie)
when the page connects. A token names one session and nothing else, and expires after
PROGRESS_TOKEN_TTL_SECONDS, so a leaked one is worth little.
"""

from __future__ import annotations

from dataclasses import dataclass

from libs.settings import Settings
from libs.web.auth import TokenInvalid, sign, unsign

PROGRESS_PURPOSE = "progress"


@dataclass(frozen=True)
class ProgressClaims:
    session_id: str
    org_id: str
    user_id: str


def progress_token(settings: Settings, *, session_id: str, org_id: str, user_id: str) -> str:
    return sign(settings, PROGRESS_PURPOSE, {"s": session_id, "o": org_id, "u": user_id})


def read_progress_token(settings: Settings, token: str) -> ProgressClaims:
    data = unsign(settings, PROGRESS_PURPOSE, token, max_age=settings.PROGRESS_TOKEN_TTL_SECONDS)
    values = (data.get("s"), data.get("o"), data.get("u"))
    if not all(isinstance(v, str) and v for v in values):
        raise TokenInvalid(expired=False)
    session_id, org_id, user_id = (str(v) for v in values)
    return ProgressClaims(session_id, org_id, user_id)
