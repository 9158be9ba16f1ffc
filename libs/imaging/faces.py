"""Face detection (dlib's HOG detector) and face embeddings (dlib's ResNet), all offline.

Usage::

    from libs.imaging.faces import detect_faces, face_distance, face_embedding
    boxes = detect_faces(rgb)          # rgb: HxWx3 uint8 numpy array
    if len(boxes) == 1:
        box = boxes[0]                 # FaceBox(x, y, w, h, score), in rgb's pixel coordinates
        vector = face_embedding(rgb, box)           # 128 floats
        points = face_landmarks(rgb, box)           # 5 (x, y): eye corners, base of the nose
        same = face_distance(vector, other) <= 0.6  # dlib's usual same-person threshold

Why HOG with a score cut: measured here, it gave no false positives on photos without a face
(skimage's camera, cat, coffee, rocket) once detections scoring under ``SCORE_CUT`` are dropped,
while Haar cascades fired on a cat and a coffee cup. See /work/shared/ENVIRONMENT.md.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Detections scoring below this are dropped. Measured on skimage.data: the astronaut's face scores
# ~1.2-1.5, while the best non-face detections (camera's coat, rocket's clouds, the astronaut's
# flag patch) score at most ~0.12. 0.4 sits well clear of both.
SCORE_CUT = 0.4

# Large images are scaled down to this longest side before detection: HOG cost grows with the pixel
# count, and a face big enough for a headshot is still far above the detector's ~80 px minimum.
WORK_LONG_SIDE = 1024

# Images whose longest side is at most this are upsampled once (2x) by the detector, so faces of
# ~40-80 px (the HOG window is 80 px) are still found. Costs ~4x the time, so only for small images.
UPSAMPLE_UP_TO = 800


@dataclass(frozen=True)
class FaceBox:
    """A face's bounding box in the analysed image's pixels, with the detector's confidence."""

    x: int
    y: int
    w: int
    h: int
    score: float


_detector: Any = None
_detector_lock = threading.Lock()
# dlib's detector and networks are not safe for concurrent use: two threads running the same
# detector crash the whole process (segfault, reproduced with four threads on the astronaut).
# Each call holds its model's lock; a check is ~0.1 s, so uploads queue briefly instead of crashing.
_detect_call = threading.Lock()
_embed_call = threading.Lock()


def _get_detector() -> Any:
    """Build dlib's detector once, on first use (never at import: importing stays cheap)."""
    global _detector
    if _detector is None:
        with _detector_lock:
            if _detector is None:
                import dlib

                _detector = dlib.get_frontal_face_detector()
    return _detector


def _to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """dlib wants a contiguous uint8 RGB (or grey) array; accept grey and RGBA too."""
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    return np.ascontiguousarray(image)


def detect_faces(rgb: np.ndarray, score_cut: float = SCORE_CUT, upsample: int | None = None) -> list[FaceBox]:
    """Find frontal faces in an HxWx3 uint8 RGB image; best score first.

    Boxes are in ``rgb``'s own coordinates (scaled back if the image was analysed smaller) and
    clipped to the frame. ``upsample`` (times the detector doubles the working image) defaults to
    once for small images, never for large ones; pass 1 to look for smaller faces at ~4x the cost.
    """
    image = _to_rgb_uint8(rgb)
    height, width = image.shape[:2]
    scale = 1.0
    long_side = max(height, width)
    if long_side > WORK_LONG_SIDE:
        import cv2

        scale = WORK_LONG_SIDE / long_side
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if upsample is None:
        upsample = 1 if max(image.shape[:2]) <= UPSAMPLE_UP_TO else 0

    detector = _get_detector()
    with _detect_call:
        rects, scores, _kinds = detector.run(image, upsample, score_cut)
    faces = []
    for rect, score in zip(rects, scores, strict=True):
        if score < score_cut:
            continue
        left = max(0, round(rect.left() / scale))
        top = max(0, round(rect.top() / scale))
        right = min(width, round((rect.right() + 1) / scale))
        bottom = min(height, round((rect.bottom() + 1) / scale))
        if right <= left or bottom <= top:
            continue
        faces.append(FaceBox(left, top, right - left, bottom - top, float(score)))
    faces.sort(key=lambda f: f.score, reverse=True)
    return faces


# --- embeddings ------------------------------------------------------------------------------------
# dlib's ResNet maps an aligned face to 128 floats; two photos of one person are usually closer than
# 0.6 (euclidean). Measured here: same person at most 0.28, different people at least 0.64.
# The 5-point landmark model aligns the face; the 68-point one is not licensed for commercial use.
EMBEDDING_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARK_MODEL = "shape_predictor_5_face_landmarks.dat"

_embedder: tuple[Any, Any] | None = None
_embedder_lock = threading.Lock()


def models_dir() -> Path:
    """Folder of the .dat files shipped by the face-recognition-models package.

    Found without importing the package: its ``__init__`` imports ``pkg_resources``, which recent
    setuptools no longer has.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-recognition-models is not installed (see requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _get_embedder() -> tuple[Any, Any]:
    """(shape predictor, ResNet), loaded once on first use (~0.3 s), shared by every thread."""
    global _embedder
    if _embedder is None:
        with _embedder_lock:
            if _embedder is None:
                import dlib

                folder = models_dir()
                _embedder = (
                    dlib.shape_predictor(str(folder / LANDMARK_MODEL)),
                    dlib.face_recognition_model_v1(str(folder / EMBEDDING_MODEL)),
                )
    return _embedder


def face_embedding(rgb: np.ndarray, box: FaceBox) -> tuple[float, ...]:
    """The 128-float embedding of the face in ``box`` (a box from :func:`detect_faces` on ``rgb``)."""
    import dlib

    image = _to_rgb_uint8(rgb)
    predictor, resnet = _get_embedder()
    rect = dlib.rectangle(box.x, box.y, box.x + box.w - 1, box.y + box.h - 1)
    with _embed_call:
        landmarks = predictor(image, rect)
        descriptor = resnet.compute_face_descriptor(image, landmarks)
    return tuple(float(v) for v in descriptor)


def face_landmarks(rgb: np.ndarray, box: FaceBox) -> tuple[tuple[float, float], ...]:
    """dlib's 5 landmarks of the face in ``box``, as (x, y) in ``rgb``'s pixels.

    Points 0-1 are the corners of one eye, 2-3 of the other, 4 the base of the nose (the model's
    order: which eye comes first depends on the face, so callers sort the eyes by x).
    """
    import dlib

    image = _to_rgb_uint8(rgb)
    predictor, _resnet = _get_embedder()
    rect = dlib.rectangle(box.x, box.y, box.x + box.w - 1, box.y + box.h - 1)
    with _embed_call:
        shape = predictor(image, rect)
    return tuple((float(p.x), float(p.y)) for p in shape.parts())


def face_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Euclidean distance between two embeddings: under ~0.6 means the same person."""
    if len(a) != len(b):
        raise ValueError(f"embeddings differ in length: {len(a)} and {len(b)}")
    return math.dist(a, b)
