"""Face alignment: turn the photo so the eyes are level and cut a head-and-shoulders square.

Usage::

    box = detect_faces(rgb)[0]
    framing = head_and_shoulders(box, face_landmarks(rgb, box))
    crop = framing.warp(rgb)                   # side x side pixels, eyes level, at the photo's scale
    framing.face_in_crop                       # (x, y, w, h) of the face inside ``crop``

The geometry is derived from the detector's box (eyebrows to chin, about cheek to cheek; its size
``s`` is the scale) and the landmarks (the eyes give the angle and the anchor point). In the aligned
frame the square reaches ``HEADROOM`` x s above the eyes (forehead, hair, some air) and
``SIDE_FACTOR`` x s in all, so the chin sits in the upper middle and the shoulders show below it.
Pixels past the photo's edge repeat the edge (as :func:`libs.imaging.transforms.crop_face`), so a
model never learns black corners.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from libs.imaging.faces import FaceBox

SIDE_FACTOR = 2.8  # crop side / face size: head, neck and the top of the shoulders
HEADROOM = 1.1  # face sizes between the eyes and the top of the crop


@dataclass(frozen=True)
class Framing:
    """Where to cut the aligned square out of a photo, and where the face and landmarks land in it."""

    matrix: np.ndarray  # 2x3 affine map, photo pixels -> crop pixels (rotation + translation)
    side: int  # of the square, in the photo's pixels (the crop is not scaled)
    face_size: float  # the detector's box size, in pixels
    roll_degrees: float  # how far the eyes were from level (positive: right eye lower)
    landmarks: tuple[tuple[float, float], ...]  # the 5 landmarks, in crop pixels

    @property
    def face_in_crop(self) -> tuple[int, int, int, int]:
        """The face's square (x, y, w, h) in the crop: centred between the eyes and the nose."""
        (lx, ly), (rx, ry) = self.eyes
        nose_x, nose_y = self.landmarks[4]
        centre_x = (lx + rx) / 2
        centre_y = (ly + nose_y) / 2
        size = round(self.face_size)
        return round(centre_x - size / 2), round(centre_y - size / 2), size, size

    @property
    def eyes(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """(image-left eye, image-right eye) centres in the crop."""
        return _eye_centres(self.landmarks)

    def warp(self, rgb: np.ndarray) -> np.ndarray:
        """The aligned square, ``side`` x ``side`` pixels."""
        return cv2.warpAffine(
            np.ascontiguousarray(rgb),
            self.matrix,
            (self.side, self.side),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )


def head_and_shoulders(box: FaceBox, landmarks: Sequence[tuple[float, float]]) -> Framing:
    """The framing of a head-and-shoulders square, eyes level, for the face in ``box``."""
    if len(landmarks) != 5:
        raise ValueError(f"expected dlib's 5 landmarks, got {len(landmarks)}")
    (lx, ly), (rx, ry) = _eye_centres(landmarks)
    angle = math.atan2(ry - ly, rx - lx)
    cos, sin = math.cos(angle), math.sin(angle)
    # Rotating by -angle about the eyes' midpoint levels them: A @ (rx - lx, ry - ly) = (d, 0).
    rotation = np.array([[cos, sin], [-sin, cos]])
    face_size = float(max(box.w, box.h))
    side = max(1, round(face_size * SIDE_FACTOR))
    mid = np.array([(lx + rx) / 2, (ly + ry) / 2])
    anchor = np.array([side / 2, HEADROOM * face_size])  # where the eyes' midpoint lands
    offset = anchor - rotation @ mid
    matrix = np.hstack([rotation, offset.reshape(2, 1)])
    moved = tuple(
        (float(p[0]), float(p[1])) for p in (rotation @ np.asarray(landmarks, dtype=float).T).T + offset
    )
    return Framing(matrix, side, face_size, math.degrees(angle), moved)


def _eye_centres(
    landmarks: Sequence[tuple[float, float]],
) -> tuple[tuple[float, float], tuple[float, float]]:
    first = ((landmarks[0][0] + landmarks[1][0]) / 2, (landmarks[0][1] + landmarks[1][1]) / 2)
    second = ((landmarks[2][0] + landmarks[3][0]) / 2, (landmarks[2][1] + landmarks[3][1]) / 2)
    return (first, second) if first[0] <= second[0] else (second, first)
