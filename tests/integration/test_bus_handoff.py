"""Rows handed to the relay of the process that wrote them (PostgreSQL, libs/db/handoff.py).

While a relay's loop runs in a process, the outbox rows that process writes are held for it and
handed over after their commit: it publishes them without a round, and no other relay takes them
until their lease has ended. Nothing uncommitted is ever handed; a rolled-back savepoint, a failed
publish or a stopping relay all fall back to rounds, in id order, with nothing lost or overtaken.
"""

from __future__ import annotations

import contextlib
import signal
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, insert, select, text

from libs.contracts import SESSION_SUBMITTED, Message, decode_message, queue_name
from libs.db import OUTBOX_CHANNEL, Database, OutboxMessage, handoff, outbox_row, utcnow
from libs.messaging import Bus, OutboxRelay, Publisher
from libs.messaging.headers import OUTBOX_ID_HEADER
from libs.messaging.testing import commit_to_outbox, pika_get_all, sample_submitted, wait_for
from libs.settings import Settings
from tests.support.processes import start_command

pytestmark = pytest.mark.integration

REVIEW_QUEUE = queue_name("review", SESSION_SUBMITTED)


@pytest.fixture
def config(amqp_url: str, pg_url: str, settings: Settings) -> Settings:
    # Polling once a minute: within a test, only a hand-off or a notification publishes a row.
    return settings.replace(BROKER_URL=amqp_url, DATABASE_URL=pg_url, OUTBOX_POLL_SECONDS=60.0)


def rows(db: Database) -> list[OutboxMessage]:
    with db.session(all_orgs=True) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def unsent(db: Database) -> int:
    with db.session(all_orgs=True) as session:
        return int(session.scalar(select(func.count()).where(OutboxMessage.sent_at.is_(None))) or 0)


def queued(config: Settings) -> list[tuple[Message, Any]]:
    """Every message of the review queue, in queue order, with its AMQP properties (taken)."""
    return [(decode_message(body), props) for props, body in pika_get_all(config.BROKER_URL, REVIEW_QUEUE)]


class CountingRelay(OutboxRelay):
    """Counts its rounds (the UPDATEs that find and take rows), once each is over: a test that
    waits for the first round has it behind it, not still about to take rows."""

    rounds = 0

    def run_once(self) -> int:
        try:
            return super().run_once()
        finally:
            self.rounds += 1


@contextlib.contextmanager
def relay_running(
    config: Settings, db: Database, publisher: Publisher | None = None, *, own_rows_only: bool = False
) -> Iterator[CountingRelay]:
    """A relay's loop in a thread of this process, offering to take the rows written through
    ``db``, for the duration of the block (``own_rows_only``: as ``--own-relay`` runs it)."""
    relay = CountingRelay(db, publisher or Publisher(config, name="outbox relay"), config)
    stop = threading.Event()
    thread = threading.Thread(
        target=relay.run_forever, args=(stop,), kwargs={"own_rows_only": own_rows_only}, daemon=True
    )
    thread.start()
    try:
        wait_for(
            lambda: handoff.taker_for(db.engine) is not None and (own_rows_only or relay.rounds >= 1),
            "the relay to start",
        )
        yield relay
    finally:
        stop.set()
        thread.join(15)
        relay.close()
    assert not thread.is_alive()


@pytest.fixture
def db(config: Settings) -> Iterator[Database]:
    database = Database(config.database_url)
    Bus(config, database).declare(services=["review"])
    yield database
    database.dispose()


@pytest.mark.timeout(60)
def test_a_row_written_beside_a_running_relay_is_handed_to_it_and_published_without_a_round(
    config: Settings, db: Database
) -> None:
    with relay_running(config, db) as relay:
        rounds_before = relay.rounds
        messages = [sample_submitted(), sample_submitted()]
        commit_to_outbox(db, messages[:1])
        commit_to_outbox(db, messages[1:])
        wait_for(lambda: unsent(db) == 0, "the rows to be published and marked", timeout=20)
        assert relay.rounds == rounds_before  # no round found them: they were handed over
    written = rows(db)
    assert [row.held_by for row in written] == [relay.relay_id] * 2
    got = queued(config)
    assert [m.message_id for m, _ in got] == [m.message_id for m in messages]
    assert [props.headers[OUTBOX_ID_HEADER] for _, props in got] == [row.id for row in written]


