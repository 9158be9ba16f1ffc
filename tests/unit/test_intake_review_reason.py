"""The reason an org admin gave when sending a session back is shown on the person's onboarding
page, read from the session itself (review stores it there with the decision)."""

from __future__ import annotations

from libs.contracts import SessionState
from libs.db import HeadshotSession
from libs.db.demo import DemoData
from tests.support.intake import (
    sign_in,
)
from tests.support.review import make_session


def test_the_stored_reason_is_shown_while_the_session_is_back_in_onboarding(
    app, intake_settings, db, demo: DemoData
):
    bea = demo.employees[0]
    sid = make_session(db, demo.org_id, bea.id, SessionState.ONBOARDING)
    who = sign_in(app, intake_settings, bea)
    assert "asked for a few changes" not in who.client.get(f"/sessions/{sid}").get_data(as_text=True)
    with db.uow(org_id=demo.org_id) as uow:
        uow.session.get(HeadshotSession, sid).review_reason = "Please retake without a hat."
        uow.commit()
    page = who.client.get(f"/sessions/{sid}").get_data(as_text=True)
    assert "Your admin asked for a few changes" in page and "Please retake without a hat." in page
    assert (
        who.client.get(f"/api/v1/sessions/{sid}").json["rejection_reason"] == "Please retake without a hat."
    )
