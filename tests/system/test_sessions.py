"""The product as it runs in production, every service its own process (services/cluster.py: a
relay, two generation workers, two gateways, one of each other service) on RabbitMQ and
PostgreSQL: 20 sessions from the invite e-mail to the results, 2 of them through the pages in
Chromium, one organization with manual review and one with renewal. Every session completes, each
person gets exactly one confirmation and one ready e-mail per session over real SMTP, every
webhook arrives signed, once, and the events are published by the processes that wrote them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from libs.db import Database, OutboxMessage
from libs.settings import Settings
from tests.support.cluster import Product, running_cluster
from tests.support.cluster_journeys import Journeys
from tests.system.conftest import cluster_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.timeout(900)
def test_twenty_sessions_from_invite_to_results(
    tmp_path: Path, amqp_url: str, pg_url: str, smtp, hooks, browser, record_property
) -> None:
    settings = Settings(BROKER_URL=amqp_url, DATABASE_URL=pg_url)
    db = Database(pg_url)
    try:
        with running_cluster(cluster_env(tmp_path, amqp_url, pg_url, smtp), tmp_path / "logs") as cluster:
            product = Product(cluster, db, smtp, hooks)
            journeys = Journeys(product)
            with ThreadPoolExecutor(4) as pool:
                journeys.start(pool)
                journeys.browser_sessions(browser, tmp_path)
                journeys.wait()
            journeys.settle(settings)
            tally = journeys.tally(settings)
            published_by = product.read(publishers)
    finally:
        db.dispose()
    record_property("system-tally", tally.line("no faults"))
    print("\n".join(tally.problems))
    print(tally.line("no faults"))
    assert tally.problems == [], tally.problems
    # Every process publishes the events it writes itself (--own-relay): with no fault, the rows
    # the relay process took are at most a few written while a process's relay was starting.
    print(f"outbox rows published by their writer's own relay / by the relay process: {published_by}")
    assert published_by["own relay"] > 20 * 5, published_by
    assert published_by["relay process"] <= published_by["own relay"] // 20, published_by


def publishers(session: Any) -> dict[str, int]:
    """How many outbox rows were held for their writer's own relay, and how many for none."""
    held = OutboxMessage.held_by.is_not(None)
    counts = dict(session.execute(select(held, func.count()).group_by(held)).all())
    return {"own relay": counts.get(True, 0), "relay process": counts.get(False, 0)}
