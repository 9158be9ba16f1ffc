"""Request-scoped helpers shared by the pages (views.py) and the API (api.py)."""

from __future__ import annotations

from libs.catalog import Catalog, default_catalog
from libs.db import User
from libs.web import current_user, require_user
from services.intake.sessions import Actor


def catalog() -> Catalog:
    return default_catalog()


def signed_in() -> User | None:
    """The signed-in person, if they belong to an organization (support staff have no sessions)."""
    user = current_user()
    return user if user is not None and user.org_id is not None else None


def current_actor() -> Actor:
    """The signed-in person as the actor of intake's commands: 401 when signed out (libs.web's
    ``require_user``); support staff, who have no sessions, find none (404)."""
    return Actor.of(require_user())
