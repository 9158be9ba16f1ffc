"""Consumers survive the broker closing their connections, and stop without losing a message."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from libs.contracts import SESSION_SUBMITTED, Message, queue_name
from libs.db import AuditLog, Database, ProcessedMessage
from libs.messaging import Bus, Publisher, queue_depths
from libs.messaging.held import HeldConnection
from libs.messaging.testing import commit_to_outbox, running, sample_submitted, wait_for
from libs.settings import ROOT, Settings
from tests.support.database import end_backends

pytestmark = pytest.mark.integration

REVIEW_QUEUE = queue_name("review", SESSION_SUBMITTED)


submitted = sample_submitted


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


def vhost(amqp_url: str) -> str:
    return urlsplit(amqp_url).path[1:]


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout


@pytest.mark.timeout(60)
def test_consumers_resume_after_the_broker_closes_every_connection(
    amqp_url: str, pg_url: str, settings: Settings
) -> None:
    config = settings.replace(BROKER_URL=amqp_url, DATABASE_URL=pg_url, HEARTBEAT=10)
    db = Database(pg_url)
    bus = Bus(config, db)
    bus.declare(services=["review"])
    in_hand, go = threading.Event(), threading.Event()
    first = submitted(0 + 1)
    calls: list[str] = []

    def handle(message: Message, *, uow: Any) -> None:
        calls.append(message.message_id)
        if message.message_id == first.message_id and not in_hand.is_set():
            in_hand.set()
            go.wait(15)
        time.sleep(0.005)
        record(message, uow)

    with (
        running(bus.consumer("review", {SESSION_SUBMITTED: handle})) as consumer,
        Publisher(config) as publisher,
    ):
        # Heartbeats are negotiated (the broker shows the timeout it agreed to).
        # list_connections lists every vhost's connections (other tests' consumers too): keep ours.
        connections = rabbitmqctl("list_connections", "vhost", "client_properties", "timeout")
        [consumer_line] = [
            line
            for line in connections.splitlines()
            if line.startswith(vhost(amqp_url) + "\t") and "review consumer" in line
        ]
        assert consumer_line.endswith("\t10")

        # 1. The connection dies while a message is in hand: its effect is committed, the ack is
        #    lost, the broker redelivers it, and the redelivery is recognised as a duplicate.
        publisher.publish(first)
        assert in_hand.wait(10)
        rabbitmqctl("close_all_connections", "-p", vhost(amqp_url), "test")
        go.set()
        wait_for(lambda: consumer.stats["duplicate"] == 1, "the redelivered message to be skipped")
        assert calls.count(first.message_id) == 1

        # 2. Close everything again in the middle of a stream: the stream resumes, nothing is lost.
        before = [submitted(n) for n in range(1, 31)]
        after = [submitted(n) for n in range(31, 61)]
        for message in before:
            publisher.publish(message)
        wait_for(lambda: len(effects(db)) >= 10, "the stream to be flowing")
        rabbitmqctl("close_all_connections", "-p", vhost(amqp_url), "test")
        for message in after:
            publisher.publish(message)  # the publisher reconnects on its own
        wait_for(lambda: len(effects(db)) == 61, "every message to be handled")
        assert consumer.stats["reconnects"] >= 2

    assert set(effects(db).values()) == {1}  # each message had exactly one effect
    assert set(effects(db)) == {m.message_id for m in [first, *before, *after]}
    assert queue_depths(config)[REVIEW_QUEUE] == 0
    db.dispose()


@pytest.mark.timeout(60)
def test_stop_finishes_the_message_in_hand_and_leaves_the_rest_queued(backend: Settings) -> None:
    db = Database(backend.database_url)
    bus = Bus(backend, db)
    bus.declare(services=["review"])
    messages = [submitted(n) for n in (1, 2, 3)]
    in_hand, go = threading.Event(), threading.Event()

    def handle(message: Message, *, uow: Any) -> None:
        in_hand.set()
        go.wait(15)
        record(message, uow)

    with Publisher(backend) as publisher:
        for message in messages:
            publisher.publish(message)
    consumer = bus.consumer("review", {SESSION_SUBMITTED: handle})
    thread = consumer.start_in_thread()
    assert in_hand.wait(10)
    consumer.stop()
    go.set()
    thread.join(10)
    assert not thread.is_alive()

    assert list(effects(db).values()) == [1]  # the message in hand was finished and committed
    wait_for(lambda: queue_depths(backend)[REVIEW_QUEUE] == 2, "the other two back in the queue")

    # A new consumer picks up where the stopped one left off.
    with running(bus.consumer("review", {SESSION_SUBMITTED: lambda m, *, uow: record(m, uow)})):
        wait_for(lambda: len(effects(db)) == 3, "the remaining messages to be handled")
    assert effects(db) == {m.message_id: 1 for m in messages}
    db.dispose()


CONSUMER_PROCESS = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from libs.contracts import SESSION_SUBMITTED
    from libs.db import AuditLog
    from libs.messaging import run_consumer_process
    from libs.settings import Settings

    marker = Path(sys.argv[3])

    def handle(message, *, uow):
        marker.write_text(message.message_id)
        time.sleep(1.0)
        uow.session.add(AuditLog(org_id=message.org_id, action="test.handled", target=message.message_id))

    settings = Settings(BROKER_URL=sys.argv[1], DATABASE_URL=sys.argv[2])
    consumer = run_consumer_process(settings, "review", {SESSION_SUBMITTED: handle})
    print("handled", consumer.stats["handled"])
    """
)


