"""What the console's domain refuses, in plain words. The web edge (app.py) maps each kind to an
HTTP status; nothing here knows about HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ReviewError(Exception):
    code = "review_error"

    def __init__(self, message: str, fields: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})


class NotSignedIn(ReviewError):
    code = "unauthorized"


class NotAllowed(ReviewError):
    code = "forbidden"


class NotFound(ReviewError):
    code = "not_found"


class AlreadyDecided(ReviewError):
    code = "already_decided"


class Conflict(ReviewError):
    code = "conflict"


class Invalid(ReviewError):
    code = "validation_failed"


class TooLarge(ReviewError):
    code = "too_large"
