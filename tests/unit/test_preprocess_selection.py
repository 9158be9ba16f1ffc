"""services/preprocess/selection.py: which photos are kept, in what order, and what a person reads."""

from __future__ import annotations

import pytest

from libs.imaging.quality import PhotoQuality
from services.preprocess.options import PreprocessOptions
from services.preprocess.selection import (
    BLURRY,
    DUPLICATE,
    MISSING,
    NO_FACE,
    SURPLUS,
    UNREADABLE,
    Candidate,
    choose,
    failure_reason,
)

FACE_A = [0.0] * 128
FACE_A_AGAIN = [0.005] * 128  # distance ~0.06: the same shot
FACE_A_OTHER_SHOT = [0.02] * 128  # distance ~0.23: the same person in another photo


def candidate(
    number: int, sharpness: float = 0.8, face: list[float] = FACE_A, phash: str = "0" * 16
) -> Candidate:
    quality = PhotoQuality(sharpness=sharpness, exposure=0.7, face_size=0.5, pose=0.9, face_fraction=0.34)
    return Candidate(f"p{number}", number, quality, face, phash)


def test_best_first_with_the_reasons_people_read() -> None:
    verdicts = choose(
        [
            candidate(1, sharpness=0.6),
            candidate(2, sharpness=0.9, face=FACE_A_OTHER_SHOT, phash="f" * 16),
            candidate(3, sharpness=0.1, face=FACE_A_OTHER_SHOT, phash="0f" * 8),
        ],
        keep_best=5,
        min_sharpness=0.25,
    )
    assert [(v.photo_id, v.kept) for v in verdicts] == [("p2", True), ("p1", True), ("p3", False)]
    assert verdicts[0].reason == "kept: sharpness 0.90, face 34% of frame"
    assert (verdicts[2].reason, verdicts[2].problem) == ("too blurry (sharpness 0.10)", BLURRY)


def test_of_the_same_shot_twice_the_better_one_stays() -> None:
    verdicts = choose(
        [candidate(1, sharpness=0.7), candidate(2, sharpness=0.8, face=FACE_A_AGAIN, phash="0" * 15 + "3")],
        keep_best=5,
        min_sharpness=0.25,
    )
    assert [(v.photo_id, v.kept, v.reason) for v in verdicts] == [
        ("p2", True, "kept: sharpness 0.80, face 34% of frame"),
        ("p1", False, "near-duplicate of photo 2"),
    ]
    assert verdicts[1].problem == DUPLICATE


def test_a_similar_face_with_a_different_picture_is_not_a_duplicate() -> None:
    verdicts = choose(
        [candidate(1), candidate(2, face=FACE_A_AGAIN, phash="ffff00000000ffff")],
        keep_best=5,
        min_sharpness=0.25,
    )
    assert all(v.kept for v in verdicts)


def test_only_the_best_n_are_kept() -> None:
    verdicts = choose(
        [candidate(n, sharpness=0.5 + n / 20, face=[n / 10] * 128, phash=f"{n:016x}") for n in range(1, 6)],
        keep_best=3,
        min_sharpness=0.25,
    )
    assert [v.photo_id for v in verdicts if v.kept] == ["p5", "p4", "p3"]
    assert {v.problem for v in verdicts if not v.kept} == {SURPLUS}
    assert verdicts[-1].reason.startswith("not among the best 3 (score ")


def test_failure_reasons_say_what_to_do() -> None:
    assert failure_reason([BLURRY, BLURRY], usable=0, needed=1) == (
        "All your photos are blurry. Please upload sharper ones."
    )
    assert "could not find your face" in failure_reason([NO_FACE], usable=0, needed=1)
    assert failure_reason([UNREADABLE, UNREADABLE], usable=0, needed=1) == (
        "We could not read your photos. Please upload them again."
    )
    assert "(1 could not be read, 1 could not be found)" in failure_reason(
        [UNREADABLE, MISSING], usable=0, needed=1
    )
    mixed = failure_reason([BLURRY, BLURRY, NO_FACE, None], usable=1, needed=3)
    assert mixed.startswith(
        "Only 1 of your 4 photos can be used and at least 3 are needed (2 are blurry, 1 shows no face"
    )
    assert "Please upload more photos" in mixed
    assert "no photos" in failure_reason([], usable=0, needed=1)


def test_settings_that_would_fail_every_session_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="PREPARE_MIN_PHOTOS"):
        PreprocessOptions(min_photos=0)
    with pytest.raises(ValueError, match="PREPARE_KEEP_BEST"):
        PreprocessOptions(keep_best=2, min_photos=3)
