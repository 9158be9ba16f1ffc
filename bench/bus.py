"""Publish-to-handled latency and throughput: libs/messaging against raw kombu, in one run.

    python bench/bus.py                      # defaults: local RabbitMQ and PostgreSQL
    python bench/bus.py --count 5000 --amqp-url amqp://guest:guest@127.0.0.1:5672

Both paths use the same broker (a throwaway vhost), quorum queues, publisher confirms and the
same message (a SESSION_SUBMITTED envelope):

- raw:  kombu publish with confirms -> quorum queue -> kombu consumer acks;
- ours: outbox row committed on PostgreSQL -> relay (in the producer's process: handed the row
        after the commit; in another: woken by the commit's NOTIFY) publishes with confirms and
        marks the row sent -> consumer runner decodes with the contract, writes the
        processed-message row, commits, acks;
- same work: what ours does, written directly against psycopg and kombu in a few lines (the
        producer's transaction, which reads the row's id back and hands the row to a relay
        thread after the commit, the relay publishing each with its confirm and marking them
        sent in one UPDATE, a consumer thread that inserts the processed-message row and acks): the same tables, disk flushes and round trips, without SQLAlchemy, the contract
        or any batching. Raw kombu is the speed of the broker alone; this row is the price of the
        outbox and of exactly-once effects themselves, and ours / this row is what libs/messaging
        adds (or saves) on top of them.

Latency: one message at a time, from the start of publish (raw) or of the producer's commit
(ours) to the moment it is handled (acked / committed), after 20 messages through the same path
that are not counted (its first ones open connections and prepare statements). Throughput: ``--count`` messages sent back
to back, first send to last handled, one message per producer transaction (and again with 100
per transaction: what the relay and the consumer sustain when producers write several events at
once; raw kombu has no such batching to compare, the ratio is to its one-by-one figure). The ratios (ours / raw) are the figures to compare between
runs; absolute numbers are context (this machine is noisy). Every row is measured ``--rounds`` times
(raw kombu first in each round) and each ratio is taken within its round, so a drift of the
machine between rounds does not enter it; the table gives the median of the rounds, and the lowest
and highest ratio seen (one round's p99 is the 3rd-worst of 300 messages: it swings most). For the rows whose every part runs in
this process (raw, same work, ours, embedded), the CPU time the process spent per message in the throughput
run is printed too: on a busy machine it moves far less than the wall figures; and for the two
one-process rows of libs/messaging, the database round trips per message (statements, BEGIN,
COMMIT, counted from SQLAlchemy's engine events), which move only when the code does. Writes
bench/results/bus.json.

The producer alone: the one-process row's producer transactions (one event per commit through
the unit of work) with no relay and no consumer running, its latency the commit alone. Its
throughput is the ceiling of every row whose one producer commits one event per transaction: the
bus cannot hand on more events than are committed. The rows it writes are marked sent after it.

Three more rows for libs/messaging: the producer in another process than the relay and the
consumer (the relay is woken by PostgreSQL NOTIFY: a producer with no relay of its own, as the
command-line tools are); the producer, the relay and the consumer each in a process of its own, as
the distributed mode runs them (``make cluster``: a service process writes and publishes its own
rows with ``--own-relay``, the relay process runs beside it for everything else, another service
process consumes); timestamps from CLOCK_MONOTONIC, shared by the processes. And the embedded mode
(memory:// broker, SQLite file, everything in one process).
``--before-own-relay`` adds the 3-process row as it was deployed before ``--own-relay`` (the
producer's rows published by the relay process, woken by NOTIFY), measured in turn with it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from kombu import Connection, Exchange, Producer, Queue  # noqa: E402
from kombu import Consumer as KombuConsumer  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.support.results import write_results  # noqa: E402
from bench.support.servers import server_arguments, throwaway_servers  # noqa: E402
from libs.contracts import SESSION_SUBMITTED, Message, decode_message, new_message  # noqa: E402
from libs.db import Database, outbox_row  # noqa: E402
from libs.db.migrate import upgrade  # noqa: E402
from libs.messaging import Bus  # noqa: E402
from libs.messaging.testing import commit_to_outbox  # noqa: E402
from libs.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "bus.json"
PER_COMMIT = 100  # messages per producer transaction in the second throughput run
WARMUP = 20  # messages sent through each path before its latency is measured
HANDLED = "bench.handled"  # Session.info key: the messages handled in that transaction


def message(n: int) -> Message:
    return new_message(
        SESSION_SUBMITTED,
        org_id=str(uuid.uuid4()),
        session_id=str(uuid.uuid4()),
        package="executive",
        format="portrait",
        styles=["navy:suit", "grey:blazer"],
        photo_count=(n % 20) + 1,
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(latencies: list[float], count: int, seconds: float, cpu_seconds: float) -> dict[str, float]:
    """``cpu_seconds``: this process' CPU time over the throughput run (steadier than the wall
    figures on a busy machine; it covers every part only when they all run in this process)."""
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "throughput_per_s": round(count / seconds, 1),
        "cpu_us_per_message": round(cpu_seconds / count * 1e6, 1),
    }


class Arrivals:
    """Times at which message ids were handled, with a way to wait for one or for a count."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.changed = threading.Condition()

    def record(self, message_ids: Iterable[str], now: float | None = None) -> None:
        """The messages handled together (one consumer commit) at ``now`` (default: this moment)."""
        now = time.perf_counter() if now is None else now
        with self.changed:
            for message_id in message_ids:
                self.at[message_id] = now
            self.changed.notify_all()

    def wait(self, until: Callable[[], bool], timeout: float = 60.0) -> None:
        with self.changed:
            if not self.changed.wait_for(until, timeout):
                raise TimeoutError("messages did not arrive in time")

    def wait_for(self, message_id: str) -> None:
        """Until ``message_id`` is handled."""
        self.wait(partial(self.at.__contains__, message_id))


