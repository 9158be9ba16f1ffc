"""What intake is about: an employee's session from the invite link to "Submit my photos".

Plain functions with their dependencies passed in (a unit of work or the database, the blob store,
settings, the catalog); the pages (views.py) and the JSON API (api.py) both call them and only
translate requests and :class:`IntakeError` into responses.

    actor = Actor(user_id=user.id, org_id=user.org_id)
    with db.uow(org_id=actor.org_id) as uow:
        session = current_session(uow, actor)
    photo = upload_photo(db, blobs, settings, actor, session.id, jpeg_bytes)
    with db.uow(org_id=actor.org_id) as uow:
        set_personal_info(uow, actor, session.id, {"full_name": "Bea", "gender": "female"})
        set_styles(uow, actor, session.id, {"styles": ["navy:suit"], "format": "standard"})
        outcome = submit(uow, actor, session.id, {"agree_terms": True, "best_photos": True})

Every command finds the session through the tenant-scoped unit of work *and* checks its owner, so
another organization's or another person's session id is simply "not found". Only sessions in
``onboarding`` accept changes.
"""

from __future__ import annotations

import io
import json
import logging
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from marshmallow import ValidationError
from PIL import Image
from sqlalchemy import delete, func, select

from libs.catalog import Catalog, Style, default_catalog
from libs.contracts import SESSION_REJECTED, SESSION_SUBMITTED, SessionState, new_message, stage_label
from libs.db import (
    ChosenStyle,
    Headshot,
    HeadshotSession,
    Organization,
    OutboxMessage,
    Photo,
    UnitOfWork,
    UploadAttempt,
    User,
    utcnow,
)
from libs.db.database import Database
from libs.imaging import PhotoLimits, PhotoRejected, check_photo
from libs.settings import Settings
from libs.storage import BlobStore
from services.intake.schemas import PersonalInfoSchema, Rules, StylesSchema, SubmissionSchema

log = logging.getLogger("headshots.intake")

MAX_PHOTOS = 20  # per session: enough variety for training, bounded storage per person
RATE_WINDOW = timedelta(seconds=60)  # UPLOADS_PER_MINUTE counts attempts in this window
ATTEMPTS_KEPT = timedelta(minutes=10)  # older attempts are pruned as new ones arrive
THUMB_SIDE = 320

# The extension an original is stored under, from the format check_photo recognised in its bytes.
_ORIGINAL_EXT = {"JPEG": "jpg", "PNG": "png", "HEIF": "heic"}

S = SessionState
# After submission the person waits; these states show the waiting page.
WAITING_STATES = frozenset(
    {S.SUBMITTED, S.IN_REVIEW, S.QUEUED, S.PREPROCESSING, S.TRAINING, S.GENERATING, S.FAILED}
)


class IntakeError(Exception):
    """A request intake refuses, with the HTTP status, a stable code and plain words.

    ``fields`` maps a field name to its messages (validation); ``headers`` are added to the
    response (``Retry-After`` for the rate limit).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})


def session_not_found() -> IntakeError:
    return IntakeError(404, "not_found", "No such session.")


def validation_failed(messages: Any) -> IntakeError:
    fields = messages if isinstance(messages, dict) else {"_schema": messages}
    return IntakeError(422, "validation_failed", "Please fix the marked fields.", fields=fields)


@dataclass(frozen=True)
class Actor:
    """The signed-in person a command acts for."""

    user_id: str
    org_id: str

    @classmethod
    def of(cls, user: User) -> Actor:
        if user.org_id is None:  # support staff have no sessions of their own
            raise session_not_found()
        return cls(user_id=user.id, org_id=user.org_id)


# --- finding sessions -----------------------------------------------------------------------------------
def find_session(uow: UnitOfWork, actor: Actor, session_id: str, *, lock: bool = False) -> HeadshotSession:
    """The actor's session ``session_id``, or :class:`IntakeError` 404.

    ``lock=True`` serialises writers of this session until the transaction ends (submit, uploads).
    """
    if lock:
        found = uow.get_for_update(HeadshotSession, session_id)
    else:  # tenant-scoped: another organization's row is filtered out of this SELECT by construction
        found = uow.session.scalar(select(HeadshotSession).where(HeadshotSession.id == session_id))
    if found is None or found.user_id != actor.user_id or found.state == S.DELETED:
        raise session_not_found()
    return found


def current_session(uow: UnitOfWork, actor: Actor, catalog: Catalog | None = None) -> HeadshotSession:
    """The person's latest session; a new one in ``onboarding`` with the org's package if none."""
    catalog = catalog or default_catalog()
    latest = uow.session.scalar(
        select(HeadshotSession)
        .where(HeadshotSession.user_id == actor.user_id, HeadshotSession.state != S.DELETED)
        .order_by(HeadshotSession.created_at.desc())
        .limit(1)
    )
    if latest is not None:
        return latest
    org = uow.session.get(Organization, actor.org_id)
    if org is None:
        raise session_not_found()
    return _new_session(uow, actor, org, catalog)


def can_start_new(uow: UnitOfWork, actor: Actor, session: HeadshotSession) -> bool:
    """Renewal: the person's latest session is complete and the organization offers new ones."""
    org = uow.session.get(Organization, actor.org_id)
    return bool(org is not None and org.renewal and session.state == S.COMPLETED) and (
        current_session(uow, actor).id == session.id
    )


