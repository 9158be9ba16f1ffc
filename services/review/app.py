"""The review web app: the org admin console (pages) and the org API under /api/v1/org.

    app = create_app(Settings.from_env())              # its own database and blob store
    app = create_app(settings, db=db, blobs=blobs)     # shared ones (the launcher, tests)

Mounted at /review in the embedded mode. Nothing happens at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, render_template

from libs.db import Database
from libs.settings import Settings
from libs.storage import BlobStore
from libs.web import create_base_app, error_response
from libs.web.api import ServiceApi
from libs.web.errors import wants_json
from libs.web.health import ReadyCheck
from services.review import (
    api,
    views_privacy,
    views_queue,
    views_results,
    views_settings,
    views_sign_in,
    views_team,
)
from services.review.errors import (
    AlreadyDecided,
    Conflict,
    Invalid,
    NotAllowed,
    NotFound,
    NotSignedIn,
    ReviewError,
    TooLarge,
)

STATUS: dict[type[ReviewError], int] = {
    NotSignedIn: 401,
    NotAllowed: 403,
    NotFound: 404,
    AlreadyDecided: 409,
    Conflict: 409,
    TooLarge: 413,
    Invalid: 422,
}


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    blobs: BlobStore | None = None,
    checks: Mapping[str, ReadyCheck] | None = None,
) -> Flask:
    if checks is None:
        checks = _default_checks(settings)
    app = create_base_app("services.review", "review", settings, db=db, blobs=blobs, checks=checks)
    app.config.update(
        API_TITLE="Headshots org API",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1/org",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {
                "description": "An organization's members, invites, review decisions and settings, for "
                "its admins' own tools. Authenticate with an org API key (`Authorization: Bearer <key>`, "
                "created in the console's settings) or the console's cookie with its csrf_token as "
                'X-CSRF-Token on writes. Errors: {"error": {"status", "code", "message", "fields"}}.'
            },
            "components": {
                "securitySchemes": {
                    "orgApiKey": {"type": "http", "scheme": "bearer"},
                    "consoleCookie": {"type": "apiKey", "in": "cookie", "name": "headshots_session"},
                },
            },
            "security": [{"orgApiKey": []}, {"consoleCookie": []}],
        },
    )

    @app.errorhandler(ReviewError)
    def _review_error(exc: ReviewError) -> Any:
        status = STATUS.get(type(exc), 400)
        if status == 401 and not wants_json():
            return render_template("signed_out.html"), 401
        return error_response(status, exc.code, exc.message, exc.fields or None)

    @app.after_request
    def _headers(response: Response) -> Response:
        # Pages show personal info and photos: never cached (the security headers come from libs/web).
        response.headers.setdefault("Cache-Control", "private, no-store")
        return response

    for module in (views_sign_in, views_queue, views_settings, views_team, views_results, views_privacy):
        app.register_blueprint(module.bp)
    smorest = ServiceApi(app)
    for blp in api.BLUEPRINTS:
        smorest.register_blueprint(blp)
    api.install_key_auth(app)
    return app


def _default_checks(settings: Settings) -> dict[str, ReadyCheck]:
    from libs.messaging import check_broker

    return {"broker": lambda: check_broker(settings)}
