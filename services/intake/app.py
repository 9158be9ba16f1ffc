"""The intake web app: employee pages (views.py) and the JSON API under /api/v1 (api.py).

    app = create_app(Settings.from_env())              # its own database and blob store
    app = create_app(settings, db=db, blobs=blobs)     # shared ones (the launcher, tests)

Nothing happens at import; the database connects on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, render_template

from libs.db import Database
from libs.imaging.errors import REASONS
from libs.settings import Settings
from libs.storage import BlobStore
from libs.web import ApiError, create_base_app
from libs.web.api import ServiceApi
from libs.web.errors import api_error_response, wants_json
from libs.web.health import ReadyCheck
from services.intake import api, views, views_privacy
from services.intake.errors import (
    IntakeRefused,
    Invalid,
    NotEditable,
    NotFound,
    PhotoRefused,
    RateLimited,
    RenewalOff,
    SessionInProgress,
)

API_VERSION = "1"

# What the domain refuses -> HTTP status: the one table, for the pages and the JSON API alike.
ERRORS: dict[type[IntakeRefused], int] = {
    RenewalOff: 403,
    NotFound: 404,
    NotEditable: 409,
    SessionInProgress: 409,
    Invalid: 422,  # and ConfirmationNeeded
    PhotoRefused: 422,  # unless libs.imaging names another status for the reason (413, 415)
    RateLimited: 429,
}


def to_api_error(exc: IntakeRefused) -> ApiError:
    """The answer to a refusal: status from :data:`ERRORS` (most specific class first)."""
    status = next((ERRORS[kind] for kind in type(exc).__mro__ if kind in ERRORS), 400)
    if isinstance(exc, PhotoRefused) and exc.code in REASONS:
        status = REASONS[exc.code][0]
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else {}
    return ApiError(status, exc.code, exc.message, exc.fields or None, headers=headers)


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    blobs: BlobStore | None = None,
    checks: Mapping[str, ReadyCheck] | None = None,
) -> Flask:
    if checks is None:
        checks = _default_checks(settings)
    app = create_base_app("services.intake", "intake", settings, db=db, blobs=blobs, checks=checks)
    app.config.update(
        API_TITLE="Headshots intake API",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {
                "description": "An employee's journey from invite link to submitted photos. Sign in with "
                "the invite link (a session cookie); send the session's csrf_token as X-CSRF-Token on "
                'every write. Errors: {"error": {"status", "code", "message", "fields"}}.'
            }
        },
    )

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        if exc.status == 401 and not wants_json():  # signed out: the home page says how to sign in
            return render_template("home.html", signed_out=True), 401
        return api_error_response(exc)

    @app.errorhandler(IntakeRefused)
    def _refused(exc: IntakeRefused) -> Any:
        return _api_error(to_api_error(exc))

    @app.after_request
    def _private(response: Response) -> Response:
        # Pages and answers show personal info and photos: keep them out of shared and back-button
        # caches (thumbnails and downloads set their own short private caching). The security
        # headers (CSP, frame and sniffing rules) come from libs/web for every app.
        response.headers.setdefault("Cache-Control", "private, no-store")
        return response

    app.register_blueprint(views.bp)
    app.register_blueprint(views_privacy.bp)
    smorest = ServiceApi(app)
    smorest.register_blueprint(api.blp)
    return app


def _default_checks(settings: Settings) -> dict[str, ReadyCheck]:
    """Run alone, intake is ready when its broker answers too (the outbox relay needs it)."""
    from libs.messaging import check_broker

    return {"broker": lambda: check_broker(settings)}
