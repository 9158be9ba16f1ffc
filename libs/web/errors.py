"""One error shape for every service.

JSON (API routes and any client that prefers JSON)::

    {"error": {"status": 422, "code": "validation_failed", "message": "Please fix the marked fields.",
               "fields": {"full_name": ["Please enter your name."]}}}

HTML pages get the same information on a plain error page. Unexpected exceptions are logged with
their traceback and answered 500 with no detail, never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, render_template_string, request
from werkzeug.exceptions import HTTPException, UnprocessableEntity

log = logging.getLogger("headshots.web")


class ApiError(Exception):
    """Raise from a view to answer a clear 4xx: ``raise ApiError(404, "not_found", "No such session.")``.

    A service's web edge also builds one from each of its domain's refusals (one table per
    service, e.g. services/intake/app.py ``ERRORS``); ``headers`` go on the answer (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.headers = dict(headers or {})


def not_found(what: str = "page") -> ApiError:
    return ApiError(404, "not_found", f"No such {what}.")


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
}

# No inline style or script (the Content-Security-Policy forbids both): the look comes from
# libs/web/static/error.css, served by every app, and "Go back" is a plain link.
_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{ status }} · Headshots</title>
<link rel="stylesheet" href="{{ url_for('headshots_web.static', filename='error.css') }}"></head><body>
<h1>{{ message }}</h1>{% if fields %}<ul>{% for f, msgs in fields.items() %}<li><b>{{ f }}</b>: {{ msgs|join(' ') }}</li>{% endfor %}</ul>{% endif %}
<p><a href="{{ back }}">Go back</a></p></body></html>"""


def wants_json() -> bool:
    if request.path.startswith("/api/") or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return (
        best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def error_response(status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> Response:
    if wants_json():
        body: dict[str, Any] = {"status": status, "code": code, "message": message}
        if fields:
            body["fields"] = fields
        response = jsonify({"error": body})
    else:
        response = Response(
            render_template_string(
                _PAGE, status=status, message=message, fields=_flat(fields or {}), back=_back_url()
            )
        )
    response.status_code = status
    return response


def api_error_response(exc: ApiError) -> Response:
    response = error_response(exc.status, exc.code, exc.message, exc.fields)
    response.headers.update(exc.headers)
    return response


def _flat(fields: dict[str, Any], prefix: str = "") -> dict[str, list[str]]:
    """{"styles": {"0": ["Too long."]}} -> {"styles.0": ["Too long."]}: one line per message."""
    flat: dict[str, list[str]] = {}
    for name, value in fields.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flat(value, f"{key}."))
        else:
            flat[key] = [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]
    return flat


def _back_url() -> str:
    """The page the person came from when it is ours, else this app's home page."""
    referrer = request.referrer or ""
    return referrer if referrer.startswith(request.host_url) else request.script_root + "/"


def request_errors(exc: HTTPException) -> tuple[set[str], dict[str, Any]]:
    """What request parsing refused: webargs (flask-smorest) reports ``{"json": {"field": [...]}}``;
    the locations (json, query, form...) and the fields without their location, so API clients get
    one shape whatever failed."""
    messages: Any = (getattr(exc, "data", None) or {}).get("messages") or {}
    fields: dict[str, Any] = {}
    for value in messages.values() if isinstance(messages, dict) else ():
        if isinstance(value, dict):
            fields.update(value)
    return (set(messages) if isinstance(messages, dict) else set()), fields


def register_error_handlers(app: Flask) -> None:
    # Serves error.css for the error page at /_web/error.css, whatever the app's own static files.
    app.register_blueprint(
        Blueprint("headshots_web", __name__, static_folder="static", static_url_path="/_web")
    )

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return api_error_response(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = "That file or request is too large."
        response = error_response(status, _CODES.get(status, "http_error"), message)
        if status == 405 and exc.get_response().allow:
            response.allow.update(exc.get_response().allow)
        return response

    @app.errorhandler(UnprocessableEntity)
    def _invalid_request(exc: UnprocessableEntity) -> Response:
        _, fields = request_errors(exc)
        return error_response(422, "validation_failed", "Please fix the marked fields.", fields or None)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Something went wrong on our side. Please try again.")
