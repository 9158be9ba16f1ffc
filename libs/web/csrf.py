"""CSRF protection for every state-changing request.

A random token lives in the signed session cookie; forms send it as the ``csrf_token`` field and
scripts as the ``X-CSRF-Token`` header. Templates get ``csrf_token()``. Requests without a session
cookie (pure API clients with a bearer token, say) are not affected because they carry no
ambient credentials.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, request, session

from libs.web.errors import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def install_csrf(app: Flask) -> None:
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.before_request
    def _check_csrf() -> None:
        if request.method in SAFE_METHODS or app.config.get("CSRF_DISABLED"):
            return
        expected = session.get("csrf")
        if not expected and "user_id" not in session:
            return  # no ambient credentials to abuse
        sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
        if not expected or not hmac.compare_digest(str(expected), sent):
            raise ApiError(400, "csrf_failed", "This form has expired. Please reload the page and try again.")
