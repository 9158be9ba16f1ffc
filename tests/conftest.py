"""Shared fixtures. Real servers for what we own: tests that need RabbitMQ or PostgreSQL use the
ones running on this machine, each test in its own vhost or database, and fail loudly (never skip)
with the command that starts a missing server.

Server addresses can be changed with TEST_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672)
and TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from libs.settings import Settings

# The system tests' lost / duplicated / dead-lettered counts, printed at the end of every run.
pytest_plugins = ["tests.support.cluster_summary"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

AMQP_BASE = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
PG_BASE = os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")

START_RABBIT = "rabbitmq-server -detached && until rabbitmqctl await_startup; do sleep 1; done"
START_PG = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def require_rabbitmq() -> None:
    if not _reachable(AMQP_BASE, 5672):
        pytest.fail(f"RabbitMQ is not reachable at {AMQP_BASE}. Start it with: {START_RABBIT}", pytrace=False)


def require_postgres() -> None:
    if not _reachable(PG_BASE, 5432):
        pytest.fail(f"PostgreSQL is not reachable at {PG_BASE}. Start it with: {START_PG}", pytrace=False)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """A fresh RabbitMQ vhost for one test, deleted afterwards."""
    require_rabbitmq()
    vhost = f"test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    user = urlsplit(AMQP_BASE).username or "guest"
    _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    try:
        yield f"{AMQP_BASE.rstrip('/')}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str]:
    """One migrated PostgreSQL database per pytest worker, copied for each test (a copy takes a
    fraction of running every migration again). Dropped when the worker ends."""
    require_postgres()
    import sqlalchemy as sa

    from libs.db.migrate import upgrade

    name = f"template_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{PG_BASE}/{name}"
    upgrade(url)
    sa.create_engine(url).dispose()  # no connection may stay open on a template
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(_pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test (a copy of the worker's template),
    dropped afterwards."""
    import sqlalchemy as sa

    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{_pg_template}"'))
    try:
        yield f"{PG_BASE}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per pytest worker, copied for each test: a file copy takes well
    under a millisecond, running every migration about half a second."""
    from libs.db.migrate import upgrade

    path = tmp_path_factory.mktemp("sqlite-template") / "headshots.db"
    upgrade(f"sqlite:///{path}")
    assert not path.with_name(path.name + "-wal").exists(), "the template must be checkpointed"
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, _sqlite_template: Path) -> str:
    """A fresh, migrated SQLite file for one test (the embedded mode's database)."""
    path = tmp_path / "headshots.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-mode settings rooted in the test's own folder."""
    return Settings(VAR_DIR=str(tmp_path / "var"), SECRET_KEY="test-secret")


@pytest.fixture(params=["embedded", "distributed"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The same test on memory:// + SQLite and on RabbitMQ + PostgreSQL (real servers)."""
    if request.param == "embedded":
        return Settings(
            VAR_DIR=str(tmp_path / "var"),
            BROKER_URL=f"memory://{uuid.uuid4().hex[:8]}/",
            DATABASE_URL=request.getfixturevalue("sqlite_url"),
            SECRET_KEY="test-secret",
        )
    return Settings(
        VAR_DIR=str(tmp_path / "var"),
        BROKER_URL=request.getfixturevalue("amqp_url"),
        DATABASE_URL=request.getfixturevalue("pg_url"),
        SECRET_KEY="test-secret",
        PUBLISH_TIMEOUT=3.0,
        RETRY_DELAY_MS=200,
    )


@pytest.fixture(autouse=True)
def _empty_memory_broker() -> Iterator[None]:
    """kombu's memory:// broker is process-wide: every test starts and ends with it empty."""
    from libs.messaging.testing import fresh_memory_broker

    with fresh_memory_broker():
        yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run where torch sees a CUDA GPU and are skipped, saying so, elsewhere:
    the only skip in the suite (a missing server fails instead)."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_tests:
        return
    import torch  # only when such a test is collected: it takes seconds to import

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is False on this machine")
    for item in gpu_tests:
        item.add_marker(skip)
