"""The org API: API key or cookie + CSRF, the same decisions as the console, the OpenAPI document,
and the cross-tenant matrix (another org's admin or key on this org's ids → 404)."""

from __future__ import annotations

import re

import pytest

from libs.contracts import MEMBER_INVITED, SESSION_APPROVED, SessionState
from libs.db import Role, User
from libs.db.demo import DemoData
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


def api_key(app, review_settings, admin) -> dict[str, str]:
    client, csrf = console_sign_in(app, review_settings, admin)
    page = client.post("/settings/api-keys", data={"csrf_token": csrf, "name": "tool"}).get_data(as_text=True)
    return {"Authorization": "Bearer " + re.search(r'id="new-key">([^<]+)<', page).group(1)}


def other_admin(db, demo: DemoData) -> User:
    with db.uow(org_id=demo.other_org_id) as uow:
        user = User(org_id=demo.other_org_id, email="boss@globex.example", role=Role.ORG_ADMIN.value)
        uow.session.add(user)
        uow.commit()
        return user


def test_decisions_through_the_api(app, review_settings, db, demo: DemoData):
    key = api_key(app, review_settings, demo.admin)
    tool = app.test_client()
    a = make_session(db, demo.org_id, demo.employees[0].id, S.IN_REVIEW, age_minutes=9)
    b = make_session(db, demo.org_id, demo.employees[1].id, S.IN_REVIEW)
    queue = tool.get("/api/v1/org/sessions/in-review", headers=key)
    assert [s["id"] for s in queue.json] == [a, b]
    assert queue.json[0]["preselected_styles"][0]["id"] == "studio-grey:suit"

    assert tool.post(f"/api/v1/org/sessions/{a}/approve", headers=key).json["state"] == S.QUEUED
    again = tool.post(f"/api/v1/org/sessions/{a}/approve", headers=key)
    assert again.status_code == 409 and again.json["error"]["code"] == "already_decided"
    assert len(outbox(db, SESSION_APPROVED.routing_key, a)) == 1

    no_body = tool.post(f"/api/v1/org/sessions/{b}/reject", headers=key)
    assert no_body.status_code == 400 and no_body.json["error"]["code"] == "body_required"
    form = tool.post(f"/api/v1/org/sessions/{b}/reject", data={"reason": "x"}, headers=key)
    assert form.status_code == 415
    empty = tool.post(f"/api/v1/org/sessions/{b}/reject", json={"reason": ""}, headers=key)
    assert empty.status_code == 422 and "reason" in empty.json["error"]["fields"]
    done = tool.post(f"/api/v1/org/sessions/{b}/reject", json={"reason": "Sunglasses"}, headers=key)
    assert (done.status_code, done.json["state"], done.json["review_reason"]) == (
        200,
        S.REJECTED,
        "Sunglasses",
    )


def test_members_invites_and_settings_through_the_api(app, review_settings, db, demo: DemoData):
    key = api_key(app, review_settings, demo.admin)
    tool = app.test_client()
    bad = tool.post(
        "/api/v1/org/invites", json={"invites": [{"email": "ok@x.example"}, {"email": "nope"}]}, headers=key
    )
    assert bad.status_code == 422 and bad.json["error"]["fields"]["invites"] == {
        "2": ["Not an e-mail address."]
    }
    good = tool.post(
        "/api/v1/org/invites",
        json={"invites": [{"email": "ok@x.example", "name": "O, K"}, {"email": "bea@acme.example"}]},
        headers=key,
    )
    assert good.status_code == 201 and good.json["already_members"] == ["bea@acme.example"]
    assert good.json["invited"][0]["name"] == "O, K"
    assert len(outbox(db, MEMBER_INVITED.routing_key)) == 1
    team = tool.get("/api/v1/org/members?status=invited", headers=key).json
    assert team["total"] == 4 and team["counts"]["all"] == 4  # the admin has no session either
    assert tool.get("/api/v1/org/members?status=bogus", headers=key).status_code == 422

    settings = tool.get("/api/v1/org/settings", headers=key).json
    changed = tool.put("/api/v1/org/settings", json={**settings, "renewal": True}, headers=key)
    assert changed.status_code == 200 and changed.json["renewal"] is True
    wrong = tool.put("/api/v1/org/settings", json={**settings, "retention_days": 0}, headers=key)
    assert wrong.status_code == 422
    assert tool.put("/api/v1/org/settings", headers=key).status_code == 400  # the body is required
    assert tool.put("/api/v1/org/settings", json={}, headers=key).status_code == 422
    secret = tool.post("/api/v1/org/settings/webhook-secret", headers=key)
    assert secret.status_code == 201 and len(secret.json["webhook_secret"]) >= 32
    assert secret.json["webhook_secret"] not in str(tool.get("/api/v1/org/settings", headers=key).json)


