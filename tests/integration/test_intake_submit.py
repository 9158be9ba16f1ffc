"""Intake on the real servers: PostgreSQL for the data, RabbitMQ for the events.

One submit publishes exactly one ``session.submitted`` (consumed here from our own queue bound to
the events exchange) whose body validates against the contract; a blocked submit publishes
nothing; concurrent submits lock the session row; a rejection sent back by review reaches intake's
handler through its real consumer queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from libs.contracts import (
    EXCHANGE,
    SESSION_REJECTED,
    SESSION_SUBMITTED,
    SessionState,
    decode_message,
    new_message,
)
from libs.db import Database, HeadshotSession
from libs.db.demo import DemoData, seed_demo
from libs.messaging import Bus
from libs.messaging.testing import pika_get_all, pika_parameters, running, wait_for
from libs.settings import Settings
from libs.storage import LocalBlobStore
from services.intake import sessions, submission
from services.intake.app import create_app
from services.intake.commands import Answers, ChooseStyles, SavePersonalInfo
from services.intake.handlers import HANDLERS
from services.intake.sessions import Actor
from tests.support.intake import (
    COMPLETE_INFO,
    add_photo,
    astronaut_png,
    intake_settings_for,
    outbox_count,
    sign_in,
    submit_concurrently,
    upload,
)

pytestmark = pytest.mark.integration

CONFIRM = {"agree_terms": True, "best_photos": True}
TAP = "test.intake.session-submitted"


@dataclass
class Servers:
    settings: Settings
    db: Database
    demo: DemoData
    bus: Bus

    def tapped(self) -> list[tuple[object, bytes]]:
        return pika_get_all(self.settings.BROKER_URL, TAP)


@pytest.fixture
def servers(tmp_path: Path, amqp_url: str, pg_url: str) -> Iterator[Servers]:
    settings = intake_settings_for(
        tmp_path, pg_url, BROKER_URL=amqp_url, PUBLISH_TIMEOUT=3.0, RETRY_DELAY_MS=200
    )
    db = Database(pg_url)
    bus = Bus(settings, db)
    bus.declare()
    # Our own queue on the events exchange, bound like any consumer of session.submitted.
    connection = pika.BlockingConnection(pika_parameters(amqp_url))
    channel = connection.channel()
    channel.queue_declare(TAP, durable=True)
    channel.queue_bind(TAP, EXCHANGE, routing_key=SESSION_SUBMITTED.routing_key)
    connection.close()
    yield Servers(settings, db, seed_demo(db), bus)
    db.dispose()


def test_one_submit_publishes_exactly_one_contract_valid_message(servers: Servers, tmp_path: Path):
    app = create_app(servers.settings, db=servers.db, blobs=LocalBlobStore(tmp_path / "blobs"))
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"] == {"database": "ok", "broker": "ok"}

    bea = sign_in(app, servers.settings, servers.demo.employees[0])
    assert upload(bea, astronaut_png()).status_code == 201
    assert bea.client.put(bea.api("/info"), json=COMPLETE_INFO, headers=bea.headers).status_code == 200
    styles = {"styles": ["navy:shirt", "white:knit"], "format": "portrait"}
    assert bea.client.put(bea.api("/styles"), json=styles, headers=bea.headers).status_code == 200
    first = bea.client.post(bea.api("/submit"), json=CONFIRM, headers=bea.headers)
    assert (first.status_code, first.json["state"]) == (200, "submitted")
    # A double click on the page and a replayed API request after it: same state, nothing new.
    page_submit = bea.client.post(
        f"/sessions/{bea.session_id}/submit", data={"csrf_token": bea.csrf, **CONFIRM}
    )
    assert (page_submit.status_code, page_submit.headers["Location"]) == (
        303,
        f"/sessions/{bea.session_id}/waiting",
    )
    assert bea.client.post(bea.api("/submit"), json=CONFIRM, headers=bea.headers).json == first.json

    relay = servers.bus.relay(wake_after_commits=False)
    try:
        assert relay.run_once() == 1
        assert relay.run_once() == 0
    finally:
        relay.close()
    got = servers.tapped()
    assert len(got) == 1
    properties, body = got[0]
    message = decode_message(body)  # raises ContractError if the body breaks the contract
    assert message.event is SESSION_SUBMITTED
    assert (message.org_id, message.session_id) == (servers.demo.org_id, bea.session_id)
    assert message.data == {
        "package": "executive",
        "format": "portrait",
        "styles": ["navy:shirt", "white:knit", "studio-grey:suit", "office:blazer", "navy:suit"],
        "photo_count": 1,
    }
    assert properties.content_type == "application/json"
    assert properties.message_id == message.message_id
    assert properties.delivery_mode == 2


def test_a_blocked_submit_publishes_nothing(servers: Servers, tmp_path: Path):
    app = create_app(servers.settings, db=servers.db, blobs=LocalBlobStore(tmp_path / "blobs"), checks={})
    bea = sign_in(app, servers.settings, servers.demo.employees[0])
    add_photo(servers.db, servers.demo.org_id, bea.session_id)
    blocked = bea.client.post(
        bea.api("/submit"), json={**COMPLETE_INFO, "best_photos": True}, headers=bea.headers
    )
    assert blocked.status_code == 422
    assert set(blocked.json["error"]["fields"]) == {"styles", "agree_terms"}
    relay = servers.bus.relay(wake_after_commits=False)
    try:
        assert relay.run_once() == 0
    finally:
        relay.close()
    assert servers.tapped() == []
    assert bea.client.get(bea.api("/status")).json["state"] == "onboarding"


def test_concurrent_submits_lock_the_session_row(servers: Servers):
    actor = Actor.of(servers.demo.employees[0])
    with servers.db.uow(org_id=actor.org_id) as uow:
        sid = sessions.current_or_new_session(uow, actor).id
    add_photo(servers.db, actor.org_id, sid)
    with servers.db.uow(org_id=actor.org_id) as uow:
        submission.set_personal_info(uow, actor, SavePersonalInfo(sid, **COMPLETE_INFO))
    with servers.db.uow(org_id=actor.org_id) as uow:
        saved = submission.set_styles(uow, actor, ChooseStyles(sid, styles=("navy:shirt",)))
        assert Answers.of(saved) == Answers(**COMPLETE_INFO, styles=("navy:shirt",), format="standard")

    outcomes = submit_concurrently(servers.db, actor, sid, CONFIRM)
    assert sorted(outcomes) == [False, False, False, True]
    assert outbox_count(servers.db, SESSION_SUBMITTED.routing_key) == 1


def test_a_rejection_reaches_intake_and_reopens_the_session(servers: Servers):
    demo = servers.demo
    actor = Actor.of(demo.employees[0])
    with servers.db.uow(org_id=actor.org_id) as uow:
        sid = sessions.current_or_new_session(uow, actor).id
    add_photo(servers.db, actor.org_id, sid)
    # What review does: move the session and write session.rejected in one transaction.
    with servers.db.uow(org_id=actor.org_id) as uow:
        session = uow.session.get(HeadshotSession, sid)
        for state in (SessionState.SUBMITTED, SessionState.IN_REVIEW, SessionState.REJECTED):
            session.move_to(state)
        uow.add_message(
            new_message(
                SESSION_REJECTED,
                org_id=actor.org_id,
                session_id=sid,
                reviewer_id=demo.admin.id,
                reason="Too dark",
            )
        )
        uow.commit()

    relay = servers.bus.relay(wake_after_commits=False)
    try:
        with running(servers.bus.consumer("intake", HANDLERS)) as consumer:
            assert relay.run_once() == 1
            wait_for(lambda: consumer.stats["handled"] == 1, "intake to handle session.rejected")
    finally:
        relay.close()
    with servers.db.uow(org_id=actor.org_id) as uow:
        session = uow.session.get(HeadshotSession, sid)
        assert session.state == SessionState.ONBOARDING
        assert len(session.photos) == 1
        assert sessions.rejection_reason(uow, session) == "Too dark"
