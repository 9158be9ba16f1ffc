"""Real portraits for tests, benchmarks and the commands, from images shipped inside installed packages.

- skimage's astronaut (512 x 512, Eileen Collins) and matplotlib's grace_hopper.jpg (512 x 600);
- variants built from them: blurred, mirrored, turned, stored sideways with an EXIF orientation tag
  (and a GPS position, to check it is dropped), enlarged to a 12 MP phone photo.

Nothing is downloaded.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# EXIF orientation -> how the camera stored the upright picture (np.rot90 turns counter-clockwise).
STORED_FOR_ORIENTATION = {
    3: lambda rgb: np.rot90(rgb, 2),  # upside down
    6: lambda rgb: np.rot90(rgb, 1),  # the viewer turns it 90 degrees clockwise
    8: lambda rgb: np.rot90(rgb, -1),  # the viewer turns it 90 degrees counter-clockwise
}


@cache
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@cache
def grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        return np.asarray(image.convert("RGB"))


def jpeg(rgb: np.ndarray, quality: int = 95, exif: Image.Exif | None = None) -> bytes:
    out = io.BytesIO()
    options = {"exif": exif.tobytes()} if exif is not None else {}
    Image.fromarray(np.ascontiguousarray(rgb)).save(out, "JPEG", quality=quality, **options)
    return out.getvalue()


def png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(out, "PNG")
    return out.getvalue()


def heic(rgb: np.ndarray) -> bytes:
    import pillow_heif

    out = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(rgb)).save(out, quality=90)
    return out.getvalue()


def camera_jpeg(upright: np.ndarray, orientation: int) -> bytes:
    """A JPEG as a phone writes it: pixels stored sideways, an orientation tag, a GPS position."""
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPSInfo
    return jpeg(STORED_FOR_ORIENTATION[orientation](upright), exif=exif)


def blurred(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def mirrored(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, ::-1])


def turned(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """The picture turned counter-clockwise about its centre (a tilted head), edges reflected."""
    height, width = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(rgb, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


def enlarged(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scaled up and padded (edges repeated) to width x height, e.g. 4032 x 3024 for 12 MP."""
    scale = min(width / rgb.shape[1], height / rgb.shape[0])
    big = cv2.resize(
        rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_CUBIC
    )
    top = (height - big.shape[0]) // 2
    left = (width - big.shape[1]) // 2
    return cv2.copyMakeBorder(
        big, top, height - big.shape[0] - top, left, width - big.shape[1] - left, cv2.BORDER_REPLICATE
    )


def astronaut_file(folder: Path, name: str = "astronaut.png") -> Path:
    path = folder / name
    Image.fromarray(astronaut()).save(path)
    return path


def grace_hopper_file(folder: Path, name: str = "grace_hopper.jpg") -> Path:
    from matplotlib import cbook

    path = folder / name
    path.write_bytes(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes())
    return path