def handled_on_commit(record: Callable[[list[str]], None]) -> tuple[Callable[..., None], Callable[[], None]]:
    """The handler for libs/messaging's consumer, and the function that undoes it. "Handled" =
    committed with its processed-message row (the runner commits after the handler): the handler
    notes its message in the session, and one listener, registered once rather than per message,
    calls ``record(message_ids)`` once with the noted messages when their transaction commits."""

    def committed(session: Any) -> None:
        message_ids = session.info.pop(HANDLED, None)
        if message_ids:
            record(message_ids)

    def handle(m: Message, *, uow: Any) -> None:
        uow.session.info.setdefault(HANDLED, []).append(m.message_id)

    sa.event.listen(Session, "after_commit", committed)
    return handle, lambda: sa.event.remove(Session, "after_commit", committed)


# Sends the messages it is given; returns the time the first send started.
Send = Callable[[list[Message]], float]


def sending(send: Callable[[list[Message]], None], per_send: int = 1) -> Send:
    """``send`` handed the messages ``per_send`` at a time (a publish, a producer transaction)."""

    def send_all(messages: list[Message]) -> float:
        started = time.perf_counter()
        for start in range(0, len(messages), per_send):
            send(messages[start : start + per_send])
        return started

    return send_all


def one_at_a_time(send: Send, arrivals: Arrivals, count: int) -> list[float]:
    """Latencies of ``count`` messages sent one at a time, after WARMUP that are not counted: the
    first messages through a path open its connections, prepare its statements and fill its
    caches, and a p99 of 300 would measure that instead."""
    latencies = []
    for n in range(WARMUP + count):
        m = message(n)
        started = send([m])
        arrivals.wait_for(m.message_id)
        if n >= WARMUP:
            latencies.append(arrivals.at[m.message_id] - started)
    return latencies


def back_to_back(send: Send, arrivals: Arrivals, count: int) -> tuple[float, float]:
    """``count`` new messages sent back to back: the seconds from the first send to the last one
    handled, and the CPU seconds this process spent meanwhile (building them is not counted)."""
    batch = [message(n) for n in range(count)]
    expected = len(arrivals.at) + count  # counting, not scanning the batch on every arrival
    cpu_started = time.process_time()
    started = send(batch)
    arrivals.wait(lambda: len(arrivals.at) >= expected, timeout=300)
    return max(arrivals.at.values()) - started, time.process_time() - cpu_started


