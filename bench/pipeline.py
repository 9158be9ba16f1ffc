"""One session end to end through every service as its own process, against the same stage work
called directly in one loop; and sessions per hour with 1 and 2 generation workers.

    python bench/pipeline.py                        # local RabbitMQ + PostgreSQL, studio engine
    python bench/pipeline.py --runs 3 --sessions 6 --render-size 384x256

- cluster: ``services.cluster`` (a relay, the generation workers, two gateways, one process of each
  other service) on a throwaway vhost and database; an employee submits through the intake API and
  the time runs until the session is ``completed`` (polled every 20 ms);
- direct:  the same submission (intake's app, in this process, over HTTP), then every handler the
  session's events reach, called one after the other in this process (each in its unit of work,
  as the consumer runs it) until the outbox is empty: no broker, no relay, no other process.

The ratio cluster / direct is the overhead of running distributed (goal: at most 1.10). Per stage:
each handler's time in the direct loop. Per hop, from the cluster's own records: outbox row
written -> published by the relay (``sent_at``), and published -> handled (the consumer's
processed-message row) minus that handler's direct time = broker and consumer overhead. Sessions
per hour: ``--sessions`` submitted at once, first submit to last completed, with 1 and then 2
generation workers. The first session of each path warms up (imports, models) and is not counted.
Writes bench/results/pipeline.json. Figures from a shared, busy machine are context; compare ratios.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sqlalchemy import select, update  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from bench.support.results import write_results  # noqa: E402
from bench.support.servers import throwaway_servers  # noqa: E402
from libs.contracts import SUBSCRIPTIONS, decode_message, queue_name  # noqa: E402
from libs.db import Database, HeadshotSession, Organization, OutboxMessage, ProcessedMessage, User  # noqa: E402
from libs.settings import Settings  # noqa: E402
from libs.storage import make_blob_store  # noqa: E402
from libs.web import invite_url  # noqa: E402
from services.cluster import Cluster, layout  # noqa: E402
from services.launcher import web_services, worker_services  # noqa: E402
from tests.support.cluster import PACKAGE, Person  # noqa: E402
from tests.support.notification import run_handler  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "pipeline.json"


def bench_settings(amqp_url: str, pg_url: str, var: Path, render_size: str) -> dict[str, str]:
    return {
        "BROKER_URL": amqp_url,
        "DATABASE_URL": pg_url,
        "VAR_DIR": str(var),
        "SECRET_KEY": "bench-pipeline",
        "RENDER_SIZE": render_size,
        "LOG_LEVEL": "WARNING",
    }


def new_person(db: Database, settings: Settings, base: str, org_id: str) -> Person:
    """An employee of the org, signed in through their invite link."""
    with db.uow(all_orgs=True) as uow:
        user = User(org_id=org_id, email=f"p{uuid.uuid4().hex[:8]}@bench.example", display_name="Bench")
        uow.session.add(user)
        uow.commit()
        link, email = invite_url(settings.replace(PUBLIC_URL=base), user), user.email
    person = Person(email, base)
    person.sign_in(link)
    return person


def new_org(db: Database) -> str:
    with db.uow(all_orgs=True) as uow:
        org = Organization(name="Bench", slug=f"bench-{uuid.uuid4().hex[:6]}", package_id=PACKAGE)
        uow.session.add(org)
        uow.commit()
        return org.id


def wait_completed(db: Database, sids: list[str], timeout: float = 900) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session(all_orgs=True) as s:
            states = s.scalars(select(HeadshotSession.state).where(HeadshotSession.id.in_(sids))).all()
        if "failed" in states:
            raise SystemExit(f"a session failed: {states}")
        if len(states) == len(sids) and all(st == "completed" for st in states):
            return time.perf_counter()
        time.sleep(0.02)
    raise SystemExit(f"sessions not completed within {timeout:g} s")


# --- the cluster -------------------------------------------------------------------------------------
def cluster_hops(db: Database, sid: str, direct_stage: dict[str, float]) -> dict[str, list[float]]:
    """Relay hop (written -> published) and consumer hop (published -> handled, minus the handler's
    direct time) for every event of one session, by event / consumer queue."""
    hops: dict[str, list[float]] = defaultdict(list)
    with db.session(all_orgs=True) as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.session_id == sid)).all()
        for row in rows:
            if row.sent_at is None:
                continue
            hops[f"relay {row.routing_key}"].append((row.sent_at - row.created_at).total_seconds())
            done = s.scalars(
                select(ProcessedMessage).where(ProcessedMessage.message_id == row.message_id)
            ).all()
            for p in done:
                spent = (p.processed_at - row.sent_at).total_seconds()
                hops[f"broker+consumer {p.consumer}"].append(
                    max(0.0, spent - direct_stage.get(p.consumer, 0.0))
                )
    return hops


def run_cluster(env: dict[str, str], db: Database, settings: Settings, *, workers: int, runs: int,
                sessions: int, direct_stage: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    cluster = Cluster(env, parts=layout(generation_workers=workers), port=0,
                      log_dir=Path(env["VAR_DIR"]) / f"cluster-{workers}")  # fmt: skip
    try:
        cluster.start()
        base = cluster.url("intake").rstrip("/")
        org_id = new_org(db)
        times: list[float] = []
        hops: defaultdict[str, list[float]] = defaultdict(list)
        for i in range(runs + 1):  # the first one warms up
            person = new_person(db, settings, base, org_id)
            t0 = time.perf_counter()
            sid = person.submit("Bench Person")
            elapsed = wait_completed(db, [sid]) - t0
            if i:
                times.append(elapsed)
                for k, v in cluster_hops(db, sid, direct_stage).items():
                    hops[k] += v
        people = [new_person(db, settings, base, org_id) for _ in range(sessions)]
        t0 = time.perf_counter()
        sids = [p.submit("Bench Person") for p in people]
        per_hour = sessions / (wait_completed(db, sids) - t0) * 3600
    finally:
        cluster.stop()
    return {"session_s": times, "hops": {k: statistics.median(v) for k, v in sorted(hops.items())},
            "sessions_per_hour": per_hour}  # fmt: skip


# --- the same stage work, called directly ------------------------------------------------------------
@contextmanager
def intake_server(settings: Settings, db: Database) -> Iterator[str]:
    app = web_services({"intake"})["intake"](settings, db=db, blobs=make_blob_store(settings), checks={})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def run_direct(settings: Settings, db: Database, runs: int) -> dict[str, Any]:
    """Submit through intake's API, then call every subscribed handler of each outbox event in turn."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request
    blobs = make_blob_store(settings)
    modules = worker_services()
    deps = {
        name: (m.build_deps(settings, db, blobs) if hasattr(m, "build_deps") else {})
        for name, m in modules.items()
    }
    times: list[float] = []
    stages: dict[str, list[float]] = defaultdict(list)
    with intake_server(settings, db) as base:
        org_id = new_org(db)
        for i in range(runs + 1):
            person = new_person(db, settings, base, org_id)
            t0 = time.perf_counter()
            sid = person.submit("Bench Person")
            spent: dict[str, float] = defaultdict(float)
            while (row := _next_unsent(db)) is not None:
                message = decode_message(row)
                for service, events in SUBSCRIPTIONS.items():
                    if message.event in events and service in modules:
                        t = time.perf_counter()
                        run_handler(modules[service].HANDLERS, message, db, deps[service])
                        spent[queue_name(service, message.event)] += time.perf_counter() - t
            assert wait_completed(db, [sid], timeout=1)
            if i:
                times.append(time.perf_counter() - t0)
                for k, v in spent.items():
                    stages[k].append(v)
    return {"session_s": times, "stages": {k: statistics.median(v) for k, v in sorted(stages.items())}}


