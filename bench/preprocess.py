"""Photo preparation: the worker against the same libs/imaging calls made directly, in one run.

    python bench/preprocess.py               # local RabbitMQ and PostgreSQL, ~1 minute
    python bench/preprocess.py --small 16 --sessions 20

Photos are real portraits (skimage's astronaut, turned a little for each copy) at 1024 px and as
12 MP phone photos (4032 x 3024 JPEGs). Three measures, side by side:

1. overhead: ``prepare_photo`` called directly on each photo, then the same photos as one session
   through the whole worker path (session.approved committed -> relay -> RabbitMQ -> consumer ->
   blob reads and writes, one transaction per photo on PostgreSQL -> photos.processed committed).
   Worker time per photo / direct time per photo, in wall-clock time and in this process's CPU
   time (consumer and relay threads included; they are started and warmed up on one session
   first, as in a running worker). Direct, worker, direct again, for ``--rounds``
   rounds; the fastest of each is compared (the least disturbed by other work on a busy machine).
   Also "in-run": the worker's whole time against the time its own prepare_photo calls took in
   the same run (wrapped with a timer here), which other processes' load inflates alike;
2. latency: per-photo p50/p99, direct and in the worker (the worker's from the times of its
   per-photo progress rows), for 1024 px and 12 MP photos;
3. scaling: ``python -m services.preprocess`` as 1 process, then as 2, on the same number of
   sessions; photos/s of each and their ratio.

Writes bench/results/preprocess.json.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.support.results import write_results  # noqa: E402
from bench.support.servers import server_arguments, throwaway_servers  # noqa: E402
from libs.contracts import PHOTOS_PROCESSED, SESSION_PROGRESS, queue_name  # noqa: E402
from libs.contracts import SESSION_APPROVED as APPROVED  # noqa: E402
from libs.db import Database, OutboxMessage  # noqa: E402
from libs.db.demo import DemoData, seed_demo  # noqa: E402
from libs.imaging.prepare import prepare_photo  # noqa: E402
from libs.messaging import Bus  # noqa: E402
from libs.messaging.testing import pika_parameters  # noqa: E402
from libs.settings import Settings  # noqa: E402
from libs.storage import LocalBlobStore  # noqa: E402
from services.preprocess import photos as photos_module  # noqa: E402
from services.preprocess.handlers import HANDLERS, build_deps  # noqa: E402
from tests.support.photos import astronaut, enlarged, jpeg, turned  # noqa: E402
from tests.support.preprocess import approved, queued_session  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "preprocess.json"
QUEUE = queue_name("preprocess", APPROVED)


def photo_set(count: int, width: int, height: int) -> list[bytes]:
    """``count`` different JPEGs of the portrait (each turned by another angle) at width x height."""
    base = enlarged(astronaut(), width, height)
    return [jpeg(turned(base, -8 + 16 * n / max(1, count - 1)), quality=90) for n in range(count)]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"p50_ms": ms(statistics.median(values)), "p99_ms": ms(percentile(values, 0.99)), "n": len(values)}


# --- 1 and 2: direct calls, and the worker in this process ------------------------------------------------
def direct(photos: Sequence[bytes], training_side: int) -> tuple[list[float], float]:
    """Wall-clock seconds of each call, and the CPU seconds of all of them."""
    times = []
    cpu = time.process_time()
    for data in photos:
        started = time.perf_counter()
        prepare_photo(data, training_side=training_side)
        times.append(time.perf_counter() - started)
    return times, time.process_time() - cpu


class InsideCalls:
    """Times the worker's own calls to prepare_photo (wall and CPU), so the worker's whole time can
    be compared with the library's share of it in the same run: a ratio that the load of other
    processes inflates on both sides alike."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self._original = photos_module.prepare_photo

    def __enter__(self) -> InsideCalls:
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return self._original(*args, **kwargs)
            finally:
                self.wall += time.perf_counter() - wall
                self.cpu += time.process_time() - cpu

        photos_module.prepare_photo = timed
        return self

    def __exit__(self, *exc: object) -> None:
        photos_module.prepare_photo = self._original

    def take(self) -> tuple[float, float]:
        taken, self.wall, self.cpu = (self.wall, self.cpu), 0.0, 0.0
        return taken


