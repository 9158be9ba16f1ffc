"""Where one message's time goes: the bus's path step by step, against raw kombu's whole path.

    python bench/bus_timeline.py                 # 300 messages one at a time, 3 rounds (~1 min)
    python bench/bus_timeline.py --messages 1000 --rounds 5
    python bench/bus_timeline.py --notify        # the relay woken by NOTIFY, taking rows in a round

bench/bus.py gives the totals; this says which step of the one-process path (producer, relay,
consumer in this process, RabbitMQ and PostgreSQL as there) takes the time. Messages go one at a
time, as in bus.py's latency run (after the same warm-up), and each step's moment is noted by
wrappers put around the parts' own methods for the run:

  producer committed        the unit of work's commit returned (outbox row written)
  relay awake               the relay's wait ended: its socket had the rows handed over after
                            the commit (a relay in the producer's process), or its LISTEN
                            connection the commit's NOTIFY
  relay took the rows       the relay starts publishing: at once for rows handed over, after its
                            UPDATE ... RETURNING (rows marked and locked) for a round
  published                 the frames are built and written (Publisher.publish_many called)
  confirms in               the broker confirmed them (publish_many returned)
  delivered                 the consumer's connection had the message (its on_message)
  consumer batch            the batch was decoded and checked; its transaction begins
  handled                   the consumer's transaction committed (claim, handler, COMMIT)

"confirms in" and "delivered" both follow "published" (the broker does both), so the table gives
each step from the step it waits for. Medians over the messages and rounds; each step also as a
share of raw kombu's whole p50 (publish with confirm to the consumer's ack), measured in the same
round on the same broker. Writes bench/results/bus_timeline.json.
"""

from __future__ import annotations

import logging
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bus import WARMUP, Arrivals, bench_raw, handled_on_commit, message, relay_and_consumer  # noqa: E402
from bench.support.results import write_results  # noqa: E402
from bench.support.servers import server_arguments, throwaway_servers  # noqa: E402
from libs.db import Database  # noqa: E402
from libs.messaging import Bus  # noqa: E402
from libs.messaging.consumer import Consumer  # noqa: E402
from libs.messaging.publisher import Publisher  # noqa: E402
from libs.messaging.relay import OutboxRelay  # noqa: E402
from libs.messaging.relay import _Listener as Listener  # noqa: E402
from libs.messaging.testing import commit_to_outbox  # noqa: E402
from libs.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "bus_timeline.json"

# (step, the step it waits for)
STEPS = (
    ("producer committed", "start"),
    ("relay awake", "producer committed"),
    ("relay took the rows", "relay awake"),
    ("published", "relay took the rows"),
    ("confirms in", "published"),
    ("delivered", "published"),
    ("consumer batch", "delivered"),
    ("handled", "consumer batch"),
)


class Marks:
    """The moments of the message in flight (one at a time: every mark belongs to it). Only a
    step's first moment counts."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self.done: list[dict[str, float]] = []
        self.changed = threading.Condition()

    def mark(self, step: str) -> None:
        with self.changed:
            self.current.setdefault(step, time.perf_counter())
            self.changed.notify_all()

    def wait_for(self, *steps: str) -> None:
        """Until the message in flight has these steps (its relay round is over, say), so no
        late mark of it lands on the next one."""
        with self.changed:
            if not self.changed.wait_for(lambda: all(s in self.current for s in steps), timeout=60):
                raise TimeoutError(f"no {', '.join(steps)} within 60 s")

    def next_message(self) -> None:
        with self.changed:
            if "start" in self.current:  # not the marks of the parts starting up
                self.done.append(self.current)
            self.current = {"start": time.perf_counter()}


@contextmanager
def wrapped(marks: Marks) -> Iterator[None]:
    """Note the steps by wrapping the parts' methods for the duration of the block."""
    originals: list[tuple[Any, str, Any]] = []

    def wrap(
        owner: Any, name: str, before: str | None = None, after: str | None = None, *, if_true: bool = False
    ) -> None:
        fn = getattr(owner, name)

        @wraps(fn)
        def noted(*args: Any, **kwargs: Any) -> Any:
            if before is not None:
                marks.mark(before)
            result = fn(*args, **kwargs)
            if after is not None and (result or not if_true):
                marks.mark(after)
            return result

        originals.append((owner, name, fn))
        setattr(owner, name, noted)

    wrap(Listener, "wait", after="relay awake", if_true=True)  # not None: a notification or hand-off
    # The rows' UPDATE runs on DirectStatement.execute, as do the producer's INSERT and the
    # consumer's claim: the rows are taken at the start of their publishing instead.
    wrap(OutboxRelay, "_publish_in_order", before="relay took the rows")
    wrap(Publisher, "publish_many", before="published", after="confirms in")
    wrap(Consumer, "_on_message", before="delivered")
    wrap(Consumer, "_process", before="consumer batch")
    try:
        yield
    finally:
        for owner, name, fn in reversed(originals):
            setattr(owner, name, fn)


