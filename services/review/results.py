"""Team results: completed members' headshots, and ZIPs of one person's or everyone's, streamed as
they are written (one headshot in memory at a time, never the whole archive)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import select

from libs.contracts import SessionState
from libs.db import Headshot, HeadshotSession, UnitOfWork, User
from libs.storage import BlobStore
from services.review.errors import NotFound


@dataclass(frozen=True)
class PersonResults:
    user_id: str
    email: str
    name: str
    session_id: str
    headshots: list[Headshot]


def completed(uow: UnitOfWork, user_id: str | None = None) -> list[PersonResults]:
    """Each member's latest completed session with its headshots (tenant-scoped reads)."""
    query = (
        select(HeadshotSession, User)
        .join(User, User.id == HeadshotSession.user_id)
        .where(HeadshotSession.state == SessionState.COMPLETED)
        .order_by(User.email, HeadshotSession.completed_at.desc(), HeadshotSession.created_at.desc())
    )
    if user_id is not None:
        query = query.where(User.id == user_id)
    people: dict[str, PersonResults] = {}
    for hs, user in uow.session.execute(query):
        if user.id in people:
            continue  # an older completed session: the newest replaces it
        shots = list(
            uow.session.scalars(
                select(Headshot).where(Headshot.session_id == hs.id).order_by(Headshot.position)
            )
        )
        people[user.id] = PersonResults(user.id, user.email, user.display_name, hs.id, shots)
    if user_id is not None and not people:
        raise NotFound("No headshots for this member.")
    return list(people.values())


class _Sink(io.RawIOBase):
    """A write-only stream whose bytes are taken out as they come (zipfile needs only write/tell)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._chunks.append(bytes(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def take(self) -> bytes:
        out, self._chunks = b"".join(self._chunks), []
        return out


def zip_stream(blobs: BlobStore, people: Iterable[PersonResults]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
        for person in people:
            folder = person.email.replace("/", "_")
            for shot in person.headshots:
                ext = shot.blob_key.rsplit(".", 1)[-1]
                name = f"{folder}/{shot.style_id.replace(':', '-')}-{shot.index_in_style + 1}.{ext}"
                with archive.open(name, "w") as entry:
                    entry.write(blobs.get(shot.blob_key))
                yield sink.take()
    yield sink.take()
