"""Who may use ops: support staff only. Signed-out visitors are asked to sign in (401); a signed-in
org admin or employee gets 403 on every page and API (support is the only cross-org role, and
they already know ops exists, so there is nothing to hide by answering 404).

    @bp.before_request
    def _only_support(): require_support()
"""

from __future__ import annotations

from libs.db import Role, User
from libs.web import ApiError, current_user


def require_support() -> User:
    user = current_user()
    if user is None:
        raise ApiError(401, "unauthorized", "Please sign in with your support sign-in link.")
    if user.role != Role.SUPPORT.value:
        raise ApiError(403, "forbidden", "The ops dashboard is for support staff only.")
    return user