def start_new_session(uow: UnitOfWork, actor: Actor, catalog: Catalog | None = None) -> HeadshotSession:
    """Renewal: a fresh session after a completed one. Refused when the org has renewal off, or
    while a session is in progress. The person's row is locked so two clicks make one session."""
    uow.get_for_update(User, actor.user_id)
    org = uow.session.get(Organization, actor.org_id)
    if org is None or not org.renewal:
        raise IntakeError(403, "renewal_off", "Your organization does not offer new headshot sessions.")
    latest = current_session(uow, actor, catalog)
    if latest.state != S.COMPLETED:
        raise IntakeError(409, "session_in_progress", "You already have a headshot session in progress.")
    return _new_session(uow, actor, org, catalog or default_catalog())


def _new_session(uow: UnitOfWork, actor: Actor, org: Organization, catalog: Catalog) -> HeadshotSession:
    package = catalog.package(org.package_id)
    created = HeadshotSession(
        org_id=actor.org_id,
        user_id=actor.user_id,
        package_id=package.id,
        # The first format is the default, so a one-format package needs no choice at all.
        format_id=package.formats[0],
    )
    uow.session.add(created)
    uow.commit()
    log.info("session %s created for user %s", created.id, actor.user_id)
    return created


def require_editable(session: HeadshotSession) -> None:
    if session.state != S.ONBOARDING:
        raise IntakeError(
            409,
            "not_editable",
            "Your photos have already been submitted, so this session can no longer be changed.",
        )


# --- what the session may choose --------------------------------------------------------------------------
def rules_for(uow: UnitOfWork, session: HeadshotSession, catalog: Catalog | None = None) -> Rules:
    catalog = catalog or default_catalog()
    org = uow.session.get(Organization, session.org_id)
    package = catalog.package(session.package_id)
    everything = [s.id for s in catalog.all_styles()]
    allowed_by_org = set(org.allowed_styles) if org is not None and org.allowed_styles else set(everything)
    allowed = frozenset(sid for sid in everything if sid in allowed_by_org and sid not in package.preselected)
    return Rules(catalog, package, allowed, photo_count=count_photos(uow, session))


def style_options(rules: Rules) -> list[Style]:
    """The styles the person may choose, in catalog order (backdrop by backdrop)."""
    return [s for s in rules.catalog.all_styles() if s.id in rules.allowed]


def chosen_styles(session: HeadshotSession) -> list[str]:
    return [c.style_id for c in session.styles if not c.preselected]


def count_photos(uow: UnitOfWork, session: HeadshotSession) -> int:
    return (
        uow.session.scalar(select(func.count()).select_from(Photo).where(Photo.session_id == session.id)) or 0
    )


def photos_of(uow: UnitOfWork, session: HeadshotSession) -> list[Photo]:
    return list(
        uow.session.scalars(select(Photo).where(Photo.session_id == session.id).order_by(Photo.created_at))
    )


