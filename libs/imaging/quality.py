"""How good a photo is for training, and whether two photos are the same shot.

Usage::

    quality = measure(crop, framing, photo_short_side=min(h, w))   # PhotoQuality, each part in [0, 1]
    quality.score                                                   # the weighted mean: higher is better
    hash_ = perceptual_hash(crop)                                   # 16 hex digits (64 bits)
    near_duplicates(embedding_a, hash_a, embedding_b, hash_b)       # same shot twice?

Every measure is taken on the aligned crop (eyes level, same framing for every photo), on the face's
square, so photos of different sizes and framings compare fairly:

- sharpness: variance of the Laplacian of the face scaled to ``SHARPNESS_SIDE`` px, mapped to
  [0, 1) by v / (v + ``SHARPNESS_HALF``). A small face scaled up is blurrier, and that is right: it
  gives the model less detail;
- exposure: the face's mean brightness against mid-grey, less the share of clipped pixels;
- face size: the face's size in the photo's own pixels against what the training crop needs
  (a face below ``FULL_FACE_PIXELS`` px is enlarged, so it scores less);
- pose: how far the nose sits from the eyes' midpoint, sideways (0 = turned ~35 degrees or more).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from libs.imaging.align import Framing

SHARPNESS_SIDE = 160  # the face is measured at this size, whatever the photo's resolution
SHARPNESS_HALF = 60.0  # Laplacian variance that scores 0.5 (measured: sharp portraits 150-400)
FULL_FACE_PIXELS = 250  # a face this large (or larger) in the photo scores 1 for size
POSE_LIMIT = 0.5  # nose offset / eye distance that scores 0 (a face turned well to the side)
CLIPPED_LOW, CLIPPED_HIGH = 8, 247  # 8-bit brightness counted as crushed black / blown white

WEIGHTS = {"sharpness": 0.4, "exposure": 0.2, "face_size": 0.2, "pose": 0.2}

# Two photos are the same shot when BOTH hold: faces almost identical (the same person in two
# different photos is usually 0.2-0.4 apart; measured here, the astronaut and her mirror image 0.19)
# and pictures almost identical (perceptual hashes of the aligned crops differing in few bits).
DUPLICATE_DISTANCE = 0.12
DUPLICATE_HASH_BITS = 10


@dataclass(frozen=True)
class PhotoQuality:
    sharpness: float
    exposure: float
    face_size: float
    pose: float
    face_fraction: float  # the face's width / the photo's shorter side (not scored: for people)

    @property
    def score(self) -> float:
        return round(sum(weight * getattr(self, name) for name, weight in WEIGHTS.items()), 4)

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "score": self.score}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PhotoQuality:
        return cls(
            **{k: float(values[k]) for k in ("sharpness", "exposure", "face_size", "pose", "face_fraction")}
        )

    def summary(self) -> str:
        """``"sharpness 0.82, face 34% of frame"``: what a person reads in the ops timeline."""
        return f"sharpness {self.sharpness:.2f}, face {self.face_fraction:.0%} of frame"


def measure(crop: np.ndarray, framing: Framing, photo_short_side: int) -> PhotoQuality:
    """Score the aligned ``crop`` (``framing.warp(rgb)``) of a photo whose shorter side is given."""
    x, y, w, h = framing.face_in_crop
    face = crop[max(0, y) : max(0, y + h), max(0, x) : max(0, x + w)]
    if face.size == 0:
        raise ValueError("the face lies outside the crop")
    grey = cv2.cvtColor(np.ascontiguousarray(face), cv2.COLOR_RGB2GRAY)
    return PhotoQuality(
        sharpness=round(sharpness(grey), 4),
        exposure=round(exposure(grey), 4),
        face_size=round(min(1.0, framing.face_size / FULL_FACE_PIXELS), 4),
        pose=round(frontality(framing.landmarks), 4),
        face_fraction=round(min(1.0, framing.face_size / max(1, photo_short_side)), 4),
    )


def sharpness(grey_face: np.ndarray) -> float:
    """Variance of the Laplacian of the face at a fixed size, mapped to [0, 1)."""
    face = grey_face
    if max(face.shape[:2]) > SHARPNESS_SIDE:
        face = cv2.resize(face, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    variance = float(cv2.Laplacian(face, cv2.CV_64F).var())
    return variance / (variance + SHARPNESS_HALF)


def exposure(grey_face: np.ndarray) -> float:
    """1 for a face around mid-grey with nothing clipped; 0 for a black or white blot."""
    mean = float(grey_face.mean()) / 255
    clipped = float(((grey_face <= CLIPPED_LOW) | (grey_face >= CLIPPED_HIGH)).mean())
    return max(0.0, 1 - abs(mean - 0.5) / 0.4 - clipped)


def frontality(landmarks: Sequence[tuple[float, float]]) -> float:
    """1 for a face looking at the camera, falling to 0 as the head turns (from aligned landmarks)."""
    first = ((landmarks[0][0] + landmarks[1][0]) / 2, (landmarks[0][1] + landmarks[1][1]) / 2)
    second = ((landmarks[2][0] + landmarks[3][0]) / 2, (landmarks[2][1] + landmarks[3][1]) / 2)
    eye_distance = math.dist(first, second)
    if eye_distance < 1:
        return 0.0
    offset = abs(landmarks[4][0] - (first[0] + second[0]) / 2) / eye_distance
    return max(0.0, 1 - offset / POSE_LIMIT)


def perceptual_hash(rgb: np.ndarray) -> str:
    """64-bit DCT hash (pHash) as 16 hex digits: equal for the same picture re-encoded or resized."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].flatten()
    bits = low > np.median(low[1:])  # the DC term (overall brightness) would skew the median
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hash_bits_apart(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def near_duplicates(
    embedding_a: Sequence[float], hash_a: str, embedding_b: Sequence[float], hash_b: str
) -> bool:
    """The same shot twice: a tiny face distance AND near-equal perceptual hashes."""
    return (
        math.dist(embedding_a, embedding_b) <= DUPLICATE_DISTANCE
        and hash_bits_apart(hash_a, hash_b) <= DUPLICATE_HASH_BITS
    )