def test_the_cookie_works_with_its_csrf_token_only(app, review_settings, demo: DemoData):
    client, csrf = console_sign_in(app, review_settings, demo.admin)
    assert client.get("/api/v1/org/settings").status_code == 200
    body = client.get("/api/v1/org/settings").json
    refused = client.put("/api/v1/org/settings", json=body)
    assert refused.status_code == 400 and refused.json["error"]["code"] == "csrf_failed"
    assert client.put("/api/v1/org/settings", json=body, headers={"X-CSRF-Token": csrf}).status_code == 200
    assert app.test_client().get("/api/v1/org/settings").status_code == 401


def test_the_openapi_document_lists_every_operation(app):
    doc = app.test_client().get("/api/v1/org/openapi.json").json
    assert doc["info"]["title"] == "Headshots org API"
    ops = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert ops >= {
        ("/api/v1/org/members", "get"),
        ("/api/v1/org/invites", "post"),
        ("/api/v1/org/sessions/in-review", "get"),
        ("/api/v1/org/sessions/{session_id}/approve", "post"),
        ("/api/v1/org/sessions/{session_id}/reject", "post"),
        ("/api/v1/org/sessions/approve", "post"),
        ("/api/v1/org/settings", "put"),
    }
    assert doc["paths"]["/api/v1/org/sessions/{session_id}/reject"]["post"]["requestBody"]["required"] is True


@pytest.mark.parametrize("via", ["console", "api_key"])
def test_another_orgs_admin_gets_404_on_every_id_of_this_org(app, review_settings, db, blobs, demo, via):
    sid = make_session(db, demo.org_id, demo.employees[0].id, S.IN_REVIEW)
    photo = store_photo(blobs, db, demo.org_id, sid)
    bea = demo.employees[0].id
    key_id = None
    mine, csrf = console_sign_in(app, review_settings, demo.admin)
    mine.post("/settings/api-keys", data={"csrf_token": csrf, "name": "ours"})
    from libs.db import OrgApiKey

    with db.session(org_id=demo.org_id) as s:
        key_id = s.query(OrgApiKey.id).scalar()

    intruder = other_admin(db, demo)
    if via == "console":
        client, their_csrf = console_sign_in(app, review_settings, intruder)
        form, headers = {"csrf_token": their_csrf}, {"X-CSRF-Token": their_csrf}
        requests = [
            ("post", f"/sessions/{sid}/approve", form),
            ("post", f"/sessions/{sid}/reject", {**form, "reason": "x"}),
            ("get", f"/sessions/{sid}/photos/{photo}/thumb.jpg", None),
            ("get", f"/sessions/{sid}/photos/{photo}/full.jpg", None),
            ("post", f"/members/{bea}/resend", form),
            ("post", f"/members/{bea}/deactivate", form),
            ("post", f"/settings/api-keys/{key_id}/revoke", form),
        ]
    else:
        client, headers = app.test_client(), api_key(app, review_settings, intruder)
        requests = []
    requests += [
        ("get", f"/api/v1/org/sessions/{sid}", None),
        ("post", f"/api/v1/org/sessions/{sid}/approve", None),
        ("post", f"/api/v1/org/sessions/{sid}/reject", {"reason": "x"}),
        ("post", f"/api/v1/org/members/{bea}/resend", None),
        ("post", f"/api/v1/org/members/{bea}/deactivate", None),
    ]
    for method, path, data in requests:
        if path.startswith("/api/"):
            response = getattr(client, method)(path, json=data, headers=headers)
        else:
            response = getattr(client, method)(path, data=data)
        assert response.status_code == 404, (method, path, response.status_code)
    assert session_state(db, demo.org_id, sid) == S.IN_REVIEW
    bulk = client.post("/api/v1/org/sessions/approve", json={"session_ids": [sid]}, headers=headers)
    assert bulk.json == {"approved": [], "skipped": [sid]}
    assert outbox(db, SESSION_APPROVED.routing_key) == [] and outbox(db, MEMBER_INVITED.routing_key) == []


def test_an_admins_api_keys_are_revoked_when_the_admin_is_deactivated(app, review_settings, db, demo):
    from sqlalchemy import select

    from libs.db import AuditLog, OrgApiKey

    second = User(org_id=demo.org_id, email="second@acme.example", role=Role.ORG_ADMIN.value)
    with db.uow(org_id=demo.org_id) as uow:
        uow.session.add(second)
        uow.commit()
    theirs, mine = api_key(app, review_settings, second), api_key(app, review_settings, demo.admin)
    tool = app.test_client()
    assert tool.get("/api/v1/org/settings", headers=theirs).status_code == 200
    gone = tool.post(f"/api/v1/org/members/{second.id}/deactivate", headers=mine)
    assert gone.status_code == 200 and gone.json["active"] is False
    refused = tool.get("/api/v1/org/settings", headers=theirs)
    assert refused.status_code == 401 and refused.json["error"]["code"] == "unauthorized"
    assert tool.get("/api/v1/org/settings", headers=mine).status_code == 200  # only theirs died
    with db.session(all_orgs=True) as s:
        keys = {k.created_by: k.revoked_at for k in s.scalars(select(OrgApiKey))}
        entries = s.scalars(select(AuditLog).where(AuditLog.action == "api_key.revoke")).all()
    assert keys[second.id] is not None and keys[demo.admin.id] is None
    [entry] = entries
    assert (entry.actor_id, entry.detail["why"]) == (demo.admin.id, "creator deactivated")
    assert (entry.detail["before"], entry.detail["after"]) == ({"revoked": False}, {"revoked": True})


