"""The generation worker on real servers: whole sessions from photos.processed to session.completed.

- the studio engine through the launcher, embedded (memory:// + SQLite) and distributed (RabbitMQ +
  PostgreSQL), with intake's erasure handler: afterwards the person's unique name is nowhere (no
  table, no outbox body, no dead letter, no log line, no file), and a redelivered message changes
  nothing;
- the tiny random-weight diffusion pipeline, same path, on RabbitMQ + PostgreSQL;
- a worker process killed with SIGKILL mid-render, then restarted: it resumes from the stored
  images, with no duplicate rows and one session.completed.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from libs.contracts import HEADSHOT_GENERATED, MODEL_TRAINED, SESSION_COMPLETED, SUBSCRIPTIONS, queue_name
from libs.db import Base, Database, Headshot, HeadshotSession, ProcessedMessage
from libs.db.demo import DemoData, seed_demo
from libs.messaging import list_dead_letters
from libs.messaging.testing import commit_to_outbox, wait_for
from libs.settings import Settings
from libs.storage import make_blob_store
from services import launcher
from tests.support.generation import ReadySession, outbox_of, photos_processed, ready_session, session_state

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PLAN_SIZE = 4  # starter: navy:suit + the pre-selected studio-grey:suit, 2 each


@contextmanager
def started(settings: Settings) -> Iterator[launcher.Running]:
    running = launcher.start(settings, only={"generation", "intake"}, web=False)
    try:
        yield running
    finally:
        running.shutdown()


def publish(db: Database, ready: ReadySession) -> str:
    message = photos_processed(ready)
    commit_to_outbox(db, [message])
    return message.message_id


def processed(db: Database, message_id: str) -> bool:
    with db.session(all_orgs=True) as s:
        query = select(ProcessedMessage).where(
            ProcessedMessage.message_id == message_id, ProcessedMessage.consumer.like("generation.%")
        )
        return s.scalars(query).first() is not None


def erased(db: Database, ready: ReadySession) -> bool:
    with db.session(org_id=ready.org_id) as s:
        hs = s.get(HeadshotSession, ready.session_id)
        return hs is not None and hs.personal_info_erased_at is not None


def headshot_rows(db: Database, ready: ReadySession) -> list[tuple[str, int]]:
    with db.session(org_id=ready.org_id) as s:
        rows = s.execute(
            select(Headshot.style_id, Headshot.index_in_style).where(Headshot.session_id == ready.session_id)
        )
        return sorted((style, index) for style, index in rows)


def everywhere(db: Database, settings: Settings, needle: str) -> list[str]:
    """Where ``needle`` still appears: table rows (the outbox included), files under VAR_DIR, dead letters."""
    found = []
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                if needle in repr(tuple(row)):
                    found.append(f"table {table.name}")
    encoded = needle.encode()
    for path in Path(settings.VAR_DIR).rglob("*"):
        if path.is_file() and encoded in path.read_bytes():
            found.append(f"file {path}")
    for service in ("generation", "intake"):
        for event in SUBSCRIPTIONS[service]:
            for dead in list_dead_letters(settings, queue_name(service, event)):
                found.append(f"dead letter {dead.message_id} in {queue_name(service, event)}")
    return found


def test_a_whole_session_completes_and_leaves_no_trace_of_the_name(backend, caplog):
    caplog.set_level(logging.DEBUG)
    settings = backend.replace(RENDER_SIZE="120x80")
    db = Database(settings.database_url)
    demo: DemoData = seed_demo(db)
    name = f"Zoë Erasure-{uuid.uuid4().hex}"
    ready = ready_session(db, make_blob_store(settings), demo.org_id, demo.employees[0].id, full_name=name)
    try:
        with started(settings):
            assert everywhere(db, settings, name) == ["table headshot_sessions"]  # the search finds it
            first = publish(db, ready)
            wait_for(lambda: erased(db, ready), "the session to complete and its personal info to go", 120)
            assert session_state(db, ready) == "completed"
            assert headshot_rows(db, ready) == sorted(
                [("navy:suit", 0), ("navy:suit", 1), ("studio-grey:suit", 0), ("studio-grey:suit", 1)]
            )
            # the same event again (a redelivery, or the preparation worker publishing twice)
            second = publish(db, ready)
            wait_for(lambda: processed(db, first) and processed(db, second), "both messages handled", 60)
        assert len(headshot_rows(db, ready)) == PLAN_SIZE
        assert len(outbox_of(db, ready.session_id, SESSION_COMPLETED)) == 1
        assert len(outbox_of(db, ready.session_id, HEADSHOT_GENERATED)) == PLAN_SIZE

        assert everywhere(db, settings, name) == []
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert ready.session_id in logged  # the logs do speak of the session...
        assert name not in logged  # ...never of the person
    finally:
        db.dispose()


def test_the_tiny_diffusion_pipeline_renders_a_whole_session(tmp_path, amqp_url, pg_url):
    from services.generation.engines.diffusion.tiny import build_tiny_pipeline

    settings = Settings(
        VAR_DIR=str(tmp_path / "var"),
        BROKER_URL=amqp_url,
        DATABASE_URL=pg_url,
        SECRET_KEY="test-secret",
        ENGINE="diffusion",
        MODEL_DIR=str(build_tiny_pipeline(tmp_path / "sd")),
        INFERENCE_STEPS=2,
        LORA_STEPS=2,
        LORA_RANK=4,
        LORA_RESOLUTION=64,
        BATCH_SIZE=2,
        RENDER_SIZE="64x64",
        LIKENESS_POLICY="score-only",  # random weights draw no faces: score, never render again
    )
    db = Database(pg_url)
    demo = seed_demo(db)
    ready = ready_session(db, make_blob_store(settings), demo.org_id, demo.employees[0].id)
    try:
        with started(settings):
            publish(db, ready)
            wait_for(lambda: erased(db, ready), "the diffusion session to complete", 180)
        assert len(headshot_rows(db, ready)) == PLAN_SIZE
        [trained] = outbox_of(db, ready.session_id, MODEL_TRAINED)
        assert '"engine":"diffusion"' in trained.body
        assert len(outbox_of(db, ready.session_id, SESSION_COMPLETED)) == 1
    finally:
        db.dispose()


def test_a_worker_killed_mid_render_resumes_after_a_restart(tmp_path, amqp_url, pg_url):
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path / "var"),
        "BROKER_URL": amqp_url,
        "DATABASE_URL": pg_url,
        "SECRET_KEY": "test-secret",
        "RENDER_SIZE": "120x80",
        "RETRY_DELAY_MS": "200",
        "PYTHONUNBUFFERED": "1",
    }
    settings = Settings.from_env(env)
    db = Database(pg_url)
    demo = seed_demo(db)
    # executive, portrait: 3 pre-selected styles + navy:knit, 4 headshots each = 16 shots
    ready = ready_session(
        db,
        make_blob_store(settings),
        demo.org_id,
        demo.employees[0].id,
        package="executive",
        format_id="portrait",
        styles=("navy:knit",),
    )
    total = 16

    def worker(pause: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.slow_worker"],
            cwd=ROOT,
            env={**env, "SLOW_SECONDS": pause},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    first = worker("0.3")
    try:
        publish(db, ready)
        wait_for(lambda: len(headshot_rows(db, ready)) >= 2, "the first headshots to be stored", 120)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        stored = len(headshot_rows(db, ready))
        assert 2 <= stored < total and session_state(db, ready) == "generating"
    finally:
        if first.poll() is None:
            first.kill()

    second = worker("0")
    try:
        wait_for(lambda: session_state(db, ready) == "completed", "the restarted worker to finish", 120)
        wait_for(
            lambda: (
                len(outbox_of(db, ready.session_id, SESSION_COMPLETED)) == 1
                and all(r.sent_at for r in outbox_of(db, ready.session_id))
            ),
            "every event to be published",
            60,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(30)
        except subprocess.TimeoutExpired:
            second.kill()
    rows = headshot_rows(db, ready)
    assert len(rows) == len(set(rows)) == total
    with db.session(all_orgs=True) as s:
        count = s.scalar(
            select(func.count()).select_from(Headshot).where(Headshot.session_id == ready.session_id)
        )
    assert count == total
    done = [
        int(r.body.split('"done":')[1].split(",")[0])
        for r in outbox_of(db, ready.session_id, HEADSHOT_GENERATED)
    ]
    assert sorted(done) == list(range(1, total + 1))  # no gaps, no repeats
    assert len(outbox_of(db, ready.session_id, SESSION_COMPLETED)) == 1
    db.dispose()
