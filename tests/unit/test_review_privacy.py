"""The org admin deletes a member's data (console with a confirmation page, and the org API), and
reads the organization's deletion receipts; another organization's member is not found."""

from __future__ import annotations

from sqlalchemy import select

from libs.contracts import SessionState
from libs.db import DeletionReceipt, HeadshotSession
from libs.db.demo import DemoData
from tests.support.review import (  # noqa: F401  (fixtures)
    app_fixture,
    blobs_fixture,
    console_sign_in,
    db_fixture,
    demo_fixture,
    make_session,
    review_settings_fixture,
    store_photo,
)
from tests.unit.test_review_api import api_key


def _state(db, sid: str) -> str:
    with db.session(all_orgs=True) as s:
        return s.get(HeadshotSession, sid).state


def test_the_admin_deletes_a_members_data_after_confirming(app, review_settings, db, blobs, demo: DemoData):
    bea = demo.employees[0]
    done = make_session(db, demo.org_id, bea.id, SessionState.SUBMITTED)
    store_photo(blobs, db, demo.org_id, done)
    with db.session(all_orgs=True) as s:
        (key,) = [p.clean_key for p in s.get(HeadshotSession, done).photos]
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    assert "Delete data" in client.get("/team").get_data(as_text=True)
    page = client.get(f"/members/{bea.id}/delete-data").get_data(as_text=True)
    assert bea.email in page and "cannot be undone" in page
    refused = client.post(f"/members/{bea.id}/delete-data", data={"csrf_token": csrf})
    assert refused.status_code == 422 and _state(db, done) == "submitted" and blobs.exists(key)

    answer = client.post(f"/members/{bea.id}/delete-data", data={"csrf_token": csrf, "confirm": "yes"})
    assert answer.status_code == 303 and _state(db, done) == "deleted" and not blobs.exists(key)
    receipts = client.get("/deletion-receipts").get_data(as_text=True)
    assert done in receipts and "an admin" in receipts and "1 photos" in receipts
    assert "Bea Employee" not in receipts
    other = demo.other_employee.id
    assert client.get(f"/members/{other}/delete-data").status_code == 404
    assert (
        client.post(f"/members/{other}/delete-data", data={"csrf_token": csrf, "confirm": "yes"}).status_code
        == 404
    )


def test_the_org_api_deletes_a_members_data_and_lists_receipts(app, review_settings, db, demo: DemoData):
    bea = demo.employees[1]
    sid = make_session(db, demo.org_id, bea.id, SessionState.COMPLETED)
    key = api_key(app, review_settings, demo.admin)
    client = app.test_client()
    url = f"/api/v1/org/members/{bea.id}/delete-data"
    assert client.post(url, json={"confirm": False}, headers=key).status_code == 422
    assert client.post(url, json={}, headers=key).status_code == 422
    assert _state(db, sid) == "completed"
    answer = client.post(url, json={"confirm": True}, headers=key)
    assert answer.status_code == 200, answer.json
    [receipt] = answer.json["receipts"]
    assert (
        receipt["session_id"] == sid and receipt["actor"] == demo.admin.id and receipt["reason"] == "request"
    )
    assert _state(db, sid) == "deleted"
    assert client.post(url, json={"confirm": True}, headers=key).json["receipts"] == []  # nothing left
    listed = client.get("/api/v1/org/members/deletion-receipts", headers=key).json["receipts"]
    assert [r["session_id"] for r in listed] == [sid]
    missing = f"/api/v1/org/members/{demo.other_employee.id}/delete-data"
    assert client.post(missing, json={"confirm": True}, headers=key).status_code == 404
    with db.session(all_orgs=True) as s:
        assert len(s.scalars(select(DeletionReceipt)).all()) == 1
