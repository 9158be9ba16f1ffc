"""Turn uploaded bytes into oriented RGB pixels, refusing anything that is not a plain photo.

Usage::

    rgb = load_rgb(data)                     # HxWx3 uint8, EXIF orientation applied
    image, fmt = open_image(data, limits)    # lower level: header read and checked, not decoded yet

Order matters for safety: the byte limit first, then the format from the file's first bytes (never
its name), then the header's width x height, and only then the pixels are decoded. A file that
declares 30000 x 30000 pixels is refused after reading a few dozen bytes, before any allocation.
Pillow is only ever asked to open the one format the bytes announce (``formats=[...]``), so none of
its other parsers (EPS, PSD, TIFF...) see uploaded data. Pillow's own decompression-bomb guard
(``Image.MAX_IMAGE_PIXELS``) stays on as a second net; it is left at its default, never disabled.
"""

from __future__ import annotations

import io
import threading

import numpy as np
from PIL import Image, ImageCms, ImageOps

from libs.imaging.errors import PhotoRejected
from libs.imaging.limits import PhotoLimits

# ISO-BMFF brands that mean an HEIF still image with HEVC (HEIC), as phones write them.
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_HEIF_GENERIC_BRANDS = {b"mif1", b"msf1"}

_heif_state: bool | None = None  # None: not tried yet; then whether pillow_heif is usable
_heif_lock = threading.Lock()


def sniff_format(data: bytes) -> str | None:
    """ "JPEG", "PNG" or "HEIF" from the file's magic bytes; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 16 and data[4:8] == b"ftyp":
        # ftyp box: size(4) 'ftyp' major_brand(4) minor_version(4) compatible_brands(4 each)...
        box_size = int.from_bytes(data[0:4], "big")
        major = data[8:12]
        compatible = {data[i : i + 4] for i in range(16, min(box_size, len(data), 64), 4)}
        if major in _HEIC_BRANDS or (major in _HEIF_GENERIC_BRANDS and compatible & _HEIC_BRANDS):
            return "HEIF"
    return None


def _heif_available() -> bool:
    """Register pillow_heif's opener on first need (importing it costs ~50 ms and a native lib)."""
    global _heif_state
    if _heif_state is None:
        with _heif_lock:
            if _heif_state is None:
                try:
                    import pillow_heif

                    pillow_heif.register_heif_opener()
                    _heif_state = True
                except ImportError:
                    _heif_state = False
    return _heif_state


def open_image(data: bytes, limits: PhotoLimits) -> tuple[Image.Image, str]:
    """Check size, format and pixel count; return the opened (not yet decoded) image and its format.

    Raises :class:`PhotoRejected` with ``file_too_large``, ``unsupported_format``, ``corrupt`` or
    ``too_many_pixels``.
    """
    if len(data) > limits.max_bytes:
        raise PhotoRejected(
            "file_too_large",
            f"This file is {_megabytes(len(data))}; the largest accepted is {_megabytes(limits.max_bytes)}.",
        )
    if not data:
        raise PhotoRejected("corrupt", "This file is empty.")
    fmt = sniff_format(data)
    if fmt is None or (fmt == "HEIF" and not _heif_available()):
        raise PhotoRejected("unsupported_format")
    try:
        image = Image.open(io.BytesIO(data), formats=[fmt])  # reads the header only
    except Image.DecompressionBombError:
        # Pillow's own guard fired on the header (more than twice its MAX_IMAGE_PIXELS).
        raise PhotoRejected("too_many_pixels", _too_many_pixels_message(None, limits)) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise PhotoRejected("corrupt") from None
    if image.width * image.height > limits.max_pixels:
        image.close()
        raise PhotoRejected("too_many_pixels", _too_many_pixels_message(image.size, limits))
    if image.width < 1 or image.height < 1:
        image.close()
        raise PhotoRejected("corrupt")
    return image, fmt


def decode_rgb(image: Image.Image) -> np.ndarray:
    """Decode an opened image to HxWx3 uint8 sRGB, upright (EXIF orientation applied).

    Transparency is flattened onto white; 16-bit images are scaled to 8 bits; an embedded colour
    profile (e.g. Display P3 from phones) is converted to sRGB, so dropping it later keeps colours.
    Raises ``PhotoRejected("corrupt")`` for truncated or undecodable pixel data.
    """
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        raise PhotoRejected("corrupt") from None
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:  # a damaged EXIF block must not refuse the photo: keep it as stored
        upright = image
    return np.asarray(_to_srgb(upright), dtype=np.uint8)


def load_rgb(data: bytes, limits: PhotoLimits | None = None) -> np.ndarray:
    """Bytes of a JPEG/PNG/HEIC file -> HxWx3 uint8 RGB, upright. Raises :class:`PhotoRejected`."""
    image, _fmt = open_image(data, limits or PhotoLimits())
    with image:
        return decode_rgb(image)


# --- helpers ---------------------------------------------------------------------------------------
def _to_srgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # Pillow clips 16-bit values when converting to 8-bit modes; scale instead.
        wide = np.asarray(image, dtype=np.uint32)
        image = Image.fromarray((wide >> 8).clip(0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    if icc and image.mode in ("RGB", "CMYK"):
        try:
            converted = ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGB",
            )
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken or mismatched profile: use the pixels as they are
    return image if image.mode == "RGB" else image.convert("RGB")


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _too_many_pixels_message(size: tuple[int, int] | None, limits: PhotoLimits) -> str:
    limit = f"the limit is {limits.max_pixels / 1e6:g} megapixels"
    if size is None:
        return f"This image declares far too many pixels; {limit}."
    width, height = size
    return f"This image is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels); {limit}."
