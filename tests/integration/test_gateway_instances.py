"""Two gateway processes on RabbitMQ, each with its own queue: each delivers every event to its
own pages, so a load balancer may send a page to either."""

from __future__ import annotations

import threading
from pathlib import Path

from libs.contracts import HEADSHOT_GENERATED, MODEL_TRAINED, PHOTOS_PROCESSED, SESSION_APPROVED, SessionState
from libs.db import Database
from libs.db.demo import seed_demo
from libs.messaging import Bus
from libs.messaging.testing import wait_for
from libs.settings import Settings
from tests.support.gateway import ProgressPage, event, new_session, record, token_for
from tests.support.gateway_process import gateway_process

S = SessionState


def test_two_gateway_processes_each_deliver_every_event(amqp_url: str, pg_url: str, tmp_path: Path) -> None:
    settings = Settings(
        VAR_DIR=str(tmp_path / "var"), BROKER_URL=amqp_url, DATABASE_URL=pg_url, SECRET_KEY="two"
    )
    db = Database(pg_url)
    demo = seed_demo(db)
    bea, carl = demo.employees
    mine, theirs = new_session(db, bea, S.QUEUED), new_session(db, carl, S.QUEUED)
    bus = Bus(settings, db)
    bus.declare()
    relay = bus.relay()
    stop = threading.Event()
    relaying = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
    relaying.start()
    pages: list[ProgressPage] = []
    try:
        with gateway_process(settings) as first, gateway_process(settings) as second:
            a = ProgressPage(first.url, mine, token=token_for(settings, db, mine))
            b = ProgressPage(second.url, mine, token=token_for(settings, db, mine))
            c = ProgressPage(second.url, theirs, token=token_for(settings, db, theirs))
            pages = [a, b, c]
            for page in pages:
                page.connect(transports=["polling"])
                page.follow()
            wait_for(lambda: all(p.states() for p in pages), "every page's state")

            org = str(bea.org_id)
            record(db, event(SESSION_APPROVED, org, mine, auto=True, reviewer_id=None))
            record(db, event(SESSION_APPROVED, org, theirs, auto=True, reviewer_id=None))
            record(db, event(PHOTOS_PROCESSED, org, mine, photo_ids=["p"]))
            record(db, event(MODEL_TRAINED, org, mine, person_model_id="m", engine="studio", seconds=1.0))
            for done in (1, 2):
                record(
                    db,
                    event(
                        HEADSHOT_GENERATED,
                        org,
                        mine,
                        headshot_id=f"h{done}",
                        style="navy:suit",
                        done=done,
                        total=2,
                    ),
                )
            wait_for(
                lambda: len(a.events()) == 5 and len(b.events()) == 5, "both instances to deliver all five"
            )
            wait_for(lambda: len(c.events()) == 1, "the other session's page to get its one event")
            assert a.ids() == b.ids() == sorted(a.ids())
            assert a.types() == [
                SESSION_APPROVED.routing_key,
                PHOTOS_PROCESSED.routing_key,
                MODEL_TRAINED.routing_key,
                HEADSHOT_GENERATED.routing_key,
                HEADSHOT_GENERATED.routing_key,
            ]
            assert c.types() == [SESSION_APPROVED.routing_key]
            assert c.ids()[0] not in a.ids()
    finally:
        for page in pages:
            page.close()
        stop.set()
        relaying.join(10)
        relay.close()
        db.dispose()
