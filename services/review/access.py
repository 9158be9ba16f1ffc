"""Who is acting on the console and the org API: a signed-in org admin (cookie), or an org API key.

Employees and support staff are refused (403): the console is for their organization's admins.
"""

from __future__ import annotations

from flask import g

from libs.db import Role, User
from libs.web import current_user
from services.review.decisions import Reviewer
from services.review.errors import NotAllowed, NotSignedIn


def signed_in_admin() -> User | None:
    """The signed-in org admin, if the cookie belongs to one (for headers and sign-in pages)."""
    user = current_user()
    if user is None or user.org_id is None or user.role != Role.ORG_ADMIN.value:
        return None
    return user


def current_reviewer() -> Reviewer:
    """The acting admin: an API key checked by the API's before_request, else the cookie's user."""
    by_key = g.get("api_key_reviewer")
    if by_key is not None:
        return by_key  # type: ignore[no-any-return]
    user = current_user()
    if user is None:
        raise NotSignedIn("Please sign in with your admin invite link.")
    if user.org_id is None or user.role != Role.ORG_ADMIN.value:
        raise NotAllowed("Only your organization's admins can open the admin console.")
    return Reviewer(user_id=user.id, org_id=user.org_id)
