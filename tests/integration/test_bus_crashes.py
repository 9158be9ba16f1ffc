"""Exactly one effect per message when relays and consumers die (kill -9) or lose the broker.

Relays and consumers run as processes of their own (tests/support/processes.py), on RabbitMQ and
PostgreSQL, each test in a throwaway vhost and database. Effects are rows written by the handler in
the consumer's transaction and counted in the database at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from libs.contracts import SESSION_SUBMITTED, Message, queue_name
from libs.db import AuditLog, Database, OutboxMessage, ProcessedMessage
from libs.messaging import Bus, Publisher
from libs.messaging.testing import commit_to_outbox, running, sample_submitted, wait_for
from libs.settings import Settings
from tests.support.processes import start_command

pytestmark = pytest.mark.integration

REVIEW_QUEUE = queue_name("review", SESSION_SUBMITTED)

# A relay process until SIGTERM. With a marker path it freezes, once, after writing a round's
# publishes and before reading their confirms (the only drain_events of a relay), for kill -9.
RELAY_PROCESS = textwrap.dedent(
    """
    import signal, sys, threading, time
    from pathlib import Path
    import kombu
    from libs.db import Database
    from libs.messaging import Bus
    from libs.settings import Settings

    if len(sys.argv) > 3:
        marker = Path(sys.argv[3])

        def frozen(self, **kwargs):
            marker.write_text("published, confirms not read")
            time.sleep(3600)

        kombu.Connection.drain_events = frozen
    asked = []
    signal.signal(signal.SIGTERM, lambda *_: asked.append(1))
    settings = Settings(BROKER_URL=sys.argv[1], DATABASE_URL=sys.argv[2])
    relay = Bus(settings, Database(settings.database_url)).relay()
    stop = threading.Event()
    thread = threading.Thread(target=relay.run_forever, args=(stop,))
    thread.start()
    while not asked:
        time.sleep(0.05)
    stop.set()
    thread.join(30)
    relay.close()
    """
)

# A review consumer process until SIGTERM; its effect is an audit row. With a marker path it
# freezes, once, in the third message of one transaction (a batch), its effect flushed, for kill -9.
CONSUMER_PROCESS = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from libs.contracts import SESSION_SUBMITTED
    from libs.db import AuditLog
    from libs.messaging import run_consumer_process
    from libs.settings import Settings

    marker = Path(sys.argv[3]) if len(sys.argv) > 3 else None

    def handle(message, *, uow):
        uow.session.add(AuditLog(org_id=message.org_id, action="test.handled", target=message.message_id))
        in_batch = uow.session.info["test.in_batch"] = uow.session.info.get("test.in_batch", 0) + 1
        if marker is not None and in_batch == 3 and not marker.exists():
            uow.session.flush()
            marker.write_text(message.message_id)
            time.sleep(3600)

    settings = Settings(BROKER_URL=sys.argv[1], DATABASE_URL=sys.argv[2], HEARTBEAT=10)
    run_consumer_process(settings, "review", {SESSION_SUBMITTED: handle})
    """
)


def record(message: Message, uow: Any) -> None:
    uow.session.add(AuditLog(org_id=message.org_id, action="test.handled", target=message.message_id))


def effects(db: Database) -> dict[str, int]:
    """message_id -> number of effects it had."""
    with db.session(all_orgs=True) as session:
        rows = session.execute(
            select(AuditLog.target, func.count())
            .where(AuditLog.action == "test.handled")
            .group_by(AuditLog.target)
        ).all()
    return {str(target): int(n) for target, n in rows}


def processed(db: Database) -> int:
    with db.session(all_orgs=True) as session:
        return int(session.scalar(select(func.count()).select_from(ProcessedMessage)) or 0)


def unsent(db: Database) -> int:
    with db.session(all_orgs=True) as session:
        query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
        return int(session.scalar(query) or 0)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, check=True, timeout=60)


