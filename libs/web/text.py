"""Requests carrying a NUL character are refused at the door, in every app.

    install_nul_check(app)     # in create_base_app, before any other check

No field of the product takes a NUL (``\\0``): not an id, a name, a reason or a search. PostgreSQL
cannot store one in text at all, and would refuse the query with a database error (a 500) at
whatever handler passed the value on. So a NUL anywhere in the URL's path, its query, a form field
or a string of a JSON body (keys included) is answered 400 ``nul_character`` before any handler
runs, with the same words on every endpoint. Uploaded files are bytes and are not looked at. A JSON
body nested too deeply for Python's reader is refused here too (400), as any unreadable body is.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from libs.web.errors import ApiError

NUL = "\x00"
MESSAGE = "The request contains a NUL character (\\0), which no field accepts."
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def install_nul_check(app: Flask) -> None:
    @app.before_request
    def _refuse_nul() -> None:
        if carries_nul():
            raise ApiError(400, "nul_character", MESSAGE)


def carries_nul() -> bool:
    if NUL in request.path:
        return True
    if any(NUL in key or NUL in value for key, value in request.args.items(multi=True)):
        return True
    # Reading the form takes the body: what reads it later gets the form, not the raw data.
    if request.mimetype in FORM_TYPES and any(
        NUL in key or NUL in value for key, value in request.form.items(multi=True)
    ):
        return True
    if not request.is_json:
        return False
    try:
        body = request.get_json(silent=True)  # kept: the view's own parsing reads it from the cache
    except RecursionError:  # Python's JSON reader gives up on about a thousand levels of nesting
        raise ApiError(400, "bad_request", "The JSON body is nested too deeply to read.") from None
    return _holds_nul(body)


def _holds_nul(body: Any) -> bool:
    """Whether any string of a parsed JSON body, or key of one of its objects, holds a NUL; walked
    without recursion, so a deeply nested body costs no stack."""
    waiting = [body]
    while waiting:
        value = waiting.pop()
        if isinstance(value, str):
            if NUL in value:
                return True
        elif isinstance(value, dict):
            if any(NUL in key for key in value):
                return True
            waiting.extend(value.values())
        elif isinstance(value, list):
            waiting.extend(value)
    return False