def rejection_reason(uow: UnitOfWork, session: HeadshotSession) -> str | None:
    """Why the org admin sent this session back, while it is back in onboarding (from the outbox,
    which is also the session's timeline)."""
    if session.state != S.ONBOARDING:
        return None
    if session.review_reason:  # stored on the session by the review console with the decision
        return session.review_reason
    body = uow.session.scalar(
        select(OutboxMessage.body)
        .where(
            OutboxMessage.session_id == session.id,
            OutboxMessage.org_id == session.org_id,
            OutboxMessage.routing_key == SESSION_REJECTED.routing_key,
        )
        .order_by(OutboxMessage.id.desc())
        .limit(1)
    )
    if body is None:
        return None
    try:
        return str(json.loads(body)["data"]["reason"])
    except (ValueError, KeyError, TypeError):
        return None


# --- photos --------------------------------------------------------------------------------------------
def upload_photo(
    db: Database,
    blobs: BlobStore,
    settings: Settings,
    actor: Actor,
    session_id: str,
    data: bytes,
    *,
    now: datetime | None = None,
) -> Photo:
    """Check one uploaded photo and keep it if it passes; raise :class:`IntakeError` otherwise
    (the photo checks' own code and status: ``no_face`` 422, ``unsupported_format`` 415...).

    Three short steps, so the slow check holds no transaction or lock: (1) count the attempt
    against the rate limit and read the accepted photos' embeddings, (2) run the checks,
    (3) store the blobs, then the row, after re-checking the session under its lock.
    """
    now = now or utcnow()
    with db.uow(org_id=actor.org_id) as uow:
        session = find_session(uow, actor, session_id, lock=True)
        require_editable(session)
        _count_attempt(uow, actor, settings.UPLOADS_PER_MINUTE, now)
        accepted = photos_of(uow, session)
        _require_room(len(accepted))
        others = [p.embedding for p in accepted if p.embedding]
        uow.commit()  # the attempt counts whether or not the photo passes

    try:
        checked = check_photo(data, PhotoLimits.from_settings(settings), others)
    except PhotoRejected as refused:
        raise IntakeError(refused.http_status, refused.code, refused.message) from None

    clean_key = blobs.put(checked.clean_jpeg, kind="photos", ext="jpg")
    original_key = blobs.put(data, kind="originals", ext=_ORIGINAL_EXT.get(checked.source_format, "bin"))
    try:
        with db.uow(org_id=actor.org_id) as uow:
            session = find_session(uow, actor, session_id, lock=True)
            require_editable(session)  # it may have been submitted while the check ran
            _require_room(count_photos(uow, session))
            face = checked.face
            photo = Photo(
                org_id=actor.org_id,
                session_id=session.id,
                original_key=original_key,
                clean_key=clean_key,
                width=checked.width,
                height=checked.height,
                face_box={"x": face.x, "y": face.y, "w": face.w, "h": face.h, "score": face.score},
                embedding=list(checked.embedding),
            )
            uow.session.add(photo)
            uow.commit()
    except BaseException:
        blobs.delete(clean_key)
        blobs.delete(original_key)
        raise
    log.info("photo %s accepted for session %s", photo.id, session_id)
    return photo


def _require_room(count: int) -> None:
    if count >= MAX_PHOTOS:
        raise IntakeError(
            422,
            "too_many_photos",
            f"You already have {MAX_PHOTOS} photos, the most a session can hold. Remove one to add another.",
        )


def _count_attempt(uow: UnitOfWork, actor: Actor, per_minute: int, now: datetime) -> None:
    """Refuse with 429 past UPLOADS_PER_MINUTE attempts in the last minute, else count this one.

    The attempts live in the database, so the limit holds across processes. The caller holds the
    session's lock, so one person's concurrent uploads are counted one after the other.
    """
    s = uow.session
    s.execute(
        delete(UploadAttempt)
        .where(
            UploadAttempt.org_id == actor.org_id,
            UploadAttempt.user_id == actor.user_id,
            UploadAttempt.created_at < now - ATTEMPTS_KEPT,
        )
        .execution_options(synchronize_session=False)
    )
    recent = list(
        s.scalars(
            select(UploadAttempt.created_at)
            .where(UploadAttempt.user_id == actor.user_id, UploadAttempt.created_at > now - RATE_WINDOW)
            .order_by(UploadAttempt.created_at)
        )
    )
    if len(recent) >= per_minute:
        wait = max(1, math.ceil((recent[0] + RATE_WINDOW - now).total_seconds()))
        raise IntakeError(
            429,
            "too_many_uploads",
            f"That's a lot of photos at once. Please wait {wait} seconds and try again.",
            headers={"Retry-After": str(wait)},
        )
    s.add(UploadAttempt(org_id=actor.org_id, user_id=actor.user_id, created_at=now))


