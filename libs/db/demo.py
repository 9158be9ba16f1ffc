"""Demo data for the embedded mode: two organizations, an admin, employees and a support user.

Idempotent: running it again finds the same rows (by slug and e-mail) instead of adding more.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from libs.db.database import Database
from libs.db.models import Organization, Role, User


@dataclass(frozen=True)
class DemoData:
    org_id: str
    admin: User
    employees: tuple[User, ...]
    other_org_id: str
    other_employee: User
    support: User


_ORGS = (
    ("demo", "Acme Corporation", "executive", False),
    ("globex", "Globex", "starter", True),
)
_USERS = (
    ("demo", "admin@acme.example", "Alex Admin", Role.ORG_ADMIN),
    ("demo", "bea@acme.example", "Bea Employee", Role.EMPLOYEE),
    ("demo", "carl@acme.example", "Carl Employee", Role.EMPLOYEE),
    ("globex", "dana@globex.example", "Dana Employee", Role.EMPLOYEE),
    (None, "support@headshots.example", "Sam Support", Role.SUPPORT),
)


def seed_demo(db: Database) -> DemoData:
    with db.uow(all_orgs=True) as uow:
        s = uow.session
        orgs: dict[str, Organization] = {}
        for slug, name, package, manual in _ORGS:
            org = s.scalar(select(Organization).where(Organization.slug == slug))
            if org is None:
                org = Organization(slug=slug, name=name, package_id=package, manual_review=manual)
                s.add(org)
                s.flush()
            orgs[slug] = org
        users: dict[str, User] = {}
        for org_slug, email, display, role in _USERS:
            org_id = orgs[org_slug].id if org_slug else None
            same_org = User.org_id.is_(None) if org_id is None else User.org_id == org_id
            user = s.scalar(select(User).where(User.email == email, same_org))
            if user is None:
                user = User(org_id=org_id, email=email, display_name=display, role=role.value)
                s.add(user)
                s.flush()
            users[email] = user
        uow.commit()
    return DemoData(
        org_id=orgs["demo"].id,
        admin=users["admin@acme.example"],
        employees=(users["bea@acme.example"], users["carl@acme.example"]),
        other_org_id=orgs["globex"].id,
        other_employee=users["dana@globex.example"],
        support=users["support@headshots.example"],
    )
