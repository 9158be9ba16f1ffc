"""Renewal on intake: "Start a new headshot session" is offered on the results page only when the
organization has renewal on and the latest session is complete; the API refuses it otherwise."""

from __future__ import annotations

from sqlalchemy import func, select

from libs.contracts import SessionState
from libs.db import HeadshotSession
from libs.db.demo import DemoData
from tests.support.intake import (
    sign_in,
)
from tests.support.review import make_session, set_org

S = SessionState


def sessions_of(db, demo: DemoData, user_id: str) -> int:
    with db.session(org_id=demo.org_id) as s:
        return s.scalar(
            select(func.count()).select_from(HeadshotSession).where(HeadshotSession.user_id == user_id)
        )


def test_a_new_session_is_offered_and_started_only_with_renewal(app, intake_settings, db, demo: DemoData):
    bea = demo.employees[0]
    done = make_session(db, demo.org_id, bea.id, S.COMPLETED)
    who = sign_in(app, intake_settings, bea)
    assert who.session_id == done
    page = who.client.get(f"/sessions/{done}/results").get_data(as_text=True)
    assert "Start a new headshot session" not in page
    refused = who.client.post("/api/v1/sessions/new", headers=who.headers)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "renewal_off"

    set_org(db, demo.org_id, renewal=True)
    page = who.client.get(f"/sessions/{done}/results").get_data(as_text=True)
    assert "Start a new headshot session" in page
    started = who.client.post("/sessions/new", data={"csrf_token": who.csrf})
    assert started.status_code == 303
    new_id = started.headers["Location"].rsplit("/", 1)[1]
    assert new_id != done and sessions_of(db, demo, bea.id) == 2
    # While the new one is in progress, nothing more is offered or allowed.
    assert "Start a new headshot session" not in who.client.get(f"/sessions/{done}/results").get_data(
        as_text=True
    )
    again = who.client.post("/api/v1/sessions/new", headers=who.headers)
    assert again.status_code == 409 and again.json["error"]["code"] == "session_in_progress"
    assert sessions_of(db, demo, bea.id) == 2
