"""The served intake API under 50 concurrent clients: gunicorn (the distributed web tier) against
Werkzeug's development server (the embedded mode), in one run, on the same database.

    python bench/web.py                          # defaults: local PostgreSQL, 50 clients, 10 s each
    python bench/web.py --clients 50 --seconds 10 --pg-url postgresql+psycopg://postgres@127.0.0.1:5432

Both servers serve intake alone (no workers, no relay) from a throwaway PostgreSQL database with
the demo data. Every client signs in as the same demo employee and asks, in a loop,
``GET /api/v1/sessions/current`` (the session, its photos and options: a few database reads and a
JSON body). Each client keeps its connection open when the server allows it (gunicorn does;
Werkzeug's server closes after every response), as a browser or a proxy would.

gunicorn runs as deploy/gunicorn.conf.py says (WEB_WORKERS processes x WEB_THREADS threads);
Werkzeug as the launcher runs it (one process, a thread per request). The client threads run on
the same machine: on 2 cores they compete with the servers, so read the ratio between the two
servers, not the absolute figures. Writes bench/results/web.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench.support.results import write_results  # noqa: E402
from libs.db import Database  # noqa: E402
from libs.db.demo import seed_demo  # noqa: E402
from libs.db.migrate import upgrade  # noqa: E402
from libs.settings import Settings  # noqa: E402
from libs.web import invite_url  # noqa: E402
from tests.support.web_servers import free_port, gunicorn, server_env, stop, wait_for_http  # noqa: E402

PATH = "/api/v1/sessions/current"


def werkzeug(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services", "run", "--only", "intake", "--no-workers", "--no-relay"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def load(base: str, cookies: Any, clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    """``clients`` threads asking PATH back to back; latencies recorded after ``warmup``."""
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients

    def client(i: int) -> None:
        with requests.Session() as http:
            http.cookies.update(cookies)
            while True:
                began = time.monotonic()
                if began >= stop_at:
                    return
                try:
                    ok = http.get(base + PATH, timeout=30).status_code == 200
                except requests.RequestException:
                    ok = False
                ended = time.monotonic()
                if began >= measure_from:
                    latencies[i].append(ended - began)
                    errors[i] += not ok

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = sorted(x for per_client in latencies for x in per_client)
    if not every:
        raise SystemExit("no request finished in the measured window")
    return {
        "requests": len(every),
        "errors": sum(errors),
        "requests_per_second": round(len(every) / seconds, 1),
        "p50_ms": round(statistics.median(every) * 1000, 2),
        "p99_ms": round(every[min(len(every) - 1, int(len(every) * 0.99))] * 1000, 2),
        "max_ms": round(every[-1] * 1000, 2),
    }


def run_server(
    name: str, env: dict[str, str], port: int, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    log = tmp / f"{name}.log"
    process = gunicorn(env, log) if name == "gunicorn" else werkzeug(env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base + "/healthz", process)
        with (
            requests.Session() as http
        ):  # sign in once through the invite link; every client shares the cookie
            link = Path(tmp / "invite").read_text().replace("{base}", base)
            http.get(link, timeout=30).raise_for_status()
            assert http.get(base + PATH, timeout=30).status_code == 200, "sign-in failed"
            cookies = http.cookies.get_dict()
        figures = load(base, cookies, args.clients, args.seconds, args.warmup)
    finally:
        stop(process)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per server")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument(
        "--pg-url", default=os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
    )
    parser.add_argument("--workers", type=int, default=Settings().WEB_WORKERS, help="gunicorn WEB_WORKERS")
    parser.add_argument("--threads", type=int, default=Settings().WEB_THREADS, help="gunicorn WEB_THREADS")
    args = parser.parse_args()

    name = f"bench_web_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{args.pg_url}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{args.pg_url}/{name}"
    tmp = ROOT / "var" / name
    tmp.mkdir(parents=True)
    results: dict[str, Any] = {}
    try:
        upgrade(url)
        db = Database(url)
        demo = seed_demo(db)
        db.dispose()
        settings = Settings(SECRET_KEY="bench-secret", PUBLIC_URL="{base}")
        (tmp / "invite").write_text(invite_url(settings, demo.employees[0]))
        for server in ("gunicorn", "werkzeug"):
            port = free_port()
            env = server_env(
                DATABASE_URL=url,
                BROKER_URL="memory://",
                VAR_DIR=str(tmp / "var"),
                SECRET_KEY="bench-secret",
                HOST="127.0.0.1",
                PORT=str(port),
                LOG_LEVEL="WARNING",
                WEB_SERVICES="intake",
                WEB_WORKERS=str(args.workers),
                WEB_THREADS=str(args.threads),
            )
            results[server] = run_server(server, env, port, args, tmp)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(tmp, ignore_errors=True)

    report = {
        "bench": "web",
        "path": PATH,
        "clients": args.clients,
        "seconds": args.seconds,
        "gunicorn_workers": args.workers,
        "gunicorn_threads": args.threads,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **results,
    }
    out = ROOT / "bench" / "results" / "web.json"
    write_results(out, report)
    print(f"GET {PATH}, {args.clients} concurrent clients, {args.seconds:.0f} s measured per server")
    print(f"  {'server':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}")
    for server, r in results.items():
        print(
            f"  {server:<10} {r['requests_per_second']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8} {r['errors']:>7}"
        )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
