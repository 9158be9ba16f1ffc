"""Preprocess's handler with a real SQLite unit of work, a real blob folder and real photos; no broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from libs.contracts import (
    PHOTOS_PROCESSED,
    SESSION_FAILED,
    SESSION_PROGRESS,
    SUBSCRIPTIONS,
    Message,
    SessionState,
    queue_name,
)
from libs.db import Database, HeadshotSession, OutboxMessage, ProcessedMessage
from libs.db.demo import DemoData, seed_demo
from libs.storage import LocalBlobStore, derived_key
from services.preprocess import steps
from services.preprocess.handlers import HANDLERS, build_deps
from services.preprocess.options import PreprocessOptions
from services.preprocess.photos import prepare_one
from tests.support.photos import astronaut, blurred, grace_hopper, jpeg, mirrored
from tests.support.preprocess import MISSING, approved, photo_rows, published, queued_session, session_state

S = SessionState
OPTIONS = PreprocessOptions()


@pytest.fixture(name="db")
def db_fixture(sqlite_url: str) -> Iterator[Database]:
    database = Database(sqlite_url)
    yield database
    database.dispose()


@pytest.fixture(name="demo")
def demo_fixture(db: Database) -> DemoData:
    return seed_demo(db)


@pytest.fixture(name="blobs")
def blobs_fixture(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def consume(
    db: Database, blobs: LocalBlobStore, message: Message, options: PreprocessOptions = OPTIONS
) -> None:
    """What the consumer does: the table picks the handler, run in one transaction with the
    processed-message row."""
    with db.uow(org_id=message.org_id) as uow:
        HANDLERS[message.event](message, uow=uow, db=db, blobs=blobs, options=options)
        uow.session.add(
            ProcessedMessage(consumer=queue_name("preprocess", message.event), message_id=message.message_id)
        )
        uow.commit()


def outbox_size(db: Database) -> int:
    with db.session(all_orgs=True) as s:
        return len(s.scalars(select(OutboxMessage.id)).all())


def test_an_approved_session_gets_its_best_photos_chosen_and_published(
    db: Database, blobs: LocalBlobStore, demo: DemoData
) -> None:
    sharp = jpeg(astronaut())
    originals = [
        sharp,
        sharp,  # the same file uploaded twice
        jpeg(blurred(astronaut(), 1.5)),
        jpeg(mirrored(astronaut())),
        MISSING,
        sharp[:4000],  # cut short: damaged
        jpeg(grace_hopper()[:, :150]),  # a slice of a photo: no face in it
    ]
    hs_id, ids = queued_session(db, blobs, demo, originals)

    consume(db, blobs, approved(demo.org_id, hs_id))

    assert session_state(db, demo.org_id, hs_id) == (S.PREPROCESSING, None)  # generation moves it on
    rows = photo_rows(db, demo.org_id, ids)
    [processed] = published(db, PHOTOS_PROCESSED, hs_id)
    kept = processed.data["photo_ids"]
    assert set(kept) == {ids[0], ids[2], ids[3]}
    scores = {r["id"]: r["score"] for r in rows}
    assert kept == sorted(kept, key=lambda i: -scores[i])  # best first
    assert kept[-1] == ids[2]  # the blurred one last
    assert [r["decision"] for r in rows] == [
        "kept",
        "dropped",
        "kept",
        "kept",
        "dropped",
        "dropped",
        "dropped",
    ]
    assert rows[0]["reason"].startswith("kept: sharpness 0.")
    assert rows[0]["reason"].endswith("% of frame")
    assert rows[1]["reason"] == "near-duplicate of photo 1"
    assert rows[4]["reason"] == "the original photo is missing from storage"
    assert rows[5]["reason"] == "the original file is damaged and could not be read"
    assert rows[6]["reason"] == "no face found"

    for row, original in zip(rows, originals, strict=True):
        if row["id"] in kept:
            assert row["prepared_key"] == derived_key(
                "prepared", "jpg", source=f"{row['id']}/prepared", at=_created(db, demo, row["id"])
            )
            assert blobs.get(row["prepared_key"]).startswith(b"\xff\xd8")
            assert blobs.get(row["training_key"]).startswith(b"\xff\xd8")
        if original != MISSING:
            assert blobs.get(row["original_key"]) == original  # originals untouched
    progress = [(m.data["done"], m.data["total"]) for m in published(db, SESSION_PROGRESS, hs_id)]
    assert progress == [(0, 7), *((n, 7) for n in range(1, 8))]
    assert all(m.data["stage"] == "preprocessing" for m in published(db, SESSION_PROGRESS, hs_id))


def test_a_second_approval_after_success_changes_and_publishes_nothing(
    db: Database, blobs: LocalBlobStore, demo: DemoData
) -> None:
    hs_id, ids = queued_session(db, blobs, demo, [jpeg(astronaut())])
    consume(db, blobs, approved(demo.org_id, hs_id))
    before = (outbox_size(db), photo_rows(db, demo.org_id, ids), sorted(_files(blobs)))

    consume(db, blobs, approved(demo.org_id, hs_id))  # a new message id: not caught as a duplicate

    assert (outbox_size(db), photo_rows(db, demo.org_id, ids), sorted(_files(blobs))) == before
    assert len(published(db, PHOTOS_PROCESSED, hs_id)) == 1


def test_a_worker_killed_mid_session_resumes_without_preparing_photos_again(
    db: Database, blobs: LocalBlobStore, demo: DemoData
) -> None:
    hs_id, ids = queued_session(db, blobs, demo, [jpeg(astronaut()), jpeg(mirrored(astronaut()))])
    message = approved(demo.org_id, hs_id)
    # The first delivery gets as far as the first photo, then the process dies: nothing else commits.
    pending = steps.begin(db, message)
    assert pending is not None and [p.photo_id for p in pending] == ids
    assert prepare_one(db, blobs, OPTIONS, message, pending[0]) == "prepared"
    first = photo_rows(db, demo.org_id, ids)[0]
    written = {
        key: blobs.path(key).stat().st_mtime_ns for key in (first["prepared_key"], first["training_key"])
    }

    consume(db, blobs, message)  # the broker delivers the same message again

    assert {key: blobs.path(key).stat().st_mtime_ns for key in written} == written  # not prepared again
    assert len(published(db, PHOTOS_PROCESSED, hs_id)) == 1
    assert set(published(db, PHOTOS_PROCESSED, hs_id)[0].data["photo_ids"]) == set(ids)
    assert len(_files(blobs, "prepared")) == len(_files(blobs, "training")) == 2
    progress = [m.data["done"] for m in published(db, SESSION_PROGRESS, hs_id)]
    assert progress == [0, 1, 1, 2]  # start, photo 1, resumed at 1, photo 2


@pytest.mark.parametrize("state", [S.ONBOARDING, S.DELETED, S.TRAINING, S.FAILED])
def test_a_session_not_in_the_queue_is_left_alone(
    db: Database, blobs: LocalBlobStore, demo: DemoData, state: S
) -> None:
    hs_id, ids = queued_session(db, blobs, demo, [jpeg(astronaut())], state=state)
    before = outbox_size(db)
    consume(db, blobs, approved(demo.org_id, hs_id))
    assert session_state(db, demo.org_id, hs_id) == (state, None)
    assert outbox_size(db) == before
    assert photo_rows(db, demo.org_id, ids)[0]["decision"] is None


def test_an_unknown_or_other_tenants_session_is_acknowledged_without_effect(
    db: Database, blobs: LocalBlobStore, demo: DemoData
) -> None:
    hs_id, _ids = queued_session(db, blobs, demo, [jpeg(astronaut())])
    consume(db, blobs, approved(demo.org_id, str(uuid.uuid4())))
    consume(db, blobs, approved(demo.other_org_id, hs_id))  # the right id, another organization
    assert session_state(db, demo.org_id, hs_id) == (S.QUEUED, None)
    assert outbox_size(db) == 0


def test_a_session_deleted_while_its_photos_are_prepared_stops(
    db: Database, blobs: LocalBlobStore, demo: DemoData
) -> None:
    hs_id, ids = queued_session(db, blobs, demo, [jpeg(astronaut())])
    message = approved(demo.org_id, hs_id)
    pending = steps.begin(db, message)
    assert pending is not None
    with db.uow(org_id=demo.org_id) as uow:
        hs = uow.session.get(HeadshotSession, hs_id)
        assert hs is not None
        hs.move_to(S.DELETED)
        uow.commit()
    assert prepare_one(db, blobs, OPTIONS, message, pending[0]) == "stopped"
    consume(db, blobs, message)
    assert published(db, PHOTOS_PROCESSED, hs_id) == [] and _files(blobs, "prepared") == []


def test_when_every_photo_is_blurry_the_session_fails_with_a_reason_to_act_on(
    db: Database, blobs: LocalBlobStore, demo: DemoData
) -> None:
    soft = jpeg(blurred(grace_hopper(), 3.0))
    hs_id, ids = queued_session(db, blobs, demo, [soft, soft])
    consume(db, blobs, approved(demo.org_id, hs_id))

    reason = "All your photos are blurry. Please upload sharper ones."
    assert session_state(db, demo.org_id, hs_id) == (S.FAILED, reason)
    [failed] = published(db, SESSION_FAILED, hs_id)
    assert failed.data == {"stage": "preprocessing", "reason": reason}
    assert published(db, PHOTOS_PROCESSED, hs_id) == []
    assert [r["reason"].startswith("too blurry (sharpness 0.") for r in photo_rows(db, demo.org_id, ids)] == [
        True,
        True,
    ]


def test_a_session_without_photos_fails_with_a_reason(
    db: Database, blobs: LocalBlobStore, demo: DemoData
) -> None:
    hs_id, _ids = queued_session(db, blobs, demo, [])
    consume(db, blobs, approved(demo.org_id, hs_id))
    state, reason = session_state(db, demo.org_id, hs_id)
    assert state == S.FAILED and reason is not None and "no photos" in reason
    assert [m.data["stage"] for m in published(db, SESSION_FAILED, hs_id)] == ["preprocessing"]


def test_the_worker_is_wired_by_convention(tmp_path: Path, sqlite_url: str) -> None:
    from libs.settings import Settings

    settings = Settings(VAR_DIR=str(tmp_path), PREPARE_KEEP_BEST=4, PREPARE_MIN_PHOTOS=2, LORA_RESOLUTION=768)
    db = Database(sqlite_url)
    deps = build_deps(settings, db, LocalBlobStore(tmp_path / "blobs"))
    assert deps["options"] == PreprocessOptions(keep_best=4, min_photos=2, training_side=768)
    # The worker's queue is derived from the subscriptions: the table must handle exactly those
    # (every test above sends its message through the table).
    assert set(HANDLERS) == set(SUBSCRIPTIONS["preprocess"])
    db.dispose()


def _created(db: Database, demo: DemoData, photo_id: str):  # -> datetime
    from libs.db import Photo

    with db.session(org_id=demo.org_id) as s:
        photo = s.get(Photo, photo_id)
        assert photo is not None
        return photo.created_at


def _files(blobs: LocalBlobStore, kind: str = "") -> list[str]:
    root = blobs.root / kind if kind else blobs.root
    return [str(p.relative_to(blobs.root)) for p in root.rglob("*") if p.is_file()] if root.exists() else []