def test_a_key_whose_creator_lost_admin_rights_is_refused(app, review_settings, db, demo):
    key = api_key(app, review_settings, demo.admin)
    with db.uow(org_id=demo.org_id) as uow:  # changed outside the console (support, a script)
        uow.session.get(User, demo.admin.id).role = Role.EMPLOYEE.value
        uow.commit()
    refused = app.test_client().get("/api/v1/org/members", headers=key)
    assert refused.status_code == 401 and "no longer an admin" in refused.json["error"]["message"]


def test_every_audited_change_says_what_it_was_before_and_after(app, review_settings, db, demo):
    from sqlalchemy import select

    from libs.db import AuditLog

    key = api_key(app, review_settings, demo.admin)
    tool = app.test_client()
    a = make_session(db, demo.org_id, demo.employees[0].id, S.IN_REVIEW)
    b = make_session(db, demo.org_id, demo.employees[1].id, S.IN_REVIEW)
    tool.post(f"/api/v1/org/sessions/{a}/approve", headers=key)
    tool.post(f"/api/v1/org/sessions/{b}/reject", json={"reason": "Bea, no sunglasses"}, headers=key)
    tool.post(f"/api/v1/org/members/{demo.employees[0].id}/resend", headers=key)
    tool.post("/api/v1/org/invites", json={"invites": [{"email": "new@acme.example"}]}, headers=key)
    with db.session(all_orgs=True) as s:
        entries = {e.action: e.detail for e in s.scalars(select(AuditLog).order_by(AuditLog.id))}
    assert entries["session.approve"] == {"before": {"state": "in_review"}, "after": {"state": "queued"}}
    assert entries["session.reject"] == {"before": {"state": "in_review"}, "after": {"state": "rejected"}}
    assert set(entries) >= {"api_key.create", "members.resend", "members.invite"}
    assert all({"before", "after"} <= set(detail) for detail in entries.values()), entries
    # No address, name or free text a person could be quoted in: the target is an id.
    assert demo.employees[0].email not in str(entries) and "sunglasses" not in str(entries)


def test_a_test_webhook_through_the_api_and_its_deliveries(app, review_settings, db, demo):
    from libs.contracts import WEBHOOK_TESTED

    key = api_key(app, review_settings, demo.admin)
    tool = app.test_client()
    assert tool.post("/api/v1/org/settings/webhook-test", headers=key).status_code == 409
    settings = tool.get("/api/v1/org/settings", headers=key).json
    tool.put(
        "/api/v1/org/settings", json={**settings, "webhook_url": "https://hooks.example.com/h"}, headers=key
    )
    tool.post("/api/v1/org/settings/webhook-secret", headers=key)
    sent = tool.post("/api/v1/org/settings/webhook-test", headers=key)
    assert sent.status_code == 202 and sent.json["event"] == WEBHOOK_TESTED.routing_key
    assert sent.json["status"] == "pending"
    listed = tool.get("/api/v1/org/settings/webhook-deliveries", headers=key).json["deliveries"]
    assert [d["id"] for d in listed] == [sent.json["id"]]
    intruder = api_key(app, review_settings, other_admin(db, demo))
    assert tool.get("/api/v1/org/settings/webhook-deliveries", headers=intruder).json["deliveries"] == []


def test_every_body_the_document_requires_is_refused_when_missing(app, review_settings, db, demo):
    from tests.support.openapi import DocumentedApi

    key = api_key(app, review_settings, demo.admin)
    tool = app.test_client()
    sid = make_session(db, demo.org_id, demo.employees[0].id, S.IN_REVIEW)
    document = DocumentedApi.of(app).document
    ids = {"session_id": sid, "user_id": demo.employees[0].id}
    required = [
        (path.format(**ids), method)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in ("post", "put") and op.get("requestBody", {}).get("required")
    ]
    assert len(required) == 5, required
    checked = DocumentedApi.of(app).checked
    for path, method in required:
        answer = getattr(tool, method)(path, headers=key)
        assert (answer.status_code, answer.json["error"]["code"]) == (400, "body_required"), path
    assert DocumentedApi.of(app).checked == checked + len(required)  # each answer matched the document
    assert session_state(db, demo.org_id, sid) == S.IN_REVIEW and outbox(db, MEMBER_INVITED.routing_key) == []