def delete_photo(uow: UnitOfWork, blobs: BlobStore, actor: Actor, session_id: str, photo_id: str) -> None:
    session = find_session(uow, actor, session_id, lock=True)
    require_editable(session)
    photo = find_photo(uow, session, photo_id)
    keys = [k for k in (photo.clean_key, photo.original_key, photo.prepared_key) if k]
    uow.session.delete(photo)
    uow.commit()
    for key in keys:  # after the commit: a failed commit must not lose the files of a kept row
        blobs.delete(key)


def find_photo(uow: UnitOfWork, session: HeadshotSession, photo_id: str) -> Photo:
    photo = uow.session.get(Photo, photo_id)
    if photo is None or photo.session_id != session.id:
        raise IntakeError(404, "not_found", "No such photo.")
    return photo


def thumbnail(blobs: BlobStore, photo: Photo, side: int = THUMB_SIDE) -> bytes:
    """A small JPEG of the clean photo for the pages (made on request: cheap, nothing to keep)."""
    with Image.open(io.BytesIO(blobs.get(photo.clean_key)), formats=["JPEG"]) as image:
        image.thumbnail((side, side))
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=82)
        return out.getvalue()


# --- personal info, styles, format ----------------------------------------------------------------------
def set_personal_info(
    uow: UnitOfWork, actor: Actor, session_id: str, payload: Mapping[str, Any]
) -> HeadshotSession:
    """Save the given personal-info fields (progress: missing fields are left as they are)."""
    session = find_session(uow, actor, session_id, lock=True)
    require_editable(session)
    try:
        data = PersonalInfoSchema().load(dict(payload))
    except ValidationError as exc:
        raise validation_failed(exc.messages) from None
    for name, value in data.items():
        setattr(session, name, value)
    uow.commit()
    return session


def set_styles(
    uow: UnitOfWork,
    actor: Actor,
    session_id: str,
    payload: Mapping[str, Any],
    catalog: Catalog | None = None,
) -> HeadshotSession:
    """Save the chosen styles and/or format (progress: an empty style list is fine until submit)."""
    session = find_session(uow, actor, session_id, lock=True)
    require_editable(session)
    try:
        data = StylesSchema(rules=rules_for(uow, session, catalog)).load(dict(payload))
    except ValidationError as exc:
        raise validation_failed(exc.messages) from None
    if "styles" in data:
        _replace_styles(uow, session, data["styles"] or [], [])
    if "format" in data:
        session.format_id = data["format"]
    uow.commit()
    return session


def _replace_styles(
    uow: UnitOfWork, session: HeadshotSession, chosen: list[str], preselected: list[str]
) -> None:
    # A DELETE statement first: the ORM flushes inserts before deletes, which would trip the
    # (session_id, style_id) unique constraint when a style is kept.
    uow.session.execute(
        delete(ChosenStyle).where(ChosenStyle.session_id == session.id, ChosenStyle.org_id == session.org_id)
    )
    rows = [(sid, False) for sid in chosen] + [(sid, True) for sid in preselected]
    for position, (sid, is_pre) in enumerate(rows):
        uow.session.add(
            ChosenStyle(
                org_id=session.org_id,
                session_id=session.id,
                style_id=sid,
                preselected=is_pre,
                position=position,
            )
        )
    uow.session.flush()
    uow.session.expire(session, ["styles"])


# --- submit ----------------------------------------------------------------------------------------------
@dataclass
class SubmitOutcome:
    session: HeadshotSession
    submitted_now: bool  # False: it was already submitted (double click, replayed request)
    styles: list[str] = field(default_factory=list)