class RoundTrips:
    """Requests this process sends its databases, counted from SQLAlchemy's engine events: every
    statement (savepoints included), BEGIN and COMMIT/ROLLBACK is one round trip to the server.
    A count, not a time: it moves only when the code does, whatever the machine is doing."""

    EVENTS = ("before_cursor_execute", "begin", "commit", "rollback")

    def __init__(self) -> None:
        self._ticks = itertools.count()  # next() is atomic: the relay and consumer threads count too

    def _tick(self, *_args: Any, **_kwargs: Any) -> None:
        next(self._ticks)

    @contextlib.contextmanager
    def counting(self) -> Iterator[RoundTrips]:
        for name in self.EVENTS:
            sa.event.listen(sa.Engine, name, self._tick)
        try:
            yield self
        finally:
            for name in self.EVENTS:
                sa.event.remove(sa.Engine, name, self._tick)

    def total(self) -> int:
        """How many were counted (read once, after counting)."""
        return next(self._ticks)


# --- raw kombu -----------------------------------------------------------------------------------------
def publish_confirmed(
    producer: Producer, exchange: Exchange, body: str, routing_key: str, message_id: str
) -> None:
    """Publish with kombu directly, as libs/messaging publishes (persistent, JSON, the message id
    and type set), and wait for the broker's confirm."""
    producer.publish(
        body,
        exchange=exchange,
        routing_key=routing_key,
        content_type="application/json",
        delivery_mode=2,
        message_id=message_id,
        type=routing_key,
        timeout=5,
    )


def quorum_queue(name: str) -> tuple[Exchange, Queue]:
    """A topic exchange and the quorum queue bound to it, both called ``name``, for the rows that
    use kombu directly (libs/messaging declares its own)."""
    exchange = Exchange(name, type="topic", durable=True)
    queue = Queue(
        name,
        exchange,
        routing_key=SESSION_SUBMITTED.routing_key,
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )
    return exchange, queue


def bench_raw(amqp_url: str, latency_count: int, count: int) -> dict[str, float]:
    exchange, queue = quorum_queue("bench.raw")
    arrivals = Arrivals()
    stop = threading.Event()
    ready = threading.Event()

    def consume() -> None:
        with Connection(amqp_url, heartbeat=30) as conn:

            def on_message(raw: Any) -> None:
                raw.ack()
                arrivals.record([raw.properties["message_id"]])

            with KombuConsumer(conn.channel(), [queue], on_message=on_message, prefetch_count=10):
                ready.set()
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=0.2)

    thread = threading.Thread(target=consume, daemon=True)
    with Connection(amqp_url, transport_options={"confirm_publish": True}) as conn:
        producer = Producer(conn.channel())
        queue(producer.channel).declare()
        thread.start()
        ready.wait(10)

        def publish(messages: list[Message]) -> None:
            for m in messages:
                publish_confirmed(producer, exchange, m.to_json(), m.routing_key, m.message_id)

        latencies = one_at_a_time(sending(publish), arrivals, latency_count)
        seconds, cpu_seconds = back_to_back(sending(publish), arrivals, count)
    stop.set()
    thread.join(5)
    return summary(latencies, count, seconds, cpu_seconds)