@contextmanager
def processes(tmp_path: Path, *commands: list[str]) -> Iterator[list[subprocess.Popen[str]]]:
    """Start each command (arguments to python); SIGTERM them at the end, kill -9 any that hangs."""
    started = [start_command(args, tmp_path) for args in commands]
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in started:
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def kill_9(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.timeout(180)
def test_a_relay_killed_between_its_publishes_and_their_confirms_loses_nothing(
    amqp_url: str, pg_url: str, settings: Settings, tmp_path: Path
) -> None:
    config = settings.replace(BROKER_URL=amqp_url, DATABASE_URL=pg_url)
    db = Database(pg_url)
    bus = Bus(config, db)
    bus.declare(services=["review"])
    messages = [sample_submitted(n % 20 + 1) for n in range(40)]
    commit_to_outbox(db, messages)
    marker = tmp_path / "published"

    with processes(tmp_path, ["-c", RELAY_PROCESS, amqp_url, pg_url, str(marker)]) as [relay]:
        wait_for(marker.exists, "the relay to publish a round", timeout=60)
        kill_9(relay)
    assert unsent(db) == len(messages)  # killed before any confirm was read: nothing marked

    with (
        running(bus.consumer("review", {SESSION_SUBMITTED: record})),
        processes(tmp_path, ["-c", RELAY_PROCESS, amqp_url, pg_url]),
    ):
        wait_for(lambda: processed(db) == len(messages), "every message to be handled", timeout=90)
        wait_for(lambda: unsent(db) == 0, "every outbox row to be marked sent", timeout=60)

    assert effects(db) == {m.message_id: 1 for m in messages}
    db.dispose()


@pytest.mark.timeout(180)
def test_a_consumer_killed_in_the_middle_of_a_batch_loses_nothing(
    amqp_url: str, pg_url: str, settings: Settings, tmp_path: Path
) -> None:
    config = settings.replace(BROKER_URL=amqp_url, DATABASE_URL=pg_url)
    db = Database(pg_url)
    bus = Bus(config, db)
    bus.declare(services=["review"])
    messages = [sample_submitted(n % 20 + 1) for n in range(30)]
    with Publisher(config) as publisher:
        for message in messages:
            publisher.publish(message)
    marker = tmp_path / "in-batch"

    with processes(tmp_path, ["-c", CONSUMER_PROCESS, amqp_url, pg_url, str(marker)]) as [consumer]:
        wait_for(marker.exists, "the consumer to be in the middle of a batch", timeout=60)
        kill_9(consumer)
    frozen = marker.read_text()
    assert frozen not in effects(db)  # its flushed effect died with the transaction

    with running(bus.consumer("review", {SESSION_SUBMITTED: record})) as survivor:
        wait_for(lambda: processed(db) == len(messages), "every message to be handled", timeout=90)
        assert survivor.stats["handled"] >= 3  # at least the killed batch was handled again

    assert effects(db) == {m.message_id: 1 for m in messages}
    db.dispose()


@pytest.mark.timeout(300)
def test_ten_thousand_messages_through_two_relays_and_two_consumers_while_connections_drop(
    amqp_url: str, pg_url: str, settings: Settings, tmp_path: Path
) -> None:
    count, chunk = 10_000, 500
    config = settings.replace(BROKER_URL=amqp_url, DATABASE_URL=pg_url)
    db = Database(pg_url)
    Bus(config, db).declare(services=["review"])
    vhost = urlsplit(amqp_url).path[1:]
    messages = [sample_submitted(n % 20 + 1) for n in range(count)]

    def produce() -> None:
        for start in range(0, count, chunk):
            commit_to_outbox(db, messages[start : start + chunk])

    relay, consumer = ["-c", RELAY_PROCESS, amqp_url, pg_url], ["-c", CONSUMER_PROCESS, amqp_url, pg_url]
    with processes(tmp_path, relay, relay, consumer, consumer) as started:
        producer = threading.Thread(target=produce)
        producer.start()
        for share in (0.2, 0.6):
            wait_for(
                lambda share=share: processed(db) >= share * count,
                f"{share:.0%} handled",
                timeout=120,
                interval=0.25,  # counting is a query: poll gently, the machine is busy enough
            )
            rabbitmqctl("close_all_connections", "-p", vhost, "test")
        producer.join(60)
        wait_for(lambda: processed(db) == count, "every message to be handled", timeout=180, interval=0.5)
        wait_for(lambda: unsent(db) == 0, "every outbox row to be marked sent", timeout=60)
        assert all(proc.poll() is None for proc in started)  # nobody died on the way

    handled = effects(db)
    assert len(handled) == count and set(handled.values()) == {1}
    assert set(handled) == {m.message_id for m in messages}
    db.dispose()
