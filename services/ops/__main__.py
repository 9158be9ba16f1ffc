"""``python -m services.ops``: run the ops dashboard and worker alone, or print a support sign-in link.

    python -m services.ops serve --port 8003
    python -m services.ops invite --email sam@headshots.example --name "Sam Support"
    python -m services.ops check         # one round of the ops worker now (queues, stuck sessions)
    python -m services.ops retention --dry-run   # what retention would delete now (--run: delete it)

Settings come from the environment (``python -m libs.settings`` lists them).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from sqlalchemy import select

from libs.db import Database, Role, User
from libs.db.migrate import upgrade_if_embedded
from libs.settings import Settings
from libs.web import configure_logging, invite_url
from services import WEB_MOUNTS
from services.relaying import add_relay_options, relay_choice
from services.stopping import catch_stop_signals


def build_parser() -> argparse.ArgumentParser:
    """The command line ``main`` parses (its ``--help`` is checked against it by the tests)."""
    parser = argparse.ArgumentParser(
        prog="python -m services.ops",
        description="The ops dashboard: sessions across organizations, stuck work, queues, dead letters, workers.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{serve,invite,check,retention}")
    serve = sub.add_parser(
        "serve", help="run ops alone (web, its worker and periodic checks, the outbox relay)"
    )
    serve.add_argument("--host", help="address to listen on (default: HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT)")
    serve.add_argument("--no-workers", action="store_true", help="web only: no consumer, no periodic checks")
    add_relay_options(serve)
    invite = sub.add_parser("invite", help="print a sign-in link for a support person (created if missing)")
    invite.add_argument("--email", required=True, help="the support person's e-mail address")
    invite.add_argument("--name", default="", help="display name, for a new support person")
    sub.add_parser("check", help="run one round of queue sampling and the stuck check, then exit")
    retention = sub.add_parser(
        "retention", help="list (--dry-run) or delete (--run) the uploads and person models past retention"
    )
    mode = retention.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="only list what would go")
    mode.add_argument("--run", action="store_true", help="delete it now (even if a round ran this period)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    settings = Settings.from_env()
    if args.command == "invite":
        return _invite(settings, args.email.strip().lower(), args.name.strip())
    if args.command == "check":
        return _check(settings)
    if args.command == "retention":
        return _retention(settings, dry_run=args.dry_run)
    overrides = {k: v for k, v in (("HOST", args.host), ("PORT", args.port)) if v is not None}
    return _serve(settings.replace(**overrides), workers=not args.no_workers, **relay_choice(args))


def _invite(settings: Settings, email: str, name: str) -> int:
    if "@" not in email:
        print(f"error: {email!r} is not an e-mail address", file=sys.stderr)
        return 2
    upgrade_if_embedded(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.uow(all_orgs=True) as uow:
            user = uow.session.scalar(select(User).where(User.org_id.is_(None), User.email == email))
            if user is None:
                if uow.session.scalar(select(User).where(User.email == email)) is not None:
                    print(
                        f"error: {email} belongs to an organization; support staff need their own address",
                        file=sys.stderr,
                    )
                    return 2
                user = User(
                    org_id=None,
                    email=email,
                    display_name=name or email.split("@")[0],
                    role=Role.SUPPORT.value,
                )
                uow.session.add(user)
                uow.commit()
                print(f"created support user {email}", file=sys.stderr)
            elif user.role != Role.SUPPORT.value or not user.active:
                print(f"error: {email} is not an active support user", file=sys.stderr)
                return 2
            print(invite_url(settings, user, f"{WEB_MOUNTS['ops']}/invite/"))
            print(f"(valid for {settings.INVITE_TTL_SECONDS // 60} minutes)", file=sys.stderr)
    finally:
        db.dispose()
    return 0


def _check(settings: Settings) -> int:
    configure_logging(settings)
    from services.ops.handlers import ops_round

    upgrade_if_embedded(settings.database_url)
    db = Database(settings.database_url)
    try:
        report = ops_round(settings, db, datetime.now(UTC))
        print(f"stuck check: {len(report.requeued)} re-queued, {len(report.flagged)} flagged")
        for session_id in report.requeued:
            print(f"  re-queued {session_id}")
        for session_id in report.flagged:
            print(
                f"  flagged   {session_id} (see {settings.public_url}{WEB_MOUNTS['ops']}/sessions/{session_id})"
            )
    finally:
        db.dispose()
    return 0


def _retention(settings: Settings, *, dry_run: bool) -> int:
    from libs.privacy import due_for_retention, run_retention
    from libs.storage import make_blob_store

    upgrade_if_embedded(settings.database_url)
    db = Database(settings.database_url)
    now = datetime.now(UTC)
    try:
        if dry_run:
            due = due_for_retention(db, now)
            for item in due:
                print(
                    f"{item.session_id}  org {item.org_id}  {item.state} {item.ended_at:%Y-%m-%d}  "
                    f"{item.photos} photos, {item.person_models} person models"
                )
            print(
                f"{len(due)} sessions would lose their uploads and person models (dry run: nothing deleted)"
            )
        else:
            report = run_retention(settings, db, make_blob_store(settings), now, claim=False)
            print(
                f"{len(report.sessions)} sessions' uploads and person models deleted ({report.files} files)"
            )
    finally:
        db.dispose()
    return 0


def _serve(settings: Settings, *, workers: bool, **relaying: bool) -> int:
    """``relaying``: relay_choice()'s keywords for launcher.start."""
    configure_logging(settings)
    from services import launcher  # after logging is configured; it imports the messaging stack
    from services.ops.api import PREFIX as API_PREFIX

    stop = catch_stop_signals()
    running = launcher.start(settings, stop=stop, only={"ops"}, web=True, workers=workers, **relaying)
    base = f"{running.platform.settings.public_url}{WEB_MOUNTS['ops']}"
    print(f"ops at {base}/  (Ctrl-C to stop)", flush=True)
    print(f"  JSON API {base}{API_PREFIX}/  (OpenAPI document: {base}{API_PREFIX}/openapi.json)", flush=True)
    launcher.run_until_stopped(running)
    return 0


if __name__ == "__main__":
    sys.exit(main())
