"""The ops web app: support staff's pages (views.py, views_infra.py) and JSON API (api.py).

    app = create_app(settings, db=db, blobs=blobs)    # mounted at /ops by the launcher

Every route but the sign-in link, static files and health answers only support staff: 401 when
signed out, 403 for org admins and employees. Nothing happens at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, render_template, request
from flask_smorest import Api
from werkzeug.exceptions import UnprocessableEntity

from libs.db import Database
from libs.settings import Settings
from libs.storage import BlobStore
from libs.web import ApiError, create_base_app, error_response
from libs.web.errors import request_errors, wants_json
from libs.web.health import ReadyCheck
from services.ops import api, views, views_infra
from services.ops.access import require_support
from services.ops.schemas import ErrorSchema

OPEN_ENDPOINTS = frozenset({"ops.invite", "ops.sign_out", "static", "healthz", "readyz", "metrics"})
NAV = (
    ("ops.sessions", "Sessions"),
    ("ops_infra.queues", "Queues"),
    ("ops_infra.dead_letters", "Dead letters"),
    ("ops_infra.workers", "Workers"),
    ("ops_infra.mail", "Mail"),
    ("ops_infra.webhooks", "Webhooks"),
    ("ops_infra.audit", "Audit log"),
)


class OpsApi(Api):
    """flask-smorest without its own error handlers: libs/web's one error shape everywhere."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        pass


def duration(seconds: float) -> str:
    """3 s, 4 min 10 s, 2 h 5 min, 3 d 4 h: readable at a glance."""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    blobs: BlobStore | None = None,
    checks: Mapping[str, ReadyCheck] | None = None,
) -> Flask:
    app = create_base_app("services.ops", "ops", settings, db=db, blobs=blobs, checks=checks)
    app.config.update(
        API_TITLE="Headshots ops API",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=api.PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {
                "description": "Support staff's view across organizations. Sign in with a support link "
                '(session cookie). Errors: {"error": {"status", "code", "message", "fields"}}.'
            }
        },
    )
    app.jinja_env.filters["duration"] = duration

    @app.before_request
    def _only_support() -> None:
        if request.endpoint not in OPEN_ENDPOINTS:
            require_support()

    @app.context_processor
    def _nav() -> dict[str, Any]:
        try:
            return {"nav": NAV if request.endpoint not in OPEN_ENDPOINTS else ()}
        except RuntimeError:
            return {"nav": ()}

    @app.errorhandler(UnprocessableEntity)
    def _invalid_request(exc: UnprocessableEntity) -> Response:
        # Support's filters are query arguments: a wrong one is a 400 (the page or call is fine).
        where, fields = request_errors(exc)
        if where == {"query"}:
            return error_response(400, "bad_filter", "Please fix the filter.", fields or None)
        return error_response(422, "validation_failed", "Please fix the marked fields.", fields or None)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        # Pages get an error page in the ops look (libs/web's plain one has an inline style,
        # which the strict CSP blocks); API clients get the one JSON shape.
        if not wants_json():
            page = render_template("error.html", status=exc.status, message=exc.message, fields=exc.fields)
            return page, exc.status
        return error_response(exc.status, exc.code, exc.message, exc.fields or None)

    @app.after_request
    def _private(response: Response) -> Response:
        response.headers.setdefault("Cache-Control", "private, no-store")
        return response

    app.register_blueprint(views.bp)
    app.register_blueprint(views_infra.bp)
    smorest = OpsApi(app)
    smorest.register_blueprint(api.blp)
    smorest.register_blueprint(api.deliveries_blp)
    return app