# --- the same work, written directly against psycopg and kombu -----------------------------------------
# What any outbox with an idempotent consumer has to do, without libs/messaging, done the way
# libs/messaging does it: the producer's transaction writes the outbox row held for the relay of
# its process (no NOTIFY) and reads its id back, and hands the row to the relay thread after the
# commit; the relay publishes each with a confirm, then marks them sent in one UPDATE; a consumer
# thread inserts the processed-message row ON CONFLICT DO NOTHING, commits, acks. Same tables, same
# disk flushes, same round trips per message one at a time; no SQLAlchemy, no contract validation
# (the consumer only parses the JSON), no batching of confirms or of consumed messages.
RAW_INSERT = (
    "INSERT INTO outbox (message_id, routing_key, org_id, session_id, body, created_at, attempts, held_by, "
    "held_until) VALUES (%(message_id)s, %(routing_key)s, %(org_id)s, %(session_id)s, %(body)s, %(created_at)s, "
    "%(attempts)s, %(held_by)s, statement_timestamp() + interval '10 seconds') RETURNING id"
)
RAW_BATCH = Settings().OUTBOX_BATCH  # rows per round, as libs/messaging's relay takes
RAW_MARK = "UPDATE outbox SET sent_at = now() WHERE id = ANY(%(ids)s)"


RAW_CLAIM = (
    "INSERT INTO processed_messages (consumer, message_id, processed_at) VALUES (%s, %s, now()) "
    "ON CONFLICT DO NOTHING RETURNING message_id"
)