def test_only_rows_nobody_holds_wake_the_other_relays(config: Settings, db: Database) -> None:
    # The outbox's NOTIFY (what wakes the relays of other processes) is not sent for a held row.
    with psycopg.connect(
        config.database_url.replace("postgresql+psycopg", "postgresql"), autocommit=True
    ) as conn:
        conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
        held = {**outbox_row(sample_submitted()), "held_by": "a" * 32, "held_until": utcnow()}
        with db.session(all_orgs=True) as session:
            session.execute(insert(OutboxMessage), [held])
            session.commit()
        assert list(conn.notifies(timeout=0.5)) == []
        with db.session(all_orgs=True) as session:
            session.execute(insert(OutboxMessage), [outbox_row(sample_submitted())])
            session.commit()
        assert len(list(conn.notifies(timeout=5, stop_after=1))) == 1


@pytest.mark.parametrize("relay_clock_ahead", [0, 3600], ids=["same-clock", "relay-clock-an-hour-ahead"])
def test_a_row_held_by_another_relay_is_left_to_it_until_its_lease_ends(
    config: Settings, db: Database, monkeypatch: pytest.MonkeyPatch, relay_clock_ahead: int
) -> None:
    # The lease is read by the database's clock: a relay on a machine whose clock runs ahead does
    # not take a row whose writer is alive (and publishing it).
    import libs.messaging.relay as relay_module

    monkeypatch.setattr(relay_module, "utcnow", lambda: utcnow() + _seconds(relay_clock_ahead))
    row = {**outbox_row(sample_submitted()), "held_by": "b" * 32, "held_until": utcnow() + _seconds(30)}
    with db.session(all_orgs=True) as session:
        session.execute(insert(OutboxMessage), [row])
        session.commit()
    relay = OutboxRelay(db, Publisher(config), config)
    try:
        assert relay.run_once() == 0  # its holder is alive, as far as anyone knows
        with db.session(all_orgs=True) as session:
            session.query(OutboxMessage).update({"held_until": utcnow() - _seconds(1)})
            session.commit()
        assert relay.run_once() == 1  # its lease has ended: its holder died before publishing it
    finally:
        relay.close()
    assert [m.message_id for m, _ in queued(config)] == [row["message_id"]]


# Both kinds of relay that take hand-offs: the full one, and the one of its own process's rows
# only (no LISTEN, no poll), which has to catch up with rounds of its own.
RELAY_KINDS = pytest.mark.parametrize("own_rows_only", [False, True], ids=["relay", "own-rows-relay"])


@pytest.mark.timeout(60)
@RELAY_KINDS
def test_what_a_rolled_back_savepoint_or_transaction_wrote_is_never_published(
    config: Settings, db: Database, own_rows_only: bool
) -> None:
    first, inside, after, rolled_back, last = (sample_submitted() for _ in range(5))
    with relay_running(config, db, own_rows_only=own_rows_only):
        with db.uow(org_id=first.org_id) as uow:
            uow.add_message(first)
            savepoint = uow.session.begin_nested()
            uow.add_message(inside)
            savepoint.rollback()  # as the consumer does for a handler that raised
            uow.add_message(after)
            uow.commit()
        with db.uow(org_id=rolled_back.org_id) as uow:
            uow.add_message(rolled_back)  # left without commit: rolled back
        commit_to_outbox(db, [last])
        wait_for(
            lambda: unsent(db) == 0 and len(rows(db)) == 3, "the committed rows to be published", timeout=20
        )
    assert [m.message_id for m, _ in queued(config)] == [first.message_id, after.message_id, last.message_id]


