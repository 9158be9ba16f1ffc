"""Deleting a session's personal data, in one place for every reason (completion, retention, request).

Rows change inside the caller's unit of work and a :class:`DeletionReceipt` is written with them;
files (blobs, person models) are removed by :func:`remove_files` only after the commit, so a failed
commit never leaves a session whose photos are gone. A worker busy with the session stops on its
own: workers check the state, and the session is ``deleted`` (or, for retention, no longer in
flight) once this commits.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from libs.contracts import MODELS_RETIRED, SessionState, can_transition, new_message
from libs.db import DeletionReceipt, Headshot, HeadshotSession, PersonModel, Photo, UnitOfWork, utcnow
from libs.storage import BlobNotFound, BlobStore

log = logging.getLogger("headshots.privacy")
SYSTEM = "system"
PERSONAL_FIELDS = ("full_name", "gender", "eye_color", "glasses")


class NothingToDelete(Exception):
    """The session is already deleted."""


@dataclass
class Erasure:
    """What one deletion took away: the receipt (in the transaction) and the files to remove after it."""

    receipt: DeletionReceipt
    blob_keys: list[str] = field(default_factory=list)
    model_records: list[str] = field(default_factory=list)


def _receipt(
    uow: UnitOfWork, hs: HeadshotSession, reason: str, actor: str, kinds: dict[str, int]
) -> DeletionReceipt:
    receipt = DeletionReceipt(
        org_id=hs.org_id,
        session_id=hs.id,
        user_id=hs.user_id,
        reason=reason,
        actor=actor,
        kinds={k: v for k, v in kinds.items() if v},
        created_at=utcnow(),
    )
    uow.session.add(receipt)
    return receipt


def _personal_count(hs: HeadshotSession) -> int:
    return sum(getattr(hs, name) is not None for name in PERSONAL_FIELDS)


def erase_personal_info(
    uow: UnitOfWork, hs: HeadshotSession, *, reason: str = "completion", actor: str = SYSTEM
) -> DeletionReceipt | None:
    """Clear name, gender, eye colour and glasses; None if they were already erased."""
    if hs.personal_info_erased_at is not None:
        return None
    count = _personal_count(hs)
    hs.erase_personal_info()
    return _receipt(uow, hs, reason, actor, {"personal_info": count})


def _take_uploads(uow: UnitOfWork, hs: HeadshotSession, kinds: dict[str, int], keys: list[str]) -> None:
    for photo in uow.session.scalars(select(Photo).where(Photo.session_id == hs.id)):
        files = [
            k for k in (photo.original_key, photo.clean_key, photo.prepared_key, photo.training_key) if k
        ]
        keys += files
        kinds["photo_files"] = kinds.get("photo_files", 0) + len(files)
        kinds["photos"] = kinds.get("photos", 0) + 1
        if photo.embedding:
            kinds["reference_embeddings"] = kinds.get("reference_embeddings", 0) + 1
        uow.session.delete(photo)  # face box, embedding and preparation measures go with the row


def _take_models(uow: UnitOfWork, hs: HeadshotSession, kinds: dict[str, int], records: list[str]) -> None:
    ids = []
    for model in uow.session.scalars(select(PersonModel).where(PersonModel.session_id == hs.id)):
        if model.retired_at is None or Path(model.path).exists():
            records.append(model.path)
            ids.append(model.id)
            kinds["person_models"] = kinds.get("person_models", 0) + 1
        model.retired_at = model.retired_at or utcnow()
    if ids:
        # Generation workers hold the model volume: they delete the files too (removing twice is fine).
        uow.add_message(new_message(MODELS_RETIRED, org_id=hs.org_id, session_id=None, person_model_ids=ids))


def purge_uploads(
    uow: UnitOfWork, hs: HeadshotSession, *, reason: str = "retention", actor: str = SYSTEM
) -> Erasure | None:
    """Retention: the uploads (originals, clean, prepared, training crops, reference embeddings) and
    the person models go; the headshots and the session stay. None when nothing was left."""
    kinds: dict[str, int] = {}
    erasure_keys: list[str] = []
    records: list[str] = []
    _take_uploads(uow, hs, kinds, erasure_keys)
    _take_models(uow, hs, kinds, records)
    if _personal_count(hs):
        kinds["personal_info"] = _personal_count(hs)
        hs.erase_personal_info()
    if not kinds:
        return None
    return Erasure(_receipt(uow, hs, reason, actor, kinds), erasure_keys, records)


def delete_session_data(
    uow: UnitOfWork,
    hs: HeadshotSession,
    *,
    reason: str = "request",
    actor: str = SYSTEM,
    headshots: bool = True,
) -> Erasure:
    """Delete everything personal of a session and move it to ``deleted`` (the caller commits)."""
    if not can_transition(hs.state, SessionState.DELETED):
        raise NothingToDelete(f"This session is already {hs.state}.")
    kinds: dict[str, int] = {"personal_info": _personal_count(hs)}
    keys: list[str] = []
    records: list[str] = []
    hs.move_to(SessionState.DELETED)
    hs.erase_personal_info()
    hs.failure_reason = hs.review_reason = None  # free text may quote the person
    _take_uploads(uow, hs, kinds, keys)
    _take_models(uow, hs, kinds, records)
    if headshots:
        for shot in uow.session.scalars(select(Headshot).where(Headshot.session_id == hs.id)):
            files = [k for k in (shot.blob_key, shot.thumb_key) if k]
            keys += files
            kinds["headshots"] = kinds.get("headshots", 0) + 1
            kinds["headshot_files"] = kinds.get("headshot_files", 0) + len(files)
            uow.session.delete(shot)
    return Erasure(_receipt(uow, hs, reason, actor, kinds), keys, records)


def remove_person_model(record: str | Path, root: str | Path) -> int:
    """Remove a person model's files: those its JSON record names (only under ``root``), the photos
    copied next to it, and the record itself. Removing twice is fine."""
    record, root = Path(record), Path(root).resolve()
    removed = 0
    paths: list[Path] = []
    try:
        data = json.loads(record.read_text())
        paths = [Path(str(data[k])) for k in ("path", "reference") if isinstance(data, dict) and data.get(k)]
    except (OSError, ValueError):
        pass
    for path in paths:
        if path.resolve().is_relative_to(root) and path.exists():
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed += 1
    photos = root / "photos" / record.stem
    if photos.exists():
        shutil.rmtree(photos, ignore_errors=True)
        removed += 1
    if record.exists():
        record.unlink(missing_ok=True)
        removed += 1
    return removed


def remove_files(erasure: Erasure, blobs: BlobStore, model_root: str | Path) -> int:
    """After the commit: delete the erasure's blobs and person model files. One that is already gone
    or fails is logged, not fatal (the rows are gone either way; the log names the leftover key)."""
    removed = 0
    session_id = erasure.receipt.session_id
    for key in erasure.blob_keys:
        try:
            removed += bool(blobs.delete(key))
        except (BlobNotFound, OSError) as exc:
            log.warning("session %s: could not delete file %s: %s", session_id, key, exc)
    for record in erasure.model_records:
        try:
            removed += remove_person_model(record, model_root)
        except OSError as exc:
            log.warning("session %s: could not delete person model %s: %s", session_id, record, exc)
    return removed
