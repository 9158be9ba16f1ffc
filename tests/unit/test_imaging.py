"""Every verdict of libs.imaging.check_photo, on real photos that ship inside installed packages.

Photos used (nothing is downloaded at run time):
- skimage.data.astronaut(): a 512 x 512 portrait (Eileen Collins), the photo that must pass;
- skimage.data camera(), chelsea() (a cat), coffee(), rocket(): real photos with no human face;
- matplotlib's sample_data/grace_hopper.jpg (512 x 600, in the matplotlib wheel): a second real
  portrait of a different adult, for the "different person" verdict. Chosen because it is a real,
  frontal, well-lit photo of another woman (a harder pair than a man and a woman), in a small wheel
  (~10 MB) that a plotting library's examples keep stable. Measured: astronaut vs Grace Hopper 0.70,
  above the 0.6 threshold, while the astronaut vs herself mirrored is 0.19. Rejected alternatives:
  face_recognition's wheel ships no images (obama.jpg/biden.jpg live only in its repository), and
  skimage's lfw_subset() holds 25 x 25 crops, far below the 512 px minimum and too small for a
  meaningful embedding.
"""

from __future__ import annotations

import io
import resource
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
import skimage.data
from PIL import Image

from libs.imaging import (
    REASONS,
    CheckedPhoto,
    FaceBox,
    PhotoLimits,
    PhotoRejected,
    check_photo,
    crop_face,
    encode_jpeg,
    load_rgb,
    resize_long_side,
    sniff_format,
)
from libs.settings import Settings

LIMITS = PhotoLimits()


# --- building test files -----------------------------------------------------------------------
def png_bytes(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG")
    return out.getvalue()


def jpeg_bytes(rgb: np.ndarray, **save_options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=95, **save_options)
    return out.getvalue()


def resized(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))


