"""``python -m services.review``: run the admin console and policy worker alone, or print an org
admin's sign-in link for the console.

    python -m services.review serve --port 8002
    python -m services.review admin-link --org demo --email admin@acme.example

Settings come from the environment (``python -m libs.settings`` lists them).
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import select

from libs.db import Database, Organization, Role, User
from libs.db.migrate import upgrade_if_embedded
from libs.settings import Settings
from libs.web import configure_logging
from services.relaying import add_relay_options, relay_choice
from services.stopping import catch_stop_signals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.review",
        description="The review service: the org admin console and org API (/review), and the policy "
        "worker deciding what happens to every submitted session.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{serve,admin-link}")
    serve = sub.add_parser("serve", help="run review alone (console, policy worker, outbox relay)")
    serve.add_argument("--host", help="address to listen on (default: HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT)")
    serve.add_argument("--no-workers", action="store_true", help="do not consume session.submitted")
    add_relay_options(serve)
    link = sub.add_parser(
        "admin-link", help="print a console sign-in link for an org admin (made admin if needed)"
    )
    link.add_argument("--org", required=True, metavar="ORG_SLUG", help="the organization's slug, e.g. demo")
    link.add_argument("--email", required=True, help="the admin's e-mail address")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    if args.command == "admin-link":
        return _admin_link(settings, args.org, args.email.strip().lower())
    overrides = {k: v for k, v in (("HOST", args.host), ("PORT", args.port)) if v is not None}
    return _serve(settings.replace(**overrides), workers=not args.no_workers, **relay_choice(args))


def _admin_link(settings: Settings, slug: str, email: str) -> int:
    from services.review.views_sign_in import admin_invite_url

    upgrade_if_embedded(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.uow(all_orgs=True) as uow:
            org = uow.session.scalar(select(Organization).where(Organization.slug == slug))
            if org is None:
                print(f"error: no organization with the slug {slug!r}", file=sys.stderr)
                return 2
            user = uow.session.scalar(select(User).where(User.org_id == org.id, User.email == email))
            if user is None:
                user = User(org_id=org.id, email=email, display_name=email.split("@")[0])
                uow.session.add(user)
            if not user.active:
                print(f"error: {email} is deactivated in {org.name}", file=sys.stderr)
                return 2
            user.role = Role.ORG_ADMIN.value
            uow.commit()
            print(admin_invite_url(settings, user))
            print(f"(valid for {settings.INVITE_TTL_SECONDS // 60} minutes)", file=sys.stderr)
    finally:
        db.dispose()
    return 0


def _serve(settings: Settings, *, workers: bool, **relaying: bool) -> int:
    """``relaying``: relay_choice()'s keywords for launcher.start."""
    configure_logging(settings)
    from services import launcher

    stop = catch_stop_signals()
    running = launcher.start(settings, stop=stop, only={"review"}, web=True, workers=workers, **relaying)
    print(
        f"review at {running.urls.get('review', running.platform.settings.public_url)}  (Ctrl-C to stop)",
        flush=True,
    )
    launcher.run_until_stopped(running)
    return 0


if __name__ == "__main__":
    sys.exit(main())
