"""The admin console's team page for an organization of 5,000 members: time to answer the page
(first page, a search, a status filter, the last page), against a raw query reading one page of
users in the same run.

    python bench/review_team.py                          # SQLite file in a temporary folder
    python bench/review_team.py --members 5000 --pg-url postgresql+psycopg://postgres@127.0.0.1:5432

Members get sessions in every state (a third completed with 12 headshots each); the page is asked
through the real Flask app (sign-in cookie, template, everything). The ratio (page / raw page of
users) is the figure to compare between runs; absolute numbers are context. Writes
bench/results/review_team.json.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.support.results import write_results  # noqa: E402
from libs.contracts import SessionState  # noqa: E402
from libs.db import Database, Headshot, HeadshotSession, User, utcnow  # noqa: E402
from libs.db.demo import seed_demo  # noqa: E402
from libs.db.migrate import upgrade  # noqa: E402
from libs.settings import Settings  # noqa: E402
from services.review.app import create_app  # noqa: E402

STATES = [s for s in SessionState if s != SessionState.DELETED]


def populate(db: Database, org_id: str, members: int) -> None:
    now = utcnow()
    users, sessions, shots = [], [], []
    for i in range(members):
        uid = str(uuid.uuid4())
        users.append(
            {
                "id": uid,
                "org_id": org_id,
                "email": f"person{i:05}@bench.example",
                "display_name": f"Person {i}",
                "role": "employee",
                "active": i % 97 != 0,
                "created_at": now,
            }
        )
        if i % 5 == 0:
            continue  # invited, no session yet
        state = SessionState.COMPLETED if i % 3 == 0 else STATES[i % len(STATES)]
        sid = str(uuid.uuid4())
        sessions.append(
            {
                "id": sid,
                "org_id": org_id,
                "user_id": uid,
                "state": str(state),
                "package_id": "executive",
                "progress_done": 0,
                "progress_total": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
        if state == SessionState.COMPLETED:
            shots += [
                {
                    "id": str(uuid.uuid4()),
                    "org_id": org_id,
                    "session_id": sid,
                    "style_id": "navy:suit",
                    "index_in_style": k,
                    "position": k,
                    "blob_key": f"b/{sid}/{k}",
                    "width": 8,
                    "height": 8,
                    "seed": k,
                    "created_at": now,
                }
                for k in range(12)
            ]
    with db.engine.begin() as conn:
        conn.execute(sa.insert(User), users)
        conn.execute(sa.insert(HeadshotSession), sessions)
        conn.execute(sa.insert(Headshot), shots)


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    fn()  # warm caches (templates, statement cache)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(samples), 2), "max_ms": round(max(samples), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--pg-url", default="", help="a PostgreSQL server URL (a throwaway database is made)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-team-"))
    admin_engine = None
    if args.pg_url:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        admin_engine = sa.create_engine(f"{args.pg_url}/postgres", isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = f"{args.pg_url}/{name}"
    else:
        url = f"sqlite:///{tmp / 'bench.db'}"
    try:
        upgrade(url)
        db = Database(url)
        demo = seed_demo(db)
        populate(db, demo.org_id, args.members)
        settings = Settings(VAR_DIR=str(tmp / "var"), DATABASE_URL=url, SECRET_KEY="bench")
        client = create_app(settings, db=db, checks={}).test_client()
        with client.session_transaction() as cookie:
            cookie["user_id"] = demo.admin.id

        def page(path: str) -> Callable[[], None]:
            def get() -> None:
                response = client.get(path)
                assert response.status_code == 200, response.status_code

            return get

        def raw_users() -> None:
            with db.engine.connect() as conn:
                conn.execute(
                    sa.select(User).where(User.org_id == demo.org_id).order_by(User.email).limit(50)
                ).all()

        results = {
            "raw_page_of_users": timed(raw_users, args.repeat),
            "team_first_page": timed(page("/team"), args.repeat),
            "team_search": timed(page("/team?q=person0421"), args.repeat),
            "team_filter_completed": timed(page("/team?status=completed"), args.repeat),
            "team_last_page": timed(page("/team?page=101"), args.repeat),
        }
        base = results["raw_page_of_users"]["median_ms"]
        ratios = {k: round(v["median_ms"] / base, 1) for k, v in results.items() if k != "raw_page_of_users"}
        report = {
            "members": args.members,
            "database": db.dialect,
            "repeat": args.repeat,
            "results": results,
            "ratio_to_raw": ratios,
            "python": platform.python_version(),
        }
        db.dispose()
    finally:
        if admin_engine is not None:
            with admin_engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin_engine.dispose()
    for key, value in results.items():
        print(f"{key:<24} median {value['median_ms']:>8.1f} ms   max {value['max_ms']:>8.1f} ms")
    print(f"ratios to a raw page of users: {ratios}")
    out = ROOT / "bench" / "results" / "review_team.json"
    write_results(out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
