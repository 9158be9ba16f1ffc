"""Blob store for photos, crops, person models' previews and headshots.

Keys are generated here and only here (``<kind>/<yyyy>/<mm>/<uuid>.<ext>``): no user-chosen name
or path ever reaches the file system, and :meth:`LocalBlobStore.path` refuses any key that does
not have that exact shape.

    store = make_blob_store(settings)   # LocalBlobStore, or S3BlobStore when BLOB_URL=s3://...
    key = store.put(jpeg_bytes, kind="photos", ext="jpg")
    data = store.get(key)

Both backends answer the same :class:`BlobStore` protocol; ``make_blob_store`` picks one from the
settings. The S3 backend (:mod:`libs.storage.s3`) imports boto3 only when chosen.

A web app that has checked who may read a blob can send the browser to the store itself instead of
streaming the bytes, when the store can do that::

    url = store.url_for_download(key, 60, disposition='inline; filename="headshot.jpg"')
    # S3: a presigned GET URL that expires in 60 s; the local folder: None (stream it yourself)

A job that may run twice (a worker killed and restarted) derives its keys instead, so the second run
rewrites the same files rather than leaving orphans::

    key = derived_key("prepared", "jpg", source=f"{photo.id}/prepared", at=photo.created_at)
    store.put_at(key, crop_jpeg)      # atomic; writing the same key again replaces the file

What the results pages make from headshots (the ZIP of a session's headshots, a headshot's square
crop) is kept under keys derived the same way, in the ``results`` area, so whoever deletes the
headshots finds them again from the rows alone::

    key = results_zip_key(session.id, [h.blob_key for h in shots], at=session.created_at)
    key = square_key(shot.id, shot.blob_key, at=shot.created_at)
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from libs.settings import Settings

_KIND = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_EXT = re.compile(r"^[a-z0-9]{1,8}$")
_KEY = re.compile(r"^[a-z][a-z0-9-]{0,31}/\d{4}/\d{2}/[0-9a-f]{32}\.[a-z0-9]{1,8}$")


class BlobError(ValueError):
    pass


class BlobNotFound(BlobError, KeyError):
    pass


class BlobStore(Protocol):
    def put(self, data: bytes, *, kind: str, ext: str) -> str: ...
    def put_at(self, key: str, data: bytes) -> str: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> bool: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def url_for_download(self, key: str, seconds: int, *, disposition: str | None = None) -> str | None: ...


# Namespace of derived keys: fixed, so a key derived today is the same key after a restart.
_DERIVED = uuid.UUID("8f5c3a52-6a2e-4c1d-9a57-3f0b2d8e61c4")


def new_key(kind: str, ext: str) -> str:
    _check_kind(kind, ext)
    now = datetime.now(UTC)
    return f"{kind}/{now:%Y}/{now:%m}/{uuid.uuid4().hex}.{ext}"


def derived_key(kind: str, ext: str, *, source: str, at: datetime) -> str:
    """The same key every time for the same ``source`` (e.g. ``"<photo id>/prepared"``) and ``at``.

    ``source`` should start with a generated id (never user input); it is hashed (UUID5), so the key
    keeps the shape of generated keys and reveals nothing of it. ``at`` (usually the creation time of
    the row the blob derives from) gives the year/month folder.
    """
    _check_kind(kind, ext)
    at = at.astimezone(UTC) if at.tzinfo else at
    return f"{kind}/{at:%Y}/{at:%m}/{uuid.uuid5(_DERIVED, f'{kind}:{source}').hex}.{ext}"


RESULTS_KIND = "results"


def results_zip_key(session_id: str, headshot_keys: Iterable[str], *, at: datetime) -> str:
    """Where the ZIP of exactly these headshots of a session is kept: another set of headshots (a
    digest of their keys, in any order) is another ZIP, never a stale one."""
    digest = hashlib.sha256("\n".join(sorted(headshot_keys)).encode()).hexdigest()
    return derived_key(RESULTS_KIND, "zip", source=f"{session_id}/zip/{digest}", at=at)


def favourites_zip_key(session_id: str, *, at: datetime) -> str:
    """Where the ZIP of a session's favourites is kept: one slot per session, written again on each
    download (the picks change), so an erasure finds it from the session alone."""
    return derived_key(RESULTS_KIND, "zip", source=f"{session_id}/favourites", at=at)


def square_key(headshot_id: str, headshot_key: str, *, at: datetime) -> str:
    """Where a headshot's square crop is kept (a PNG stays a PNG, anything else is a JPEG)."""
    ext = "png" if headshot_key.lower().endswith(".png") else "jpg"
    return derived_key(RESULTS_KIND, ext, source=f"{headshot_id}/square", at=at)


def _check_kind(kind: str, ext: str) -> None:
    if not _KIND.match(kind) or not _EXT.match(ext):
        raise BlobError(f"invalid blob kind/extension {kind!r}/{ext!r}")


def is_valid_key(key: str) -> bool:
    return bool(_KEY.match(key))


class LocalBlobStore:
    """Blobs as files under one folder; writes are atomic (temp file + rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        if not is_valid_key(key):
            raise BlobError(f"not a blob key: {key!r}")
        return self.root / key

    def put(self, data: bytes, *, kind: str, ext: str) -> str:
        return self.put_at(new_key(kind, ext), data)

    def put_at(self, key: str, data: bytes) -> str:
        """Write ``data`` under a key from :func:`new_key` or :func:`derived_key`, replacing any
        previous file atomically (readers see the old bytes or the new ones, never a mix)."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
            return True
        except FileNotFoundError:
            return False

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def url_for_download(self, key: str, seconds: int, *, disposition: str | None = None) -> str | None:
        """None: a folder has no URL of its own, the app streams the file."""
        self.path(key)  # a key of any other shape is refused as by every other method
        return None


def make_blob_store(settings: Settings) -> BlobStore:
    """The store the settings name: ``BLOB_URL=s3://bucket/prefix`` or the local folder."""
    if settings.BLOB_URL:
        from libs.storage.s3 import S3BlobStore

        return S3BlobStore.from_settings(settings)
    return LocalBlobStore(settings.blob_dir)


__all__ = [
    "BlobError",
    "BlobNotFound",
    "BlobStore",
    "LocalBlobStore",
    "derived_key",
    "is_valid_key",
    "make_blob_store",
    "new_key",
]
