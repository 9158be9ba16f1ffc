"""Helpers of the privacy tests: where a marker string could still be found."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from sqlalchemy import select

from libs.db import Base, Database
from libs.messaging.deadletters import list_dead_letters, queue_depths
from libs.messaging.topology import DEAD_SUFFIX
from libs.settings import Settings
from libs.storage import BlobStore
from libs.storage.s3 import S3BlobStore


def png_with_text(pixels: bytes, text: str) -> bytes:
    """The same picture with ``text`` in a PNG text chunk: metadata only the original upload keeps."""
    image = Image.open(io.BytesIO(pixels))
    info = PngInfo()
    info.add_text("Comment", text)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def rows_with(db: Database, markers: list[str]) -> list[str]:
    """Every table, every column of every row, as text: where a marker is found."""
    found = []
    with db.session(all_orgs=True) as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(select(table)).all():
                text = " ".join(str(v) for v in row)
                found += [f"{table.name}: {m}" for m in markers if m in text]
    return found


def files_with(root: Path, markers: list[str]) -> list[str]:
    """Every file under ``root`` (blobs, person models, .eml, the SQLite file): where a marker is found."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # a file being written under a temporary name, renamed meanwhile
            continue
        found += [f"{path}: {m}" for m in markers if m.encode() in data]
    return found


class Captured(logging.Handler):
    """Every log record of every logger, formatted with its arguments."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def dead_letters_with(settings: Settings, markers: list[str]) -> list[str]:
    """Every message in every dead-letter queue (body and headers, looked at, never taken): where a
    marker is found."""
    found = []
    for queue, depth in queue_depths(settings).items():
        if not queue.endswith(DEAD_SUFFIX) or not depth:
            continue
        for dead in list_dead_letters(settings, queue, limit=10_000):
            text = dead.body + " " + str(dead.headers)
            found += [f"{queue}: {m}" for m in markers if m in text]
    return found


def blobs_with(blobs: BlobStore, markers: list[str]) -> list[str]:
    """Every object of the blob store (the folder, or every object under the S3 prefix): where a
    marker is found."""
    if isinstance(blobs, S3BlobStore):
        found = []
        pages = blobs.client.get_paginator("list_objects_v2").paginate(
            Bucket=blobs.bucket, Prefix=f"{blobs.prefix}/" if blobs.prefix else ""
        )
        for page in pages:
            for item in page.get("Contents", []):
                data = blobs.client.get_object(Bucket=blobs.bucket, Key=item["Key"])["Body"].read()
                found += [f"s3://{blobs.bucket}/{item['Key']}: {m}" for m in markers if m.encode() in data]
        return found
    return files_with(Path(blobs.root), markers)  # type: ignore[attr-defined]


def plant_dead_letter(settings: Settings, org_id: str, session_id: str, text: str) -> str:
    """Publish a session.failed that breaks its contract (an unknown field carrying ``text``), as a
    faulty producer might: its consumers dead-letter it whole. Returns its message id."""
    import json
    import uuid
    from datetime import UTC, datetime

    from libs.contracts import SESSION_FAILED
    from libs.messaging import Publisher

    message_id = str(uuid.uuid4())
    body = {
        "message_id": message_id,
        "type": SESSION_FAILED.routing_key,
        "version": SESSION_FAILED.version,
        "occurred_at": datetime.now(UTC).isoformat(),
        "org_id": org_id,
        "session_id": session_id,
        "data": {"stage": "training", "reason": "out of memory", "note": text},
    }
    with Publisher(settings, name="privacy proof") as publisher:
        publisher.publish_raw(json.dumps(body), routing_key=SESSION_FAILED.routing_key, message_id=message_id)
    return message_id


@pytest.fixture(name="s3_proof_endpoint")
def s3_proof_endpoint_fixture() -> Iterator[str]:
    """A real S3-compatible server (moto's standalone server) on a free loopback port."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
