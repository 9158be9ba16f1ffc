"""Check one uploaded photo and produce the clean copy to store.

Usage (the upload endpoint)::

    limits = PhotoLimits.from_settings(settings)
    try:
        checked = check_photo(data, limits, others=[p.embedding for p in accepted_photos])
    except PhotoRejected as refused:
        return jsonify(refused.to_dict()), refused.http_status
    store(original=data, clean=checked.clean_jpeg)   # the caller keeps both; it also names them

The checks, in order, each with its own code (see errors.REASONS):

1. ``file_too_large`` (413): more than ``max_bytes`` (50 MB).
2. ``unsupported_format`` (415): not JPEG, PNG or HEIC, judged by the first bytes, never the name.
3. ``too_many_pixels`` (413): the header declares more than ``max_pixels`` (60 MP); refused before
   any pixel is decoded (decompression bombs).
4. ``corrupt`` (422): the header or the pixel data is damaged or truncated.
5. ``too_small`` (422): the shorter side is under ``min_side`` (512 px).
6. ``no_face`` / ``several_faces`` (422): exactly one face must be found.
7. ``face_cut_off`` (422): the face must lie wholly inside the frame, with room to spare: the
   detector's box (eyebrows to chin) must keep 25% of its height above it (the forehead), and 10%
   of its size below it and on each side (chin, ears).
8. ``face_too_small`` (422): the face (the box's width, about cheek to cheek) must be at least
   ``min(min_face_width, min_face_fraction x shorter side)`` pixels wide. With the defaults
   (410 px, 0.15) a full-resolution phone photo (3024 px shorter side) needs a 410 px face, a 2000
   px photo 300 px, a 512 px photo 77 px (skimage's astronaut, face ~91 px at 512 px, passes).
9. ``different_person`` (422): the face's embedding must lie within ``same_person_distance`` (0.6)
   of the session's accepted photos: the median distance to them is compared, so one odd accepted
   photo cannot block the rest, and a look-alike of a single photo cannot slip in.

A photo that passes is returned re-encoded: upright (EXIF orientation applied), sRGB, transparency
flattened onto white, as a JPEG (quality 92) written from the pixels, so no metadata (EXIF, GPS,
XMP, ICC, comments) and no bytes appended after the image survive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from libs.imaging.decode import decode_rgb, open_image
from libs.imaging.errors import PhotoRejected
from libs.imaging.faces import WORK_LONG_SIDE, FaceBox, detect_faces, face_embedding
from libs.imaging.identity import same_person
from libs.imaging.limits import PhotoLimits
from libs.imaging.transforms import encode_jpeg

# Room the face needs between the detector's box and the frame, as fractions of the box's size.
# The box runs from the eyebrows to the chin, so the forehead needs the most.
MARGIN_ABOVE = 0.25
MARGIN_BELOW = 0.10
MARGIN_SIDES = 0.10


@dataclass(frozen=True)
class CheckedPhoto:
    """An accepted photo: the clean JPEG to store and what was learned about it."""

    clean_jpeg: bytes
    width: int  # of the clean (upright) image
    height: int
    source_format: str  # "JPEG", "PNG" or "HEIF"
    face: FaceBox  # in the clean image's pixels
    embedding: tuple[float, ...]  # 128 floats, to compare with the session's later photos


def check_photo(data: bytes, limits: PhotoLimits, others: Sequence[Sequence[float]] = ()) -> CheckedPhoto:
    """Run every upload check on ``data``; raise :class:`PhotoRejected` at the first that fails.

    ``others`` are the embeddings of the photos already accepted for this session.
    """
    image, source_format = open_image(data, limits)
    with image:
        # The shorter side does not change with orientation: refuse small photos before decoding.
        if min(image.size) < limits.min_side:
            raise PhotoRejected(
                "too_small",
                f"This photo is {image.width} x {image.height} pixels; it needs to be at least "
                f"{limits.min_side} x {limits.min_side}.",
            )
        rgb = decode_rgb(image)

    height, width = rgb.shape[:2]
    face = _the_one_face(rgb)
    _check_face_in_frame(face, width, height)
    required = limits.required_face_width(width, height)
    if face.w < required:
        raise PhotoRejected(
            "face_too_small",
            f"Your face is too small in this photo ({face.w} pixels wide; it needs {required}). "
            "Please use a closer photo.",
        )

    embedding = face_embedding(rgb, face)
    if not same_person(embedding, others, limits.same_person_distance):
        raise PhotoRejected("different_person")

    return CheckedPhoto(
        clean_jpeg=encode_jpeg(rgb),
        width=width,
        height=height,
        source_format=source_format,
        face=face,
        embedding=embedding,
    )


def _the_one_face(rgb: np.ndarray) -> FaceBox:
    faces = detect_faces(rgb)
    if not faces and max(rgb.shape[:2]) > WORK_LONG_SIDE:
        # Large photos are searched at a reduced size where faces under ~80 px vanish. Look again
        # for smaller faces, so a distant face is reported as "too small" rather than "no face";
        # this costs ~0.4 s, only on photos about to be refused anyway.
        faces = detect_faces(rgb, upsample=1)
    if not faces:
        raise PhotoRejected("no_face")
    if len(faces) > 1:
        raise PhotoRejected("several_faces")
    return faces[0]


def _check_face_in_frame(face: FaceBox, width: int, height: int) -> None:
    if (
        face.x < MARGIN_SIDES * face.w
        or face.x + face.w > width - MARGIN_SIDES * face.w
        or face.y < MARGIN_ABOVE * face.h
        or face.y + face.h > height - MARGIN_BELOW * face.h
    ):
        raise PhotoRejected("face_cut_off")
