"""The org admin deletes a member's data (console with a confirmation page, and the org API), and
reads the organization's deletion receipts; another organization's member is not found."""

from __future__ import annotations

import uuid

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
    receipt, account = answer.json["receipts"]
    assert (
        receipt["session_id"] == sid and receipt["actor"] == demo.admin.id and receipt["reason"] == "request"
    )
    assert (account["session_id"], account["user_id"], account["kinds"]) == (None, bea.id, {"account": 1})
    assert _state(db, sid) == "deleted"
    assert client.post(url, json={"confirm": True}, headers=key).json["receipts"] == []  # nothing left
    listed = client.get("/api/v1/org/members/deletion-receipts", headers=key).json["receipts"]
    assert sorted(r["session_id"] or "" for r in listed) == ["", sid]
    missing = f"/api/v1/org/members/{demo.other_employee.id}/delete-data"
    assert client.post(missing, json={"confirm": True}, headers=key).status_code == 404
    with db.session(all_orgs=True) as s:
        assert len(s.scalars(select(DeletionReceipt)).all()) == 2
    mine = client.post(
        f"/api/v1/org/members/{demo.admin.id}/delete-data", json={"confirm": True}, headers=key
    )
    assert mine.status_code == 409  # an admin does not erase their own account from here


def test_a_deleted_member_is_erased_their_links_and_keys_die_and_their_mail_goes(
    app, review_settings, db, demo: DemoData
):
    from libs.db import AuditLog, EmailSend, OrgApiKey, Role, User
    from libs.privacy import ERASED_DOMAIN
    from libs.web import invite_url
    from services.intake.app import create_app as create_intake_app
    from services.review.views_sign_in import admin_invite_url

    bea = demo.employees[0]
    sid = make_session(db, demo.org_id, bea.id, SessionState.COMPLETED)
    with db.uow(org_id=demo.org_id) as uow:  # she is an admin too, with a key of her own
        uow.session.get(User, bea.id).role = Role.ORG_ADMIN.value
        uow.commit()
    her_key = api_key(app, review_settings, bea)
    # E-mails the embedded mailbox holds for her: an invite, and her session's "ready" e-mail.
    mail = review_settings.mail_dir
    mail.mkdir(parents=True, exist_ok=True)
    files = []
    with db.uow(org_id=demo.org_id) as uow:
        for template, user_id, session_id in (("invite", bea.id, None), ("ready", None, sid)):
            send = EmailSend(
                org_id=demo.org_id,
                message_id=str(uuid.uuid4()),
                template=template,
                user_id=user_id,
                session_id=session_id,
                status="sent",
            )
            uow.session.add(send)
            files.append(mail / f"{send.message_id}.{template}.eml")
            files[-1].write_text(f"To: {bea.email}\n\nHello {bea.display_name}")
        uow.commit()
    someone_else = mail / f"{uuid.uuid4()}.invite.eml"
    someone_else.write_text("To: other@acme.example")
    links = [invite_url(review_settings, bea), admin_invite_url(review_settings, bea)]
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    with db.uow(org_id=demo.org_id) as uow:  # an entry written before addresses were kept out of it
        uow.session.add(
            AuditLog(
                org_id=demo.org_id,
                actor_id=demo.admin.id,
                action="members.resend",
                target=bea.id,
                detail={"before": {}, "after": {"email": bea.email}},
            )
        )
        uow.commit()

    answer = client.post(f"/members/{bea.id}/delete-data", data={"csrf_token": csrf, "confirm": "yes"})
    assert answer.status_code == 303
    with db.session(all_orgs=True) as s:
        row = s.get(User, bea.id)
        assert row.email == f"erased-{bea.id}@{ERASED_DOMAIN}" and row.display_name == "Erased member"
        assert row.active is False and (row.org_id, row.role) == (demo.org_id, Role.ORG_ADMIN.value)
        assert s.get(HeadshotSession, sid).user_id == bea.id  # the org's counts still add up
        everything = str([(e.detail, e.target) for e in s.scalars(select(AuditLog))])
        assert bea.email not in everything and bea.display_name not in everything
        assert s.scalar(select(OrgApiKey).where(OrgApiKey.created_by == bea.id)).revoked_at is not None
    assert not any(f.exists() for f in files) and someone_else.exists()
    receipts = client.get("/api/v1/org/members/deletion-receipts", headers={"X-CSRF-Token": csrf}).json
    account = [r for r in receipts["receipts"] if r["session_id"] is None]
    assert [r["kinds"] for r in account] == [{"account": 1, "email_files": 2}]
    # Every link she was sent stops working, in intake and in the console; so does her key.
    intake = create_intake_app(review_settings, db=db, checks={})
    assert intake.test_client().get(links[0].removeprefix(review_settings.public_url)).status_code == 400
    console_link = links[1].removeprefix(review_settings.public_url).removeprefix("/review")
    assert app.test_client().get(console_link).status_code == 400
    assert app.test_client().get("/api/v1/org/settings", headers=her_key).status_code == 401
    team = client.get("/team?q=bea").get_data(as_text=True)
    assert bea.email not in team
    # Invited again later, the same address is a new member; the erased row is not reused.
    again = client.post(
        "/api/v1/org/invites", json={"invites": [{"email": bea.email}]}, headers={"X-CSRF-Token": csrf}
    )
    assert again.status_code == 201 and again.json["invited"][0]["id"] != bea.id
