"""The console's review queue in a Flask test client on SQLite: sign-in by admin link, the queue,
photos served to the admin only, approve, reject with a required reason, bulk approve, and a
second decision answered 409 with nothing published twice."""

from __future__ import annotations

from libs.contracts import SESSION_APPROVED, SESSION_REJECTED, SessionState
from libs.db import HeadshotSession, User
from libs.db.demo import DemoData
from services.review.views_sign_in import admin_invite_url
from tests.support.review import (  # noqa: F401  (fixtures)
    app_fixture,
    blobs_fixture,
    console_sign_in,
    db_fixture,
    demo_fixture,
    make_session,
    outbox,
    review_settings_fixture,
    session_state,
    store_photo,
)

S = SessionState


def test_an_admin_link_signs_in_and_other_links_do_not(app, review_settings, db, demo: DemoData):
    client, _ = console_sign_in(app, review_settings, demo.admin)
    assert client.get("/queue").status_code == 200
    employee_link = admin_invite_url(review_settings, demo.employees[0]).split("/review", 1)[1]
    assert app.test_client().get(employee_link).status_code == 403
    assert app.test_client().get("/invite/not-a-token").status_code == 400
    with db.uow(org_id=demo.org_id) as uow:
        uow.session.get(User, demo.admin.id).active = False
        uow.commit()
    admin_link = admin_invite_url(review_settings, demo.admin).split("/review", 1)[1]
    assert app.test_client().get(admin_link).status_code == 400
    assert client.get("/queue").status_code == 401  # the open cookie stops working at once


def test_employees_get_403_and_strangers_401(app, demo: DemoData):
    employee = app.test_client()
    # Employees sign in on intake; the console sees the shared cookie, as set here.
    with employee.session_transaction() as cookie:
        cookie["user_id"] = demo.employees[0].id
    for path in ("/queue", "/team", "/invite", "/settings"):
        assert employee.get(path).status_code == 403, path
        assert app.test_client().get(path).status_code == 401, path
    assert employee.get("/api/v1/org/members").status_code == 403


def test_the_queue_lists_sessions_in_review_oldest_first_with_photos(app, review_settings, db, blobs, demo):
    bea, carl = demo.employees
    newer = make_session(db, demo.org_id, bea.id, S.IN_REVIEW, age_minutes=5, full_name="Bea Newer")
    older = make_session(db, demo.org_id, carl.id, S.IN_REVIEW, age_minutes=50, full_name="Carl Older")
    make_session(db, demo.org_id, carl.id, S.QUEUED, full_name="Not Waiting")
    theirs = make_session(db, demo.other_org_id, demo.other_employee.id, S.IN_REVIEW, full_name="Dana Other")
    photo = store_photo(blobs, db, demo.org_id, older)
    their_photo = store_photo(blobs, db, demo.other_org_id, theirs)

    client, _ = console_sign_in(app, review_settings, demo.admin)
    page = client.get("/queue").get_data(as_text=True)
    assert page.index("Carl Older") < page.index("Bea Newer")
    assert "Not Waiting" not in page and "Dana Other" not in page
    assert "Deep navy · Business shirt" in page and "Portrait 4:5" in page  # chosen style and format labels
    thumb = client.get(f"/sessions/{older}/photos/{photo}/thumb.jpg")
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg" and thumb.data[:2] == b"\xff\xd8"
    assert client.get(f"/sessions/{theirs}/photos/{their_photo}/thumb.jpg").status_code == 404
    assert client.get(f"/sessions/{older}/photos/{their_photo}/full.jpg").status_code == 404
    assert client.get(f"/sessions/{newer}/photos/{photo}/thumb.jpg").status_code == 404
    assert "default-src 'self'" in thumb.headers["Content-Security-Policy"]


def test_approve_queues_once_and_a_second_decision_gets_409(app, review_settings, db, demo):
    sid = make_session(db, demo.org_id, demo.employees[0].id, S.IN_REVIEW)
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    first = client.post(f"/sessions/{sid}/approve", data={"csrf_token": csrf})
    assert first.status_code == 303
    second = client.post(f"/sessions/{sid}/approve", data={"csrf_token": csrf})
    assert second.status_code == 409 and "already been decided" in second.get_data(as_text=True)
    third = client.post(f"/sessions/{sid}/reject", data={"csrf_token": csrf, "reason": "late"})
    assert third.status_code == 409
    assert session_state(db, demo.org_id, sid) == S.QUEUED
    [approved] = outbox(db, SESSION_APPROVED.routing_key, sid)
    assert approved["data"] == {"auto": False, "reviewer_id": demo.admin.id}
    assert outbox(db, SESSION_REJECTED.routing_key) == []


def test_reject_needs_a_reason_and_stores_it(app, review_settings, db, demo):
    sid = make_session(db, demo.org_id, demo.employees[0].id, S.IN_REVIEW)
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    blank = client.post(f"/sessions/{sid}/reject", data={"csrf_token": csrf, "reason": "   "})
    assert blank.status_code == 422 and "Please tell the person" in blank.get_data(as_text=True)
    assert session_state(db, demo.org_id, sid) == S.IN_REVIEW
    done = client.post(
        f"/sessions/{sid}/reject", data={"csrf_token": csrf, "reason": " Too dark, please retake "}
    )
    assert done.status_code == 303
    with db.session(org_id=demo.org_id) as s:
        hs = s.get(HeadshotSession, sid)
        assert (hs.state, hs.review_reason, hs.reviewed_by) == (
            S.REJECTED,
            "Too dark, please retake",
            demo.admin.id,
        )
    [rejected] = outbox(db, SESSION_REJECTED.routing_key, sid)
    assert rejected["data"] == {"reviewer_id": demo.admin.id, "reason": "Too dark, please retake"}


def test_bulk_approve_skips_what_is_already_decided(app, review_settings, db, demo):
    bea, carl = demo.employees
    a = make_session(db, demo.org_id, bea.id, S.IN_REVIEW)
    b = make_session(db, demo.org_id, carl.id, S.IN_REVIEW)
    done = make_session(db, demo.org_id, carl.id, S.QUEUED)
    theirs = make_session(db, demo.other_org_id, demo.other_employee.id, S.IN_REVIEW)
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    response = client.post(
        "/queue/approve",
        data={"csrf_token": csrf, "session_ids": [a, b, done, theirs]},
        follow_redirects=True,
    )
    text = response.get_data(as_text=True)
    assert "Approved 2 session(s)" in text and "2 session(s) had already been decided" in text
    assert {session_state(db, demo.org_id, x) for x in (a, b)} == {S.QUEUED}
    assert session_state(db, demo.other_org_id, theirs) == S.IN_REVIEW
    assert len(outbox(db, SESSION_APPROVED.routing_key)) == 2


def test_a_form_without_its_csrf_token_is_refused(app, review_settings, db, demo):
    sid = make_session(db, demo.org_id, demo.employees[0].id, S.IN_REVIEW)
    client, _ = console_sign_in(app, review_settings, demo.admin)
    assert client.post(f"/sessions/{sid}/approve").status_code == 400
    assert session_state(db, demo.org_id, sid) == S.IN_REVIEW
