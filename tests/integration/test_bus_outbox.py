"""The transactional outbox and its relay: nothing committed is lost, nothing rolled back is sent,
a dead broker fails fast and leaves rows for later, and two relays publish each row once."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest
from kombu import Queue
from sqlalchemy import func, insert, select

from libs.contracts import SESSION_SUBMITTED, Message, decode_message, queue_name
from libs.db import Database, OutboxMessage, outbox_row
from libs.messaging import (
    BrokerUnavailable,
    Bus,
    OutboxRelay,
    Publisher,
    PublishError,
    check_broker,
    open_connection,
    queue_depths,
)
from libs.messaging.testing import commit_to_outbox, pika_get_all, running, sample_submitted, wait_for
from libs.settings import Settings

pytestmark = pytest.mark.integration

REVIEW_QUEUE = queue_name("review", SESSION_SUBMITTED)
DEAD_BROKER = "amqp://guest:guest@127.0.0.1:1/"


submitted = sample_submitted


def unsent(db: Database) -> int:
    with db.session(all_orgs=True) as session:
        return int(session.scalar(select(func.count()).where(OutboxMessage.sent_at.is_(None))) or 0)


def review_messages(settings: Settings) -> list[Message]:
    """Take every message from the review queue, in queue order."""
    conn = open_connection(settings)
    try:
        queue = Queue(REVIEW_QUEUE, channel=conn.channel(), no_declare=True)
        taken = []
        while (raw := queue.get(no_ack=True)) is not None:
            taken.append(decode_message(raw.body))
        return taken
    finally:
        conn.release()


def test_a_crash_between_commit_and_publish_is_repaired_and_a_rollback_publishes_nothing(
    backend: Settings,
) -> None:
    db = Database(backend.database_url)
    bus = Bus(backend, db)
    bus.declare(services=["review"])
    committed = [submitted(n) for n in range(1, 6)]
    rolled_back = submitted(99)

    # The process "dies" after committing: rows are in the outbox, no relay ever ran.
    commit_to_outbox(db, committed[:3])
    commit_to_outbox(db, committed[3:])
    with db.uow(org_id="org-1") as uow:
        uow.add_message(rolled_back)
        uow.session.flush()
        # leaving without commit rolls back the state change and its outbox row together
    assert unsent(db) == 5
    assert queue_depths(backend)[REVIEW_QUEUE] == 0

    relay = bus.relay(wake_after_commits=False)  # the restarted process
    try:
        assert relay.run_once() == 5
        assert relay.run_once() == 0
    finally:
        relay.close()
    assert unsent(db) == 0
    assert review_messages(backend) == committed  # each once, in commit order, the contract's body
    with db.session(all_orgs=True) as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        assert [r.message_id for r in rows] == [m.message_id for m in committed]
        assert all(r.sent_at is not None and r.attempts == 0 for r in rows)
    db.dispose()


def test_a_dead_broker_fails_fast_with_a_clear_error_and_leaves_rows_for_later(
    settings: Settings, sqlite_url: str
) -> None:
    dead = settings.replace(BROKER_URL=DEAD_BROKER, DATABASE_URL=sqlite_url, PUBLISH_TIMEOUT=3.0)
    started = time.monotonic()
    with pytest.raises(PublishError, match=r"127\.0\.0\.1:1/ is unreachable"), Publisher(dead) as publisher:
        publisher.publish(submitted())
    assert time.monotonic() - started < 10

    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="unreachable"):
        check_broker(dead)
    assert time.monotonic() - started < 10

    db = Database(sqlite_url)
    commit_to_outbox(db, [submitted(1), submitted(2)])
    relay = OutboxRelay(db, Publisher(dead), dead)
    started = time.monotonic()
    assert relay.run_once() == 0
    assert time.monotonic() - started < 10
    with db.session(all_orgs=True) as session:
        first, second = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert first.sent_at is None and first.attempts == 1 and "unreachable" in (first.last_error or "")
    assert second.sent_at is None and second.attempts == 0  # the round stopped: order is kept
    assert "guest:guest" not in (first.last_error or "")  # no password in errors

    # The broker is back (here: the embedded one): the next round sends both.
    alive = dead.replace(BROKER_URL="memory://")
    Bus(alive, db).declare(services=["review"])
    relay = OutboxRelay(db, Publisher(alive), alive)
    assert relay.run_once() == 2
    assert unsent(db) == 0
    assert len(review_messages(alive)) == 2
    db.dispose()


class RoundsPublisher(Publisher):
    """Records how many messages each relay round that found rows published."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, name="outbox relay")
        self.rounds: list[int] = []

    def publish_many(self, batch):  # type: ignore[no-untyped-def]
        done, error = super().publish_many(batch)
        if batch:  # not the empty rounds of a wake-up whose rows an earlier round took
            self.rounds.append(done)
        return done, error