def submit(
    uow: UnitOfWork,
    actor: Actor,
    session_id: str,
    payload: Mapping[str, Any],
    catalog: Catalog | None = None,
) -> SubmitOutcome:
    """Validate everything and submit, or raise 422 naming each field and change nothing.

    ``payload`` fields override what the session saved (the page posts the whole form; API clients
    usually send only ``agree_terms`` and ``best_photos``). On success, in one transaction: the
    session moves to ``submitted``, its styles are written (chosen + the package's pre-selected,
    flagged) and ``session.submitted`` goes into the outbox. The session row is locked first and
    its state checked, so a second submit of the same session changes nothing and says so.
    """
    session = find_session(uow, actor, session_id, lock=True)
    if session.state != S.ONBOARDING:
        if session.state in WAITING_STATES or session.state == S.COMPLETED:
            uow.commit()  # nothing changed: releases the lock and keeps the loaded session readable
            return SubmitOutcome(session, submitted_now=False)
        require_editable(session)
    rules = rules_for(uow, session, catalog)
    merged: dict[str, Any] = {
        "full_name": session.full_name,
        "gender": session.gender,
        "eye_color": session.eye_color,
        "glasses": session.glasses,
        "styles": chosen_styles(session),
        "format": session.format_id,
    }
    merged.update(payload)
    try:
        data = SubmissionSchema(rules=rules).load(merged)
    except ValidationError as exc:
        uow.rollback()
        raise validation_failed(exc.messages) from None

    session.full_name = data["full_name"]
    session.gender = data["gender"]
    session.eye_color = data["eye_color"]
    session.glasses = data["glasses"]
    session.format_id = data["format"]
    preselected = [sid for sid in rules.package.preselected if sid not in data["styles"]]
    _replace_styles(uow, session, data["styles"], preselected)
    session.move_to(S.SUBMITTED)
    session.submitted_at = utcnow()
    styles = data["styles"] + preselected
    uow.add_message(
        new_message(
            SESSION_SUBMITTED,
            org_id=session.org_id,
            session_id=session.id,
            package=session.package_id,
            format=session.format_id,
            styles=styles,
            photo_count=rules.photo_count,
        )
    )
    uow.commit()
    log.info("session %s submitted: %d photos, %d styles", session.id, rules.photo_count, len(styles))
    return SubmitOutcome(session, submitted_now=True, styles=styles)


# --- waiting and results ----------------------------------------------------------------------------------
def status(session: HeadshotSession) -> dict[str, Any]:
    """What the waiting page polls.

    ``{"session_id": "…", "state": "generating", "stage": "Creating your headshots",
    "progress": {"done": 3, "total": 12}, "submitted_at": "…", "completed_at": null,
    "headshots": [{"id": "…", "style": "navy:suit"}]}``
    """
    return {
        "session_id": session.id,
        "state": session.state,
        "stage": stage_label(session.state),
        "progress": {"done": session.progress_done, "total": session.progress_total},
        "submitted_at": session.submitted_at,
        "completed_at": session.completed_at,
        "headshots": [{"id": h.id, "style": h.style_id} for h in session.headshots],
    }


def headshots_by_style(
    uow: UnitOfWork, session: HeadshotSession, catalog: Catalog | None = None
) -> list[tuple[str, str, list[Headshot]]]:
    """``[(style_id, label, [headshots...]), ...]`` in the order the styles were chosen."""
    catalog = catalog or default_catalog()
    shots = list(
        uow.session.scalars(
            select(Headshot)
            .where(Headshot.session_id == session.id)
            .order_by(Headshot.position, Headshot.index_in_style)
        )
    )
    order = [c.style_id for c in session.styles]
    order += sorted({h.style_id for h in shots} - set(order))
    groups = []
    for sid in order:
        in_style = [h for h in shots if h.style_id == sid]
        if in_style:
            label = catalog.style(sid).label if catalog.is_style(sid) else sid
            groups.append((sid, label, in_style))
    return groups


def zip_headshots(blobs: BlobStore, groups: list[tuple[str, str, list[Headshot]]]) -> bytes:
    """One ZIP of every headshot, named by style and number (never by anything the user typed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:  # JPEGs do not compress
        for sid, _label, shots in groups:
            safe = sid.replace(":", "-")
            for shot in shots:
                ext = shot.blob_key.rsplit(".", 1)[-1]
                zf.writestr(f"headshot-{safe}-{shot.index_in_style + 1}.{ext}", blobs.get(shot.blob_key))
    return out.getvalue()