def at_least_512(rgb: np.ndarray) -> np.ndarray:
    """Grey photos to RGB, and small ones scaled up so the shorter side is 512."""
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=-1)
    height, width = rgb.shape[:2]
    scale = max(1.0, 512 / min(height, width))
    return resized(rgb, round(width * scale), round(height * scale))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width: int, height: int) -> bytes:
    """A valid-looking RGB PNG whose header declares width x height, with one tiny IDAT: a bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def refusal(data: bytes, limits: PhotoLimits = LIMITS, others: tuple = ()) -> PhotoRejected:
    with pytest.raises(PhotoRejected) as caught:
        check_photo(data, limits, others)
    return caught.value


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def astronaut_checked(astronaut: np.ndarray) -> CheckedPhoto:
    return check_photo(png_bytes(astronaut), LIMITS)


@pytest.fixture(scope="module")
def grace_hopper_bytes() -> bytes:
    from matplotlib import cbook

    with open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), "rb") as f:
        return f.read()


# --- accepted ------------------------------------------------------------------------------------
def test_the_astronaut_portrait_is_accepted(astronaut_checked: CheckedPhoto) -> None:
    checked = astronaut_checked
    assert (checked.width, checked.height, checked.source_format) == (512, 512, "PNG")
    # The face is where the Haar cascade and our eyes put it: about (177, 66), ~95 px wide.
    assert 150 < checked.face.x < 200 and 50 < checked.face.y < 100 and 75 < checked.face.w < 120
    assert len(checked.embedding) == 128
    assert checked.clean_jpeg.startswith(b"\xff\xd8") and checked.clean_jpeg.endswith(b"\xff\xd9")


def test_jpeg_and_heic_are_accepted_too(astronaut: np.ndarray) -> None:
    import pillow_heif

    heic = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(astronaut)).save(heic, quality=90)
    assert sniff_format(heic.getvalue()) == "HEIF"
    assert check_photo(heic.getvalue(), LIMITS).source_format == "HEIF"
    assert check_photo(jpeg_bytes(astronaut), LIMITS).source_format == "JPEG"


# --- format, size and pixel limits ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["GIF", "BMP", "TIFF", "WEBP"])
def test_other_image_formats_are_unsupported(astronaut: np.ndarray, kind: str) -> None:
    out = io.BytesIO()
    Image.fromarray(astronaut).save(out, kind)
    refused = refusal(out.getvalue())
    assert (refused.code, refused.http_status) == ("unsupported_format", 415)
    assert "JPEG, PNG or HEIC" in refused.message


def test_text_named_like_a_photo_is_unsupported() -> None:
    # Only the bytes count: what a client calls "selfie.jpg" is just this text.
    refused = refusal(b"Hello, I am definitely a JPEG.\n" * 20)
    assert (refused.code, refused.http_status) == ("unsupported_format", 415)


def test_a_file_over_the_byte_limit_is_refused_before_anything_else(astronaut: np.ndarray) -> None:
    data = png_bytes(astronaut)
    refused = refusal(data, PhotoLimits(max_bytes=len(data) - 1))
    assert (refused.code, refused.http_status) == ("file_too_large", 413)
    assert "MB" in refused.message
    check_photo(data, PhotoLimits(max_bytes=len(data)))  # exactly at the limit passes


def test_a_decompression_bomb_is_refused_fast_without_allocating(monkeypatch) -> None:
    bomb = png_declaring(30_000, 30_000)  # 900 megapixels, 2.7 GB decoded; 100 bytes on disk
    assert len(bomb) < 200
    # Take Pillow's own guard away: our header check alone must stop it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    peak_rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    started = time.perf_counter()
    try:
        refused = refusal(bomb)
        elapsed = time.perf_counter() - started
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_rss_before
    assert (refused.code, refused.http_status) == ("too_many_pixels", 413)
    assert "30000 x 30000" in refused.message
    assert elapsed < 0.5
    assert traced_peak < 1_000_000
    assert grown_kib < 50 * 1024


def test_pillows_own_bomb_guard_is_reported_as_too_many_pixels_too() -> None:
    refused = refusal(png_declaring(30_000, 30_000))
    assert (refused.code, refused.http_status) == ("too_many_pixels", 413)


def test_the_pixel_limit_is_a_parameter() -> None:
    assert refusal(png_declaring(8000, 8000)).code == "too_many_pixels"  # 64 MP > 60 MP
    # Under a higher limit the same header is let through to decoding, which finds no pixel data.
    assert refusal(png_declaring(8000, 8000), PhotoLimits(max_pixels=70_000_000)).code == "corrupt"


def test_a_truncated_jpeg_is_corrupt(astronaut: np.ndarray) -> None:
    data = jpeg_bytes(astronaut)
    refused = refusal(data[: len(data) // 2])
    assert (refused.code, refused.http_status) == ("corrupt", 422)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xd8\xff" + b"\x00" * 100, b"\x89PNG\r\n\x1a\n" + b"garbage" * 10],
    ids=["empty", "jpeg-magic-then-zeros", "png-magic-then-garbage"],
)
def test_damaged_files_are_corrupt(data: bytes) -> None:
    refused = refusal(data)
    assert (refused.code, refused.http_status) == ("corrupt", 422)


def test_a_photo_under_512px_is_too_small(astronaut: np.ndarray) -> None:
    refused = refusal(png_bytes(resized(astronaut, 400, 300)))
    assert (refused.code, refused.http_status) == ("too_small", 422)
    assert "400 x 300" in refused.message and "512" in refused.message
    # min_side is a parameter.
    check_photo(png_bytes(astronaut), PhotoLimits(min_side=512))
    assert refusal(png_bytes(astronaut), PhotoLimits(min_side=513)).code == "too_small"


# --- faces ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["camera", "chelsea", "coffee", "rocket"])
def test_photos_without_a_face_are_refused(name: str) -> None:
    photo = at_least_512(getattr(skimage.data, name)())
    refused = refusal(png_bytes(photo))
    assert (refused.code, refused.http_status) == ("no_face", 422)


def test_two_faces_are_refused(astronaut: np.ndarray) -> None:
    refused = refusal(png_bytes(np.concatenate([astronaut, astronaut], axis=1)))
    assert refused.code == "several_faces"


def test_a_face_cut_by_the_top_edge_is_refused(astronaut: np.ndarray) -> None:
    # Cut the forehead off (the face box starts at y~76), scaled up to stay over 512 px.
    cut = resized(astronaut[70:], 640, 553)
    assert refusal(png_bytes(cut)).code == "face_cut_off"
    # The same framing with the forehead still in is fine: the margin is not over-strict.
    assert check_photo(png_bytes(resized(astronaut[40:], 640, 590)), LIMITS).face.w > 0


def test_a_face_cut_by_the_side_edge_is_refused(astronaut: np.ndarray) -> None:
    # The face box spans x~175-266; cut through the left cheek.
    cut = resized(astronaut[:, 185:], 654, 1024)
    assert refusal(png_bytes(cut)).code == "face_cut_off"


def test_a_small_face_in_a_large_photo_is_too_small(astronaut: np.ndarray) -> None:
    # The whole 512 px portrait pasted into a 1400 px canvas: face ~91 px, 0.15 x 1400 = 210 needed.
    canvas = np.full((1400, 1400, 3), 200, np.uint8)
    canvas[100:612, 100:612] = astronaut
    refused = refusal(png_bytes(canvas))
    assert (refused.code, refused.http_status) == ("face_too_small", 422)
    assert "needs 210" in refused.message


def test_a_face_too_small_for_a_full_resolution_photo(astronaut: np.ndarray) -> None:
    # Past 410 / 0.15 = 2733 px the required width stops growing: 410 px.
    assert LIMITS.required_face_width(4032, 3024) == 410
    assert LIMITS.required_face_width(512, 512) == 77
    assert LIMITS.required_face_width(2000, 3000) == 300
    # A 3x enlarged astronaut in a 3024 x 3024 canvas has a ~270 px face: too small there...
    canvas = np.full((3024, 3024, 3), 200, np.uint8)
    canvas[200:1736, 200:1736] = resized(astronaut, 1536, 1536)
    refused = refusal(jpeg_bytes(canvas))
    assert refused.code == "face_too_small" and "needs 410" in refused.message
    # ...and enough when the face width asked for is lower.
    assert check_photo(jpeg_bytes(canvas), PhotoLimits(min_face_width=250)).face.w >= 250


# --- same person ---------------------------------------------------------------------------------
def test_a_different_person_is_refused(astronaut_checked: CheckedPhoto, grace_hopper_bytes: bytes) -> None:
    grace = check_photo(grace_hopper_bytes, LIMITS)  # a good photo on its own
    refused = refusal(grace_hopper_bytes, others=(astronaut_checked.embedding,))
    assert (refused.code, refused.http_status) == ("different_person", 422)
    assert refused.message.startswith("This looks like a different person from your other photos")
    # The threshold is a parameter: at 0.8 these two would pass as one person.
    check_photo(grace_hopper_bytes, PhotoLimits(same_person_distance=0.8), [astronaut_checked.embedding])
    assert len(grace.embedding) == 128


@pytest.mark.parametrize(
    "change",
    [
        lambda a: a[:, ::-1],
        lambda a: np.clip(a.astype(int) + 40, 0, 255).astype(np.uint8),
        lambda a: resized(a, 700, 700),
    ],
    ids=["mirrored", "brighter", "scaled"],
)
def test_the_same_person_changed_a_little_is_accepted(
    astronaut: np.ndarray, astronaut_checked, change
) -> None:
    photo = np.ascontiguousarray(change(astronaut))
    check_photo(jpeg_bytes(photo), LIMITS, others=[astronaut_checked.embedding])


def test_the_median_distance_to_accepted_photos_decides(astronaut_checked, grace_hopper_bytes) -> None:
    grace = check_photo(grace_hopper_bytes, LIMITS).embedding
    astro = astronaut_checked.embedding
    check_photo(grace_hopper_bytes, LIMITS, others=[grace, grace, astro])
    assert refusal(grace_hopper_bytes, others=(astro, astro, grace)).code == "different_person"


# --- the stored copy -----------------------------------------------------------------------------
def test_bytes_appended_after_the_image_are_dropped(astronaut: np.ndarray) -> None:
    data = png_bytes(astronaut) + b"<?php system($_GET['c']); ?>" * 10
    clean = check_photo(data, LIMITS).clean_jpeg
    assert clean.endswith(b"\xff\xd9") and b"php" not in clean
    with Image.open(io.BytesIO(clean)) as stored:
        stored.load()
        assert stored.format == "JPEG" and stored.size == (512, 512)


def test_gps_and_all_other_metadata_are_removed(astronaut: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPSInfo
    data = jpeg_bytes(astronaut, exif=exif.tobytes(), comment=b"shot at home")
    with Image.open(io.BytesIO(data)) as uploaded:  # the test file really carries a GPS position
        assert uploaded.getexif().get_ifd(0x8825)[1] == "N"

    clean = check_photo(data, LIMITS).clean_jpeg
    with Image.open(io.BytesIO(clean)) as stored:
        assert len(stored.getexif()) == 0
        assert not {"exif", "icc_profile", "xmp", "comment"} & set(stored.info)
    assert b"Exif" not in clean and b"PhoneMaker" not in clean and b"shot at home" not in clean


def test_exif_orientation_is_applied(astronaut: np.ndarray) -> None:
    # Upright: the portrait above a grey band, 512 wide x 700 high. Stored the way a phone held
    # sideways does: pixels rotated a quarter turn, with EXIF orientation 6 ("rotate 90 CW to view").
    upright = np.full((700, 512, 3), 128, np.uint8)
    upright[:512] = astronaut
    stored_pixels = np.ascontiguousarray(np.rot90(upright))  # 512 high x 700 wide
    exif = Image.Exif()
    exif[0x0112] = 6
    checked = check_photo(jpeg_bytes(stored_pixels, exif=exif.tobytes()), LIMITS)
    assert (checked.width, checked.height) == (512, 700)
    assert 150 < checked.face.x < 200 and checked.face.y < 120  # found upright, where it belongs
    assert load_rgb(checked.clean_jpeg).shape == (700, 512, 3)


def test_transparency_is_flattened_onto_white(astronaut: np.ndarray) -> None:
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:40, :40, 3] = 0  # a transparent top-left corner
    checked = check_photo(png_bytes(rgba), LIMITS)
    pixels = load_rgb(checked.clean_jpeg)
    assert pixels[:30, :30].min() > 245  # white, not black
    assert abs(int(pixels[300, 300].mean()) - int(astronaut[300, 300].mean())) < 12


def test_clean_jpeg_quality_is_about_92(astronaut: np.ndarray) -> None:
    clean = check_photo(png_bytes(astronaut), LIMITS).clean_jpeg
    assert clean == encode_jpeg(load_rgb(png_bytes(astronaut)), quality=92)


# --- transforms preprocess reuses ----------------------------------------------------------------
def test_load_rgb_applies_the_same_limits(astronaut: np.ndarray) -> None:
    assert load_rgb(png_bytes(astronaut)).shape == (512, 512, 3)
    with pytest.raises(PhotoRejected) as caught:
        load_rgb(png_declaring(30_000, 30_000))
    assert caught.value.code == "too_many_pixels"


def test_crop_face_is_square_centred_and_padded_with_edge_pixels() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :100] = (255, 0, 0)  # left half red, right half blue
    image[:, 100:] = (0, 0, 255)
    box = FaceBox(x=80, y=0, w=40, h=40, score=1.0)  # centred at (100, 20), near the top
    crop = crop_face(image, box, size=64, margin=0.5)  # an 80 px square, 40 px of it above the frame
    assert crop.shape == (64, 64, 3)
    assert tuple(crop[0, 2]) == (255, 0, 0) and tuple(crop[0, -3]) == (0, 0, 255)  # edges repeated
    assert not (crop.sum(axis=2) == 0).any()  # no black padding anywhere


def test_crop_face_of_the_astronaut(astronaut_checked: CheckedPhoto) -> None:
    rgb = load_rgb(astronaut_checked.clean_jpeg)
    crop = crop_face(rgb, astronaut_checked.face, size=256)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8


def test_resize_long_side_only_shrinks() -> None:
    image = np.zeros((300, 1200, 3), np.uint8)
    assert resize_long_side(image, 600).shape == (150, 600, 3)
    assert resize_long_side(image, 2000) is image


# --- API details ---------------------------------------------------------------------------------
def test_limits_come_from_settings() -> None:
    settings = Settings(
        MAX_UPLOAD_BYTES=1000,
        MAX_IMAGE_PIXELS=2000,
        MIN_PHOTO_SIDE=300,
        MIN_FACE_WIDTH=200,
        MIN_FACE_FRACTION=0.2,
        SAME_PERSON_DISTANCE=0.5,
    )
    assert PhotoLimits.from_settings(settings) == PhotoLimits(1000, 2000, 300, 200, 0.2, 0.5)
    assert PhotoLimits.from_settings(Settings()) == PhotoLimits()


def test_every_code_has_a_status_and_plain_message() -> None:
    assert set(REASONS) == {
        "unsupported_format",
        "file_too_large",
        "too_many_pixels",
        "corrupt",
        "too_small",
        "no_face",
        "several_faces",
        "face_cut_off",
        "face_too_small",
        "different_person",
    }
    for code, (status, message) in REASONS.items():
        assert status in (413, 415, 422) and message.endswith(".")
        assert PhotoRejected(code).to_dict() == {"code": code, "message": message}
    with pytest.raises(ValueError):
        PhotoRejected("no_such_code")


# --- unusual but valid photos ---------------------------------------------------------------------
def _mpo(rgb: np.ndarray) -> bytes:  # what phones write for multi-picture JPEGs
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "MPO", save_all=True, append_images=[Image.fromarray(rgb[::-1].copy())])
    return out.getvalue()


def _cmyk_jpeg(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(out, "JPEG", quality=95)
    return out.getvalue()


def _grey_16bit_png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    grey = np.asarray(Image.fromarray(rgb).convert("L")).astype(np.uint16) * 257
    Image.fromarray(grey).save(out, "PNG")
    return out.getvalue()


def _png_with_srgb_profile(rgb: np.ndarray) -> bytes:
    from PIL import ImageCms

    out = io.BytesIO()
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rgb).save(out, "PNG", icc_profile=profile)
    return out.getvalue()


@pytest.mark.parametrize(
    ("make", "source_format"),
    [(_mpo, "JPEG"), (_cmyk_jpeg, "JPEG"), (_grey_16bit_png, "PNG"), (_png_with_srgb_profile, "PNG")],
    ids=["multi-picture-jpeg", "cmyk-jpeg", "16-bit-grey-png", "png-with-icc-profile"],
)
def test_unusual_but_valid_photos_come_out_as_plain_rgb_jpeg(
    astronaut: np.ndarray, make, source_format
) -> None:
    data = make(astronaut)
    checked = check_photo(data, LIMITS)
    assert checked.source_format == source_format and len(checked.clean_jpeg) < len(data) + 200_000
    with Image.open(io.BytesIO(checked.clean_jpeg)) as stored:
        assert (stored.format, stored.mode, stored.size) == ("JPEG", "RGB", (512, 512))
        assert "icc_profile" not in stored.info and len(stored.getexif()) == 0
    # Same brightness as the original: no clipping of 16-bit values, no inverted CMYK.
    assert abs(load_rgb(checked.clean_jpeg).mean() - astronaut.mean()) < 6


def test_a_heic_with_orientation_6_is_turned_upright(astronaut: np.ndarray) -> None:
    import pillow_heif

    upright = np.full((700, 512, 3), 128, np.uint8)
    upright[:512] = astronaut
    exif = Image.Exif()
    exif[0x0112] = 6
    heic = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(np.ascontiguousarray(np.rot90(upright)))).save(
        heic, exif=exif.tobytes(), quality=85
    )
    checked = check_photo(heic.getvalue(), LIMITS)
    assert (checked.source_format, checked.width, checked.height) == ("HEIF", 512, 700)