class FailingOnce(Publisher):
    """Refuses its first publish (as a broker that nacks), then publishes."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, name="outbox relay")
        self.refused = threading.Event()

    def publish_many(self, batch):  # type: ignore[no-untyped-def]
        if batch and not self.refused.is_set():
            self.refused.set()
            return 0, "refused for the test"
        return super().publish_many(batch)


@pytest.mark.timeout(60)
@RELAY_KINDS
def test_a_handed_row_that_could_not_be_published_is_not_overtaken_by_later_ones(
    config: Settings, db: Database, own_rows_only: bool
) -> None:
    publisher = FailingOnce(config)
    refused, later = sample_submitted(), sample_submitted()
    with relay_running(config, db, publisher, own_rows_only=own_rows_only):
        commit_to_outbox(db, [refused])
        assert publisher.refused.wait(10)
        wait_for(lambda: rows(db)[0].attempts == 1, "the failure to be recorded")
        assert rows(db)[0].held_by is None  # let go: any relay's rounds may take it now
        commit_to_outbox(db, [later])
        wait_for(lambda: unsent(db) == 0, "both rows to be published", timeout=20)
    assert [m.message_id for m, _ in queued(config)] == [refused.message_id, later.message_id]
    assert "refused for the test" in (rows(db)[0].last_error or "")


@pytest.mark.timeout(60)
def test_a_relay_of_its_own_rows_publishes_what_its_process_writes_and_leaves_the_rest_to_the_relay_process(
    config: Settings, db: Database
) -> None:
    other_db = Database(config.database_url)  # another process, with no relay of its own
    theirs, mine = sample_submitted(), sample_submitted()
    try:
        with relay_running(config, db, own_rows_only=True) as relay:
            commit_to_outbox(other_db, [theirs])  # not held: its NOTIFY wakes LISTENing relays
            commit_to_outbox(db, [mine])
            wait_for(lambda: unsent(db) == 1, "this process's row to be published", timeout=20)
            time.sleep(1.0)  # a relay that LISTENed or polled would have taken the other row by now
            assert unsent(db) == 1
            assert relay.rounds == 0
        assert [m.message_id for m, _ in queued(config)] == [mine.message_id]
        # The relay process (a full relay) publishes the other process's row.
        with relay_running(config, other_db):
            wait_for(lambda: unsent(db) == 0, "the relay process to publish the other row", timeout=20)
        assert [m.message_id for m, _ in queued(config)] == [theirs.message_id]
    finally:
        other_db.dispose()


@pytest.mark.timeout(60)
def test_a_relay_that_stops_lets_go_of_its_rows_and_another_relay_takes_them_at_once(
    config: Settings, db: Database
) -> None:
    other_db = Database(config.database_url)  # another process's relay, as far as holding goes
    other = OutboxRelay(other_db, Publisher(config, name="other relay"), config)
    stop_other = threading.Event()
    other_thread = threading.Thread(target=other.run_forever, args=(stop_other,), daemon=True)
    other_thread.start()
    message = sample_submitted()
    try:
        with relay_running(config, db) as relay:
            # The hand-off does not reach the relay (as when a commit's hook could not run): the
            # row stays held by it, unpublished, until its next round, a minute away.
            relay._handoffs.take = lambda rows: None  # type: ignore[method-assign,union-attr]
            commit_to_outbox(db, [message])
            assert rows(db)[0].held_by == relay.relay_id
            time.sleep(0.5)
            assert unsent(db) == 1
        stopped_at = time.monotonic()
        wait_for(lambda: unsent(db) == 0, "the other relay to publish the row let go", timeout=20)
        assert time.monotonic() - stopped_at < 9  # not after the lease: at once
    finally:
        stop_other.set()
        other_thread.join(15)
        other.close()
        other_db.dispose()
    assert rows(db)[0].held_by is None
    assert [m.message_id for m, _ in queued(config)] == [message.message_id]


# A process that runs a relay and writes one event; its relay freezes before publishing it (a
# marker file says so) until the process is killed with -9.
FROZEN_WRITER = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    from libs.db import Database, handoff
    from libs.messaging import Bus, Publisher
    from libs.messaging.testing import commit_to_outbox, sample_submitted, wait_for
    from libs.settings import Settings

    marker = Path(sys.argv[3])

    def frozen(self, batch):
        if batch:
            marker.write_text(batch[0].message_id)
            time.sleep(3600)
        return 0, None

    Publisher.publish_many = frozen
    settings = Settings(BROKER_URL=sys.argv[1], DATABASE_URL=sys.argv[2], OUTBOX_POLL_SECONDS=60.0)
    db = Database(settings.database_url)
    relay = Bus(settings, db).relay()
    threading.Thread(target=relay.run_forever, args=(threading.Event(),), daemon=True).start()
    wait_for(lambda: handoff.taker_for(db.engine) is not None, "the relay to start")
    commit_to_outbox(db, [sample_submitted()])
    time.sleep(3600)
    """
)