@contextlib.contextmanager
def relay_thread(config: Settings, publisher: Publisher) -> Iterator[tuple[Database, threading.Thread]]:
    """A relay publishing through ``publisher``, woken by commits, and its thread (not started:
    the test starts it when its rows are in place); stopped and closed after the block."""
    db = Database(config.database_url)
    Bus(config, db).declare(services=["review"])
    relay = OutboxRelay(db, publisher, config)
    relay.wake_after_commits()
    stop = threading.Event()
    thread = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
    try:
        yield db, thread
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(10)
        relay.close()
        db.dispose()


@pytest.mark.timeout(60)
def test_events_that_keep_coming_are_gathered_into_fuller_rounds_and_a_lone_one_is_not_held(
    backend: Settings,
) -> None:
    # A long gathering pause, so the test does not depend on this machine's speed: a round of two
    # means events are streaming in, so the relay waits for more before the next round; a round
    # of one does not make the next event wait.
    config = backend.replace(OUTBOX_POLL_SECONDS=60.0, OUTBOX_GATHER_SECONDS=3.0)
    publisher = RoundsPublisher(config)
    with relay_thread(config, publisher) as (db, thread):
        commit_to_outbox(db, [submitted(), submitted()])  # two rows waiting: the first round has two
        thread.start()
        wait_for(lambda: publisher.rounds[-1:] == [2], "the first round", timeout=10)
        for _ in range(3):  # one commit each, within the pause the first one starts
            commit_to_outbox(db, [submitted()])
        wait_for(lambda: sum(publisher.rounds) == 5, "the three events", timeout=20)
        assert publisher.rounds == [2, 3]  # gathered into one round, not three
        wait_for(lambda: unsent(db) == 0, "the marks")
        time.sleep(3.5)  # a quiet spell longer than the pause: the stream is over
        committed_at = time.monotonic()
        commit_to_outbox(db, [submitted()])
        wait_for(lambda: sum(publisher.rounds) == 6, "the lone event", timeout=10)
        lone_after = time.monotonic() - committed_at
        commit_to_outbox(db, [submitted()])
        wait_for(lambda: sum(publisher.rounds) == 7, "the event after it", timeout=10)
        after_lone = time.monotonic() - committed_at - lone_after
        assert publisher.rounds == [2, 3, 1, 1]
        assert after_lone < 2 and lone_after < 2  # the 3-second pause was never taken


