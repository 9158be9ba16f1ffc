"""The numbers a photo is checked against, with the product's defaults.

Usage::

    limits = PhotoLimits.from_settings(settings)      # what the deployment configured
    limits = PhotoLimits(min_side=256)                # tests and tools pick their own
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from libs.settings import Settings


@dataclass(frozen=True)
class PhotoLimits:
    """Upload limits; see docs/photo-checks.md for what each one means."""

    max_bytes: int = 50 * 1024 * 1024  # file size
    max_pixels: int = 60_000_000  # width x height, read from the header before decoding
    min_side: int = 512  # shorter side of the photo
    min_face_width: int = 410  # face width required in a full-resolution phone photo...
    min_face_fraction: float = 0.15  # ...or this fraction of the shorter side, if smaller
    same_person_distance: float = 0.6  # largest embedding distance counted as the same person

    @classmethod
    def from_settings(cls, settings: Settings) -> PhotoLimits:
        return cls(
            max_bytes=settings.MAX_UPLOAD_BYTES,
            max_pixels=settings.MAX_IMAGE_PIXELS,
            min_side=settings.MIN_PHOTO_SIDE,
            min_face_width=settings.MIN_FACE_WIDTH,
            min_face_fraction=settings.MIN_FACE_FRACTION,
            same_person_distance=settings.SAME_PERSON_DISTANCE,
        )

    def required_face_width(self, width: int, height: int) -> int:
        """Face width (pixels) a ``width`` x ``height`` photo needs.

        ``min(min_face_width, min_face_fraction x shorter side)``: a full-resolution phone photo
        (3024 px short side) needs 410 px; a 512 px photo needs ~77 px.
        """
        return min(self.min_face_width, round(self.min_face_fraction * min(width, height)))
