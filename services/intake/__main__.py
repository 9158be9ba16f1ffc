"""``python -m services.intake``: run intake alone, or print an employee's sign-in link.

    python -m services.intake serve --port 8001
    python -m services.intake invite --org demo --email new.person@acme.example --name "New Person"

Settings come from the environment (``python -m libs.settings`` lists them).
"""

from __future__ import annotations

import argparse
import sys

from libs.settings import Settings  # standard library only: quick to import
from services.relaying import add_relay_options, relay_choice
from services.stopping import catch_stop_signals


def build_parser() -> argparse.ArgumentParser:
    """The command line ``main`` parses (its ``--help`` is checked against it by the tests)."""
    parser = argparse.ArgumentParser(
        prog="python -m services.intake",
        description="The intake service: employees' pages and JSON API from invite link to submitted photos.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{serve,invite}")
    serve = sub.add_parser("serve", help="run intake alone (web, its event handlers, and the outbox relay)")
    serve.add_argument("--host", help="address to listen on (default: HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT)")
    serve.add_argument("--no-workers", action="store_true", help="do not consume session.rejected/completed")
    add_relay_options(serve)
    invite = sub.add_parser("invite", help="print a sign-in link for an employee (created if missing)")
    invite.add_argument("--org", required=True, metavar="ORG_SLUG", help="the organization's slug, e.g. demo")
    invite.add_argument("--email", required=True, help="the employee's e-mail address")
    invite.add_argument("--name", default="", help="display name, for a new employee")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        # Before anything heavy is imported or started: Ctrl-C / SIGTERM only ask to stop.
        catch_stop_signals()
    settings = Settings.from_env()
    if args.command == "invite":
        return _invite(settings, args.org, args.email.strip().lower(), args.name.strip())
    overrides = {k: v for k, v in (("HOST", args.host), ("PORT", args.port)) if v is not None}
    return _serve(settings.replace(**overrides), workers=not args.no_workers, **relay_choice(args))


def _invite(settings: Settings, slug: str, email: str, name: str) -> int:
    from sqlalchemy import select

    from libs.db import Database, Organization, Role, User
    from libs.db.migrate import upgrade_if_embedded
    from libs.web import invite_url

    upgrade_if_embedded(settings.database_url)
    if "@" not in email:
        print(f"error: {email!r} is not an e-mail address", file=sys.stderr)
        return 2
    db = Database(settings.database_url)
    try:
        with db.uow(all_orgs=True) as uow:
            org = uow.session.scalar(select(Organization).where(Organization.slug == slug))
            if org is None:
                print(
                    f"error: no organization with the slug {slug!r} (demo data: python -m services seed)",
                    file=sys.stderr,
                )
                return 2
            user = uow.session.scalar(select(User).where(User.org_id == org.id, User.email == email))
            if user is None:
                user = User(
                    org_id=org.id,
                    email=email,
                    display_name=name or email.split("@")[0],
                    role=Role.EMPLOYEE.value,
                )
                uow.session.add(user)
                uow.commit()
                print(f"created employee {email} in {org.name}", file=sys.stderr)
            elif not user.active:
                print(f"error: {email} is deactivated in {org.name}", file=sys.stderr)
                return 2
            print(invite_url(settings, user))
            print(f"(valid for {settings.INVITE_TTL_SECONDS // 60} minutes)", file=sys.stderr)
    finally:
        db.dispose()
    return 0


def _serve(settings: Settings, *, workers: bool, **relaying: bool) -> int:
    """``relaying``: relay_choice()'s keywords for launcher.start."""
    from libs.web import configure_logging

    configure_logging(settings)
    from services import launcher  # after logging is configured; it imports the messaging stack

    stop = catch_stop_signals()  # the same event main() installed
    running = launcher.start(settings, stop=stop, only={"intake"}, web=True, workers=workers, **relaying)
    if not stop.is_set():
        print(f"intake at {running.platform.settings.public_url}/  (Ctrl-C to stop)", flush=True)
    launcher.run_until_stopped(running)
    return 0


if __name__ == "__main__":
    sys.exit(main())