def _next_unsent(db: Database) -> str | None:
    with db.session(all_orgs=True) as s:
        row = s.scalars(
            select(OutboxMessage).where(OutboxMessage.sent_at.is_(None)).order_by(OutboxMessage.id)
        ).first()
        if row is None:
            return None
        s.execute(update(OutboxMessage).where(OutboxMessage.id == row.id).values(sent_at=row.created_at))
        s.commit()
        return row.body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/pipeline.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="measured sessions per path (default 3)")
    parser.add_argument(
        "--sessions", type=int, default=6, help="sessions at once for sessions/hour (default 6)"
    )
    parser.add_argument(
        "--render-size", default="384x256", help="RENDER_SIZE of every headshot (default 384x256)"
    )
    parser.add_argument(
        "--amqp-url", default=os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
    )
    parser.add_argument(
        "--pg-url", default=os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="JSON results (default bench/results/pipeline.json)"
    )
    args = parser.parse_args(argv)

    var = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    with throwaway_servers(args.amqp_url, args.pg_url) as (_, direct_pg):
        settings = Settings(**bench_settings("memory://bench/", direct_pg, var / "direct", args.render_size))  # type: ignore[arg-type]
        db = Database(direct_pg)
        try:
            direct = run_direct(settings, db, args.runs)
        finally:
            db.dispose()
    clusters = {}
    for workers in (1, 2):
        with throwaway_servers(args.amqp_url, args.pg_url) as (amqp_url, pg_url):
            env = bench_settings(amqp_url, pg_url, var / f"cluster-{workers}", args.render_size)
            db = Database(pg_url)
            try:
                clusters[workers] = run_cluster(env, db, Settings(**env), workers=workers, runs=args.runs,  # type: ignore[arg-type]
                                                sessions=args.sessions, direct_stage=direct["stages"])  # fmt: skip
            finally:
                db.dispose()

    d, c = statistics.median(direct["session_s"]), statistics.median(clusters[1]["session_s"])
    print(f"one session end to end (median of {args.runs}, {PACKAGE}, {args.render_size}, studio engine)")
    print(f"  direct, one loop   {d:7.2f} s")
    print(f"  cluster, 1 worker  {c:7.2f} s   overhead {c / d:.2f}x (goal <= 1.10x)")
    print("time per stage (direct loop, median):")
    for k, v in direct["stages"].items():
        print(f"  {k:<42} {v * 1000:8.1f} ms")
    print(
        "time per hop (cluster, median): relay = written -> published; broker+consumer = published -> handled - handler"
    )
    for k, v in clusters[1]["hops"].items():
        print(f"  {k:<58} {v * 1000:8.1f} ms")
    for workers, r in clusters.items():
        print(
            f"sessions per hour, {workers} generation worker(s), {args.sessions} at once: {r['sessions_per_hour']:8.0f}"
        )
    result = {
        "machine": platform.platform(), "cpus": os.cpu_count(), "runs": args.runs, "render_size": args.render_size,
        "direct": direct, "cluster": clusters, "overhead_ratio": c / d,
    }  # fmt: skip
    write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