def bench_raw_same_work(amqp_url: str, pg_url: str, latency_count: int, count: int) -> dict[str, float]:
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    exchange, queue = quorum_queue("bench.same_work")
    arrivals = Arrivals()
    stop = threading.Event()
    ready = threading.Barrier(3)

    handed: SimpleQueue[list[tuple[int, str, str, str]]] = SimpleQueue()
    held_by = uuid.uuid4().hex

    def relay() -> None:
        with (
            psycopg.connect(dsn) as db,
            Connection(amqp_url, transport_options={"confirm_publish": True}) as conn,
        ):
            producer = Producer(conn.channel())
            ready.wait()
            while not stop.is_set():
                # Woken by rows handed over after a commit; the ones already handed are taken too.
                try:
                    rows = handed.get(timeout=0.2)
                except Empty:
                    continue
                with contextlib.suppress(Empty):
                    while len(rows) < RAW_BATCH:
                        rows = rows + handed.get_nowait()
                for _row_id, routing_key, message_id, body in rows:
                    publish_confirmed(producer, exchange, body, routing_key, message_id)
                with db.transaction():
                    db.execute(RAW_MARK, {"ids": [row[0] for row in rows]})

    def consume() -> None:
        with psycopg.connect(dsn) as db, Connection(amqp_url, heartbeat=30) as conn:

            def on_message(raw: Any) -> None:
                message_id = json.loads(raw.body)["message_id"]
                with db.transaction():
                    db.execute(RAW_CLAIM, ("bench.same_work", message_id)).fetchall()
                arrivals.record([message_id])
                raw.ack()

            with KombuConsumer(conn.channel(), [queue], on_message=on_message, prefetch_count=10):
                ready.wait()
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        conn.drain_events(timeout=0.2)

    with Connection(amqp_url) as conn:
        queue(conn.default_channel).declare()
    threads = [threading.Thread(target=relay, daemon=True), threading.Thread(target=consume, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        with psycopg.connect(dsn) as db:
            ready.wait(30)

            def commit(messages: list[Message]) -> None:
                rows = []
                with db.transaction():
                    for m in messages:
                        row = {**outbox_row(m), "held_by": held_by}
                        (row_id,) = db.execute(RAW_INSERT, row).fetchone()  # type: ignore[misc]
                        rows.append((row_id, m.routing_key, m.message_id, row["body"]))
                handed.put(rows)

            latencies = one_at_a_time(sending(commit), arrivals, latency_count)
            seconds, cpu_seconds = back_to_back(sending(commit), arrivals, count)
            batched_seconds, _ = back_to_back(sending(commit, PER_COMMIT), arrivals, count)
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    return {
        **summary(latencies, count, seconds, cpu_seconds),
        "batched_throughput_per_s": round(count / batched_seconds, 1),
    }


# --- libs/messaging -----------------------------------------------------------------------------------
def remote_producer(database_url: str, requests: Any, replies: Any) -> None:
    """Another process: commit what the parent asks for, answer with the time the commit began."""
    db = Database(database_url)
    commit = sending(partial(commit_to_outbox, db))
    for request in iter(requests.recv, None):
        if isinstance(request, str):  # one message, for latency
            replies.send(commit([decode_message(request)]))
        else:  # a count, for throughput: built here, committed one per transaction
            replies.send(commit([message(n) for n in range(request)]))
    db.dispose()


def relay_process(broker_url: str, database_url: str, stop: Any) -> None:
    """Another process: the outbox relay alone (as ``make cluster`` runs it)."""
    db = Database(database_url)
    Bus(Settings(BROKER_URL=broker_url, DATABASE_URL=database_url), db).relay().run_forever(stop)
    db.dispose()


def consumer_process(broker_url: str, database_url: str, arrivals: Any, stop: Any) -> None:
    """Another process: the consumer runner alone; sends ([message_id, ...], CLOCK_MONOTONIC time)
    once per committed transaction, and "ready" once it consumes. One send per commit rather than
    per message: each send wakes the parent's receiving thread, which takes the GIL from the
    producer it is measuring."""
    db = Database(database_url)
    bus = Bus(Settings(BROKER_URL=broker_url, DATABASE_URL=database_url), db)
    sent = threading.Lock()

    def record(message_ids: list[str]) -> None:
        with sent:
            arrivals.send((message_ids, time.perf_counter()))

    handle, _forget = handled_on_commit(record)
    consumer = bus.consumer("review", {SESSION_SUBMITTED: handle})
    consumer.start_in_thread()
    consumer.wait_ready(10)
    arrivals.send("ready")
    stop.wait()
    consumer.stop(wait=10)
    db.dispose()


@contextlib.contextmanager
def relay_running(bus: Bus, *, own_rows_only: bool = False) -> Iterator[None]:
    """The outbox relay in a thread of this process for the duration of the block
    (``own_rows_only``: a relay of this process's own rows, as ``--own-relay`` runs it)."""
    stop = threading.Event()
    relay = bus.relay()
    thread = threading.Thread(
        target=relay.run_forever, args=(stop,), kwargs={"own_rows_only": own_rows_only}, daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
        relay.close()


@contextlib.contextmanager
def relay_and_consumer(bus: Bus, handle: Callable[..., None]) -> Iterator[None]:
    """The outbox relay (a thread) and the review consumer handling SESSION_SUBMITTED with
    ``handle``, both in this process and consuming, for the duration of the block."""
    with relay_running(bus):
        consumer = bus.consumer("review", {SESSION_SUBMITTED: handle})
        consumer.start_in_thread()
        try:
            consumer.wait_ready(10)
            yield
        finally:
            consumer.stop(wait=10)


def bench_ours(
    settings: Settings,
    latency_count: int,
    count: int,
    *,
    remote: bool = False,
    apart: bool = False,
    own_relay: bool = True,
) -> dict[str, float]:
    """``remote``: the producer in another process; ``apart``: the relay and the consumer each in
    a process of their own too, and this process relaying its own rows (the distributed mode as
    deployed; without ``own_relay``, as it was deployed before ``--own-relay``: every row through
    the relay process); otherwise all in this one."""
    db = Database(settings.database_url)
    bus = Bus(settings, db)
    bus.declare(services=["review"])
    arrivals = Arrivals()

    handle, forget_handler = handled_on_commit(arrivals.record)

    in_process = contextlib.ExitStack()  # the relay and the consumer, when they run here
    spawn = multiprocessing.get_context("spawn")
    children: list[Any] = []
    if apart:
        stop_children = spawn.Event()
        received, sender = spawn.Pipe(duplex=False)
        urls = (settings.BROKER_URL, settings.database_url)
        children = [
            spawn.Process(target=relay_process, args=(*urls, stop_children), daemon=True),
            spawn.Process(target=consumer_process, args=(*urls, sender, stop_children), daemon=True),
        ]
        for process in children:
            process.start()
        if not received.poll(60) or received.recv() != "ready":
            raise RuntimeError("the consumer process did not start")

        def receive() -> None:
            with contextlib.suppress(EOFError, OSError):
                while True:
                    message_ids, at = received.recv()
                    arrivals.record(message_ids, at)

        threading.Thread(target=receive, daemon=True).start()
        if own_relay:
            in_process.enter_context(relay_running(bus, own_rows_only=True))
    else:
        in_process.enter_context(relay_and_consumer(bus, handle))
    child = None
    if remote:
        requests, child_requests = multiprocessing.Pipe()
        child_replies, replies = multiprocessing.Pipe()
        child = spawn.Process(
            target=remote_producer, args=(settings.database_url, child_requests, child_replies), daemon=True
        )
        child.start()

    def commit_in_child(messages: list[Message]) -> float:
        # One message is sent over (latency); for throughput only the count, and the other
        # process builds and commits that many itself. Its reply is when its first commit began.
        requests.send(messages[0].to_json() if len(messages) == 1 else len(messages))
        return float(replies.recv())

    commit: Send = commit_in_child if remote else sending(partial(commit_to_outbox, db))
    try:
        latencies = one_at_a_time(commit, arrivals, latency_count)
        with RoundTrips().counting() as round_trips:
            seconds, cpu_seconds = back_to_back(commit, arrivals, count)
        # The same count again, committed PER_COMMIT messages per producer transaction (a
        # producer that writes several events at once): what the relay and consumer sustain.
        batched_seconds, _ = back_to_back(sending(partial(commit_to_outbox, db), PER_COMMIT), arrivals, count)
    finally:
        if child is not None:
            requests.send(None)
            child.join(10)
        if apart:
            stop_children.set()
            for process in children:
                process.join(15)
        in_process.close()
        forget_handler()
        db.dispose()
    return {
        **summary(latencies, count, seconds, cpu_seconds),
        "db_round_trips_per_message": round(round_trips.total() / count, 2),
        "batched_throughput_per_s": round(count / batched_seconds, 1),
    }


def bench_producer_alone(settings: Settings, latency_count: int, count: int) -> dict[str, float]:
    """The producer's side alone: the same transactions as the one-process row (one event per
    commit through the unit of work), with no relay and no consumer running. Its throughput is
    the ceiling of the rows whose producer commits one event per transaction: none of them can
    hand on more events than one producer commits. Latency here is the commit alone (the
    first step of the path the other rows time). The rows are marked sent afterwards, so the
    next row's relay does not publish them."""
    db = Database(settings.database_url)
    commit = partial(commit_to_outbox, db)
    try:
        batch = [message(n) for n in range(WARMUP + latency_count)]
        latencies = []
        for n, m in enumerate(batch):
            started = time.perf_counter()
            commit([m])
            if n >= WARMUP:
                latencies.append(time.perf_counter() - started)
        batch = [message(n) for n in range(count)]
        cpu_started, started = time.process_time(), time.perf_counter()
        for m in batch:
            commit([m])
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        with db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL"))
    finally:
        db.dispose()
    return summary(latencies, count, seconds, cpu_seconds)


def bench_embedded(latency_count: int, count: int) -> dict[str, float]:
    """The embedded mode: memory:// broker and a SQLite file, everything in this process."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        return bench_ours(Settings(BROKER_URL="memory://bench/", DATABASE_URL=url), latency_count, count)


# (key in a round, label in the table, key in bench/results/bus.json)
ROWS = (
    ("raw", "raw kombu (confirms)", "raw_kombu"),
    ("same", "same work, psycopg + kombu directly", "psycopg_and_kombu_doing_the_same_work"),
    ("producer", "producer alone: its commits (ceiling)", "libs_messaging_producer_alone"),
    ("ours", "libs/messaging (outbox+relay+runner)", "libs_messaging"),
    ("remote", "  producer in another process", "libs_messaging_producer_in_another_process"),
    ("apart", "  producer, relay, consumer: 3 processes", "libs_messaging_each_part_in_its_own_process"),
    ("embedded", "  embedded (memory://, SQLite)", "libs_messaging_embedded"),
)
# --before-own-relay: the deployed layout as it was before --own-relay, measured in the same rounds.
BEFORE_OWN_RELAY = (
    "apart_notify",
    "  3 processes, no relay in the producer's",
    "libs_messaging_each_part_in_its_own_process_without_own_relay",
)
RATIOS = ("p50_x", "p99_x", "throughput_x")


def ratios(row: dict[str, float], raw: dict[str, float]) -> dict[str, float]:
    """Ours / raw kombu, measured in the same round."""
    return {
        "p50_x": round(row["p50_ms"] / raw["p50_ms"], 3),
        "p99_x": round(row["p99_ms"] / raw["p99_ms"], 3),
        "throughput_x": round(row["throughput_per_s"] / raw["throughput_per_s"], 3),
    }


def middle(values: Iterable[float]) -> float:
    return round(statistics.median(values), 3)


def spread_of(values: Iterable[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return ordered[0], ordered[-1]


def deployed(
    settings: Settings, latency_count: int, count: int, before_own_relay: bool, number: int
) -> dict[str, dict[str, float]]:
    """The 3-process row as deployed; with ``before_own_relay`` also as deployed before
    ``--own-relay``, the two in turn (which goes first alternates from round to round)."""
    kinds = [("apart", True), ("apart_notify", False)] if before_own_relay else [("apart", True)]
    if number % 2 == 0:
        kinds.reverse()
    return {
        key: bench_ours(settings, latency_count, count, apart=True, own_relay=own_relay)
        for key, own_relay in kinds
    }


def main(argv: list[str] | None = None) -> int:
    parser = server_arguments(__doc__)
    parser.add_argument(
        "--count", type=int, default=2000, help="messages in the throughput run (default 2000)"
    )
    parser.add_argument(
        "--latency-count", type=int, default=300, help="messages sent one at a time (default 300)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=9,
        help="times every row is measured, raw kombu first each time; figures are the medians (default 9: "
        "a round's ratios swing more than what separates them from the goals, five rounds' medians too)",
    )
    parser.add_argument(
        "--before-own-relay",
        action="store_true",
        help="one more row: the 3 processes as deployed before --own-relay (the producer's rows "
        "published by the relay process, woken by NOTIFY), measured in turn with the row as deployed now",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS.relative_to(ROOT)})"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    rows = (*ROWS, BEFORE_OWN_RELAY) if args.before_own_relay else ROWS

    rounds: list[dict[str, dict[str, float]]] = []
    with throwaway_servers(args.amqp_url, args.pg_url) as (amqp_url, pg_url):
        settings = Settings(BROKER_URL=amqp_url, DATABASE_URL=pg_url)
        body_bytes = len(message(0).to_json().encode())
        print(
            f"{args.rounds} rounds, each: {args.latency_count} one-at-a-time + {args.count} back-to-back "
            f"messages of {body_bytes} bytes through every row"
        )
        for number in range(1, args.rounds + 1):
            raw = bench_raw(amqp_url, args.latency_count, args.count)
            one_round = {
                "raw": raw,
                "same": bench_raw_same_work(amqp_url, pg_url, args.latency_count, args.count),
                "producer": bench_producer_alone(settings, args.latency_count, args.count),
                "ours": bench_ours(settings, args.latency_count, args.count),
                "remote": bench_ours(settings, args.latency_count, args.count, remote=True),
                **deployed(settings, args.latency_count, args.count, args.before_own_relay, number),
                "embedded": bench_embedded(args.latency_count, args.count),
            }
            for row in one_round.values():
                row.update(ratios(row, raw))
            rounds.append(one_round)
            print(
                f"  round {number}: ours / raw p50 {one_round['ours']['p50_x']:.2f}, "
                f"p99 {one_round['ours']['p99_x']:.2f}, throughput {one_round['ours']['throughput_x']:.3f} "
                f"(the producer alone: {one_round['producer']['throughput_x']:.3f})",
                flush=True,
            )

    # Each figure is the median of the rounds; a ratio is ours / raw kombu in the same round (the
    # machine's state drifts between rounds; within one the two ran a few seconds apart).
    median = {
        key: {field: middle(r[key][field] for r in rounds) for field in rounds[0][key]} for key, _, _ in rows
    }
    spread = {
        key: {field: spread_of(r[key][field] for r in rounds) for field in RATIOS} for key, _, _ in rows
    }
    print(
        f"median of the {args.rounds} rounds (ratios: median, lowest-highest); "
        f"raw kombu p50 {median['raw']['p50_ms']:.2f} ms, {median['raw']['throughput_per_s']:.0f} msg/s"
    )
    print(f"{'':<40}{'p50 ms':>8}{'p99 ms':>8}{'msg/s':>7}   {'p50 x':<17}{'p99 x':<17}{'tput x':<19}")
    for key, name, _ in rows:
        row = median[key]
        print(
            f"{name:<40}{row['p50_ms']:>8.2f}{row['p99_ms']:>8.2f}{row['throughput_per_s']:>7.0f}   "
            + "".join(
                f"{row[field]:.{digits}f} ({lowest:.{digits}f}-{highest:.{digits}f})".ljust(width)
                for field, digits, width in (("p50_x", 2, 17), ("p99_x", 2, 17), ("throughput_x", 3, 19))
                for lowest, highest in [spread[key][field]]
            )
        )
    same_work = {
        field: middle(r["ours"][field] / r["same"][field] for r in rounds)
        for field in ("p50_ms", "p99_ms", "throughput_per_s")
    }
    print(
        "libs/messaging (one process) / the same work done with psycopg + kombu directly, median of the "
        f"rounds: p50 {same_work['p50_ms']:.2f}, p99 {same_work['p99_ms']:.2f}, "
        f"throughput {same_work['throughput_per_s']:.3f}"
    )
    # What the relay and the consumer cost the producer: each row's throughput against the
    # producer's commits alone in the same round (1.0 = the producer is the only limit).
    of_ceiling = {
        key: middle(r[key]["throughput_per_s"] / r["producer"]["throughput_per_s"] for r in rounds)
        for key in ("ours", "remote", "apart")
    }
    print(
        "throughput / the producer alone (its ceiling), median of the rounds: "
        f"one process {of_ceiling['ours']:.3f}, producer in another process {of_ceiling['remote']:.3f}, "
        f"3 processes {of_ceiling['apart']:.3f}"
    )
    for key, name, _ in rows[1:]:
        if "batched_throughput_per_s" not in median[key]:
            continue
        x = middle(r[key]["batched_throughput_per_s"] / r["raw"]["throughput_per_s"] for r in rounds)
        print(
            f"{name:<40} {PER_COMMIT} per commit: {median[key]['batched_throughput_per_s']:.0f} msg/s = {x:.3f} x raw"
        )
    # Only where every part runs in this process: the CPU the whole path costs per message (the
    # other rows' figure covers this process's share only).
    in_process = (
        ("raw kombu (confirms)", "raw"),
        ("same work directly", "same"),
        ("the producer alone", "producer"),
        ("libs/messaging", "ours"),
        ("embedded", "embedded"),
    )
    print(
        "CPU of this process per message, throughput run: "
        + ", ".join(f"{name} {median[key]['cpu_us_per_message']:.0f} us" for name, key in in_process)
    )
    print(
        "Database round trips per message, throughput run (producer, relay and consumer of this "
        f"process): libs/messaging {median['ours']['db_round_trips_per_message']:.2f}, "
        f"embedded {median['embedded']['db_round_trips_per_message']:.2f}"
    )

    result = {
        "benchmark": "bus",
        "message_bytes": body_bytes,
        "latency_messages": args.latency_count,
        "throughput_messages": args.count,
        "rounds": args.rounds,
        "median_of_rounds": {name: median[key] for key, _, name in rows},
        "libs_messaging_over_the_same_work_directly": same_work,
        "throughput_over_the_producer_alone": of_ceiling,
        "ratio_ranges": {name: spread[key] for key, _, name in rows},
        "each_round": [{name: r[key] for key, _, name in rows} for r in rounds],
        "context": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "relay_poll_seconds": Settings().OUTBOX_POLL_SECONDS,
            "relay_woken_by": "PostgreSQL NOTIFY (distributed), commit hook (embedded)",
        },
    }
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
