"""Proof that erased means gone: a session with unique markers runs to completion through the whole
product (embedded, and on RabbitMQ + PostgreSQL + an S3-compatible blob store), then retention, the
person's deletion request and their admin's erasure of the account; afterwards no table, blob (the
folder or the S3 bucket), person model, e-mail, outbox row, dead-letter queue, log line or the SQLite
file itself holds a marker, and the receipts list exactly what went."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from libs.db import DeletionReceipt, Headshot, HeadshotSession, Organization, PersonModel, Photo
from libs.db.demo import DemoData, seed_demo
from libs.privacy import run_retention
from libs.settings import Settings
from libs.storage.s3 import S3BlobStore
from libs.web import invite_url
from services import launcher
from services.review.views_sign_in import admin_invite_url
from tests.integration.test_journey import wait_for_state
from tests.support.intake import (
    astronaut_png,
)
from tests.support.privacy import (
    Captured,
    blobs_with,
    dead_letters_with,
    files_with,
    plant_dead_letter,
    png_with_text,
    rows_with,
    s3_proof_endpoint_fixture,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.integration


@pytest.fixture
def product(
    request: pytest.FixtureRequest, backend: Settings
) -> Iterator[tuple[launcher.Running, DemoData, Captured]]:
    captured = Captured()
    root = logging.getLogger()
    root.addHandler(captured)
    settings = backend.replace(PORT=0, LOG_LEVEL="DEBUG")
    if not settings.database_url.startswith("sqlite"):  # distributed: the blobs go to S3
        settings = settings.replace(
            BLOB_URL="s3://proof-blobs/headshots",
            S3_ENDPOINT_URL=request.getfixturevalue("s3_proof_endpoint"),
            S3_ACCESS_KEY_ID="test",
            S3_SECRET_ACCESS_KEY="test",
        )
    running = launcher.start(settings)
    try:
        if isinstance(running.platform.blobs, S3BlobStore):
            running.platform.blobs.client.create_bucket(Bucket=running.platform.blobs.bucket)
        yield running, seed_demo(running.platform.db), captured
    finally:
        running.shutdown()
        root.removeHandler(captured)


def _uploads(db, sid: str) -> dict[str, int]:
    """What retention should take: photo rows, their files, embeddings, live person models."""
    with db.session(all_orgs=True) as s:
        photos = s.scalars(select(Photo).where(Photo.session_id == sid)).all()
        models = s.scalars(select(PersonModel).where(PersonModel.session_id == sid)).all()
        kinds = {
            "photos": len(photos),
            "photo_files": sum(
                bool(k) for p in photos for k in (p.original_key, p.clean_key, p.prepared_key, p.training_key)
            ),
            "reference_embeddings": sum(bool(p.embedding) for p in photos),
            "person_models": sum(m.retired_at is None or Path(m.path).exists() for m in models),
        }
    return {k: v for k, v in kinds.items() if v}


def _erased(db, sid: str) -> bool:
    with db.session(all_orgs=True) as s:
        return s.get(HeadshotSession, sid).personal_info_erased_at is not None


def wait_until(check, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"never saw {what}")


def _headshots(db, sid: str) -> dict[str, int]:
    with db.session(all_orgs=True) as s:
        shots = s.scalars(select(Headshot).where(Headshot.session_id == sid)).all()
    return {
        "headshots": len(shots),
        "headshot_files": sum(bool(k) for h in shots for k in (h.blob_key, h.thumb_key)),
    }


@pytest.mark.timeout(600)
def test_nothing_of_a_person_is_left_after_retention_and_a_deletion_request(product) -> None:
    running, demo, captured = product
    settings = running.platform.settings
    db, base = running.platform.db, settings.public_url
    name, exif = f"Quillon Marker{uuid.uuid4().hex[:10]}", f"PhotoMarker{uuid.uuid4().hex[:10]}"
    dead = f"DeadLetterMarker{uuid.uuid4().hex[:10]}"
    person = demo.employees[0]
    markers = [name, exif, dead]
    blobs = running.platform.blobs
    sqlite = settings.database_url.startswith("sqlite")
    database_file = Path(settings.database_url.removeprefix("sqlite:///"))
    http = requests.Session()
    assert http.get(invite_url(settings, demo.employees[0]), timeout=10).status_code == 200
    current = http.get(f"{base}/api/v1/sessions/current", timeout=10).json()
    sid, headers = current["id"], {"X-CSRF-Token": current["csrf_token"]}
    api = f"{base}/api/v1/sessions/{sid}"
    photo = png_with_text(astronaut_png(), exif)
    assert http.post(f"{api}/photos", files={"photo": ("me.png", photo)}, headers=headers).status_code == 201
    info = {"full_name": name, "gender": "female", "eye_color": "brown", "glasses": "no_glasses"}
    assert http.put(f"{api}/info", json=info, headers=headers).status_code == 200
    style = current["options"]["styles"][0]
    style_id = style["id"] if isinstance(style, dict) else style
    assert http.put(f"{api}/styles", json={"styles": [style_id], "format": "standard"}, headers=headers).ok
    submit = http.post(f"{api}/submit", json={"agree_terms": True, "best_photos": True}, headers=headers)
    assert submit.status_code == 200, submit.text
    assert rows_with(db, [name]) == [f"headshot_sessions: {name}"]  # the search does find a marker
    # A faulty producer's message about this session, carrying personal data, breaks its contract:
    # its consumers dead-letter it whole. The search finds it there.
    plant_dead_letter(settings, person.org_id, sid, dead)
    someone_elses = f"OtherPersonMarker{uuid.uuid4().hex[:10]}"  # about another session: must stay
    plant_dead_letter(settings, person.org_id, str(uuid.uuid4()), someone_elses)
    wait_until(lambda: len(dead_letters_with(settings, [dead])) >= 2, "the planted message dead-lettered")
    wait_until(lambda: dead_letters_with(settings, [someone_elses]), "the other message dead-lettered")
    if sqlite:  # the name in the database file itself, not only in the write-ahead log
        with db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        assert name.encode() in database_file.read_bytes()

    wait_for_state(http, f"{api}/status", "completed")
    wait_until(lambda: _erased(db, sid), "the personal info erased after session.completed")
    var = Path(settings.VAR_DIR)
    assert rows_with(db, markers) == []  # personal info erased at completion
    assert any(exif in hit for hit in blobs_with(blobs, [exif]))  # the original upload is still kept

    # Retention, as the ops worker runs it, with the clock past the organization's retention days.
    with db.session(all_orgs=True) as s:
        hs = s.get(HeadshotSession, sid)
        days = s.get(Organization, hs.org_id).retention_days
        later = hs.completed_at + timedelta(days=days, hours=1)
    went_by_retention = _uploads(db, sid)
    assert went_by_retention.get("photos") and went_by_retention.get("photo_files")
    assert not run_retention(
        settings, db, running.platform.blobs, later - timedelta(hours=2), claim=False
    ).sessions
    assert run_retention(settings, db, running.platform.blobs, later, claim=False).sessions == [sid]
    assert files_with(var, [exif]) == [] and blobs_with(blobs, [exif]) == []
    assert http.get(f"{api}/status", timeout=10).json()["state"] == "completed"  # headshots stay

    # The person deletes the rest: a confirmation is required, then the session is gone.
    went_on_request = _headshots(db, sid)
    assert went_on_request["headshots"] > 0
    refused = http.post(f"{api}/delete", json={"confirm": False}, headers=headers)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "confirmation_needed"
    deleted = http.post(f"{api}/delete", json={"confirm": True}, headers=headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["kinds"] == went_on_request and deleted.json()["by"] == "you"
    assert http.get(f"{api}/status", timeout=10).status_code == 404
    receipts = http.get(f"{base}/api/v1/sessions/deletion-receipts", timeout=10).json()
    assert [(r["reason"], r["kinds"]) for r in receipts] == [
        ("request", went_on_request),
        ("retention", went_by_retention),
        ("completion", {"personal_info": 4}),
    ]

    # The session's dead letters go with it; another session's stay.
    assert dead_letters_with(settings, [dead]) == []
    assert dead_letters_with(settings, [someone_elses])

    # Their admin then erases the person: the account, its e-mails, its dead letters.
    admin = requests.Session()
    assert admin.get(admin_invite_url(settings, demo.admin), timeout=10).status_code == 200
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', admin.get(f"{base}/review/queue").text).group(1)
    erased = admin.post(
        f"{base}/review/api/v1/org/members/{person.id}/delete-data",
        json={"confirm": True},
        headers={"X-CSRF-Token": csrf},
        timeout=30,
    )
    assert erased.status_code == 200, erased.text
    assert [(r["session_id"], r["kinds"]["account"]) for r in erased.json()["receipts"]] == [(None, 1)]
    assert http.get(invite_url(settings, person), timeout=10).status_code == 400  # the link is dead
    markers.append(person.email)

    with db.session(all_orgs=True) as s:
        assert s.get(HeadshotSession, sid).state == "deleted"
        assert s.scalars(select(Headshot).where(Headshot.session_id == sid)).all() == []
        actors = {"system", hs.user_id, demo.admin.id}
        assert all(r.actor in actors for r in s.scalars(select(DeletionReceipt)))
    assert rows_with(db, markers) == []  # every table, outbox bodies and receipts included
    assert dead_letters_with(settings, markers) == []  # every dead-letter queue
    assert dead_letters_with(settings, [someone_elses])  # only the person's dead letters went
    assert blobs_with(blobs, markers) == []  # the blob store (the S3 bucket in the distributed mode)
    running.shutdown()  # every connection closed: SQLite folds its write-ahead log into the file
    db.dispose()
    assert files_with(var, markers) == []  # blobs, person models, .eml files
    if sqlite:
        raw = b"".join(p.read_bytes() for p in database_file.parent.glob(database_file.name + "*"))
        assert all(m.encode() not in raw for m in markers)
    assert [line for line in captured.lines if any(m in line for m in markers)] == []
