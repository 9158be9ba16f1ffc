"""Org API keys: created by an admin (the key is shown once), stored as a SHA-256 hash, revocable,
with the time each was last used.

A key acts for the admin who created it, so it lives no longer than their access: deactivating
(or erasing) that admin revokes their keys in the same transaction, and a key whose creator is no
longer an active admin of the organization is refused even if it somehow escaped revocation.

    key, plain = create_key(uow, reviewer, "HR sync")     # plain: "hsk_…", never stored
    reviewer = authenticate(db, "hsk_…")                  # raises NotSignedIn if unknown or revoked
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from libs.db import Database, OrgApiKey, Role, UnitOfWork, User, utcnow
from services.review.audit import audit
from services.review.decisions import Reviewer
from services.review.errors import Invalid, NotFound, NotSignedIn

PREFIX = "hsk_"
# last_used_at is written at most this often per key, so a busy tool does not write on every call.
TOUCH_EVERY = timedelta(seconds=60)


def hash_key(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def create_key(uow: UnitOfWork, reviewer: Reviewer, name: str) -> tuple[OrgApiKey, str]:
    name = name.strip()
    if not name or len(name) > 100:
        raise Invalid("Please name the key.", {"name": ["A short name, e.g. “HR sync” (1–100 characters)."]})
    plain = PREFIX + secrets.token_urlsafe(32)
    key = OrgApiKey(
        org_id=reviewer.org_id,
        name=name,
        prefix=plain[:12],
        key_hash=hash_key(plain),
        created_by=reviewer.user_id,
    )
    uow.session.add(key)
    uow.session.flush()
    audit(uow, reviewer, "api_key.create", key.id, before={}, after={"name": name, "prefix": key.prefix})
    return key, plain


def list_keys(uow: UnitOfWork) -> list[OrgApiKey]:
    return list(uow.session.scalars(select(OrgApiKey).order_by(OrgApiKey.created_at.desc())))


def revoke_key(uow: UnitOfWork, reviewer: Reviewer, key_id: str) -> OrgApiKey:
    key = uow.session.scalar(select(OrgApiKey).where(OrgApiKey.id == key_id))
    if key is None:
        raise NotFound("No such API key.")
    _revoke(uow, reviewer, key)
    return key


def revoke_keys_of(uow: UnitOfWork, reviewer: Reviewer, user_id: str, why: str) -> int:
    """Revoke every live key the member created (they are being deactivated); how many."""
    keys = uow.session.scalars(
        select(OrgApiKey).where(OrgApiKey.created_by == user_id, OrgApiKey.revoked_at.is_(None))
    ).all()
    for key in keys:
        _revoke(uow, reviewer, key, why=why)
    return len(keys)


def _revoke(uow: UnitOfWork, reviewer: Reviewer, key: OrgApiKey, **extra: str) -> None:
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        audit(
            uow,
            reviewer,
            "api_key.revoke",
            key.id,
            before={"revoked": False},
            after={"revoked": True},
            **extra,
        )


def authenticate(db: Database, plain: str) -> Reviewer:
    """The org (and the admin who created the key) an API key acts for."""
    if not plain.startswith(PREFIX):
        raise NotSignedIn("This API key is not valid.")
    digest = hash_key(plain)
    with db.uow(all_orgs=True) as uow:  # the key itself says which org: looked up across orgs
        key = uow.session.scalar(select(OrgApiKey).where(OrgApiKey.key_hash == digest))
        if key is None or key.revoked_at is not None:
            raise NotSignedIn("This API key is not valid or has been revoked.")
        creator = uow.session.get(User, key.created_by) if key.created_by else None
        if creator is None or not _acting_admin(creator, key.org_id):
            raise NotSignedIn("This API key's creator is no longer an admin here: the key no longer works.")
        now = utcnow()
        if key.last_used_at is None or now - key.last_used_at > TOUCH_EVERY:
            uow.session.execute(update(OrgApiKey).where(OrgApiKey.id == key.id).values(last_used_at=now))
            uow.commit()
        return Reviewer(user_id=key.created_by, org_id=key.org_id)


def _acting_admin(user: User, org_id: str) -> bool:
    return user.active and user.org_id == org_id and user.role == Role.ORG_ADMIN.value
