"""Pixel transforms shared by the upload check and preprocess: crop, resize, clean JPEG.

Usage::

    small = resize_long_side(rgb, 1024)               # never enlarges
    crop = crop_face(rgb, box, size=512, margin=0.6)  # square, face-centred, 512 x 512
    data = encode_jpeg(crop)                          # baseline JPEG, quality 92, no metadata
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from libs.imaging.faces import FaceBox

JPEG_QUALITY = 92


def resize_long_side(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """Scale down so the longer side is ``long_side`` pixels; smaller images are returned as is."""
    if long_side < 1:
        raise ValueError("long_side must be positive")
    height, width = rgb.shape[:2]
    if max(height, width) <= long_side:
        return rgb
    scale = long_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def crop_face(rgb: np.ndarray, box: FaceBox, size: int = 512, margin: float = 0.6) -> np.ndarray:
    """Square crop centred on the face, ``margin`` x the face's size added on every side, as size x size.

    With the detector's box (eyebrows to chin), ``margin=0.6`` shows hair, ears and the neck: a
    headshot framing. Where the square runs past the photo's edge, the edge pixels are repeated
    rather than filled with a colour, so the model never learns black bars.
    """
    if size < 1:
        raise ValueError("size must be positive")
    height, width = rgb.shape[:2]
    side = max(1, round(max(box.w, box.h) * (1 + 2 * margin)))
    centre_x = box.x + box.w / 2
    centre_y = box.y + box.h / 2
    left = round(centre_x - side / 2)
    top = round(centre_y - side / 2)
    right, bottom = left + side, top + side
    # Take what lies inside the photo, then pad by repeating edges for what lies outside.
    inside = rgb[max(0, top) : min(height, bottom), max(0, left) : min(width, right)]
    if inside.size == 0:
        raise ValueError(f"face box {box} lies outside the {width}x{height} image")
    square = cv2.copyMakeBorder(
        np.ascontiguousarray(inside),
        max(0, -top),
        max(0, bottom - height),
        max(0, -left),
        max(0, right - width),
        cv2.BORDER_REPLICATE,
    )
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(square, (size, size), interpolation=interpolation)


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Encode pixels as a JPEG with no metadata at all (no EXIF, GPS, XMP, ICC or comments).

    Encoding from the pixel array, never from the uploaded file, is what guarantees that nothing
    the uploader put in the file (metadata, bytes after the image) survives.
    """
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(out, "JPEG", quality=quality)
    return out.getvalue()
