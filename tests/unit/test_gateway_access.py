"""Who may listen to a session's progress: the owner (intake cookie) or a token for that one
session. Everything else is refused at the handshake and logged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from libs.contracts import SESSION_APPROVED, SessionState
from libs.db import Database, HeadshotSession
from libs.db.demo import DemoData, seed_demo
from libs.settings import Settings
from services.gateway.access import Refused, authorize
from tests.support.gateway import new_session, token_for
from tests.support.gateway_app import GatewayUnderTest, follow, received


@pytest.fixture(name="db")
def db_fixture(settings: Settings, sqlite_url: str) -> Iterator[Database]:
    database = Database(sqlite_url)
    yield database
    database.dispose()


@pytest.fixture(name="demo")
def demo_fixture(db: Database) -> DemoData:
    return seed_demo(db)


def test_the_owner_by_cookie_and_a_token_holder_are_let_in(
    settings: Settings, db: Database, demo: DemoData
) -> None:
    bea = demo.employees[0]
    sid = new_session(db, bea)
    by_cookie = authorize(db, settings, session_id=sid, token=None, user=bea)
    by_token = authorize(db, settings, session_id=sid, token=token_for(settings, db, sid), user=None)
    assert (by_cookie.via, by_token.via) == ("cookie", "token")
    assert by_cookie.session_id == by_token.session_id == sid
    # A stale token does not lock the owner out while their cookie is good.
    assert authorize(db, settings, session_id=sid, token="forged", user=bea).via == "cookie"


@pytest.mark.parametrize(
    "case, reason",
    [
        ("nothing", "not signed in and no token"),
        ("forged token", "forged token"),
        ("expired token", "expired token"),
        ("token of another session", "token for another session"),
        ("colleague's cookie", "does not own it"),
        ("other org's cookie", "does not own it"),
        ("deleted session", "does not own it"),
        ("no session id", "no session named"),
    ],
)
def test_everything_else_is_refused_with_a_reason(
    settings: Settings, db: Database, demo: DemoData, case: str, reason: str
) -> None:
    bea, carl, dana = demo.employees[0], demo.employees[1], demo.other_employee
    sid = new_session(db, bea)
    other = new_session(db, carl)
    session_id: object = sid
    token: str | None = None
    user = None
    if case == "forged token":
        token = token_for(settings.replace(SECRET_KEY="not-ours"), db, sid)
    elif case == "expired token":
        token = token_for(settings, db, sid)
        settings = settings.replace(PROGRESS_TOKEN_TTL_SECONDS=-1)
    elif case == "token of another session":
        token = token_for(settings, db, other)
    elif case == "colleague's cookie":
        user = carl
    elif case == "other org's cookie":
        user = dana
    elif case == "deleted session":
        with db.uow(org_id=bea.org_id) as uow:
            hs = uow.session.get(HeadshotSession, sid)
            assert hs is not None
            hs.state = SessionState.DELETED
            uow.commit()
        user = bea
    elif case == "no session id":
        session_id, user = None, bea
    with pytest.raises(Refused) as refused:
        authorize(db, settings, session_id=session_id, token=token, user=user)
    assert reason in refused.value.reason


def test_a_refused_page_never_joins_and_the_refusal_is_logged(
    settings: Settings, db: Database, demo: DemoData, caplog: pytest.LogCaptureFixture
) -> None:
    gw = GatewayUnderTest.build(settings, db)
    bea, carl = demo.employees[0], demo.employees[1]
    sid = new_session(db, bea)
    intruder = gw.page(sid, user=carl)
    forged = gw.page(sid, token="eyJzIjoiYSJ9.forged.sig")
    assert not intruder.is_connected("/progress") and not forged.is_connected("/progress")
    assert caplog.text.count("refused a progress connection") == 2
    assert f"user {carl.id} does not own it" in caplog.text
    owner = gw.page(sid, user=bea)
    assert owner.is_connected("/progress")
    assert follow(owner) == {"ok": True}
    [(name, state)] = received(owner)
    assert (name, state["state"], state["id"]) == ("state", "submitted", 0)
    # Nobody but the owner's page is in the session's room.
    gw.gateway.rooms.deliver(sid, {"id": 7, "type": SESSION_APPROVED.routing_key, "at": "", "data": {}})
    assert [n for n, _ in received(owner)] == ["event"]
    assert gw.gateway.namespace.refused == 2