@pytest.mark.timeout(120)
def test_the_rows_of_a_process_killed_before_its_relay_published_them_are_published_after_the_lease(
    config: Settings, db: Database, tmp_path: Path
) -> None:
    marker = tmp_path / "frozen"
    writer = start_command(
        ["-c", FROZEN_WRITER, config.BROKER_URL, config.database_url, str(marker)], tmp_path
    )
    other = OutboxRelay(db, Publisher(config, name="other relay"), config.replace(OUTBOX_POLL_SECONDS=0.2))
    stop = threading.Event()
    thread = threading.Thread(target=other.run_forever, args=(stop,), daemon=True)
    try:
        wait_for(marker.exists, "the writer's relay to be handed its row", timeout=60)
        message_id = marker.read_text()
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        (row,) = rows(db)
        assert row.held_by is not None and row.sent_at is None and row.held_until is not None
        thread.start()
        wait_for(lambda: unsent(db) == 0, "another relay to publish the dead process's row", timeout=40)
        assert utcnow() >= row.held_until  # not before its lease ended
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(15)
        other.close()
        if writer.poll() is None:
            writer.kill()
    assert [m.message_id for m, _ in queued(config)] == [message_id]


def _seconds(n: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=n)


@pytest.mark.timeout(90)
def test_a_worker_started_with_its_own_relay_publishes_its_rows_without_listening(
    config: Settings, db: Database
) -> None:
    # What `python -m services run --only review --no-web --own-relay` starts (the consumers left
    # out: nothing is delivered here).
    from services import launcher

    running = launcher.start(config, only={"review"}, web=False, workers=False, own_rows_only=True)
    try:
        process_db = running.platform.db
        wait_for(lambda: handoff.taker_for(process_db.engine) is not None, "the worker's relay to start")
        mine = sample_submitted()
        commit_to_outbox(process_db, [mine])
        wait_for(lambda: unsent(db) == 0, "the worker's own row to be published", timeout=20)
        with db.session(all_orgs=True) as session:
            listening = session.scalar(
                select(func.count())
                .select_from(text("pg_stat_activity"))
                .where(text("datname = current_database() AND query ILIKE 'LISTEN%'"))
            )
        assert listening == 0
        assert [m.message_id for m, _ in queued(config)] == [mine.message_id]
    finally:
        assert running.shutdown() == []


@pytest.mark.timeout(90)
def test_a_web_process_of_the_distributed_tier_publishes_what_it_writes_and_lets_go_on_exit(
    config: Settings, db: Database, tmp_path: Path
) -> None:
    # What each gunicorn process builds (services/wsgi.py) and what its worker_exit hook undoes.
    from services import wsgi

    wsgi.create_wsgi(settings=config.replace(VAR_DIR=str(tmp_path / "var"), WEB_SERVICES="intake"))
    try:
        process_db, (_stop, relay_thread, _close) = wsgi._platforms[-1].db, wsgi._relays[-1]
        wait_for(lambda: handoff.taker_for(process_db.engine) is not None, "the web process's relay to start")
        written = sample_submitted()
        commit_to_outbox(process_db, [written])
        wait_for(lambda: unsent(db) == 0, "the web process's row to be published", timeout=20)
        assert rows(db)[0].held_by is not None  # handed over, not taken by a round
    finally:
        wsgi.shutdown()
    assert handoff.taker_for(process_db.engine) is None
    assert not relay_thread.is_alive()
    assert [m.message_id for m, _ in queued(config)] == [written.message_id]
