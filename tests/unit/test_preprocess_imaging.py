"""libs/imaging/prepare.py on real portraits: orientation, alignment, crops, metadata, scores, duplicates.

The portraits are skimage's astronaut and matplotlib's Grace Hopper (tests/support/photos.py);
every variant (sideways with an EXIF tag, tilted, blurred, mirrored, enlarged) is built from them.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from libs.imaging import PhotoRejected, detect_faces
from libs.imaging.faces import face_landmarks
from libs.imaging.prepare import PreparedPhoto, prepare_photo
from libs.imaging.quality import hash_bits_apart, near_duplicates
from tests.support.photos import (
    astronaut,
    blurred,
    camera_jpeg,
    enlarged,
    grace_hopper,
    heic,
    jpeg,
    mirrored,
    png,
    turned,
)

PORTRAITS = {"astronaut": astronaut, "grace_hopper": grace_hopper}


def prepare(data: bytes) -> PreparedPhoto:
    return prepare_photo(data, training_side=512)


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def eye_tilt_degrees(rgb: np.ndarray) -> float:
    """How far from level the eyes are in ``rgb``, found again from scratch."""
    box = detect_faces(rgb)[0]
    points = face_landmarks(rgb, box)
    a = np.mean(points[0:2], axis=0)
    b = np.mean(points[2:4], axis=0)
    (lx, ly), (rx, ry) = sorted([tuple(a), tuple(b)])
    return math.degrees(math.atan2(ry - ly, rx - lx))


@pytest.fixture(scope="module")
def upright() -> dict[str, PreparedPhoto]:
    return {name: prepare(jpeg(photo())) for name, photo in PORTRAITS.items()}


def test_the_crops_are_squares_with_the_face_in_the_upper_middle(upright: dict[str, PreparedPhoto]) -> None:
    for name, prepared in upright.items():
        crop = pixels(prepared.prepared_jpeg)
        assert crop.shape[0] == crop.shape[1] <= 1024, name
        assert pixels(prepared.training_jpeg).shape == (512, 512, 3), name
        face = detect_faces(crop)[0]  # the face is still there, whole, and framed head-and-shoulders
        centre_x = (face.x + face.w / 2) / crop.shape[1]
        centre_y = (face.y + face.h / 2) / crop.shape[0]
        assert 0.4 < centre_x < 0.6 and 0.3 < centre_y < 0.55, (name, face, crop.shape)
        assert 0.25 < face.w / crop.shape[1] < 0.5, (name, face)


def test_a_tilted_head_comes_out_with_the_eyes_level() -> None:
    original = turned(astronaut(), 12)
    assert abs(eye_tilt_degrees(original)) > 8  # the test photo really is tilted
    prepared = prepare(jpeg(original))
    assert abs(prepared.roll_degrees) > 8
    assert abs(eye_tilt_degrees(pixels(prepared.training_jpeg))) < 2


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("name", sorted(PORTRAITS))
def test_sideways_photos_are_turned_upright_by_their_exif_tag(
    orientation: int, name: str, upright: dict[str, PreparedPhoto]
) -> None:
    data = camera_jpeg(PORTRAITS[name](), orientation)
    prepared = prepare(data)  # a face lying sideways or upside down would not even be found
    reference = upright[name]
    assert hash_bits_apart(prepared.phash, reference.phash) <= 6
    assert math.dist(prepared.embedding, reference.embedding) < 0.1
    assert abs(prepared.roll_degrees - reference.roll_degrees) < 2


def test_no_metadata_survives_in_either_crop() -> None:
    original = camera_jpeg(astronaut(), 6)
    assert b"Exif" in original[:200] and b"PhoneMaker" in original
    prepared = prepare(original)
    for data in (prepared.prepared_jpeg, prepared.training_jpeg):
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "JPEG"
            assert not image.getexif() and "icc_profile" not in image.info and "exif" not in image.info
        assert b"Exif" not in data and b"PhoneMaker" not in data
        assert data.endswith(b"\xff\xd9")


def test_a_blurred_copy_scores_below_the_sharp_photo(upright: dict[str, PreparedPhoto]) -> None:
    for name, photo in PORTRAITS.items():
        soft = prepare(jpeg(blurred(photo(), 2.0)))
        sharp = upright[name]
        assert soft.quality.sharpness < sharp.quality.sharpness - 0.2, name
        assert soft.quality.score < sharp.quality.score, name


def test_an_exact_copy_is_a_near_duplicate_and_a_different_photo_is_not(
    upright: dict[str, PreparedPhoto],
) -> None:
    sharp = upright["astronaut"]
    copy = prepare(png(astronaut()))  # the same picture in another file format
    assert near_duplicates(sharp.embedding, sharp.phash, copy.embedding, copy.phash)
    other_shot = prepare(jpeg(mirrored(astronaut())))  # same person, another picture
    assert not near_duplicates(sharp.embedding, sharp.phash, other_shot.embedding, other_shot.phash)
    other_person = upright["grace_hopper"]
    assert not near_duplicates(sharp.embedding, sharp.phash, other_person.embedding, other_person.phash)


def test_a_large_photo_gives_a_crop_of_at_most_1024_px_and_a_full_face_size_score() -> None:
    prepared = prepare(jpeg(enlarged(astronaut(), 3000, 3000), quality=90))
    crop = pixels(prepared.prepared_jpeg)
    assert crop.shape[:2] == (1024, 1024)
    assert prepared.quality.face_size == 1.0
    assert 0.15 < prepared.quality.face_fraction < 0.2


def test_heic_originals_are_prepared(upright: dict[str, PreparedPhoto]) -> None:
    prepared = prepare(heic(astronaut()))
    assert hash_bits_apart(prepared.phash, upright["astronaut"].phash) <= 6


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (jpeg(astronaut())[:5000], "corrupt"),
        (b"GIF89a" + b"\0" * 100, "unsupported_format"),
    ],
)
def test_unreadable_originals_are_refused_with_their_code(data: bytes, code: str) -> None:
    with pytest.raises(PhotoRejected) as refused:
        prepare(data)
    assert refused.value.code == code


def test_a_photo_without_a_face_is_refused() -> None:
    from skimage import data

    with pytest.raises(PhotoRejected) as refused:
        prepare(jpeg(data.coffee()))
    assert refused.value.code == "no_face"
