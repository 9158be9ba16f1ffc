"""Headshot files in the blob store: the full-size image and its thumbnail.

    keys = store_images(blobs, image)        # StoredImages(blob_key, thumb_key)
    delete_images(blobs, keys)               # both; missing files are fine

JPEG at high quality: a headshot is a photograph, and PNG would make each full-size file 5-10x
bigger for no visible gain. Neither file carries metadata (Pillow writes none unless asked).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from libs.storage import BlobStore

FULL_QUALITY = 95
THUMB_SIDE = 320  # longest side of a thumbnail: the waiting page's grid, sharp on a phone
THUMB_QUALITY = 85
HEADSHOT_KIND = "headshots"
THUMB_KIND = "headshot-thumbs"


@dataclass(frozen=True)
class StoredImages:
    blob_key: str
    thumb_key: str

    def keys(self) -> tuple[str, str]:
        return (self.blob_key, self.thumb_key)


def jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    # convert() copies even an RGB image: a full-size copy per headshot for nothing.
    (image if image.mode == "RGB" else image.convert("RGB")).save(out, "JPEG", quality=quality)
    return out.getvalue()


def thumbnail(image: Image.Image, side: int = THUMB_SIDE) -> Image.Image:
    """At most ``side`` px on its longest side, the aspect kept (what ``Image.thumbnail`` gives, without
    copying the full-size image first: ``resize`` returns a new image)."""
    width, height = image.size
    scale = min(1.0, side / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)


def store_images(blobs: BlobStore, image: Image.Image) -> StoredImages:
    blob_key = blobs.put(jpeg(image, FULL_QUALITY), kind=HEADSHOT_KIND, ext="jpg")
    try:
        thumb_key = blobs.put(jpeg(thumbnail(image), THUMB_QUALITY), kind=THUMB_KIND, ext="jpg")
    except BaseException:
        blobs.delete(blob_key)
        raise
    return StoredImages(blob_key, thumb_key)


def delete_images(blobs: BlobStore, keys: tuple[str | None, ...]) -> None:
    for key in keys:
        if key:
            blobs.delete(key)
