"""The same 20 sessions while things go wrong, each at a random moment (the seed is printed, and
``FAULT_SEED=<n>`` replays an order): a generation worker killed with SIGKILL in the middle of a
session and started again; every broker connection closed (``rabbitmqctl close_all_connections``);
RabbitMQ's app stopped and started; PostgreSQL restarted; a second relay publishing the same outbox
all along; a poison message put into a live queue. Afterwards every session is completed, nothing
is duplicated (headshots, e-mails, webhooks), the poison message and nothing else is in a dead-letter
queue, and every completed session's personal info is erased.

Two of the 20 people go through the pages in Chromium, as in the plain run. The faults start once
both are on their waiting page, so they hit those pages while they wait: with no proxy in the
cluster each page polls the status API, and it must ride out the failed polls and move to the
results by itself. Only the results page's own load may fail (a 5xx while PostgreSQL restarts);
then a person would reload, and the test does, and counts it.

The servers here are private (their own RabbitMQ node and PostgreSQL cluster on free ports under a
temporary folder), so restarting them never breaks the tests running beside this one."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from libs.contracts import PHOTOS_PROCESSED
from libs.db import Database
from libs.messaging import consumer_queues
from libs.messaging.testing import publish_raw_body, wait_for
from libs.settings import Settings
from services.cluster import Cluster, ensure_database
from tests.support.cluster import Product, running_cluster
from tests.support.cluster_journeys import API_FIRST_SESSIONS, Journeys
from tests.support.cluster_servers import PrivatePostgres, PrivateRabbitMQ
from tests.system.conftest import cluster_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]


@dataclass
class Faults:
    """Each fault once, in a random order (the worker kill first or second), each after a random pause, while the sessions run
    (from the moment both browser pages are waiting)."""

    cluster: Cluster
    rabbit: PrivateRabbitMQ
    pg: PrivatePostgres
    product: Product
    settings: Settings
    rng: random.Random
    poison_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    done: list[tuple[str, float]] = field(default_factory=list)
    started: float = 0.0  # time.monotonic() when the first pause began
    error: BaseException | None = None

    def run(self) -> None:
        faults: list[tuple[str, Callable[[], None]]] = [
            ("rabbitmqctl close_all_connections", self.close_connections),
            ("RabbitMQ stop_app / start_app", self.restart_broker_app),
            ("PostgreSQL restart (fast)", self.pg.restart),
            ("poison message into a live queue", self.poison),
        ]
        self.rng.shuffle(faults)
        # The kill needs a session in a worker's hands: first or second, before the sessions can all
        # be done (a whole session renders in seconds; the broker and database restarts take longer).
        mid_session = ("kill -9 a generation worker mid-session, start it again", self.kill_generation)
        faults.insert(self.rng.choice([0, 1]), mid_session)
        self.started = time.monotonic()
        try:
            for name, fault in faults:
                time.sleep(self.rng.uniform(0.3, 2.0))  # short: most land while the pages wait
                fault()
                self.done.append((name, time.monotonic() - self.started))
        except BaseException as exc:  # reported by the test, which fails with it
            self.error = exc

    def kill_generation(self) -> None:
        # Mid-session: once some session is being trained or rendered (a worker holds its message).
        wait_for(
            lambda: self.product.count_in(("training", "generating")) > 0,
            "a session in training or generating",
            timeout=240,
            interval=0.2,
        )
        index = self.rng.choice([1, 2])
        self.cluster.kill("generation", index)
        time.sleep(self.rng.uniform(0.5, 2.0))
        self.cluster.restart("generation", index)

    def close_connections(self) -> None:
        self.rabbit.ctl("close_all_connections", "system test: connections closed")

    def restart_broker_app(self) -> None:
        self.rabbit.stop_app()
        time.sleep(self.rng.uniform(0.5, 2.0))
        self.rabbit.start_app()

    def poison(self) -> None:
        queue = consumer_queues("generation", PHOTOS_PROCESSED, self.settings).name
        publish_raw_body(self.settings, b"{this is not json", queue, exchange="", message_id=self.poison_id)


@pytest.mark.timeout(900)
def test_twenty_sessions_complete_through_faults(
    tmp_path: Path,
    private_servers: tuple[PrivateRabbitMQ, PrivatePostgres],
    smtp,
    hooks,
    browser,
    record_property,
) -> None:
    rabbit, pg = private_servers
    database_url = f"{pg.url}/headshots"
    ensure_database(database_url)
    env = {
        **cluster_env(tmp_path, rabbit.amqp_url, database_url, smtp),
        "RABBITMQ_MANAGEMENT_URL": rabbit.management_url,
    }
    settings = Settings(BROKER_URL=rabbit.amqp_url, DATABASE_URL=database_url, PUBLISH_TIMEOUT=5.0)
    seed = int(os.environ.get("FAULT_SEED", random.randrange(1_000_000)))
    print(f"fault order seed: {seed} (FAULT_SEED={seed} replays it)")
    db = Database(database_url)
    try:
        # Two relays for the same outbox all along: each row must still be delivered once in effect.
        with running_cluster(env, tmp_path / "logs", relays=2) as cluster:
            product = Product(cluster, db, smtp, hooks)
            journeys = Journeys(product)
            faults = Faults(cluster, rabbit, pg, product, settings, random.Random(seed))
            injector = threading.Thread(target=faults.run, name="faults", daemon=True)
            journeys.invite()
            pages = journeys.open_pages(browser, tmp_path)  # filled in, up to the submit button
            with ThreadPoolExecutor(4) as pool:
                try:
                    journeys.start(pool)
                    # Submitted behind the API people's sessions, so that the pages wait long enough.
                    journeys.submit_pages(pages, behind=API_FIRST_SESSIONS)
                    injector.start()  # both pages are waiting now
                    journeys.pages_reach_results(pages)
                finally:
                    pages.close()
                journeys.wait()
            injector.join(300)
            assert faults.error is None, f"a fault could not be injected: {faults.error!r}"
            assert len(faults.done) == 5, faults.done
            journeys.settle(settings)
            tally = journeys.tally(settings, poison_id=faults.poison_id)
            assert not cluster.dead(), [p.label for p in cluster.dead()]
    finally:
        db.dispose()
    first_results = min(pages.results_at) - faults.started
    while_waiting = sum(1 for _, at in faults.done if at < first_results)
    table = "\n".join(
        f"  {at:6.1f} s  {name}{'' if at < first_results else '  (after a page had its results)'}"
        for name, at in faults.done
    )
    last = tally.line(f"faults (seed {seed})")
    record_property("system-tally", f"{table}\n{pages.line()}\n{last}")
    print(
        f"faults injected (seed {seed}), {while_waiting} of {len(faults.done)} while both pages waited:\n{table}"
    )
    print(pages.line())
    print("\n".join(tally.problems))
    print(last)
    assert while_waiting >= 1, "no fault was injected while the pages waited"
    assert tally.problems == [], tally.problems
    assert tally.dead_lettered == 1, "the poison message is not in its dead-letter queue"
