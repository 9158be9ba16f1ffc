"""The sessions page and API across organizations, a session's page, and the support actions."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from libs.contracts import MODELS_RETIRED, SESSION_APPROVED, SESSION_FAILED, SESSION_SUBMITTED
from libs.db import Database, Headshot, HeadshotSession, OutboxMessage, PersonModel, Photo, StuckCheck, utcnow
from libs.db.demo import DemoData
from libs.storage import LocalBlobStore
from services.ops.queries import PAGE_SIZE
from tests.support.ops import (  # noqa: F401 (fixtures)
    SUBMITTED,
    OpsClient,
    audit_actions,
    demo_fixture,
    make_session,
    ops_app_fixture,
    ops_blobs_fixture,
    ops_db_fixture,
    ops_settings_fixture,
    outbox_for,
    state_of,
    support_fixture,
)

FAILED = [
    (SESSION_SUBMITTED, SUBMITTED),
    (SESSION_FAILED, {"stage": "preprocessing", "reason": "no usable photo"}),
]


def test_list_filters_counts_and_searches_across_orgs(
    support: OpsClient, ops_db: Database, demo: DemoData
) -> None:
    failed = make_session(ops_db, demo, "failed", failure_reason="no usable photo", idle=timedelta(hours=3))
    queued = make_session(ops_db, demo, "queued")
    theirs = make_session(ops_db, demo, "failed", user=demo.other_employee, failure_reason="GPU lost")

    everything = support.get("/api/v1/ops/sessions").json
    assert (
        everything["total"] == 3
        and everything["counts"]["failed"] == 2
        and everything["counts"]["queued"] == 1
    )

    only_failed = support.get("/api/v1/ops/sessions?state=failed").json
    assert {s["id"] for s in only_failed["sessions"]} == {failed, theirs}
    assert only_failed["counts"]["queued"] == 1  # the tabs keep counting every state

    assert [
        s["id"] for s in support.get(f"/api/v1/ops/sessions?org={demo.other_org_id}").json["sessions"]
    ] == [theirs]
    assert [s["id"] for s in support.get("/api/v1/ops/sessions?older_than_hours=1").json["sessions"]] == [
        failed
    ]
    assert [s["id"] for s in support.get(f"/api/v1/ops/sessions?q={queued[:8]}").json["sessions"]] == [queued]
    person = demo.other_employee.id
    assert [s["id"] for s in support.get(f"/api/v1/ops/sessions?q={person}").json["sessions"]] == [theirs]

    page = support.get("/?state=failed").get_data(as_text=True)
    assert failed[:8] in page and theirs[:8] in page and queued[:8] not in page
    assert '<span class="count" data-state="all">3</span>' in page  # the tabs: all, and each state
    assert '<span class="count" data-state="failed">2</span>' in page
    assert "no usable photo" in page and "Globex" in page

    bad = support.get("/api/v1/ops/sessions?state=nonsense")
    assert bad.status_code == 400 and "state" in bad.json["error"]["fields"]
    bad_page = support.get("/?older_than_hours=-3")
    assert bad_page.status_code == 400 and "older_than_hours" in bad_page.get_data(as_text=True)
    assert "<style" not in bad_page.get_data(as_text=True)  # the ops error page passes the strict CSP


def test_stuck_only_lists_the_sessions_flagged_in_the_state_they_are_in(
    support: OpsClient, ops_db: Database, demo: DemoData
) -> None:
    stuck = make_session(ops_db, demo, "queued")
    moved_on = make_session(ops_db, demo, "failed", failure_reason="GPU lost")  # flagged while queued
    fine = make_session(ops_db, demo, "queued")
    with ops_db.uow(all_orgs=True) as uow:
        for session_id, state in ((stuck, "queued"), (moved_on, "queued")):
            uow.session.add(
                StuckCheck(session_id=session_id, org_id=demo.org_id, state=state, flagged_at=utcnow())
            )
        uow.commit()

    listed = support.get("/api/v1/ops/sessions?flagged=true")
    assert listed.status_code == 200
    assert [(s["id"], s["flagged"]) for s in listed.json["sessions"]] == [(stuck, True)]
    assert listed.json["total"] == 1 and listed.json["counts"]["queued"] == 1
    assert support.get("/api/v1/ops/sessions?flagged=true&state=failed").json["sessions"] == []

    page = support.get("/?flagged=true")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert stuck[:8] in html and moved_on[:8] not in html and fine[:8] not in html
    assert 'name="flagged" value="true" checked' in html


def test_list_pages_through_many_sessions(support: OpsClient, ops_db: Database, demo: DemoData) -> None:
    for _ in range(PAGE_SIZE + 2):
        make_session(ops_db, demo, "completed")
    first = support.get("/api/v1/ops/sessions").json
    second = support.get("/api/v1/ops/sessions?page=2").json
    assert first["pages"] == 2 and len(first["sessions"]) == PAGE_SIZE and len(second["sessions"]) == 2
    assert not {s["id"] for s in first["sessions"]} & {s["id"] for s in second["sessions"]}
    assert "older →" in support.get("/").get_data(as_text=True)


def test_session_page_shows_the_timeline_and_the_reason(
    support: OpsClient, ops_db: Database, demo: DemoData
) -> None:
    hs = make_session(
        ops_db, demo, "failed", events=FAILED, failure_reason="no usable photo", full_name="Bea Employee"
    )
    page = support.get(f"/sessions/{hs}").get_data(as_text=True)
    assert SESSION_SUBMITTED.routing_key in page and SESSION_FAILED.routing_key in page
    assert "no usable photo" in page and "Bea Employee" in page  # the name is shown while it exists
    assert 'id="retry"' in page

    timeline = support.get(f"/api/v1/ops/sessions/{hs}/timeline").json
    assert [e["title"] for e in timeline["entries"]] == [
        SESSION_SUBMITTED.routing_key,
        SESSION_FAILED.routing_key,
    ]
    assert [s["state"] for s in timeline["stages"]] == ["submitted", "failed"]
    assert (
        timeline["session"]["org_name"] == "Acme Corporation"
        and timeline["failure_reason"] == "no usable photo"
    )


def test_retry_sends_a_failed_session_back_to_the_queue(
    support: OpsClient, ops_db: Database, demo: DemoData
) -> None:
    hs = make_session(ops_db, demo, "failed", events=FAILED, failure_reason="no usable photo")
    response = support.post(f"/sessions/{hs}/retry")
    assert response.status_code == 303
    assert state_of(ops_db, hs) == "queued"
    [approved] = outbox_for(ops_db, hs, SESSION_APPROVED.routing_key)
    assert json.loads(approved.body)["data"] == {"auto": True, "reviewer_id": None}
    assert audit_actions(ops_db, hs) == ["session.retried"]
    page = support.get(f"/sessions/{hs}").get_data(as_text=True)
    assert "Sent back to the queue" in page and "session.retried" in page

    again = support.post(f"/sessions/{hs}/retry")  # not failed any more: refused, nothing changes
    assert again.status_code == 303
    assert "Only a failed session can be retried" in support.get(f"/sessions/{hs}").get_data(as_text=True)
    assert len(outbox_for(ops_db, hs, SESSION_APPROVED.routing_key)) == 1


def test_fail_needs_a_reason_and_tells_everyone(support: OpsClient, ops_db: Database, demo: DemoData) -> None:
    hs = make_session(ops_db, demo, "training")
    assert support.post(f"/sessions/{hs}/fail", {"reason": ""}).status_code == 303
    assert "Please give a reason" in support.get(f"/sessions/{hs}").get_data(as_text=True)
    assert state_of(ops_db, hs) == "training" and outbox_for(ops_db, hs) == []

    support.post(f"/sessions/{hs}/fail", {"reason": "stuck on a dead GPU node"})
    assert state_of(ops_db, hs) == "failed"
    [failed] = outbox_for(ops_db, hs, SESSION_FAILED.routing_key)
    assert json.loads(failed.body)["data"] == {"stage": "training", "reason": "stuck on a dead GPU node"}
    assert audit_actions(ops_db, hs) == ["session.failed_by_support"]


def test_delete_removes_files_and_personal_info(
    support: OpsClient, ops_db: Database, ops_blobs: LocalBlobStore, demo: DemoData
) -> None:
    hs = make_session(ops_db, demo, "completed", full_name="Bea Employee")
    photo_key = ops_blobs.put(b"photo", kind="photos", ext="jpg")
    shot_key = ops_blobs.put(b"shot", kind="headshots", ext="jpg")
    with ops_db.uow(org_id=demo.org_id) as uow:
        uow.session.add(
            Photo(
                org_id=demo.org_id,
                session_id=hs,
                original_key=photo_key,
                clean_key=photo_key,
                width=1,
                height=1,
                embedding=[0.1],
            )
        )
        uow.session.add(PersonModel(org_id=demo.org_id, session_id=hs, engine="studio", path="m/1"))
        uow.session.add(
            Headshot(
                org_id=demo.org_id,
                session_id=hs,
                style_id="navy:suit",
                index_in_style=0,
                blob_key=shot_key,
                width=1,
                height=1,
                seed=1,
            )
        )
        uow.commit()

    assert support.post(f"/sessions/{hs}/delete").status_code == 303  # no confirmation: nothing happens
    assert state_of(ops_db, hs) == "completed" and ops_blobs.exists(photo_key)

    support.post(f"/sessions/{hs}/delete", {"confirm": "yes"})
    assert state_of(ops_db, hs) == "deleted"
    assert not ops_blobs.exists(photo_key) and not ops_blobs.exists(shot_key)
    with ops_db.session(all_orgs=True) as s:
        row = s.get(HeadshotSession, hs)
        assert row is not None and row.full_name is None and row.personal_info_erased_at is not None
    page = support.get(f"/sessions/{hs}").get_data(as_text=True)
    assert "Bea Employee" not in page and "erased" in page
    assert "Bea Employee" not in json.dumps(support.get(f"/api/v1/ops/sessions/{hs}/timeline").json)
    assert audit_actions(ops_db, hs) == ["session.deleted"]
    with ops_db.session(all_orgs=True) as s:  # the person model is retired through generation
        retired = s.scalars(
            select(OutboxMessage).where(OutboxMessage.routing_key == MODELS_RETIRED.routing_key)
        ).all()
        assert [len(json.loads(r.body)["data"]["person_model_ids"]) for r in retired] == [1]


def test_actions_on_a_missing_session_answer_404(support: OpsClient) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert support.post(f"/sessions/{missing}/retry").status_code == 404
    assert support.post(f"/sessions/{missing}/fail", {"reason": "long enough"}).status_code == 404
    assert support.post(f"/sessions/{missing}/delete", {"confirm": "yes"}).status_code == 404


def test_openapi_document_lists_the_ops_api(support: OpsClient) -> None:
    doc = support.get("/api/v1/ops/openapi.json").json
    assert (
        "/api/v1/ops/sessions" in doc["paths"]
        and "/api/v1/ops/sessions/{session_id}/timeline" in doc["paths"]
    )


def test_the_api_acts_like_the_pages(support: OpsClient, ops_db: Database, demo: DemoData) -> None:
    failed = make_session(ops_db, demo, "failed", failure_reason="boom")
    moving = make_session(ops_db, demo, "generating")
    token = support.get("/api/v1/ops/sessions").json["csrf_token"]
    headers = {"X-CSRF-Token": token}
    api = support.client

    assert api.post(f"/api/v1/ops/sessions/{failed}/retry").status_code == 400  # no CSRF token
    retried = api.post(f"/api/v1/ops/sessions/{failed}/retry", headers=headers)
    assert retried.status_code == 200 and retried.json["state"] == "queued"
    refused = api.post(f"/api/v1/ops/sessions/{failed}/retry", headers=headers)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "action_refused"

    no_reason = api.post(f"/api/v1/ops/sessions/{moving}/fail", json={"reason": ""}, headers=headers)
    assert no_reason.status_code == 422 and "reason" in no_reason.json["error"]["fields"]
    failed_now = api.post(
        f"/api/v1/ops/sessions/{moving}/fail", json={"reason": "dead node"}, headers=headers
    )
    assert failed_now.json["state"] == "failed" and failed_now.json["failure_reason"] == "dead node"

    unconfirmed = api.post(f"/api/v1/ops/sessions/{moving}/delete", json={"confirm": False}, headers=headers)
    assert unconfirmed.status_code == 422 and state_of(ops_db, moving) == "failed"
    deleted = api.post(f"/api/v1/ops/sessions/{moving}/delete", json={"confirm": True}, headers=headers)
    assert deleted.status_code == 200 and deleted.json["state"] == "deleted"
    missing = api.post("/api/v1/ops/sessions/nope/retry", headers=headers)
    assert missing.status_code == 404
    assert audit_actions(ops_db) == ["session.retried", "session.failed_by_support", "session.deleted"]
