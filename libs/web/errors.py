"""One error shape for every service.

JSON (API routes and any client that prefers JSON)::

    {"error": {"status": 422, "code": "validation_failed", "message": "Please fix the marked fields.",
               "fields": {"full_name": ["Please enter your name."]}}}

HTML pages get the same information on a plain error page. Unexpected exceptions are logged with
their traceback and answered 500 with no detail, never a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template_string, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger("headshots.web")


class ApiError(Exception):
    """Raise from a view to answer a clear 4xx: ``raise ApiError(404, "not_found", "No such session.")``."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}


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

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{ status }} · Headshots</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#1d2330}
h1{font-size:1.4rem}ul{color:#a12a2a}a{color:#2350c8}</style></head><body>
<h1>{{ message }}</h1>{% if fields %}<ul>{% for f, msgs in fields.items() %}<li><b>{{ f }}</b>: {{ msgs|join(' ') }}</li>{% endfor %}</ul>{% endif %}
<p><a href="javascript:history.back()">Go back</a></p></body></html>"""


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
            render_template_string(_PAGE, status=status, message=message, fields=fields or {})
        )
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.fields)

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

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Something went wrong on our side. Please try again.")
