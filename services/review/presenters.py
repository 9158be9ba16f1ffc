"""What the pages and the API show of a session under review (one shape for both)."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image
from sqlalchemy import select

from libs.catalog import Catalog, CatalogError, default_catalog
from libs.contracts import stage_label
from libs.db import HeadshotSession, Photo, UnitOfWork, User
from libs.storage import BlobError, BlobStore
from services.review.errors import NotFound

SIZES = {"thumb": 240, "full": 1600}


def _style(cat: Catalog, sid: str) -> dict[str, str]:
    return {"id": sid, "label": cat.style(sid).label if cat.is_style(sid) else sid}


def photos_of(uow: UnitOfWork, hs: HeadshotSession) -> list[Photo]:
    return list(
        uow.session.scalars(select(Photo).where(Photo.session_id == hs.id).order_by(Photo.created_at))
    )


def session_view(
    uow: UnitOfWork, hs: HeadshotSession, user: User, cat: Catalog | None = None
) -> dict[str, Any]:
    cat = cat or default_catalog()
    fmt = None
    if hs.format_id:
        try:
            fmt = {"id": hs.format_id, "label": cat.format(hs.format_id).label}
        except CatalogError:  # a format since removed from the catalog: show its id
            fmt = {"id": hs.format_id, "label": hs.format_id}
    return {
        "id": hs.id,
        "state": hs.state,
        "stage": stage_label(hs.state),
        "member": {"id": user.id, "email": user.email, "name": user.display_name},
        "personal_info": {
            "full_name": hs.full_name,
            "gender": hs.gender,
            "eye_color": hs.eye_color,
            "glasses": hs.glasses,
        },
        "chosen_styles": [_style(cat, c.style_id) for c in hs.styles if not c.preselected],
        "preselected_styles": [_style(cat, c.style_id) for c in hs.styles if c.preselected],
        "format": fmt,
        "photo_ids": [p.id for p in photos_of(uow, hs)],
        "submitted_at": hs.submitted_at,
        "review_reason": hs.review_reason,
    }


def photo_image(uow: UnitOfWork, blobs: BlobStore, hs: HeadshotSession, photo_id: str, size: str) -> bytes:
    """A JPEG of the clean photo (no metadata) at ``size``; tenant-scoped through ``hs``."""
    side = SIZES.get(size)
    photo = uow.session.scalar(select(Photo).where(Photo.id == photo_id, Photo.session_id == hs.id))
    if side is None or photo is None:
        raise NotFound("No such photo.")
    try:
        data = blobs.get(photo.clean_key)
    except BlobError:
        raise NotFound("No such photo.") from None
    with Image.open(io.BytesIO(data), formats=["JPEG", "PNG"]) as image:
        image.thumbnail((side, side))
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=82)
        return out.getvalue()
