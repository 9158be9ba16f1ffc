"""A throwaway RabbitMQ vhost and a migrated PostgreSQL database for one benchmark run, removed after.

parser = server_arguments(__doc__)              # --amqp-url, --pg-url: the servers themselves
args = parser.parse_args(argv)
with throwaway_servers(args.amqp_url, args.pg_url) as (amqp_url, pg_url):
    ...                     # amqp_url names a fresh vhost, pg_url a fresh database at head
"""

from __future__ import annotations

import argparse
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from libs.db.migrate import upgrade

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432"


def server_arguments(description: str | None) -> argparse.ArgumentParser:
    """A benchmark's argument parser with the servers it runs on: ``--amqp-url`` (a broker,
    without vhost) and ``--pg-url`` (a PostgreSQL server, without database), this machine's own
    by default; :func:`throwaway_servers` makes the vhost and the database."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--amqp-url", default=AMQP_URL, help="broker, without vhost")
    parser.add_argument("--pg-url", default=PG_URL, help="server, without db")
    return parser


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def throwaway_servers(amqp_base: str, pg_base: str) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:10]
    vhost, dbname = f"bench-{suffix}", f"bench_{suffix}"
    base = amqp_base.rstrip("/")
    user = base.split("//", 1)[1].split(":", 1)[0] if "@" in base else "guest"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    admin = sa.create_engine(f"{pg_base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{dbname}"'))
    try:
        pg_url = f"{pg_base}/{dbname}"
        upgrade(pg_url)
        yield f"{base}/{vhost}", pg_url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        admin.dispose()
        rabbitmqctl("delete_vhost", vhost)
