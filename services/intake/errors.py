"""What intake's domain refuses, in plain words. Nothing here knows about HTTP: the web edge
(app.py, ``ERRORS``) maps each kind to a status, for the pages and the JSON API alike.

    raise NotEditable()                         # the session was submitted: no more changes
    raise RateLimited(retry_after=40)           # too many uploads in the last minute
    raise PhotoRefused("no_face", "We couldn't find a face in this photo. …")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class IntakeRefused(Exception):
    """A request intake refuses: a stable ``code`` for programs, a ``message`` for people."""

    code = "refused"
    default_message = "This can't be done."

    def __init__(self, message: str | None = None, fields: Mapping[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.fields = dict(fields or {})
        super().__init__(self.message)


class NotFound(IntakeRefused):
    """Not this person's (another person's or organization's id is simply not found)."""

    code = "not_found"

    def __init__(self, what: str = "session") -> None:
        super().__init__(f"No such {what}.")


class NotEditable(IntakeRefused):
    code = "not_editable"
    default_message = "Your photos have already been submitted, so this session can no longer be changed."


class RenewalOff(IntakeRefused):
    code = "renewal_off"
    default_message = "Your organization does not offer new headshot sessions."


class SessionInProgress(IntakeRefused):
    code = "session_in_progress"
    default_message = "You already have a headshot session in progress."


class Invalid(IntakeRefused):
    """Answers that break the session's rules; ``fields`` names each field and its messages."""

    code = "validation_failed"
    default_message = "Please fix the marked fields."


class ConfirmationNeeded(Invalid):
    code = "confirmation_needed"
    default_message = "Please confirm: your photos, headshots and answers are deleted for good."


class PhotoRefused(IntakeRefused):
    """A photo not kept: one of libs.imaging's reasons (``no_face``, ``unsupported_format``…) or
    ``too_many_photos``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class RateLimited(IntakeRefused):
    code = "too_many_uploads"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"That's a lot of photos at once. Please wait {retry_after} seconds and try again.")
        self.retry_after = retry_after
