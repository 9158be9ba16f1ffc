"""Privacy unit tests: secure_delete, the retention claim, retention itself and its dry run, the
person's deletion request and their receipts (real SQLite unit of work, local blob store)."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, text

from libs.contracts import MODELS_RETIRED, SessionState
from libs.db import (
    Database,
    DeletionReceipt,
    Headshot,
    HeadshotSession,
    OutboxMessage,
    PersonModel,
    Photo,
    make_engine,
)
from libs.db.demo import DemoData
from libs.privacy import claim_period, due_for_retention, run_retention
from libs.settings import Settings
from libs.storage import LocalBlobStore
from services.ops.__main__ import main as ops_main
from tests.support.intake import (
    sign_in,
)

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def _rows_then_delete(conn, marker: str) -> None:
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [(f"{marker}-{n}",) for n in range(50)])
    conn.commit()
    conn.execute("DELETE FROM t WHERE x LIKE 'Marker%'")
    conn.commit()


@pytest.mark.parametrize("secure", [False, True])
def test_an_erased_value_is_not_left_in_the_sqlite_file_with_our_connections(tmp_path: Path, secure: bool):
    path, marker = tmp_path / "x.db", f"Marker{uuid.uuid4().hex}"
    if secure:  # our engine's connect hook (WAL, secure_delete); the checkpoint folds the log in
        engine = make_engine(f"sqlite:///{path}")
        with engine.connect() as conn:
            _rows_then_delete(conn.connection.dbapi_connection, marker)
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
        engine.dispose()
    else:  # a connection without it (some builds default to on): the check does catch a lingering value
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA secure_delete=OFF")
        _rows_then_delete(conn, marker)
        conn.close()
    found = any(marker.encode() in p.read_bytes() for p in tmp_path.glob("x.db*"))
    assert found is not secure


def test_one_retention_round_per_period_across_instances(intake_settings: Settings):
    now = datetime.now(UTC)
    every = timedelta(hours=1)
    databases = [Database(intake_settings.database_url) for _ in range(4)]
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda d=d: results.append(claim_period(d, "retention", now, every)))
        for d in databases
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [False, False, False, True]
    assert claim_period(databases[0], "retention", now + timedelta(minutes=59), every) is False
    assert claim_period(databases[1], "retention", now + timedelta(minutes=61), every) is True
    for d in databases:
        d.dispose()


def _ended_session(
    db: Database, demo: DemoData, blobs: LocalBlobStore, settings: Settings
) -> dict[str, object]:
    """A completed session from long ago with one photo (4 files), a person model and a headshot."""
    keys = [blobs.put(b"x", kind=kind, ext="png") for kind in ("originals", "photos", "photos", "photos")]
    shot_key = blobs.put(b"h", kind="headshots", ext="png")
    record = settings.person_model_dir / "records" / "m1.json"
    weights = settings.person_model_dir / "weights" / "m1.bin"
    weights.parent.mkdir(parents=True)
    record.parent.mkdir(parents=True)
    weights.write_bytes(b"w")
    record.write_text(json.dumps({"path": str(weights), "reference": None}))
    with db.uow(org_id=demo.org_id) as uow:
        hs = HeadshotSession(
            org_id=demo.org_id,
            user_id=demo.employees[0].id,
            package_id="executive",
            state=SessionState.COMPLETED.value,
            completed_at=LONG_AGO,
            personal_info_erased_at=LONG_AGO,
        )
        uow.session.add(hs)
        uow.flush()
        uow.session.add(
            Photo(
                org_id=demo.org_id,
                session_id=hs.id,
                original_key=keys[0],
                clean_key=keys[1],
                prepared_key=keys[2],
                training_key=keys[3],
                width=1,
                height=1,
                embedding=[0.5] * 4,
            )
        )
        uow.session.add(PersonModel(org_id=demo.org_id, session_id=hs.id, engine="studio", path=str(record)))
        uow.session.add(
            Headshot(
                org_id=demo.org_id,
                session_id=hs.id,
                style_id="a:b",
                index_in_style=0,
                blob_key=shot_key,
                width=1,
                height=1,
                seed=1,
            )
        )
        uow.commit()
        return {"id": hs.id, "keys": keys, "shot": shot_key, "record": record, "weights": weights}


def test_retention_deletes_uploads_and_person_models_but_keeps_headshots(
    db: Database, demo: DemoData, blobs: LocalBlobStore, intake_settings: Settings, monkeypatch, capsys
):
    made = _ended_session(db, demo, blobs, intake_settings)
    monkeypatch.setenv("VAR_DIR", intake_settings.VAR_DIR)
    monkeypatch.setenv("DATABASE_URL", intake_settings.database_url)
    assert ops_main(["retention", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert made["id"] in listed and "1 photos, 1 person models" in listed and "dry run" in listed
    assert all(blobs.exists(k) for k in made["keys"])  # the dry run deleted nothing

    now = datetime.now(UTC)
    report = run_retention(intake_settings, db, blobs, now)
    assert report.sessions == [made["id"]] and report.files == 4 + 2  # 4 blobs, the weights and the record
    assert not any(blobs.exists(k) for k in made["keys"]) and blobs.exists(made["shot"])
    assert not made["record"].exists() and not made["weights"].exists()
    assert run_retention(intake_settings, db, blobs, now + timedelta(days=1)).sessions == []  # nothing left
    assert due_for_retention(db, now) == []
    with db.session(all_orgs=True) as s:
        assert s.get(HeadshotSession, made["id"]).state == "completed"
        assert len(s.scalars(select(Headshot)).all()) == 1
        (receipt,) = s.scalars(select(DeletionReceipt)).all()
        assert (receipt.reason, receipt.actor, receipt.user_id) == (
            "retention",
            "system",
            demo.employees[0].id,
        )
        assert receipt.kinds == {"photos": 1, "photo_files": 4, "reference_embeddings": 1, "person_models": 1}
        retired = s.scalars(
            select(OutboxMessage).where(OutboxMessage.routing_key == MODELS_RETIRED.routing_key)
        ).all()
        assert len(retired) == 1  # generation workers (holding the model volume) remove the files too


def test_a_recent_session_is_not_due(
    db: Database, demo: DemoData, blobs: LocalBlobStore, intake_settings: Settings
):
    made = _ended_session(db, demo, blobs, intake_settings)
    with db.uow(all_orgs=True) as uow:
        uow.session.execute(text("UPDATE headshot_sessions SET completed_at = :t"), {"t": datetime.now(UTC)})
        uow.commit()
    assert run_retention(intake_settings, db, blobs, datetime.now(UTC)).sessions == []
    assert all(blobs.exists(k) for k in made["keys"])


def test_the_person_deletes_a_session_with_confirmation_and_sees_the_receipts(
    app: Flask, db: Database, demo: DemoData, blobs: LocalBlobStore, intake_settings: Settings
):
    made = _ended_session(db, demo, blobs, intake_settings)
    me = sign_in(app, intake_settings, demo.employees[0])
    other = sign_in(app, intake_settings, demo.employees[1])
    url = f"/api/v1/sessions/{made['id']}/delete"
    assert other.client.post(url, json={"confirm": True}, headers=other.headers).status_code == 404
    missing = me.client.post(url, json={}, headers=me.headers)
    assert missing.status_code == 422 and "confirm" in missing.json["error"]["fields"]
    assert me.client.post(url, json={"confirm": False}, headers=me.headers).json["error"]["code"] == (
        "confirmation_needed"
    )
    assert me.client.post(url, json={"confirm": True}).status_code in (400, 403)  # no CSRF token
    assert all(blobs.exists(k) for k in made["keys"])  # nothing refused changed anything

    done = me.client.post(url, json={"confirm": True}, headers=me.headers)
    assert done.status_code == 200, done.json
    assert done.json["kinds"] == {
        "photos": 1,
        "photo_files": 4,
        "reference_embeddings": 1,
        "person_models": 1,
        "headshots": 1,
        "headshot_files": 1,
    }
    assert not any(blobs.exists(k) for k in [*made["keys"], made["shot"]]) and not made["record"].exists()
    assert me.client.post(url, json={"confirm": True}, headers=me.headers).status_code == 404  # already gone
    receipts = me.client.get("/api/v1/sessions/deletion-receipts").json
    assert [(r["reason"], r["by"], r["session_id"]) for r in receipts] == [("request", "you", made["id"])]
    assert other.client.get("/api/v1/sessions/deletion-receipts").json == []


def test_the_delete_my_data_pages_confirm_first_and_show_the_receipts(
    app: Flask, db: Database, demo: DemoData, blobs: LocalBlobStore, intake_settings: Settings
):
    made = _ended_session(db, demo, blobs, intake_settings)
    me = sign_in(app, intake_settings, demo.employees[0])
    other = sign_in(app, intake_settings, demo.employees[1])
    results = me.client.get(f"/sessions/{made['id']}/results").get_data(as_text=True)
    assert f"/sessions/{made['id']}/delete" in results and "/my-data" in results
    page = me.client.get(f"/sessions/{made['id']}/delete").get_data(as_text=True)
    assert 'name="confirm"' in page and "csrf_token" in page
    form = {"csrf_token": me.csrf}
    assert other.client.get(f"/sessions/{made['id']}/delete").status_code == 404
    assert other.client.post(
        f"/sessions/{made['id']}/delete", data={**form, "confirm": "yes"}
    ).status_code in (
        400,
        404,
    )
    unconfirmed = me.client.post(f"/sessions/{made['id']}/delete", data=form)
    assert unconfirmed.status_code == 422 and "Please tick the box" in unconfirmed.get_data(as_text=True)
    assert me.client.post(f"/sessions/{made['id']}/delete", data={"confirm": "yes"}).status_code in (400, 403)
    assert all(blobs.exists(k) for k in made["keys"])

    done = me.client.post(f"/sessions/{made['id']}/delete", data={**form, "confirm": "yes"})
    assert done.status_code == 303 and done.headers["Location"].endswith("/my-data")
    assert not any(blobs.exists(k) for k in [*made["keys"], made["shot"]])
    receipts = me.client.get("/my-data").get_data(as_text=True)
    assert "on request" in receipts and "1 headshots" in receipts and "4 photo files" in receipts
    assert "Nothing deleted yet" in other.client.get("/my-data").get_data(as_text=True)


def test_an_account_is_erased_once_and_only_its_own_dead_letters_are_looked_for(db: Database, demo: DemoData):
    from libs.db import User
    from libs.privacy import discard_dead_letters_about, erase_account, is_erased
    from libs.privacy.broker import _concerns

    bea = demo.employees[0]
    with db.uow(org_id=demo.org_id) as uow:
        user = uow.session.get(User, bea.id)
        erasure = erase_account(uow, user, actor=demo.admin.id)
        assert erasure is not None and is_erased(user) and not user.active
        assert erasure.receipt.kinds == {"account": 1} and erasure.receipt.session_id is None
        assert erase_account(uow, user, actor=demo.admin.id) is None  # nothing left: no second receipt
        uow.commit()
    with db.session(all_orgs=True) as s:
        assert bea.email not in {u.email for u in s.scalars(select(User))}
    # Attribution of a dead letter: by the envelope's session id, or an account's id in its data.
    assert _concerns(json.dumps({"session_id": "s1", "data": {}}), {"s1"}, set())
    assert _concerns(json.dumps({"session_id": None, "data": {"user_id": "u1"}}), set(), {"u1"})
    assert not _concerns(json.dumps({"session_id": "s2", "data": {"user_id": "u2"}}), {"s1"}, {"u1"})
    assert not _concerns("not json", {"s1"}, {"u1"}) and not _concerns("[1]", {"s1"}, set())
    # Nothing erased, nothing asked of the broker (an unreachable one would only be logged anyway).
    unreachable = Settings(BROKER_URL="amqp://guest:guest@127.0.0.1:1/none")
    assert discard_dead_letters_about(unreachable, []) == 0
