"""What every Flask app shares: factory, errors, health, metrics, CSRF, auth and roles."""

from libs.web.app import configure_logging, create_base_app
from libs.web.auth import (
    TokenInvalid,
    current_user,
    get_blobs,
    get_db,
    get_settings,
    invite_url,
    login,
    login_required,
    logout,
    read_invite,
    require_user,
    sign,
    unsign,
)
from libs.web.csrf import csrf_token
from libs.web.errors import ApiError, error_response, not_found
from libs.web.live import ProgressClaims, progress_token, read_progress_token

__all__ = [
    "ApiError",
    "ProgressClaims",
    "TokenInvalid",
    "configure_logging",
    "create_base_app",
    "csrf_token",
    "current_user",
    "error_response",
    "get_blobs",
    "get_db",
    "get_settings",
    "invite_url",
    "login",
    "login_required",
    "logout",
    "not_found",
    "progress_token",
    "read_progress_token",
    "read_invite",
    "require_user",
    "sign",
    "unsign",
]
