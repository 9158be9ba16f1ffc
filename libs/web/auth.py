"""Sign-in, roles and signed tokens shared by every web service.

People sign in through signed links (invites) and stay signed in through Flask's signed,
HTTP-only session cookie holding their user id. ``current_user()`` reloads the user on each
request, so a deactivated user is out at once.

    token = sign(settings, "invite", {"user_id": u.id, "org_id": u.org_id})
    data = unsign(settings, "invite", token, max_age=settings.INVITE_TTL_SECONDS)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import current_app, g, session
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from libs.db import Database, Role, User
from libs.settings import Settings
from libs.storage import BlobStore
from libs.web.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])


class TokenInvalid(ValueError):
    def __init__(self, expired: bool) -> None:
        super().__init__("this link has expired" if expired else "this link is not valid")
        self.expired = expired


def _serializer(settings: Settings, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.SECRET_KEY, salt=f"headshots.{purpose}")


def sign(settings: Settings, purpose: str, payload: dict[str, Any]) -> str:
    return _serializer(settings, purpose).dumps(payload)


def unsign(settings: Settings, purpose: str, token: str, *, max_age: int) -> dict[str, Any]:
    try:
        data = _serializer(settings, purpose).loads(token, max_age=max_age)
    except SignatureExpired:
        raise TokenInvalid(expired=True) from None
    except BadSignature:
        raise TokenInvalid(expired=False) from None
    if not isinstance(data, dict):
        raise TokenInvalid(expired=False)
    return data


def invite_url(settings: Settings, user: User, path: str = "/invite/") -> str:
    """A signed, single-person sign-in link that expires after INVITE_TTL_SECONDS."""
    token = sign(settings, "invite", {"user_id": user.id, "org_id": user.org_id})
    return f"{settings.public_url}{path}{token}"


def read_invite(settings: Settings, token: str) -> dict[str, Any]:
    return unsign(settings, "invite", token, max_age=settings.INVITE_TTL_SECONDS)


def get_db() -> Database:
    return cast(Database, current_app.extensions["headshots.db"])


def get_blobs() -> BlobStore:
    return cast(BlobStore, current_app.extensions["headshots.blobs"])


def get_settings() -> Settings:
    return cast(Settings, current_app.extensions["headshots.settings"])


def login(user: User) -> None:
    session.clear()
    session.permanent = True
    session["user_id"] = user.id


def logout() -> None:
    session.clear()


def current_user() -> User | None:
    if "current_user" not in g:
        user_id = session.get("user_id")
        user = None
        if user_id:
            with get_db().session(all_orgs=True) as s:
                user = s.get(User, user_id)
                if user is not None and not user.active:
                    user = None
        g.current_user = user
    return cast(User | None, g.current_user)


def require_user(*roles: Role) -> User:
    user = current_user()
    if user is None:
        raise ApiError(401, "unauthorized", "Please sign in with your invite link.")
    if roles and user.role not in {r.value for r in roles}:
        # Not revealing what exists: pages of another role answer 404.
        raise ApiError(404, "not_found", "No such page.")
    return user


def login_required(*roles: Role) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            require_user(*roles)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate
