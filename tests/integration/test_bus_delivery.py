"""Delivery through libs/messaging: routing, message properties, retries, dead letters, duplicates.

Each behaviour runs on both backends (memory:// + SQLite, RabbitMQ + PostgreSQL) through the
``backend`` fixture; what only RabbitMQ has (an independent AMQP client, exclusive gateway
queues) runs on the real broker only.
"""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Queue
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from libs.contracts import (
    SESSION_COMPLETED,
    SESSION_PROGRESS,
    SESSION_SUBMITTED,
    SUBSCRIPTIONS,
    ContractError,
    Message,
    decode_message,
    new_message,
    queue_name,
)
from libs.contracts.quickload import Loader
from libs.db import AuditLog, Database, ProcessedMessage
from libs.messaging import (
    Bus,
    Permanent,
    Publisher,
    all_consumer_queues,
    dead_letter_queue_name,
    declare_gateway_queue,
    discard_dead_letters,
    list_dead_letters,
    open_connection,
    queue_depths,
    replay_dead_letters,
)
from libs.messaging.testing import pika_get_all, publish_raw_body, running, sample_submitted, wait_for
from libs.settings import Settings

pytestmark = pytest.mark.integration

REVIEW_QUEUE = queue_name("review", SESSION_SUBMITTED)


@pytest.fixture
def fast(backend: Settings) -> Settings:
    """Short delays so that retries and dead-lettering take a fraction of a second."""
    return backend.replace(RETRY_DELAY_MS=100, DELIVERY_LIMIT=3)


@pytest.fixture
def db(fast: Settings) -> Iterator[Database]:
    database = Database(fast.database_url)
    yield database
    database.dispose()


@pytest.fixture
def bus(fast: Settings, db: Database) -> Bus:
    bus = Bus(fast, db)
    bus.declare()
    return bus


def submitted(photo_count: int = 4, org_id: str = "org-1") -> Message:
    return sample_submitted(photo_count, org_id)


class Recorder:
    """A handler that records its calls and writes one audit row per effect."""

    def __init__(self, fail_when: Any = None) -> None:
        self.calls: list[Message] = []
        self.fail_when = fail_when  # (message) -> exception to raise, or None
        self.lock = threading.Lock()

    def __call__(self, message: Message, *, uow: Any) -> None:
        with self.lock:
            self.calls.append(message)
        error = self.fail_when(message) if self.fail_when else None
        if error is not None:
            raise error
        uow.session.add(AuditLog(org_id=message.org_id, action="test.handled", target=message.message_id))

    def count(self, message: Message) -> int:
        with self.lock:
            return sum(1 for m in self.calls if m.message_id == message.message_id)


def effects(db: Database, message: Message | None = None) -> int:
    query = select(func.count()).select_from(AuditLog).where(AuditLog.action == "test.handled")
    if message is not None:
        query = query.where(AuditLog.target == message.message_id)
    with db.session(all_orgs=True) as session:
        return int(session.scalar(query) or 0)


def dead_count(settings: Settings) -> int:
    return queue_depths(settings)[dead_letter_queue_name(REVIEW_QUEUE)]


# --- routing and properties ------------------------------------------------------------------------
def test_an_event_reaches_exactly_the_queues_bound_to_it(fast: Settings, bus: Bus) -> None:
    message = submitted()
    with Publisher(fast) as publisher:
        publisher.publish(message)

    subscribers = {
        queue_name(s, SESSION_SUBMITTED) for s, events in SUBSCRIPTIONS.items() if SESSION_SUBMITTED in events
    }
    assert subscribers == {REVIEW_QUEUE, queue_name("notification", SESSION_SUBMITTED)}
    wait_for(
        lambda: all(queue_depths(fast)[q] == 1 for q in subscribers), "one copy in each subscribed queue"
    )
    depths = queue_depths(fast)
    assert {q for q, n in depths.items() if n} == subscribers
    assert len(depths) == 2 * len(all_consumer_queues(fast))  # every consumer and dead-letter queue exists

    # The body is the contract's envelope, unchanged.
    conn = open_connection(fast)
    try:
        raw = Queue(REVIEW_QUEUE, channel=conn.channel(), no_declare=True).get(no_ack=True)
        assert raw is not None
        assert decode_message(raw.body) == message
    finally:
        conn.release()


