"""What a session's generation starts from, read from the database (never from events).

    inputs = load_inputs(uow, hs, photo_ids, catalog, settings)
    inputs.photos        # the prepared photos, best first (preparation's order)
    inputs.attributes    # PersonAttributes from the session's personal info, while it exists
    inputs.plan          # every shot to render
    inputs.references    # face embeddings of the person's uploads (likeness scoring)
    inputs.created_at    # when the session was created (its headshots' keys derive from it)

Personal info is read here, at the moment it is needed, because events never carry it and it is
erased once the headshots are complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from libs.catalog import Catalog
from libs.db import HeadshotSession, Photo, UnitOfWork
from libs.settings import Settings
from services.generation.engines import PersonAttributes
from services.generation.plan import PlanError, ShotPlan, plan_shots

KEPT = "kept"  # preparation's verdict for a photo fit for training


@dataclass(frozen=True)
class PreparedPhoto:
    id: str
    blob_key: str
    quality_score: float | None


@dataclass(frozen=True)
class SessionInputs:
    photos: tuple[PreparedPhoto, ...]
    attributes: PersonAttributes
    plan: ShotPlan
    references: tuple[tuple[float, ...], ...]
    created_at: datetime


class NoUsablePhotos(PlanError):
    """None of the photos named by preparation can be used (missing, dropped, another session)."""


def parse_size(text: str) -> tuple[int, int] | None:
    """``"256x320"`` → ``(256, 320)``; empty → None. Raises ValueError for anything else."""
    if not text.strip():
        return None
    width, sep, height = text.lower().partition("x")
    if not (
        sep and width.strip().isdigit() and height.strip().isdigit() and min(int(width), int(height)) >= 8
    ):
        raise ValueError(f"RENDER_SIZE={text!r} must be WIDTHxHEIGHT, each at least 8, e.g. 256x320")
    return int(width), int(height)


def person_attributes(hs: HeadshotSession) -> PersonAttributes:
    # Intake stores glasses as "glasses" (show them, as in the photos) or "no_glasses".
    return PersonAttributes(
        gender=hs.gender or "", eye_color=hs.eye_color or "", glasses=hs.glasses == "glasses"
    )


def session_plan(hs: HeadshotSession, catalog: Catalog, settings: Settings) -> ShotPlan:
    if not hs.format_id:
        raise PlanError("the session has no output format")
    chosen = [s.style_id for s in hs.styles if not s.preselected]
    return plan_shots(
        catalog,
        package_id=hs.package_id,
        format_id=hs.format_id,
        styles=chosen,
        session_key=hs.id,
        size=parse_size(settings.RENDER_SIZE),
    )


def load_inputs(
    uow: UnitOfWork, hs: HeadshotSession, photo_ids: Sequence[str], catalog: Catalog, settings: Settings
) -> SessionInputs:
    """Raises :class:`PlanError` (or CatalogError) when the session cannot be rendered at all."""
    rows = uow.session.scalars(select(Photo).where(Photo.session_id == hs.id)).all()
    by_id = {p.id: p for p in rows}
    photos = tuple(
        PreparedPhoto(p.id, p.prepared_key or p.clean_key, p.quality_score)
        for p in (by_id.get(pid) for pid in photo_ids)
        if p is not None and p.decision in (KEPT, None)
    )
    if not photos:
        raise NoUsablePhotos(f"none of the {len(photo_ids)} prepared photos belongs to this session")
    references = tuple(tuple(p.embedding) for p in rows if p.embedding)
    plan = session_plan(hs, catalog, settings)
    return SessionInputs(photos, person_attributes(hs), plan, references, hs.created_at)
