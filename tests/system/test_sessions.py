"""The product as it runs in production, every service its own process (services/cluster.py: a
relay, two generation workers, two gateways, one of each other service) on RabbitMQ and
PostgreSQL: 20 sessions from the invite e-mail to the results, 2 of them through the pages in
Chromium, one organization with manual review and one with renewal. Every session completes, each
person gets exactly one confirmation and one ready e-mail per session over real SMTP, and every
webhook arrives signed, once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from libs.db import Database
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
    finally:
        db.dispose()
    record_property("system-tally", tally.line("no faults"))
    print("\n".join(tally.problems))
    print(tally.line("no faults"))
    assert tally.problems == [], tally.problems