def timeline(settings: Settings, count: int, *, notify: bool = False) -> list[dict[str, float]]:
    """``count`` messages one at a time through the one-process path; each one's moments.
    ``notify``: the producer writes through an engine of its own, whose rows are not handed to
    this process's relay: the relay is woken by the commit's NOTIFY and takes them in a round,
    as for a producer in another process (the command-line tools, a ``--no-relay`` process)."""
    db = Database(settings.database_url)
    producer_db = Database(settings.database_url) if notify else db
    bus = Bus(settings, db)
    bus.declare(services=["review"])
    arrivals = Arrivals()
    marks = Marks()

    def record(message_ids: list[str]) -> None:
        marks.mark("handled")
        arrivals.record(message_ids)

    handle, forget_handler = handled_on_commit(record)
    try:
        with wrapped(marks), relay_and_consumer(bus, handle):
            for n in range(WARMUP + count):
                m = message(n)
                marks.next_message()
                commit_to_outbox(producer_db, [m])
                marks.mark("producer committed")
                arrivals.wait_for(m.message_id)
                marks.wait_for("confirms in")
            marks.next_message()
    finally:
        forget_handler()
        db.dispose()
        producer_db.dispose()
    return marks.done[WARMUP:]


def step_times(messages: list[dict[str, float]]) -> dict[str, list[float]]:
    """Each step's seconds from the step it waits for, for every message that has both."""
    return {
        step: [m[step] - m[after] for m in messages if step in m and after in m] for step, after in STEPS
    } | {"whole path": [m["handled"] - m["start"] for m in messages if "handled" in m]}


def main(argv: list[str] | None = None) -> int:
    parser = server_arguments(__doc__)
    parser.add_argument(
        "--messages", type=int, default=300, help="messages one at a time per round (default 300)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, raw kombu first in each (default 3)")
    parser.add_argument(
        "--notify",
        action="store_true",
        help="the NOTIFY path: rows the relay is woken for and takes in a round (a producer without "
        "a relay of its own), instead of rows handed to it after the commit",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS.relative_to(ROOT)})"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")

    raw_p50: list[float] = []
    times: dict[str, list[float]] = {}
    with throwaway_servers(args.amqp_url, args.pg_url) as (amqp_url, pg_url):
        settings = Settings(BROKER_URL=amqp_url, DATABASE_URL=pg_url)
        for number in range(1, args.rounds + 1):
            raw = bench_raw(amqp_url, args.messages, 1)  # its throughput run: one message
            raw_p50.append(raw["p50_ms"] / 1000)
            for step, seconds in step_times(timeline(settings, args.messages, notify=args.notify)).items():
                times.setdefault(step, []).extend(seconds)
            print(f"  round {number}: raw kombu p50 {raw['p50_ms']:.2f} ms", flush=True)

    raw_median = statistics.median(raw_p50)
    print(
        f"{args.rounds} rounds of {args.messages} messages one at a time; raw kombu's whole path: "
        f"p50 {raw_median * 1000:.2f} ms (median of the rounds)"
    )
    print(f"{'step (from the step it waits for)':<48}{'p50 ms':>8}{'x raw':>8}{'messages':>10}")
    result: dict[str, dict[str, float]] = {}
    for step, after in (*STEPS, ("whole path", "start")):
        values = times.get(step, [])
        if not values:
            print(f"{step:<48}{'-':>8}")
            continue
        p50 = statistics.median(values)
        label = step if step == "whole path" else f"{step} (from {after})"
        print(f"{label:<48}{p50 * 1000:>8.2f}{p50 / raw_median:>8.2f}{len(values):>10}")
        result[step] = {"p50_ms": round(p50 * 1000, 3), "x_raw_p50": round(p50 / raw_median, 3)}
    write_results(
        args.out,
        {
            "benchmark": "bus_timeline",
            "path": "notify" if args.notify else "handed over",
            "messages_per_round": args.messages,
            "rounds": args.rounds,
            "raw_kombu_p50_ms": round(raw_median * 1000, 3),
            "steps": result,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
