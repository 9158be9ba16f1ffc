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
from typing import Any, cast

from sqlalchemy import select

from libs.contracts import MODELS_RETIRED, SessionState, can_transition, new_message
from libs.db import (
    AuditLog,
    DeletionReceipt,
    EmailSend,
    Headshot,
    HeadshotSession,
    PersonModel,
    Photo,
    UnitOfWork,
    User,
    utcnow,
)
from libs.storage import BlobNotFound, BlobStore, favourites_zip_key, results_zip_key, square_key

log = logging.getLogger("headshots.privacy")
SYSTEM = "system"
PERSONAL_FIELDS = ("full_name", "gender", "eye_color", "glasses")
# An erased account keeps its row (ids in sessions, receipts, the audit log and the org's counts)
# under an address that can never receive mail (RFC 2606 reserves .invalid).
ERASED_DOMAIN = "erased.invalid"
ERASED_NAME = "Erased member"


class NothingToDelete(Exception):
    """The session is already deleted."""


@dataclass
class Erasure:
    """What one deletion took away: the receipt (in the transaction) and the files to remove after it."""

    receipt: DeletionReceipt
    blob_keys: list[str] = field(default_factory=list)
    model_records: list[str] = field(default_factory=list)
    mail_files: list[str] = field(default_factory=list)  # paths of .eml files (embedded mailbox)
    session_ids: list[str] = field(default_factory=list)  # an account's sessions (its dead letters go)


def _receipt(
    uow: UnitOfWork, hs: HeadshotSession | User, reason: str, actor: str, kinds: dict[str, int]
) -> DeletionReceipt:
    """The receipt of a session's deletion, or (given the User) of the person's account."""
    session_id, user_id = (hs.id, hs.user_id) if isinstance(hs, HeadshotSession) else (None, hs.id)
    receipt = DeletionReceipt(
        org_id=hs.org_id,
        session_id=session_id,
        user_id=user_id,
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
        shots = list(uow.session.scalars(select(Headshot).where(Headshot.session_id == hs.id)))
        for shot in shots:
            files = [k for k in (shot.blob_key, shot.thumb_key) if k]
            keys += files
            kinds["headshots"] = kinds.get("headshots", 0) + 1
            kinds["headshot_files"] = kinds.get("headshot_files", 0) + len(files)
            # The copies the results page may have kept in the store (each is there or not).
            keys.append(square_key(shot.id, shot.blob_key, at=shot.created_at))
            uow.session.delete(shot)
        if shots:
            keys.append(results_zip_key(hs.id, [s.blob_key for s in shots], at=hs.created_at))
            keys.append(favourites_zip_key(hs.id, at=hs.created_at))
    return Erasure(_receipt(uow, hs, reason, actor, kinds), keys, records)


def is_erased(user: User) -> bool:
    return user.email.endswith("@" + ERASED_DOMAIN)


def erase_account(
    uow: UnitOfWork, user: User, *, actor: str, mail_dir: str | Path | None = None
) -> Erasure | None:
    """Erase the person's account (after their sessions: :func:`delete_session_data`): the e-mail
    address and display name become a pseudonym, the account is deactivated (every sign-in link
    and cookie of theirs stops working: sign-in checks ``active``), the audit entries about them
    lose any address or name, and the e-mails written to the embedded mailbox (``mail_dir``) for
    them are listed for :func:`remove_files`. The row stays, with its id, organization, role and
    creation date: what the org's counts, receipts and audit log refer to. None if already erased.
    """
    if is_erased(user):
        return None
    personal = {v for v in (user.email, user.display_name) if v}
    user.email = f"erased-{user.id}@{ERASED_DOMAIN}"
    user.display_name = ERASED_NAME
    user.active = False
    for entry in uow.session.scalars(
        select(AuditLog).where(AuditLog.org_id == user.org_id, AuditLog.target == user.id)
    ):
        entry.detail = cast(dict[str, Any], _scrubbed(entry.detail, personal))
    mail_files = _mail_files(uow, user, mail_dir)
    kinds = {"account": 1, "email_files": len(mail_files)}
    sessions = list(uow.session.scalars(select(HeadshotSession.id).where(HeadshotSession.user_id == user.id)))
    return Erasure(_receipt(uow, user, "request", actor, kinds), mail_files=mail_files, session_ids=sessions)


def _scrubbed(value: object, personal: set[str]) -> object:
    if isinstance(value, dict):
        return {k: _scrubbed(v, personal) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v, personal) for v in value]
    return "(erased)" if isinstance(value, str) and value in personal else value


def _mail_files(uow: UnitOfWork, user: User, mail_dir: str | Path | None) -> list[str]:
    """The embedded mailbox's files of e-mails to this person (named ``<message id>.<template>.eml``
    by the file transport; an SMTP deployment has none: the mail left our systems)."""
    if mail_dir is None:
        return []
    sessions = select(HeadshotSession.id).where(HeadshotSession.user_id == user.id)
    sends = uow.session.execute(
        select(EmailSend.message_id, EmailSend.template).where(
            (EmailSend.user_id == user.id) | EmailSend.session_id.in_(sessions)
        )
    ).all()
    paths = (Path(mail_dir) / f"{message_id}.{template}.eml" for message_id, template in sends)
    return [str(p) for p in paths if p.exists()]


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
    """After the commit: delete the erasure's blobs, person model files and mailbox files. One that
    is already gone or fails is logged, not fatal (the rows are gone either way; the log names the
    leftover key)."""
    removed = 0
    session_id = erasure.receipt.session_id or f"of person {erasure.receipt.user_id}"
    for mail in erasure.mail_files:
        try:
            Path(mail).unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("session %s: could not delete mail file %s: %s", session_id, Path(mail).name, exc)
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
