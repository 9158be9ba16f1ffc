"""Headshot files in the blob store: the full-size image and its thumbnail.

    keys = headshot_keys(session_id, "navy:suit", 0, at=session.created_at)   # StoredImages
    store_images(blobs, image, keys)         # writes both (atomic; writing again replaces them)
    delete_images(blobs, keys.keys())        # both; missing files are fine

The keys are derived from the shot (session, style, index), not drawn at random: a worker killed
after writing a headshot's files but before recording its row writes the same files again when the
session resumes, so a crash never leaves an orphan, and whoever stops a session finds every file it
may have written from the plan alone.

JPEG at high quality: a headshot is a photograph, and PNG would make each full-size file 5-10x
bigger for no visible gain. Neither file carries metadata (Pillow writes none unless asked).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

from PIL import Image

from libs.storage import BlobStore, derived_key

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


def headshot_keys(session_id: str, style_id: str, index: int, *, at: datetime) -> StoredImages:
    """Where the headshot ``index`` of ``style_id`` in this session is kept (``at``: the session's
    creation time). Every try of a shot (a likeness retry, a resumed run) lands on the same keys."""
    source = f"{session_id}/{style_id}/{index}"
    return StoredImages(
        derived_key(HEADSHOT_KIND, "jpg", source=source, at=at),
        derived_key(THUMB_KIND, "jpg", source=source, at=at),
    )


def jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    # convert() copies even an RGB image: a full-size copy per headshot for nothing.
    (image if image.mode == "RGB" else image.convert("RGB")).save(out, "JPEG", quality=quality)
    return out.getvalue()


def thumbnail(image: Image.Image, side: int = THUMB_SIDE) -> Image.Image:
    """At most ``side`` px on its longest side, the aspect kept, never enlarged.

    A box average by the smallest whole factor that fits (1536x1024 → 308x205 by 5, 1024x1280 →
    256x320 by 4): one pass over the full image, a sixth of the Lanczos resize it replaces, and at
    that size the two cannot be told apart. When that factor would shrink far below ``side`` (a
    400 px image: 200 px), the factor below it and a bilinear step on the small image instead."""
    if image.mode not in ("RGB", "RGBA"):  # palette, greyscale...: made RGB first
        image = image.convert("RGB")
    longest = max(image.size)
    factor = -(-longest // side)
    if factor > 1 and longest // factor < side * 3 // 4:
        factor -= 1
    small = image.reduce(factor) if factor > 1 else image
    if max(small.size) > side:
        scale = side / max(small.size)
        size = (max(1, round(small.width * scale)), max(1, round(small.height * scale)))
        small = small.resize(size, Image.Resampling.BILINEAR)
    return small if small.mode == "RGB" else small.convert("RGB")


def store_images(blobs: BlobStore, image: Image.Image, keys: StoredImages) -> StoredImages:
    blobs.put_at(keys.blob_key, jpeg(image, FULL_QUALITY))
    try:
        blobs.put_at(keys.thumb_key, jpeg(thumbnail(image), THUMB_QUALITY))
    except BaseException:
        blobs.delete(keys.blob_key)
        raise
    return keys


def delete_images(blobs: BlobStore, keys: tuple[str | None, ...]) -> None:
    for key in keys:
        if key:
            blobs.delete(key)
