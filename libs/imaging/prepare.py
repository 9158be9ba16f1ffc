"""Prepare one photo for training: upright, aligned, cropped, scored, with no metadata.

Usage (the preprocess worker, and its benchmark as "the direct calls")::

    prepared = prepare_photo(original_bytes, training_side=512)
    prepared.prepared_jpeg     # head-and-shoulders square, eyes level, at most 1024 px, no metadata
    prepared.training_jpeg     # the same framing, training_side x training_side
    prepared.quality.score     # higher is better (libs/imaging/quality.py)
    prepared.embedding, prepared.phash   # to find the same shot twice

Steps: decode the original (JPEG, PNG, HEIC) within the upload limits and apply its EXIF
orientation; find the face with intake's detector (the best-scoring one); take dlib's 5 landmarks;
turn the photo so the eyes are level and cut the head-and-shoulders square (align.py); score it
(quality.py); encode both sizes as JPEGs written from the pixels, so nothing of the original file
(EXIF, GPS, ICC, comments) survives. Raises :class:`PhotoRejected` (``corrupt``,
``unsupported_format``, ``too_many_pixels``, ``no_face``...) when the photo cannot be prepared.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from libs.imaging.align import Framing, head_and_shoulders
from libs.imaging.decode import load_rgb
from libs.imaging.errors import PhotoRejected
from libs.imaging.faces import WORK_LONG_SIDE, FaceBox, detect_faces, face_embedding, face_landmarks
from libs.imaging.limits import PhotoLimits
from libs.imaging.quality import PhotoQuality, measure, perceptual_hash
from libs.imaging.transforms import encode_jpeg, resize_long_side

PREPARED_SIDE = 1024  # largest side of the prepared crop (generation's reference image)


@dataclass(frozen=True)
class PreparedPhoto:
    prepared_jpeg: bytes
    training_jpeg: bytes
    quality: PhotoQuality
    embedding: tuple[float, ...]
    phash: str  # perceptual hash of the aligned crop, 16 hex digits
    roll_degrees: float  # how much the photo was turned to level the eyes


def prepare_photo(
    data: bytes,
    *,
    training_side: int,
    prepared_side: int = PREPARED_SIDE,
    limits: PhotoLimits | None = None,
) -> PreparedPhoto:
    """Everything the worker needs from one original photo (see the module's docstring)."""
    rgb = load_rgb(data, limits or PhotoLimits())
    box = find_face(rgb)
    framing = head_and_shoulders(box, face_landmarks(rgb, box))
    crop = framing.warp(rgb)
    training = square(crop, training_side)
    return PreparedPhoto(
        prepared_jpeg=encode_jpeg(resize_long_side(crop, prepared_side)),
        training_jpeg=encode_jpeg(training),
        quality=measure(crop, framing, photo_short_side=min(rgb.shape[:2])),
        embedding=face_embedding(rgb, box),
        phash=perceptual_hash(training),
        roll_degrees=round(framing.roll_degrees, 2),
    )


def find_face(rgb: np.ndarray) -> FaceBox:
    """The best-scoring face; a large photo with none found is searched again for smaller faces."""
    faces = detect_faces(rgb)
    if not faces and max(rgb.shape[:2]) > WORK_LONG_SIDE:
        faces = detect_faces(rgb, upsample=1)
    if not faces:
        raise PhotoRejected("no_face")
    return faces[0]


def square(crop: np.ndarray, side: int) -> np.ndarray:
    """Scale a square crop to ``side`` x ``side`` (area averaging down, cubic up)."""
    if side < 1:
        raise ValueError("side must be positive")
    interpolation = cv2.INTER_AREA if crop.shape[0] > side else cv2.INTER_CUBIC
    return cv2.resize(crop, (side, side), interpolation=interpolation)


__all__ = ["PREPARED_SIDE", "Framing", "PreparedPhoto", "find_face", "prepare_photo", "square"]
