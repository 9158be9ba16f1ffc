"""The results: headshots grouped by style (best likeness first), favourites, the picture
variants people download (full size, a thumbnail, a square crop for profile pictures), their file
names and the ZIP of them all.

    groups = ordered_by_likeness(headshots_by_style(uow, hs, catalog))
    pic = picture(blobs, shot, "square")          # pic.data, pic.mimetype, pic.ext
    key = stored_key(shot, "full")                # a stored object the store may hand out itself
    key = zip_key(session, groups)                # where the store keeps the ZIP of these headshots
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from PIL import Image
from sqlalchemy import select

from libs.catalog import Catalog, default_catalog
from libs.db import Headshot, HeadshotSession, UnitOfWork
from libs.storage import BlobStore, results_zip_key, square_key
from libs.storage import favourites_zip_key as favourites_zip_key_for
from services.intake.errors import NotFound

Groups = list[tuple[str, str, list[Headshot]]]

VARIANTS = ("full", "thumb", "square")
THUMB_SIDE = 320
# Headshots are framed with the face in the upper part: a square crop keeps the top, trimming
# only a fifth of the spare height above the head.
SQUARE_TOP_SHARE = 0.2


@dataclass(frozen=True)
class Picture:
    data: bytes
    mimetype: str
    ext: str


def headshots_by_style(uow: UnitOfWork, hs: HeadshotSession, catalog: Catalog | None = None) -> Groups:
    """``[(style_id, label, [headshots...]), ...]`` in the order the styles were chosen."""
    catalog = catalog or default_catalog()
    shots = list(
        uow.session.scalars(
            select(Headshot)
            .where(Headshot.session_id == hs.id)
            .order_by(Headshot.position, Headshot.index_in_style)
        )
    )
    order = [c.style_id for c in hs.styles]
    order += sorted({h.style_id for h in shots} - set(order))
    groups = []
    for sid in order:
        in_style = [h for h in shots if h.style_id == sid]
        if in_style:
            label = catalog.style(sid).label if catalog.is_style(sid) else sid
            groups.append((sid, label, in_style))
    return groups


def ordered_by_likeness(groups: Groups) -> Groups:
    """Within each style, the headshots most like the person first when scores exist (unscored
    ones keep their order, after the scored)."""
    ordered = []
    for sid, label, shots in groups:
        ranked = sorted(
            enumerate(shots),
            key=lambda item: (item[1].likeness is None, -(item[1].likeness or 0.0), item[0]),
        )
        ordered.append((sid, label, [shot for _i, shot in ranked]))
    return ordered


def favourites(groups: Groups) -> Groups:
    picked = [(sid, label, [s for s in shots if s.favourite]) for sid, label, shots in groups]
    return [group for group in picked if group[2]]


def find_headshot(uow: UnitOfWork, hs: HeadshotSession, headshot_id: str) -> Headshot:
    shot = uow.session.scalar(
        select(Headshot).where(Headshot.id == headshot_id, Headshot.session_id == hs.id)
    )
    if shot is None:
        raise NotFound("headshot")
    return shot


def set_favourite(uow: UnitOfWork, hs: HeadshotSession, headshot_id: str, favourite: bool) -> Headshot:
    shot = find_headshot(uow, hs, headshot_id)
    shot.favourite = favourite
    uow.commit()
    return shot


def picture(blobs: BlobStore, shot: Headshot, variant: str) -> Picture:
    """The bytes of one variant. Thumbnails come from the generation worker's thumb_key when it
    made one, and are made here from the full image otherwise (older headshots)."""
    if variant not in VARIANTS:
        raise NotFound("picture")
    if variant == "thumb" and shot.thumb_key:
        return _as_is(blobs.get(shot.thumb_key), shot.thumb_key)
    original = blobs.get(shot.blob_key)
    if variant == "full":
        return _as_is(original, shot.blob_key)
    with Image.open(io.BytesIO(original)) as opened:
        image: Image.Image = opened
        image.load()
        if variant == "square":
            side = min(image.size)
            left = (image.width - side) // 2
            top = int((image.height - side) * SQUARE_TOP_SHARE)
            image = image.crop((left, top, left + side, top + side))
        else:
            image.thumbnail((THUMB_SIDE, THUMB_SIDE))
        out = io.BytesIO()
        if variant == "square" and ext_of(square_key(shot.id, shot.blob_key, at=shot.created_at)) == "png":
            image.save(out, "PNG")
            return Picture(out.getvalue(), "image/png", "png")
        image.convert("RGB").save(out, "JPEG", quality=90 if variant == "square" else 82)
        return Picture(out.getvalue(), "image/jpeg", "jpg")


def stored_key(shot: Headshot, variant: str) -> str | None:
    """The blob holding this variant as it is served, or None when it is made on request (a
    thumbnail older headshots lack). A square crop has its key before it exists: a store that
    hands out URLs keeps it there once made (:func:`picture` makes it)."""
    if variant == "full":
        return shot.blob_key
    if variant == "thumb":
        return shot.thumb_key or None
    return square_key(shot.id, shot.blob_key, at=shot.created_at)


def file_name(shot: Headshot, ext: str, variant: str = "full") -> str:
    """``headshot-navy-suit-2-square.jpg``: by style and number, never by anything the user typed."""
    suffix = {"full": "", "square": "-square", "thumb": "-thumb"}.get(variant, "")
    return f"headshot-{shot.style_id.replace(':', '-')}-{shot.index_in_style + 1}{suffix}.{ext}"


def zip_headshots(blobs: BlobStore, groups: Groups) -> bytes:
    """One ZIP of every headshot in ``groups``, each under its :func:`file_name`."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:  # JPEGs do not compress
        for _sid, _label, shots in groups:
            for shot in shots:
                zf.writestr(file_name(shot, shot.blob_key.rsplit(".", 1)[-1]), blobs.get(shot.blob_key))
    return out.getvalue()


def zip_key(hs: HeadshotSession, groups: Groups) -> str:
    """Where the store keeps the ZIP of exactly the headshots in ``groups`` (made by
    :func:`zip_headshots`; privacy erasure finds it again from the session's headshots)."""
    return results_zip_key(hs.id, [s.blob_key for _sid, _l, shots in groups for s in shots], at=hs.created_at)


def ext_of(key: str) -> str:
    return key.rsplit(".", 1)[-1].lower()


def _as_is(data: bytes, key: str) -> Picture:
    ext = ext_of(key)
    return Picture(data, "image/png" if ext == "png" else "image/jpeg", ext)


def favourites_zip_key(hs: HeadshotSession) -> str:
    """Where the store keeps the ZIP of the session's favourites (one slot, rewritten each time)."""
    return favourites_zip_key_for(hs.id, at=hs.created_at)
