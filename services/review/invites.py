"""Inviting people, sending an invite again, deactivating a member.

Each new person is a ``User`` row plus a ``member.invited`` event (ids only; the notification
service reads the address and sends the expiring link), written in one transaction: an import is
whole or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from libs.contracts import MEMBER_INVITED, new_message
from libs.db import Role, UnitOfWork, User
from services.review import apikeys
from services.review.audit import audit
from services.review.csvimport import Invitee
from services.review.decisions import Reviewer
from services.review.errors import Conflict, NotFound


@dataclass(frozen=True)
class InviteResult:
    invited: list[User]
    already_members: list[str]  # addresses skipped because they are in the org already


def invite(uow: UnitOfWork, reviewer: Reviewer, invitees: list[Invitee]) -> InviteResult:
    existing = set(uow.session.scalars(select(User.email).where(User.org_id == reviewer.org_id)))
    invited: list[User] = []
    skipped: list[str] = []
    for person in invitees:
        if person.email in existing:
            skipped.append(person.email)
            continue
        user = User(
            org_id=reviewer.org_id,
            email=person.email,
            display_name=person.name or person.email.split("@")[0],
            role=Role.EMPLOYEE.value,
        )
        uow.session.add(user)
        invited.append(user)
        existing.add(person.email)
    uow.session.flush()  # ids for the events
    for user in invited:
        uow.add_message(
            new_message(
                MEMBER_INVITED,
                org_id=reviewer.org_id,
                session_id=None,
                user_id=user.id,
                invited_by=reviewer.user_id,
            )
        )
    if invited:
        audit(uow, reviewer, "members.invite", reviewer.org_id, before={}, after={"invited": len(invited)})
    return InviteResult(invited, skipped)


def _member(uow: UnitOfWork, user_id: str) -> User:
    user = uow.session.scalar(select(User).where(User.id == user_id))  # tenant-scoped
    if user is None:
        raise NotFound("No such member.")
    return user


def resend(uow: UnitOfWork, reviewer: Reviewer, user_id: str) -> User:
    user = _member(uow, user_id)
    if not user.active:
        raise Conflict("This member is deactivated: their invite cannot be sent.")
    uow.add_message(
        new_message(
            MEMBER_INVITED,
            org_id=reviewer.org_id,
            session_id=None,
            user_id=user.id,
            invited_by=reviewer.user_id,
        )
    )
    # Nothing on the member changes; the entry says an invite went out (the target is their id).
    audit(uow, reviewer, "members.resend", user.id, before={}, after={"invite": "sent again"})
    return user


def deactivate(uow: UnitOfWork, reviewer: Reviewer, user_id: str) -> User:
    """Their links stop signing in at once, and the API keys they created are revoked with them;
    their data stays until deleted."""
    user = _member(uow, user_id)
    if user.id == reviewer.user_id:
        raise Conflict("You cannot deactivate yourself.")
    if user.active:
        user.active = False
        audit(uow, reviewer, "members.deactivate", user.id, before={"active": True}, after={"active": False})
    apikeys.revoke_keys_of(uow, reviewer, user.id, why="creator deactivated")
    return user