class Bench:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.blobs = LocalBlobStore(settings.blob_dir)
        self.bus = Bus(settings, self.db)
        self.bus.declare()
        self.demo: DemoData = seed_demo(self.db)
        self.warm_up = photo_set(1, 1024, 1024)

    def session(self, photos: Sequence[bytes]) -> str:
        return queued_session(self.db, self.blobs, self.demo, photos)[0]

    def approve(self, session_ids: Sequence[str]) -> None:
        with self.db.uow(org_id=self.demo.org_id) as uow:
            for hs_id in session_ids:
                uow.add_message(approved(self.demo.org_id, hs_id))
            uow.commit()

    def wait_processed(self, session_ids: Sequence[str], timeout: float = 300) -> float:
        """Seconds until every session has its photos.processed row (polled every 20 ms)."""
        started = time.perf_counter()
        query = sa.select(sa.func.count()).where(
            OutboxMessage.routing_key == PHOTOS_PROCESSED.routing_key,
            OutboxMessage.session_id.in_(session_ids),
        )
        while True:
            with self.db.session(all_orgs=True) as s:
                if s.scalar(query) == len(session_ids):
                    return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise TimeoutError("the sessions were not processed in time")
            time.sleep(0.02)

    def per_photo_times(self, hs_id: str) -> list[float]:
        """Time between consecutive per-photo progress rows of a session (the first row is the start)."""
        with self.db.session(all_orgs=True) as s:
            stamps = s.scalars(
                sa.select(OutboxMessage.created_at)
                .where(
                    OutboxMessage.session_id == hs_id,
                    OutboxMessage.routing_key == SESSION_PROGRESS.routing_key,
                )
                .order_by(OutboxMessage.id)
            ).all()
        return [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]

    @contextlib.contextmanager
    def worker_here(self) -> Iterator[Callable[[Sequence[bytes]], dict[str, Any]]]:
        """A consumer and a relay in this process, warmed up on one session (connections open,
        models loaded), as a running worker is. Yields ``prepare(photos)`` for one session of
        ``photos``: its seconds and CPU seconds, those spent inside prepare_photo, per-photo seconds."""
        relay = self.bus.relay()
        stop = threading.Event()
        relay_thread = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
        relay_thread.start()
        consumer = self.bus.consumer("preprocess", HANDLERS, build_deps(self.settings, self.db, self.blobs))
        consumer.start_in_thread()
        consumer.wait_ready(10)

        inside = InsideCalls()

        def prepare(photos: Sequence[bytes]) -> dict[str, Any]:
            hs_id = self.session(photos)
            handled = consumer.stats["handled"]
            inside.take()
            cpu = time.process_time()
            started = time.perf_counter()
            self.approve([hs_id])
            # Waiting on the consumer's counter, not the database: no polling queries in this process.
            wait_until(lambda: consumer.stats["handled"] > handled, "the session to be prepared", 300, 0.01)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            inside_wall, inside_cpu = inside.take()
            return {
                "seconds": seconds,
                "cpu": cpu,
                "inside_wall": inside_wall,
                "inside_cpu": inside_cpu,
                "per_photo": self.per_photo_times(hs_id),
            }

        try:
            with inside:
                prepare(self.warm_up)
                yield prepare
        finally:
            consumer.stop(wait=10)
            stop.set()
            relay_thread.join(10)
            relay.close()


# --- 3: worker processes ----------------------------------------------------------------------------------
def start_workers(settings: Settings, n: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "BROKER_URL": settings.BROKER_URL,
        "DATABASE_URL": settings.DATABASE_URL,
        "VAR_DIR": settings.VAR_DIR,
        "LOG_LEVEL": "WARNING",
    }
    workers = []
    for i in range(n):
        with (log_dir / f"worker-{n}-{i}.log").open("wb") as out:
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "services.preprocess", "--no-relay"],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    return workers


def consumers_on_queue(amqp_url: str) -> int:
    import pika

    connection = pika.BlockingConnection(pika_parameters(amqp_url))
    try:
        return int(connection.channel().queue_declare(QUEUE, passive=True).method.consumer_count)
    finally:
        connection.close()


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 60, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(interval)


def processes(bench: Bench, n: int, sessions: int, photos: Sequence[bytes], log_dir: Path) -> float:
    """Photos/s of ``n`` worker processes on ``sessions`` sessions of ``photos`` each."""
    workers = start_workers(bench.settings, n, log_dir)
    relay = bench.bus.relay()
    stop = threading.Event()
    relay_thread = threading.Thread(target=relay.run_forever, args=(stop,), daemon=True)
    relay_thread.start()
    try:
        wait_until(lambda: consumers_on_queue(bench.settings.BROKER_URL) == n, f"{n} workers to consume", 120)
        warm = [bench.session(photos[:1]) for _ in range(2 * n)]  # each process loads dlib's models
        bench.approve(warm)
        bench.wait_processed(warm)
        batch = [bench.session(photos) for _ in range(sessions)]
        bench.approve(batch)
        seconds = bench.wait_processed(batch)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
        stop.set()
        relay_thread.join(10)
        relay.close()
    return sessions * len(photos) / seconds


