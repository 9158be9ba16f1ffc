"""The preprocess worker through the real consumer, outbox relay and broker, on both backends
(memory:// + SQLite and RabbitMQ + PostgreSQL), and killed with SIGKILL mid-session on RabbitMQ +
PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from libs.contracts import PHOTOS_PROCESSED, SESSION_PROGRESS, Message, SessionState
from libs.db import Database, Photo, ProcessedMessage
from libs.db.demo import DemoData, seed_demo
from libs.messaging import Bus
from libs.messaging.testing import running, wait_for
from libs.settings import Settings
from libs.storage import LocalBlobStore
from services.preprocess.handlers import HANDLERS, build_deps
from tests.support.photos import astronaut, enlarged, jpeg, mirrored, turned
from tests.support.preprocess import approved, published, queued_session, session_state

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class World:
    settings: Settings
    db: Database
    blobs: LocalBlobStore
    demo: DemoData
    bus: Bus

    def relay_all(self) -> None:
        relay = self.bus.relay(wake_after_commits=False)
        try:
            while relay.run_once():
                pass
        finally:
            relay.close()


def world_for(settings: Settings) -> World:
    db = Database(settings.database_url)
    bus = Bus(settings, db)
    bus.declare()
    return World(settings, db, LocalBlobStore(settings.blob_dir), seed_demo(db), bus)


@pytest.fixture
def world(backend: Settings) -> Iterator[World]:
    w = world_for(backend)
    yield w
    w.db.dispose()


class Generation:
    """Stands in for the generation worker: records the photos.processed it receives."""

    def __init__(self) -> None:
        self.received: list[Message] = []

    def __call__(self, message: Message) -> None:
        self.received.append(message)


def test_an_approved_session_is_prepared_once_even_when_delivered_twice(world: World) -> None:
    sharp = jpeg(astronaut())
    hs_id, ids = queued_session(
        world.db, world.blobs, world.demo, [sharp, sharp, jpeg(mirrored(astronaut()))]
    )
    message = approved(world.demo.org_id, hs_id)
    generation = Generation()
    deps = build_deps(world.settings, world.db, world.blobs)

    with (
        running(world.bus.consumer("preprocess", HANDLERS, deps)) as preprocess,
        running(world.bus.consumer("generation", {PHOTOS_PROCESSED: generation})),
    ):
        with world.bus.publisher("test") as publisher:
            publisher.publish(message)
            publisher.publish(message)  # the same message again (a redelivery, a replayed dead letter)
        wait_for(
            lambda: preprocess.stats["handled"] + preprocess.stats["duplicate"] == 2, "both deliveries", 90
        )
        world.relay_all()
        wait_for(lambda: generation.received, "generation to receive photos.processed", 30)

        # A second approval of the finished session (a new message id): handled, with no effect.
        before = len(published(world.db, SESSION_PROGRESS, hs_id))
        with world.bus.publisher("test") as publisher:
            publisher.publish(approved(world.demo.org_id, hs_id))
        wait_for(lambda: preprocess.stats["handled"] == 2, "the second approval", 60)
        world.relay_all()

    assert (preprocess.stats["handled"], preprocess.stats["duplicate"]) == (2, 1)
    assert [m.data["photo_ids"] for m in generation.received] == [
        [ids[0], ids[2]] if _score(world, ids[0]) >= _score(world, ids[2]) else [ids[2], ids[0]]
    ]
    assert len(published(world.db, PHOTOS_PROCESSED, hs_id)) == 1
    assert len(published(world.db, SESSION_PROGRESS, hs_id)) == before == 4
    assert session_state(world.db, world.demo.org_id, hs_id) == (SessionState.PREPROCESSING, None)


def test_a_worker_killed_mid_session_finishes_it_once_after_restart(
    tmp_path: Path, amqp_url: str, pg_url: str
) -> None:
    settings = Settings(
        VAR_DIR=str(tmp_path / "var"),
        BROKER_URL=amqp_url,
        DATABASE_URL=pg_url,
        SECRET_KEY="test-secret",
        PUBLISH_TIMEOUT=3.0,
        RETRY_DELAY_MS=200,
    )
    w = world_for(settings)
    # Six large photos (each ~0.3 s or more to prepare): time to kill the worker between two of them.
    big = enlarged(astronaut(), 2400, 2400)
    originals = [jpeg(turned(big, degrees), quality=90) for degrees in (-10, -6, -2, 2, 6, 10)]
    hs_id, ids = queued_session(w.db, w.blobs, w.demo, originals)
    message = approved(w.demo.org_id, hs_id)
    with w.db.uow(org_id=w.demo.org_id) as uow:  # as review does: the approval leaves through the outbox
        uow.add_message(message)
        uow.commit()

    worker = _start_worker(settings, tmp_path / "worker.log")
    try:
        wait_for(lambda: _prepared(w) >= 1, "the first photo to be prepared", 120, interval=0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    finally:
        if worker.poll() is None:
            worker.kill()
    done_before = {p.id: (p.prepared_key, p.training_key) for p in _photos(w) if p.prepared_key}
    assert 1 <= len(done_before) < len(ids), "the worker was not killed mid-session"
    assert published(w.db, PHOTOS_PROCESSED, hs_id) == []
    mtimes = {k: w.blobs.path(k).stat().st_mtime_ns for keys in done_before.values() for k in keys}

    # A new worker takes the message back from the broker and finishes the session.
    deps = build_deps(settings, w.db, w.blobs)
    with running(w.bus.consumer("preprocess", HANDLERS, deps)) as preprocess:
        wait_for(lambda: preprocess.stats["handled"] == 1, "the redelivered approval", 120)

    assert len(published(w.db, PHOTOS_PROCESSED, hs_id)) == 1
    assert {p.id: (p.prepared_key, p.training_key) for p in _photos(w) if p.id in done_before} == done_before
    assert {k: w.blobs.path(k).stat().st_mtime_ns for k in mtimes} == mtimes  # not prepared again
    assert all(p.decision is not None for p in _photos(w))
    for kind in ("prepared", "training"):  # one file per photo: nothing written twice under new names
        assert len([f for f in (w.blobs.root / kind).rglob("*") if f.is_file()]) == len(ids)
    with w.db.session(all_orgs=True) as s:
        assert s.scalar(select(func.count()).select_from(ProcessedMessage)) == 1
    w.db.dispose()


def _start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BROKER_URL": settings.BROKER_URL,
        "DATABASE_URL": settings.DATABASE_URL,
        "VAR_DIR": settings.VAR_DIR,
        "SECRET_KEY": settings.SECRET_KEY,
        "PUBLISH_TIMEOUT": str(settings.PUBLISH_TIMEOUT),
        "RETRY_DELAY_MS": str(settings.RETRY_DELAY_MS),
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.preprocess"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _photos(w: World) -> list[Photo]:
    with w.db.session(org_id=w.demo.org_id) as s:
        return list(s.scalars(select(Photo)))


def _prepared(w: World) -> int:
    return sum(1 for p in _photos(w) if p.prepared_key is not None)


def _score(w: World, photo_id: str) -> float:
    with w.db.session(org_id=w.demo.org_id) as s:
        photo = s.get(Photo, photo_id)
        assert photo is not None and photo.quality_score is not None
        return photo.quality_score
