"""The results: headshots grouped by style (best likeness first), favourites, and the picture
variants people download (full size, a thumbnail, a square crop for profile pictures).

    groups = ordered_by_likeness(onboarding.headshots_by_style(uow, hs, catalog))
    data, mimetype, ext = picture(blobs, shot, "square")
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image
from sqlalchemy import select

from libs.db import Headshot, HeadshotSession, UnitOfWork
from libs.storage import BlobStore
from services.intake.onboarding import IntakeError

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
        raise IntakeError(404, "not_found", "No such headshot.")
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
        raise IntakeError(404, "not_found", "No such picture.")
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
        if _ext(shot.blob_key) == "png" and variant == "square":
            image.save(out, "PNG")
            return Picture(out.getvalue(), "image/png", "png")
        image.convert("RGB").save(out, "JPEG", quality=90 if variant == "square" else 82)
        return Picture(out.getvalue(), "image/jpeg", "jpg")


def _ext(key: str) -> str:
    return key.rsplit(".", 1)[-1].lower()


def _as_is(data: bytes, key: str) -> Picture:
    ext = _ext(key)
    return Picture(data, "image/png" if ext == "png" else "image/jpeg", ext)
