"""Request-scoped helpers shared by the pages (views.py) and the API (api.py)."""

from __future__ import annotations

from libs.catalog import Catalog, default_catalog
from libs.db import User
from libs.web import current_user
from services.intake.onboarding import Actor, IntakeError


def catalog() -> Catalog:
    return default_catalog()


def signed_in() -> User | None:
    """The signed-in person, if they belong to an organization (support staff have no sessions)."""
    user = current_user()
    return user if user is not None and user.org_id is not None else None


def current_actor() -> Actor:
    user = signed_in()
    if user is None:
        raise IntakeError(401, "unauthorized", "Please sign in with the invite link your admin sent you.")
    return Actor.of(user)