@pytest.mark.timeout(60)
def test_sigterm_finishes_the_message_in_hand(
    amqp_url: str, pg_url: str, settings: Settings, tmp_path: Path
) -> None:
    config = settings.replace(BROKER_URL=amqp_url, DATABASE_URL=pg_url)
    db = Database(pg_url)
    Bus(config, db).declare(services=["review"])
    first, second = submitted(1), submitted(2)
    with Publisher(config) as publisher:
        publisher.publish(first)
        publisher.publish(second)

    marker = tmp_path / "in-hand"
    process = subprocess.Popen(
        [sys.executable, "-c", CONSUMER_PROCESS, amqp_url, pg_url, str(marker)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(marker.exists, "the consumer process to take a message", timeout=30)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "handled 1" in out
    assert effects(db) == {first.message_id: 1}
    with db.session(all_orgs=True) as session:
        assert session.get(ProcessedMessage, (REVIEW_QUEUE, first.message_id)) is not None
    wait_for(lambda: queue_depths(config)[REVIEW_QUEUE] == 1, "the second message back in the queue")
    db.dispose()


def waiting_in_transaction(db: Database) -> int:
    """Backends of this database idle in a transaction: the held connections that began their
    next transaction ahead (libs/messaging/held.py)."""
    with db.engine.connect() as conn:
        return int(
            conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state = 'idle in transaction'"
                )
            )
        )


@pytest.mark.timeout(60)
def test_the_relay_and_the_consumer_carry_on_after_the_database_ended_their_connections(
    amqp_url: str, pg_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = settings.replace(BROKER_URL=amqp_url, DATABASE_URL=pg_url, RETRY_DELAY_MS=200)
    db = Database(pg_url)
    bus = Bus(config, db)
    bus.declare(services=["review"])
    relay = bus.relay(wake_after_commits=False)
    try:
        with running(
            bus.consumer("review", {SESSION_SUBMITTED: lambda m, *, uow: record(m, uow)})
        ) as consumer:
            first = submitted(1)
            commit_to_outbox(db, [first])
            assert relay.run_once() == 1
            wait_for(lambda: first.message_id in effects(db), "the first message to be handled")
            # After a lone event both have begun their next transaction ahead.
            wait_for(lambda: waiting_in_transaction(db) == 2, "the relay and the consumer to begin ahead")

            # The server ends their held connections while they wait: each sees it before use
            # (the socket is readable) and takes a new one; nothing fails.
            assert end_backends(db) >= 2
            second = submitted(2)
            commit_to_outbox(db, [second])  # the pool replaces the producer's ended connection by itself
            assert relay.run_once() == 1
            wait_for(lambda: second.message_id in effects(db), "the second message to be handled")
            assert consumer.stats["retried"] == 0
            wait_for(lambda: waiting_in_transaction(db) == 2, "the relay and the consumer to begin ahead")

            # Ended again, and this time the end is not seen before use (as when the server's
            # goodbye is still on its way): the round and the batch fail on their connections.
            monkeypatch.setattr(HeldConnection, "_server_spoke", lambda self: False)
            assert end_backends(db) >= 2
            third = submitted(3)
            commit_to_outbox(db, [third])
            with pytest.raises(OperationalError):
                relay.run_once()  # this round finds its connection gone ...
            assert relay.run_once() == 1  # ... the next one takes a new one and publishes
            # The consumer's batch failed on its ended connection: retried, not counted, handled.
            wait_for(lambda: third.message_id in effects(db), "the third message to be handled")
            assert consumer.stats["retried"] >= 1
    finally:
        relay.close()
    assert effects(db) == {first.message_id: 1, second.message_id: 1, third.message_id: 1}
    assert queue_depths(config)[REVIEW_QUEUE] == 0
    db.dispose()
