"""An employee's headshot sessions: finding them (owner only), starting one, what it may choose,
where it stands.

    actor = Actor.of(user)
    with db.uow(org_id=actor.org_id) as uow:
        hs = current_or_new_session(uow, actor)          # creates and commits one on first visit
        hs = find_session(uow, actor, session_id)        # NotFound unless it is the actor's

Every lookup goes through the tenant-scoped unit of work *and* checks the owner, so another
organization's or another person's session id is simply :class:`NotFound`. Only sessions in
``onboarding`` accept changes (:func:`require_editable`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from libs.catalog import Catalog, Style, default_catalog
from libs.contracts import SESSION_REJECTED, SessionState, stage_label
from libs.db import HeadshotSession, Organization, OutboxMessage, Photo, UnitOfWork, User
from services.intake.choices import Rules
from services.intake.errors import NotEditable, NotFound, RenewalOff, SessionInProgress

log = logging.getLogger("headshots.intake")

S = SessionState
# After submission the person waits; these states show the waiting page.
WAITING_STATES = frozenset(
    {S.SUBMITTED, S.IN_REVIEW, S.QUEUED, S.PREPROCESSING, S.TRAINING, S.GENERATING, S.FAILED}
)


@dataclass(frozen=True)
class Actor:
    """The signed-in person a command acts for."""

    user_id: str
    org_id: str

    @classmethod
    def of(cls, user: User) -> Actor:
        if user.org_id is None:  # support staff have no sessions of their own
            raise NotFound()
        return cls(user_id=user.id, org_id=user.org_id)


def find_session(uow: UnitOfWork, actor: Actor, session_id: str, *, lock: bool = False) -> HeadshotSession:
    """The actor's session ``session_id``, or :class:`NotFound`.

    ``lock=True`` serialises writers of this session until the transaction ends (submit, uploads).
    """
    if lock:
        found = uow.get_for_update(HeadshotSession, session_id)
    else:  # tenant-scoped: another organization's row is filtered out of this SELECT by construction
        found = uow.session.scalar(select(HeadshotSession).where(HeadshotSession.id == session_id))
    if found is None or found.user_id != actor.user_id or found.state == S.DELETED:
        raise NotFound()
    return found


def latest_session(uow: UnitOfWork, actor: Actor) -> HeadshotSession | None:
    return uow.session.scalar(
        select(HeadshotSession)
        .where(HeadshotSession.user_id == actor.user_id, HeadshotSession.state != S.DELETED)
        .order_by(HeadshotSession.created_at.desc())
        .limit(1)
    )


def current_or_new_session(uow: UnitOfWork, actor: Actor, catalog: Catalog | None = None) -> HeadshotSession:
    """The person's latest session; if they have none, a new one in ``onboarding`` with the org's
    package, created and committed here (a first visit's GET writes this row)."""
    latest = latest_session(uow, actor)
    if latest is not None:
        return latest
    org = uow.session.get(Organization, actor.org_id)
    if org is None:
        raise NotFound()
    return _new_session(uow, actor, org, catalog or default_catalog())


def can_start_new(uow: UnitOfWork, actor: Actor, hs: HeadshotSession) -> bool:
    """Renewal: the person's latest session is complete and the organization offers new ones."""
    org = uow.session.get(Organization, actor.org_id)
    if org is None or not org.renewal or hs.state != S.COMPLETED:
        return False
    latest = latest_session(uow, actor)
    return latest is not None and latest.id == hs.id


def start_new_session(uow: UnitOfWork, actor: Actor, catalog: Catalog | None = None) -> HeadshotSession:
    """Renewal: a fresh session after a completed one. Refused when the org has renewal off, or
    while a session is in progress. The person's row is locked so two clicks make one session."""
    uow.get_for_update(User, actor.user_id)
    org = uow.session.get(Organization, actor.org_id)
    if org is None or not org.renewal:
        raise RenewalOff()
    latest = current_or_new_session(uow, actor, catalog)
    if latest.state != S.COMPLETED:
        raise SessionInProgress()
    return _new_session(uow, actor, org, catalog or default_catalog())


def _new_session(uow: UnitOfWork, actor: Actor, org: Organization, catalog: Catalog) -> HeadshotSession:
    package = catalog.package(org.package_id)
    created = HeadshotSession(
        org_id=actor.org_id,
        user_id=actor.user_id,
        package_id=package.id,
        # The first format is the default, so a one-format package needs no choice at all.
        format_id=package.formats[0],
    )
    uow.session.add(created)
    uow.commit()
    log.info("session %s created for user %s", created.id, actor.user_id)
    return created


def require_editable(hs: HeadshotSession) -> None:
    if hs.state != S.ONBOARDING:
        raise NotEditable()


# --- what the session may choose --------------------------------------------------------------------------
def rules_for(uow: UnitOfWork, hs: HeadshotSession, catalog: Catalog | None = None) -> Rules:
    catalog = catalog or default_catalog()
    org = uow.session.get(Organization, hs.org_id)
    package = catalog.package(hs.package_id)
    everything = [s.id for s in catalog.all_styles()]
    allowed_by_org = set(org.allowed_styles) if org is not None and org.allowed_styles else set(everything)
    allowed = frozenset(sid for sid in everything if sid in allowed_by_org and sid not in package.preselected)
    return Rules(catalog, package, allowed, photo_count=count_photos(uow, hs))


def style_options(rules: Rules) -> list[Style]:
    """The styles the person may choose, in catalog order (backdrop by backdrop)."""
    return [s for s in rules.catalog.all_styles() if s.id in rules.allowed]


def count_photos(uow: UnitOfWork, hs: HeadshotSession) -> int:
    return uow.session.scalar(select(func.count()).select_from(Photo).where(Photo.session_id == hs.id)) or 0


def photos_of(uow: UnitOfWork, hs: HeadshotSession) -> list[Photo]:
    return list(
        uow.session.scalars(select(Photo).where(Photo.session_id == hs.id).order_by(Photo.created_at))
    )


# --- where it stands ----------------------------------------------------------------------------------------
def rejection_reason(uow: UnitOfWork, hs: HeadshotSession) -> str | None:
    """Why the org admin sent this session back, while it is back in onboarding (from the outbox,
    which is also the session's timeline)."""
    if hs.state != S.ONBOARDING:
        return None
    if hs.review_reason:  # stored on the session by the review console with the decision
        return hs.review_reason
    body = uow.session.scalar(
        select(OutboxMessage.body)
        .where(
            OutboxMessage.session_id == hs.id,
            OutboxMessage.org_id == hs.org_id,
            OutboxMessage.routing_key == SESSION_REJECTED.routing_key,
        )
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    )
    if body is None:
        return None
    try:
        return str(json.loads(body)["data"]["reason"])
    except (ValueError, KeyError, TypeError):
        return None


def status(hs: HeadshotSession) -> dict[str, Any]:
    """What the waiting page polls.

    ``{"session_id": "…", "state": "generating", "stage": "Creating your headshots",
    "progress": {"done": 3, "total": 12}, "submitted_at": "…", "completed_at": null,
    "headshots": [{"id": "…", "style": "navy:suit"}]}``
    """
    return {
        "session_id": hs.id,
        "state": hs.state,
        "stage": stage_label(hs.state),
        "progress": {"done": hs.progress_done, "total": hs.progress_total},
        "submitted_at": hs.submitted_at,
        "completed_at": hs.completed_at,
        "headshots": [{"id": h.id, "style": h.style_id} for h in hs.headshots],
    }