class HeldFirstRound(RoundsPublisher):
    """Holds the relay's first round that found rows until ``release`` is set."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.in_first_round, self.release = threading.Event(), threading.Event()

    def publish_many(self, batch):  # type: ignore[no-untyped-def]
        if batch and not self.in_first_round.is_set():
            self.in_first_round.set()
            assert self.release.wait(20)
        return super().publish_many(batch)


@pytest.mark.timeout(60)
def test_a_commit_made_while_the_relays_first_round_runs_wakes_the_next_round(backend: Settings) -> None:
    # Polling every minute: only the commit's wake-up (PostgreSQL: its NOTIFY, which a relay
    # only hears once it LISTENs) can publish the second event in time.
    config = backend.replace(OUTBOX_POLL_SECONDS=60.0, OUTBOX_GATHER_SECONDS=0.0)
    publisher = HeldFirstRound(config)
    with relay_thread(config, publisher) as (db, thread):
        commit_to_outbox(db, [submitted()])
        thread.start()
        assert publisher.in_first_round.wait(10)
        commit_to_outbox(db, [submitted()])  # while the first round is publishing
        publisher.release.set()
        wait_for(lambda: sum(publisher.rounds) == 2, "the event committed during the first round", timeout=10)
        assert publisher.rounds == [1, 1]


@pytest.mark.timeout(60)
def test_the_relay_publishes_right_after_a_commit(backend: Settings) -> None:
    # Polling every minute: only the commit hook can make the message arrive in time.
    slow_poll = backend.replace(OUTBOX_POLL_SECONDS=60.0)
    db = Database(slow_poll.database_url)
    bus = Bus(slow_poll, db)
    bus.declare(services=["review"])
    relay = bus.relay()
    stop = threading.Event()
    thread = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
    thread.start()
    received: list[Message] = []
    try:
        with running(bus.consumer("review", {SESSION_SUBMITTED: lambda m, **_: received.append(m)})):
            time.sleep(0.3)  # the relay's first round is over: it is now waiting out its poll
            message = submitted()
            committed_at = time.monotonic()
            commit_to_outbox(db, [message])
            wait_for(lambda: received == [message], "the committed message to be handled", timeout=10)
            assert time.monotonic() - committed_at < 30  # the next poll was a minute away
    finally:
        stop.set()
        thread.join(10)
        relay.close()
        db.dispose()
    assert not thread.is_alive()


@pytest.mark.timeout(60)
def test_two_relays_publish_a_thousand_rows_exactly_once(
    amqp_url: str, pg_url: str, settings: Settings
) -> None:
    config = settings.replace(BROKER_URL=amqp_url, DATABASE_URL=pg_url, OUTBOX_BATCH=50)
    db = Database(pg_url)
    Bus(config, db).declare(services=["review"])
    messages = [submitted(n) for n in range(1, 1001)]
    with db.session(all_orgs=True) as session, session.begin():
        session.execute(insert(OutboxMessage), [outbox_row(m) for m in messages])

    relays = [OutboxRelay(db, Publisher(config, name=f"relay {i}"), config) for i in (1, 2)]
    published = [0, 0]
    start = threading.Barrier(2)

    def drain(index: int) -> None:
        start.wait()
        while (n := relays[index].run_once()) or unsent(db):
            published[index] += n

    threads = [threading.Thread(target=drain, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(50)
    for relay in relays:
        relay.close()

    assert sum(published) == 1000
    assert all(published), f"both relays should have taken part: {published}"
    assert unsent(db) == 0
    taken = pika_get_all(amqp_url, REVIEW_QUEUE)
    ids = [props.message_id for props, _ in taken]
    assert len(ids) == 1000
    assert set(ids) == {m.message_id for m in messages}  # each row once: no loss, no duplicate
    db.dispose()


@pytest.mark.timeout(60)
def test_a_relay_wakes_on_a_commit_made_in_another_process(
    amqp_url: str, pg_url: str, settings: Settings
) -> None:
    # The relay polls once a minute and is not hooked to the producer's commits (as when intake
    # and the relay are separate processes): only PostgreSQL's NOTIFY can wake it in time.
    config = settings.replace(BROKER_URL=amqp_url, DATABASE_URL=pg_url, OUTBOX_POLL_SECONDS=60.0)
    relay_db, producer_db = Database(pg_url), Database(pg_url)
    Bus(config, relay_db).declare(services=["review"])
    relay = OutboxRelay(relay_db, Publisher(config), config)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # the first round is over and the listener is up: the relay now waits
        message = submitted()
        commit_to_outbox(producer_db, [message])
        wait_for(lambda: unsent(producer_db) == 0, "the row to be published before the next poll", timeout=30)
        assert [m.message_id for m in review_messages(config)] == [message.message_id]
    finally:
        stop.set()
        thread.join(10)
        relay.close()
        relay_db.dispose()
        producer_db.dispose()


@pytest.mark.timeout(60)
def test_a_refused_message_in_a_batch_stops_the_round_there_and_keeps_the_order(
    amqp_url: str, pg_url: str, settings: Settings
) -> None:
    # A queue that refuses publishes beyond 5 messages makes the broker nack the 6th on: the round
    # marks exactly the first five sent, records the error on the 6th, and leaves the rest unsent.
    import pika

    from libs.contracts import EXCHANGE
    from libs.messaging.testing import pika_parameters

    config = settings.replace(BROKER_URL=amqp_url, DATABASE_URL=pg_url, OUTBOX_BATCH=10)
    db = Database(pg_url)
    Bus(config, db).declare(services=["review"])
    connection = pika.BlockingConnection(pika_parameters(amqp_url))
    channel = connection.channel()
    channel.queue_declare(
        "test.full", durable=True, arguments={"x-max-length": 5, "x-overflow": "reject-publish"}
    )
    channel.queue_bind("test.full", EXCHANGE, routing_key=SESSION_SUBMITTED.routing_key)
    connection.close()
    messages = [submitted(n) for n in range(1, 11)]
    commit_to_outbox(db, messages)
    relay = OutboxRelay(db, Publisher(config), config)
    try:
        assert relay.run_once() == 5
    finally:
        relay.close()
    with db.session(all_orgs=True) as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [r.sent_at is not None for r in rows] == [True] * 5 + [False] * 5
    assert rows[5].attempts == 1 and "nack" in (rows[5].last_error or "")
    assert rows[5].message_id == messages[5].message_id
    assert all(r.attempts == 0 for r in rows[6:])
    db.dispose()
