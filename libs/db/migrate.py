"""Apply the Alembic migrations: ``python -m libs.db.migrate [--url URL] [--revision head]``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from libs.settings import Settings

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (creating the SQLite folder if needed)."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def upgrade_if_embedded(url: str) -> None:
    """Migrate a SQLite database (the embedded mode's, ours to create) to head; a server database
    (PostgreSQL) is left to its deploy step (``python -m libs.db.migrate``)."""
    if url.startswith("sqlite"):
        upgrade(url)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m libs.db.migrate", description=__doc__)
    parser.add_argument("--url", help="database URL (default: DATABASE_URL, or the embedded SQLite file)")
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    url = args.url or Settings.from_env().database_url
    upgrade(url, args.revision)
    print(f"database at revision {args.revision}")


if __name__ == "__main__":
    main()
