"""Headshot framing: where to crop a photo so the face sits where a portrait photographer puts it.

Pure geometry on numbers (no torch, no OpenCV), shared by both engines: the studio engine crops its
output with it, the diffusion engine its training crops and image-to-image reference.

The astronaut's face in a 512x512 photo; the crop slides down to y=0 (no headroom above her):

    >>> face = Box(175, 76, 91, 91)
    >>> headshot_crop((512, 512), face, aspect=4 / 5).rounded()
    (99, 0, 342, 303)
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

# A corporate headshot shows head and shoulders: the face box (brows to chin, as dlib reports it)
# is about 30% of the frame height, its centre a little above the middle.
FACE_HEIGHT_FRACTION = 0.30
FACE_CENTRE_Y = 0.42


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)

    def rounded(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in whole pixels, for PIL's ``crop``."""
        left, top = round(self.x), round(self.y)
        return (left, top, left + max(1, round(self.w)), top + max(1, round(self.h)))


def headshot_crop(
    image_size: tuple[int, int],
    face: Box,
    aspect: float,
    *,
    zoom: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
) -> Box:
    """The crop (width/height = ``aspect``) of an image of ``image_size`` framing ``face``.

    ``zoom`` > 1 frames tighter; ``shift`` moves the frame by fractions of its own size. The crop is
    shrunk and slid to stay inside the image (never padded: the edge of a photo is not background),
    so a face near an edge ends up off-centre rather than next to an empty band.
    """
    width, height = image_size
    crop_h = face.h / FACE_HEIGHT_FRACTION / zoom
    crop_w = crop_h * aspect
    fit = min(1.0, width / crop_w, height / crop_h)
    crop_w, crop_h = crop_w * fit, crop_h * fit
    cx, cy = face.centre
    left = cx - crop_w / 2 + shift[0] * crop_w
    top = cy - FACE_CENTRE_Y * crop_h + shift[1] * crop_h
    # Slide inside the image (max last: float rounding can leave width - crop_w at -1e-13).
    left = max(0.0, min(left, width - crop_w))
    top = max(0.0, min(top, height - crop_h))
    return Box(left, top, crop_w, crop_h)


def crop_resize(image: Image.Image, box: Box, size: tuple[int, int]) -> Image.Image:
    """Cut ``box`` out of ``image`` and scale it to ``size`` (Lanczos: sharp when enlarging)."""
    width, height = image.size
    # Clamped: float arithmetic may put an edge a hair outside the image, which PIL refuses.
    edges = (max(0.0, box.x), max(0.0, box.y), min(width, box.x + box.w), min(height, box.y + box.h))
    return image.resize(size, Image.Resampling.LANCZOS, box=edges)


def centre_box(image_size: tuple[int, int], aspect: float) -> Box:
    """The largest centred crop of ``aspect``: the framing when no face was found."""
    width, height = image_size
    crop_w = min(width, height * aspect)
    crop_h = crop_w / aspect
    return Box((width - crop_w) / 2, (height - crop_h) / 2, crop_w, crop_h)