def run(settings: Settings, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    side = settings.LORA_RESOLUTION
    sizes = {"1024px": photo_set(args.small, 1024, 1024), "12MP": photo_set(args.large, 4032, 3024)}
    bench = Bench(settings)
    direct(sizes["1024px"][:1], side)  # load dlib's models before anything is timed
    try:
        result: dict[str, Any] = {}
        with bench.worker_here() as in_worker:
            measured = {}
            for name, photos in sizes.items():
                rounds = []
                for _ in range(args.rounds):
                    before, cpu_before = direct(photos, side)
                    worker = in_worker(photos)
                    after, cpu_after = direct(photos, side)
                    rounds.append((before, after, (cpu_before + cpu_after) / 2, worker))
                measured[name] = rounds
        for name, photos in sizes.items():
            rounds = measured[name]
            n = len(photos)
            direct_wall = min(min(sum(b), sum(a)) for b, a, *_ in rounds) / n
            direct_cpu = min(r[2] for r in rounds) / n
            worker_wall = min(r[3]["seconds"] for r in rounds) / n
            worker_cpu = min(r[3]["cpu"] for r in rounds) / n
            in_run = [r[3] for r in rounds]
            result[name] = {
                # The worker's time against its own prepare_photo calls in the same run (median of rounds).
                "in_run_ratio": round(statistics.median(w["seconds"] / w["inside_wall"] for w in in_run), 3),
                "in_run_cpu_ratio": round(statistics.median(w["cpu"] / w["inside_cpu"] for w in in_run), 3),
                "photos": n,
                "rounds": args.rounds,
                "direct_per_photo_ms": ms(direct_wall),
                "worker_per_photo_ms": ms(worker_wall),
                "ratio_worker_over_direct": round(worker_wall / direct_wall, 3),
                "direct_cpu_per_photo_ms": ms(direct_cpu),
                "worker_cpu_per_photo_ms": ms(worker_cpu),
                "cpu_ratio_worker_over_direct": round(worker_cpu / direct_cpu, 3),
                "direct": spread([t for b, a, *_ in rounds for t in b + a]),
                "worker": spread([t for r in rounds for t in r[3]["per_photo"]]),
            }
        one = processes(bench, 1, args.sessions, sizes["1024px"][: args.per_session], log_dir)
        two = processes(bench, 2, args.sessions, sizes["1024px"][: args.per_session], log_dir)
        result["processes"] = {
            "sessions": args.sessions,
            "photos_per_session": args.per_session,
            "photo_size": "1024px",
            "one_photos_per_s": round(one, 2),
            "two_photos_per_s": round(two, 2),
            "ratio_two_over_one": round(two / one, 3),
        }
    finally:
        bench.db.dispose()
    return result


def report(result: dict[str, Any]) -> None:
    print(
        f"{'per photo':<10}{'direct':>9}{'worker':>9}{'ratio':>7}{'cpu':>7}{'in-run':>8}{'cpu':>7}"
        f"{'direct p50/p99':>17}{'worker p50/p99':>17}"
    )
    for name in ("1024px", "12MP"):
        r = result[name]
        d, w = r["direct"], r["worker"]
        print(
            f"{name:<10}{r['direct_per_photo_ms']:>6.0f} ms{r['worker_per_photo_ms']:>6.0f} ms"
            f"{r['ratio_worker_over_direct']:>7.3f}{r['cpu_ratio_worker_over_direct']:>7.3f}"
            f"{r['in_run_ratio']:>8.3f}{r['in_run_cpu_ratio']:>7.3f}"
            f"{d['p50_ms']:>8.0f}/{d['p99_ms']:<5.0f} ms{w['p50_ms']:>8.0f}/{w['p99_ms']:<5.0f} ms"
        )
    p = result["processes"]
    print(
        f"worker processes, {p['sessions']} sessions x {p['photos_per_session']} photos of 1024 px: "
        f"1 process {p['one_photos_per_s']:.2f} photos/s, 2 processes {p['two_photos_per_s']:.2f} photos/s, "
        f"ratio {p['ratio_two_over_one']:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = server_arguments(__doc__)
    parser.add_argument(
        "--rounds", type=int, default=2, help="overhead rounds; the fastest counts (default 2)"
    )
    parser.add_argument(
        "--small", type=int, default=10, help="1024 px photos in the overhead run (default 10)"
    )
    parser.add_argument("--large", type=int, default=4, help="12 MP photos in the overhead run (default 4)")
    parser.add_argument("--sessions", type=int, default=8, help="sessions in each scaling run (default 8)")
    parser.add_argument("--per-session", type=int, default=3, help="photos per session there (default 3)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS.relative_to(ROOT)})"
    )
    args = parser.parse_args(argv)
    if args.per_session > args.small:
        parser.error("--per-session cannot exceed --small")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")

    started = time.perf_counter()
    with (
        throwaway_servers(args.amqp_url, args.pg_url) as (amqp_url, pg_url),
        tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp,
    ):
        settings = Settings(VAR_DIR=tmp, BROKER_URL=amqp_url, DATABASE_URL=pg_url)
        result = run(settings, args, Path(tmp))

    report(result)
    load = os.getloadavg()
    result = {
        "benchmark": "preprocess",
        **result,
        "context": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_1_5_15": [round(x, 2) for x in load],
            "seconds": round(time.perf_counter() - started, 1),
        },
    }
    write_results(args.out, result)
    print(f"took {result['context']['seconds']} s; load average {load[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
