"""Only support staff get into ops: 401 signed out, 403 for org admins and employees on every page
and API route; every action needs the CSRF token; the sign-in link only works for support staff."""

from __future__ import annotations

import pytest
from flask import Flask

from libs.db import Database
from libs.db.demo import DemoData
from libs.settings import Settings
from libs.web import invite_url
from tests.support.ops import (  # noqa: F401 (fixtures)
    OpsClient,
    audit_actions,
    demo_fixture,
    make_session,
    ops_app_fixture,
    ops_blobs_fixture,
    ops_db_fixture,
    ops_settings_fixture,
    sign_in_other,
    state_of,
    support_fixture,
)

PAGES = [
    "/",
    "/sessions/{hs}",
    "/queues",
    "/dead-letters",
    "/workers",
    "/mail",
    "/webhooks",
    "/audit",
    "/dead-letters/review.session.submitted.dead",
    "/api/v1/ops/sessions",
    "/api/v1/ops/sessions/{hs}/timeline",
    "/api/v1/ops/emails",
    "/api/v1/ops/webhooks",
    "/api/v1/ops/openapi.json",
]
ACTIONS = [
    "/sessions/{hs}/retry",
    "/sessions/{hs}/fail",
    "/sessions/{hs}/delete",
    "/dead-letters/review.session.submitted.dead/replay",
    "/dead-letters/review.session.submitted.dead/discard",
    "/api/v1/ops/sessions/{hs}/retry",
    "/api/v1/ops/sessions/{hs}/fail",
    "/api/v1/ops/sessions/{hs}/delete",
]


@pytest.mark.parametrize("who", ["admin", "employee"])
def test_org_people_get_403_everywhere(
    ops_app: Flask, ops_settings: Settings, ops_db: Database, demo: DemoData, who: str
) -> None:
    hs = make_session(ops_db, demo, "failed", failure_reason="boom")
    user = demo.admin if who == "admin" else demo.employees[0]
    other = sign_in_other(ops_app, ops_settings, user)
    for path in PAGES:
        assert other.get(path.format(hs=hs)).status_code == 403, path
    for path in ACTIONS:
        response = other.post(path.format(hs=hs), {"reason": "x" * 10, "confirm": "yes"})
        assert response.status_code == 403, path
    assert state_of(ops_db, hs) == "failed" and audit_actions(ops_db) == []
    api = other.get("/api/v1/ops/sessions")
    assert api.json["error"]["code"] == "forbidden"


def test_signed_out_visitors_are_asked_to_sign_in(ops_app: Flask, demo: DemoData) -> None:
    client = ops_app.test_client()
    page = client.get("/")
    assert page.status_code == 401 and "services.ops invite" in page.get_data(as_text=True)
    assert client.get("/api/v1/ops/sessions").status_code == 401
    assert client.get("/healthz").status_code == 200  # health and metrics stay open for probes
    assert client.get("/metrics").status_code == 200


def test_actions_need_the_csrf_token(support: OpsClient, ops_db: Database, demo: DemoData) -> None:
    hs = make_session(ops_db, demo, "failed", failure_reason="boom")
    for path in ACTIONS:
        response = support.post(path.format(hs=hs), {"reason": "long enough", "confirm": "yes"}, csrf=False)
        assert response.status_code == 400 and b"expired" in response.data, path
    assert state_of(ops_db, hs) == "failed" and audit_actions(ops_db) == []


def test_the_sign_in_link_is_for_support_staff_only(
    ops_app: Flask, ops_settings: Settings, demo: DemoData
) -> None:
    client = ops_app.test_client()
    employee_link = invite_url(ops_settings, demo.employees[0], "/invite/").removeprefix(
        ops_settings.public_url
    )
    assert client.get(employee_link).status_code == 400
    assert client.get("/invite/not-a-token").status_code == 400
    assert client.get("/").status_code == 401
    support_link = invite_url(ops_settings, demo.support, "/invite/").removeprefix(ops_settings.public_url)
    response = client.get(support_link)
    assert response.status_code == 303 and response.headers["Location"].endswith("/")
    assert client.get("/").status_code == 200


def test_another_org_session_is_visible_to_support_only(
    support: OpsClient, ops_app: Flask, ops_settings: Settings, ops_db: Database, demo: DemoData
) -> None:
    theirs = make_session(ops_db, demo, "queued", user=demo.other_employee)
    assert support.get(f"/sessions/{theirs}").status_code == 200
    assert support.get("/sessions/00000000-0000-0000-0000-000000000000").status_code == 404
    assert support.get("/api/v1/ops/sessions/nope/timeline").status_code == 404
