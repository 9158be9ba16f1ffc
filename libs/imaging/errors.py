"""Why a photo was refused: a stable code for programs, plain words for people, an HTTP status.

Usage::

    try:
        checked = check_photo(data, limits)
    except PhotoRejected as refused:
        return jsonify(refused.to_dict()), refused.http_status
"""

from __future__ import annotations

from typing import Any

# code -> (HTTP status, default message). The codes are part of the API (the upload page and the
# ops dashboard key on them): add new ones, never rename.
REASONS: dict[str, tuple[int, str]] = {
    "unsupported_format": (415, "This file type isn't supported. Please upload a JPEG, PNG or HEIC photo."),
    "file_too_large": (413, "This file is too large."),
    "too_many_pixels": (413, "This image has too many pixels."),
    "corrupt": (422, "This file is damaged or incomplete and can't be opened as a photo."),
    "too_small": (422, "This photo is too small."),
    "no_face": (
        422,
        "We couldn't find a face in this photo. Please use a photo where your face is clearly visible.",
    ),
    "several_faces": (422, "This photo shows more than one face. Please use a photo of just yourself."),
    "face_cut_off": (
        422,
        "Your face is cut off by the edge of the photo. Please use a photo with your whole face in it.",
    ),
    "face_too_small": (422, "Your face is too small in this photo. Please use a closer photo."),
    "different_person": (422, "This looks like a different person from your other photos."),
}


class PhotoRejected(Exception):
    """A photo refused for one reason; ``code`` is one of :data:`REASONS`."""

    def __init__(self, code: str, message: str | None = None) -> None:
        if code not in REASONS:
            raise ValueError(f"unknown rejection code {code!r}")
        status, default_message = REASONS[code]
        self.code = code
        self.message = message or default_message
        self.http_status = status
        super().__init__(f"{code}: {self.message}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON body an upload endpoint answers with."""
        return {"code": self.code, "message": self.message}
