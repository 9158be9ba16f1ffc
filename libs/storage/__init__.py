"""Blob store for photos, crops, person models' previews and headshots.

Keys are generated here and only here (``<kind>/<yyyy>/<mm>/<uuid>.<ext>``): no user-chosen name
or path ever reaches the file system, and :meth:`LocalBlobStore.path` refuses any key that does
not have that exact shape.

    store = make_blob_store(settings)   # LocalBlobStore, or S3BlobStore when BLOB_URL=s3://...
    key = store.put(jpeg_bytes, kind="photos", ext="jpg")
    data = store.get(key)

Both backends answer the same :class:`BlobStore` protocol; ``make_blob_store`` picks one from the
settings. The S3 backend (:mod:`libs.storage.s3`) imports boto3 only when chosen.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
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
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> bool: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...


def new_key(kind: str, ext: str) -> str:
    if not _KIND.match(kind) or not _EXT.match(ext):
        raise BlobError(f"invalid blob kind/extension {kind!r}/{ext!r}")
    now = datetime.now(UTC)
    return f"{kind}/{now:%Y}/{now:%m}/{uuid.uuid4().hex}.{ext}"


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
        key = new_key(kind, ext)
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
    "is_valid_key",
    "make_blob_store",
    "new_key",
]
