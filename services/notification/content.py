"""What each e-mail says, read from the database at send time (events carry ids only).

The person's address and name come from their User row (``HeadshotSession.user_id``): the name on
the session itself is personal info, erased when the headshots are complete, so it is never used.
"""

from __future__ import annotations

from libs.contracts import Message, SessionState, stage_label
from libs.db import HeadshotSession, Organization, UnitOfWork, User
from libs.settings import Settings
from libs.web import invite_url
from services.notification.emails import Email, Recipient
from services.notification.mailer import NoRecipient

S = SessionState

# Pages of the employee's journey (intake's addresses; signing in again leads to the same place).
WAITING_PATH = "/sessions/{id}/waiting"
ONBOARDING_PATH = "/sessions/{id}"
RESULTS_PATH = "/sessions/{id}/results"

_WHAT_HAPPENED = {
    S.PREPROCESSING: "Something went wrong while we were preparing your photos.",
    S.TRAINING: "Something went wrong while we were learning your likeness from your photos.",
    S.GENERATING: "Something went wrong while we were creating your headshots, before they were all done.",
}
WHAT_HAPPENED_DEFAULT = "Something went wrong before we could start on your photos."
WHAT_TO_DO = (
    "Nothing is lost and you do not need to do anything now: your photos are kept, and our support "
    "team has been told and can start again from where it stopped. You will get an e-mail as soon as "
    "your headshots are ready. If nothing has happened within a working day, ask your administrator."
)


def _user_recipient(uow: UnitOfWork, user_id: str) -> Recipient:
    user = uow.session.get(User, user_id)  # tenant-scoped: another organization's person is None
    if user is None:
        raise NoRecipient(f"no person {user_id} in this organization")
    if not user.active:
        raise NoRecipient(f"person {user_id} is deactivated")
    org = uow.session.get(Organization, user.org_id)
    if org is None:
        raise NoRecipient(f"person {user_id} belongs to no organization")
    return Recipient(user.id, user.email, user.display_name or "", org.name)


def _session(uow: UnitOfWork, message: Message) -> tuple[HeadshotSession, Recipient]:
    hs = uow.session.get(HeadshotSession, message.session_id)
    if hs is None:
        raise NoRecipient(f"no session {message.session_id} in this organization")
    return hs, _user_recipient(uow, hs.user_id)


def _url(settings: Settings, path: str, hs: HeadshotSession) -> str:
    return settings.public_url + path.format(id=hs.id)


def submitted(uow: UnitOfWork, settings: Settings, message: Message) -> Email:
    hs, to = _session(uow, message)
    org = uow.session.get(Organization, hs.org_id)
    values = {
        "photo_count": message.data["photo_count"],
        "style_count": len(message.data["styles"]),
        "manual_review": bool(org and org.manual_review),
        "waiting_url": _url(settings, WAITING_PATH, hs),
    }
    return Email("submitted", to, values)


def rejected(uow: UnitOfWork, settings: Settings, message: Message) -> Email:
    hs, to = _session(uow, message)
    values = {"reason": message.data["reason"], "fix_url": _url(settings, ONBOARDING_PATH, hs)}
    return Email("rejected", to, values)


def ready(uow: UnitOfWork, settings: Settings, message: Message) -> Email:
    hs, to = _session(uow, message)
    values = {
        "headshot_count": message.data["headshot_count"],
        "results_url": _url(settings, RESULTS_PATH, hs),
    }
    return Email("ready", to, values)


def failed(uow: UnitOfWork, settings: Settings, message: Message) -> Email:
    hs, to = _session(uow, message)
    stage = S(message.data["stage"])
    values = {
        "stage": stage_label(stage),
        "what_happened": _WHAT_HAPPENED.get(stage, WHAT_HAPPENED_DEFAULT),
        "what_to_do": WHAT_TO_DO,
        "waiting_url": _url(settings, WAITING_PATH, hs),
    }
    return Email("failed", to, values)


def invite(uow: UnitOfWork, settings: Settings, message: Message) -> Email:
    to = _user_recipient(uow, message.data["user_id"])
    user = uow.session.get(User, to.user_id)
    assert user is not None  # just read by _user_recipient
    values = {"invite_url": invite_url(settings, user), "valid_for": duration(settings.INVITE_TTL_SECONDS)}
    return Email("invite", to, values)


def duration(seconds: int) -> str:
    """'2 hours', '30 minutes', '1 day': how long a link works, in words."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