def test_an_independent_amqp_client_sees_the_properties_and_a_valid_body(
    amqp_url: str, settings: Settings
) -> None:
    broker = settings.replace(BROKER_URL=amqp_url)
    Bus(broker, Database("sqlite://")).declare(services=["review"])
    message = submitted()
    with Publisher(broker) as publisher:
        publisher.publish(message)

    [(props, body)] = pika_get_all(amqp_url, REVIEW_QUEUE)
    assert props.content_type == "application/json"
    assert props.message_id == message.message_id
    assert props.delivery_mode == 2
    assert props.type == SESSION_SUBMITTED.routing_key
    assert decode_message(body) == message


def test_a_gateway_instance_gets_its_own_exclusive_queue_that_goes_away_with_it(
    amqp_url: str, settings: Settings
) -> None:
    broker = settings.replace(BROKER_URL=amqp_url)
    conn = open_connection(broker, name="gateway")
    queue = declare_gateway_queue(conn, instance="test-1")
    progress = new_message(
        SESSION_PROGRESS, org_id="org-1", session_id="s-1", stage="generating", done=1, total=4
    )
    with Publisher(broker) as publisher:
        publisher.publish(progress)
    wait_for(
        lambda: queue.queue_declare(passive=True).message_count == 1,
        "the progress event in the gateway queue",
    )
    raw = queue.get(no_ack=True)
    assert raw is not None and decode_message(raw.body) == progress
    listed = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_queues",
            "-p",
            amqp_url.rsplit("/", 1)[1],
            "name",
            "exclusive",
            "auto_delete",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "gateway.test-1\ttrue\ttrue" in listed
    conn.release()
    # Exclusive: the queue dies with the instance's connection.
    wait_for(
        lambda: (
            "gateway.test-1"
            not in subprocess.run(
                ["rabbitmqctl", "-q", "list_queues", "-p", amqp_url.rsplit("/", 1)[1], "name"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        ),
        "the gateway queue to be deleted",
        timeout=10,
    )


# --- handling ---------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_a_failing_message_is_retried_then_dead_lettered_while_later_messages_flow(
    fast: Settings, db: Database
) -> None:
    # Retries half a second apart: the poison message needs a second to be dead-lettered, far
    # longer than the messages behind it need to be handled, unless they wait behind it.
    fast = fast.replace(RETRY_DELAY_MS=500)
    bus = Bus(fast, db)
    bus.declare(services=["review"])
    poison = submitted(photo_count=13)  # always raises: retried, then dead-lettered
    deleted = submitted(photo_count=14)  # raises Permanent: dead-lettered at once
    good = [submitted(photo_count=n) for n in range(1, 6)]

    def fail_when(message: Message) -> Exception | None:
        if message.message_id == poison.message_id:
            return ValueError("boom")
        if message.message_id == deleted.message_id:
            return Permanent("session was deleted")
        return None

    handler = Recorder(fail_when)
    with (
        running(bus.consumer("review", {SESSION_SUBMITTED: handler})) as consumer,
        Publisher(fast) as publisher,
    ):
        for message in [poison, deleted, *good]:
            publisher.publish(message)
        wait_for(lambda: all(handler.count(m) for m in good), "the messages behind the failing ones")
        assert handler.count(poison) < fast.DELIVERY_LIMIT  # still being retried: no head-of-line blocking
        wait_for(lambda: dead_count(fast) == 2, "both failing messages in the dead-letter queue")
        assert consumer.stats["retried"] == fast.DELIVERY_LIMIT - 1

    assert handler.count(poison) == fast.DELIVERY_LIMIT
    assert handler.count(deleted) == 1
    assert effects(db) == len(good) and effects(db, poison) == 0 and effects(db, deleted) == 0
    dead = {d.message_id: d for d in list_dead_letters(fast, REVIEW_QUEUE)}
    assert dead[poison.message_id].attempts == fast.DELIVERY_LIMIT
    assert "ValueError('boom')" in dead[poison.message_id].reason
    assert decode_message(dead[poison.message_id].body) == poison
    assert (dead[deleted.message_id].reason, dead[deleted.message_id].attempts) == (
        "Permanent: session was deleted",
        1,
    )
    assert queue_depths(fast)[REVIEW_QUEUE] == 0


@pytest.mark.timeout(60)
def test_a_failing_message_in_a_batch_is_rolled_back_alone_and_its_neighbours_run_once(
    fast: Settings, bus: Bus, db: Database
) -> None:
    # Queued before the consumer starts, so they are handled several to a transaction. Every
    # fifth one writes its effect, then fails for good: the first message of all (the first
    # handler of the first transaction, which runs without a savepoint) and ones in the middle
    # of batches. Its effect is rolled back; every other message runs exactly once and keeps its
    # effect, whether it came before or after the failure in its transaction.
    messages = [submitted(org_id=f"org-{n % 3}") for n in range(30)]
    failing = {m.message_id for m in messages[::5]}
    calls: dict[str, int] = {}
    positions: dict[str, int] = {}  # message -> its place among the handlers of its transaction

    def handler(message: Message, *, uow: Any) -> None:
        calls[message.message_id] = calls.get(message.message_id, 0) + 1
        ran = uow.session.info["test.ran"] = uow.session.info.get("test.ran", 0) + 1
        positions[message.message_id] = ran
        uow.session.add(AuditLog(org_id=message.org_id, action="test.handled", target=message.message_id))
        uow.session.flush()
        if message.message_id in failing:
            raise Permanent("refused after writing")

    with Publisher(fast) as publisher:
        for m in messages:
            publisher.publish(m)
    with running(bus.consumer("review", {SESSION_SUBMITTED: handler})) as consumer:
        wait_for(lambda: consumer.stats["handled"] + consumer.stats["dead_lettered"] == 30, "all 30 taken")
        assert (consumer.stats["handled"], consumer.stats["dead_lettered"]) == (24, 6)
    assert calls == {m.message_id: 1 for m in messages}
    assert effects(db) == 24 and all(effects(db, m) == 0 for m in messages[::5])
    assert dead_count(fast) == 6 and queue_depths(fast)[REVIEW_QUEUE] == 0
    if fast.BROKER_URL.startswith("amqp"):
        assert positions[messages[0].message_id] == 1  # the failing first handler of a transaction
        assert any(positions[m] > 1 for m in failing)  # and one with others before it
        assert max(positions.values()) > 1


@pytest.mark.timeout(60)
def test_malformed_and_schema_invalid_bodies_are_dead_lettered_not_dropped(
    fast: Settings, bus: Bus, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    valid = submitted().to_dict()

    def changed(data: dict[str, Any] | None = None, **envelope: Any) -> bytes:
        body = {**valid, "message_id": str(uuid.uuid4()), **envelope}
        if data is not None:
            body["data"] = {**valid["data"], **data}
        return json.dumps(body).encode()

    bodies = {
        "not json": b"{not json",
        "invalid body": changed({"photo_count": 0}),
        "unknown type": changed(type="session.exploded"),
        "extra field": changed({"full_name": "Ada"}),
        "wrong content type": json.dumps(valid).encode(),
        "count as text": changed({"photo_count": "3"}),
        "count as true": changed({"photo_count": True}),
        "style too short": changed({"styles": ["ab"]}),
        "naive time": changed(occurred_at="2026-11-24T03:00:00"),
        "bad id": changed(message_id="not-a-uuid"),
        "version as text": changed(version="1"),
        "no org": changed(org_id=""),
    }
    # The reasons the schemas alone give (the consumer's quick check must never change them).
    with monkeypatch.context() as schemas_only:
        schemas_only.setattr(Loader, "load", lambda self, data: self.schema.load(data))
        reasons = {}
        for name, body in bodies.items():
            if name == "wrong content type":
                continue  # a valid body: refused for its content type alone
            with pytest.raises(ContractError) as refused:
                decode_message(body)
            reasons[name] = f"undecodable: {refused.value}"
    for name, body in bodies.items():
        content_type = (
            "application/x-python-serialize" if name == "wrong content type" else "application/json"
        )
        publish_raw_body(
            fast, body, SESSION_SUBMITTED.routing_key, content_type=content_type, message_id=name
        )
    after = submitted()
    handler = Recorder()

    with running(bus.consumer("review", {SESSION_SUBMITTED: handler})), Publisher(fast) as publisher:
        publisher.publish(after)
        wait_for(lambda: dead_count(fast) == len(bodies), "every bad body in the dead-letter queue")
        wait_for(lambda: handler.count(after) == 1, "the good message behind them to be handled")

    assert [m.message_id for m in handler.calls] == [after.message_id]  # the handler never saw a bad one
    dead = {d.message_id: d for d in list_dead_letters(fast, REVIEW_QUEUE)}
    assert set(dead) == set(bodies)
    assert "not JSON" in dead["not json"].reason
    assert f"invalid {SESSION_SUBMITTED.routing_key} body" in dead["invalid body"].reason
    assert "invalid envelope" in dead["unknown type"].reason
    assert "full_name" in dead["extra field"].reason
    assert "content type" in dead["wrong content type"].reason
    assert dead["not json"].body == "{not json"  # kept byte for byte
    for name, reason in reasons.items():
        assert dead[name].reason == reason, name


@pytest.mark.timeout(60)
def test_the_same_message_delivered_twice_has_one_effect(fast: Settings, bus: Bus, db: Database) -> None:
    message = submitted()
    handler = Recorder()
    with (
        running(bus.consumer("review", {SESSION_SUBMITTED: handler})) as consumer,
        Publisher(fast) as publisher,
    ):
        publisher.publish(message)
        publisher.publish(message)  # at-least-once: the relay may send a row twice
        wait_for(lambda: consumer.stats["handled"] + consumer.stats["duplicate"] == 2, "both deliveries")
        assert (consumer.stats["handled"], consumer.stats["duplicate"]) == (1, 1)

    assert handler.count(message) == 1
    assert effects(db, message) == 1
    with db.session(all_orgs=True) as session:
        assert session.get(ProcessedMessage, (REVIEW_QUEUE, message.message_id)) is not None


def test_messages_handled_in_one_transaction_are_all_acked_and_none_comes_back(
    fast: Settings, bus: Bus, db: Database
) -> None:
    # Queued before the consumer starts, so it takes them in batches (up to the prefetch) and acks
    # each batch at once: after it stops, nothing may be left in the queue to be delivered again.
    messages = [submitted(org_id=f"org-{n % 3}") for n in range(30)]
    transactions: dict[Any, int] = {}  # messages per transaction (the session objects kept alive)

    def handler(message: Message, *, uow: Any) -> None:
        transactions[uow.session] = transactions.get(uow.session, 0) + 1
        uow.session.add(AuditLog(org_id=message.org_id, action="test.handled", target=message.message_id))

    with Publisher(fast) as publisher:
        for m in messages:
            publisher.publish(m)
    with running(bus.consumer("review", {SESSION_SUBMITTED: handler})) as consumer:
        wait_for(lambda: consumer.stats["handled"] == len(messages), "every message handled")
    assert effects(db) == len(messages)
    assert queue_depths(fast)[REVIEW_QUEUE] == 0  # unacked messages would be back in the queue
    if fast.BROKER_URL.startswith("amqp"):
        assert max(transactions.values()) > 1  # several messages shared a transaction (and an ack)


@pytest.mark.timeout(60)
def test_dead_letters_can_be_listed_replayed_and_discarded(fast: Settings, bus: Bus, db: Database) -> None:
    messages = [submitted(photo_count=n) for n in (1, 2, 3)]
    broken = threading.Event()
    broken.set()
    handler = Recorder(fail_when=lambda m: Permanent("not yet") if broken.is_set() else None)

    with (
        running(bus.consumer("review", {SESSION_SUBMITTED: handler})) as consumer,
        Publisher(fast) as publisher,
    ):
        for message in messages:
            publisher.publish(message)
        wait_for(lambda: dead_count(fast) == 3, "three dead letters")

        listed = list_dead_letters(fast, dead_letter_queue_name(REVIEW_QUEUE))
        assert sorted(d.message_id for d in listed) == sorted(m.message_id for m in messages)
        assert all(d.origin == REVIEW_QUEUE and d.type == SESSION_SUBMITTED.routing_key for d in listed)
        assert len(list_dead_letters(fast, REVIEW_QUEUE)) == 3  # listing takes nothing away

        broken.clear()  # the bug is fixed: replay one, discard one, replay the rest
        assert replay_dead_letters(fast, REVIEW_QUEUE, message_id=messages[0].message_id) == 1
        wait_for(lambda: effects(db, messages[0]) == 1, "the replayed message to be handled")
        assert discard_dead_letters(fast, REVIEW_QUEUE, message_id=messages[1].message_id) == 1
        assert replay_dead_letters(fast, REVIEW_QUEUE) == 1
        wait_for(lambda: effects(db, messages[2]) == 1, "the last message to be handled")
        assert dead_count(fast) == 0

    assert effects(db, messages[1]) == 0
    # Replay goes to the failed consumer's queue only, never to the event's other subscribers.
    assert queue_depths(fast)[queue_name("notification", SESSION_SUBMITTED)] == 3
    assert consumer.stats["handled"] == 2


def test_a_handler_gets_the_dependencies_it_names(settings: Settings, sqlite_url: str) -> None:
    # Not about the broker: embedded mode only.
    fast = settings.replace(BROKER_URL="memory://", DATABASE_URL=sqlite_url)
    bus = Bus(fast, Database(sqlite_url))
    bus.declare(services=["intake"])
    seen: dict[str, Any] = {}

    def handle_completed(message: Message, *, uow: Any, publish: Any, mailer: str) -> None:
        seen.update(uow=uow, publish=publish, mailer=mailer)

    with pytest.raises(TypeError, match="mailer"):
        bus.consumer("intake", {SESSION_COMPLETED: handle_completed})
    with pytest.raises(ValueError, match="does not subscribe"):
        bus.consumer("review", {SESSION_COMPLETED: handle_completed}, {"mailer": "smtp"})

    message = new_message(SESSION_COMPLETED, org_id="org-1", session_id="s-1", headshot_count=3)
    with running(
        bus.consumer("intake", {SESSION_COMPLETED: handle_completed}, {"mailer": "smtp", "unused": 1})
    ) as consumer:
        with Publisher(fast) as publisher:
            publisher.publish(message)
        wait_for(lambda: consumer.stats["handled"] == 1, "the message to be handled")
    assert seen["mailer"] == "smtp"
    assert seen["publish"] == seen["uow"].add_message


@pytest.mark.timeout(60)
def test_a_database_outage_is_retried_without_using_up_attempts(settings: Settings, sqlite_url: str) -> None:
    # The retry path is the same code on both transports: embedded mode only.
    fast = settings.replace(
        BROKER_URL="memory://", DATABASE_URL=sqlite_url, RETRY_DELAY_MS=20, DELIVERY_LIMIT=2
    )
    db = Database(sqlite_url)
    bus = Bus(fast, db)
    bus.declare(services=["review"])
    outage = [5]  # deliveries that find the database gone: more than DELIVERY_LIMIT

    def fail_when(message: Message) -> Exception | None:
        if outage[0]:
            outage[0] -= 1
            return OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))
        return None

    handler = Recorder(fail_when)
    message = submitted()
    with (
        running(bus.consumer("review", {SESSION_SUBMITTED: handler})) as consumer,
        Publisher(fast) as publisher,
    ):
        publisher.publish(message)
        wait_for(lambda: effects(db, message) == 1, "the message to be handled once the database is back")
        assert (consumer.stats["retried"], consumer.stats["dead_lettered"]) == (5, 0)
    assert handler.count(message) == 6
