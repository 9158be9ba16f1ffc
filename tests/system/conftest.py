"""Fixtures of the system tests: the whole product as separate processes (services/cluster.py) on
real servers, a real SMTP server and a real webhook receiver, and a headless Chromium.

The sessions run on the shared RabbitMQ and PostgreSQL (a fresh vhost and database, as every
integration test); the fault runs on a private RabbitMQ node and PostgreSQL cluster of their own
(tests/support/cluster_servers.py), so restarting them never disturbs tests running beside them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.support.cluster_servers import PrivatePostgres, PrivateRabbitMQ, private_postgres, private_rabbitmq
from tests.support.notification import SmtpSink, WebhookReceiver

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def hooks() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `make browser`", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A folder the servers' own users (rabbitmq, postgres) can enter: pytest's tmp_path is 0700."""
    folder = Path(tempfile.mkdtemp(prefix="headshots-faults-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def private_servers(server_dir: Path) -> Iterator[tuple[PrivateRabbitMQ, PrivatePostgres]]:
    with private_rabbitmq(server_dir / "rabbitmq") as rabbit, private_postgres(server_dir / "pg") as pg:
        yield rabbit, pg


def cluster_env(tmp_path: Path, broker_url: str, database_url: str, smtp: SmtpSink) -> dict[str, str]:
    return {
        "BROKER_URL": broker_url,
        "DATABASE_URL": database_url,
        "VAR_DIR": str(tmp_path / "var"),
        "SMTP_URL": smtp.url,
        "PATH": os.environ.get("PATH", ""),
    }
