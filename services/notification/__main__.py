"""``python -m services.notification``: run the notification service alone, or look after webhooks.

    python -m services.notification                       # = serve: e-mails, webhooks, the /mail page
    python -m services.notification serve --no-web        # the worker only (distributed mode)
    python -m services.notification webhooks --org ORG_ID # an organization's recent deliveries
    python -m services.notification resend --org ORG_ID 42
    python -m services.notification preview ready > ready.html   # an e-mail with sample values

Settings come from the environment (``python -m libs.settings`` lists them).
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import select

from libs.db import Database, WebhookDelivery, utcnow
from libs.db.webhooks import VIA_CLI, DeliveryNotFound, attempts_of, resend
from libs.settings import Settings
from services.notification.emails import SUBJECTS, render
from services.notification.samples import sample
from services.relaying import add_relay_options, relay_flags


def build_parser() -> argparse.ArgumentParser:
    """The command line ``main`` parses (its ``--help`` is checked against it by the tests)."""
    parser = argparse.ArgumentParser(
        prog="python -m services.notification",
        description="The notification service: e-mails along each person's journey and signed webhooks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{serve,webhooks,resend,preview}")
    serve = sub.add_parser(
        "serve", help="run the worker, the webhook dispatcher and the /mail page (default)"
    )
    serve.add_argument("--no-web", action="store_true", help="do not serve the /mail page")
    add_relay_options(serve)
    hooks = sub.add_parser("webhooks", help="list an organization's recent webhook deliveries and attempts")
    hooks.add_argument("--org", required=True, metavar="ORG_ID", help="the organization's id")
    again = sub.add_parser(
        "resend",
        help="send a webhook delivery again (its retry schedule starts over; audited as the system)",
    )
    again.add_argument("--org", required=True, metavar="ORG_ID", help="the organization's id")
    again.add_argument("delivery_id", type=int, help="the delivery's number, as `webhooks` lists it")
    preview = sub.add_parser("preview", help="print one e-mail rendered with sample values (HTML or text)")
    preview.add_argument("template", choices=sorted(SUBJECTS), help="the e-mail to render")
    preview.add_argument("--text", action="store_true", help="the plain-text part instead of the HTML")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # serve is the default command, with its own defaults
        args = parser.parse_args(["serve"])

    settings = Settings.from_env()
    if args.command == "preview":
        text, html = render(sample(settings, args.template))
        print(text if args.text else html, end="")
        return 0
    if args.command == "webhooks":
        return _list(settings, args.org)
    if args.command == "resend":
        return _resend(settings, args.org, args.delivery_id)
    from services.__main__ import main as services_main

    web = ["--no-web"] if args.no_web else []
    return services_main(["run", "--only", "notification", *web, *relay_flags(args)])


def _list(settings: Settings, org_id: str) -> int:
    db = Database(settings.database_url)
    try:
        with db.uow(org_id=org_id) as uow:
            rows = uow.session.scalars(
                select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(50)
            ).all()
            lines = [
                f"{d.id:>6} {d.event:<20} {d.status:<10} attempts={d.attempts} next={d.next_attempt_at}"
                for d in rows
            ]
            ids = [d.id for d in rows]
        for line, delivery_id in zip(lines, ids, strict=True):
            print(line)
            for a in attempts_of(db, org_id, delivery_id):
                print(
                    f"       #{a['attempt'] or '?'} {a['attempted_at']} {a['status_code']} {a['latency_ms']} ms "
                    f"{a['error'] or ''}"
                )
        if not lines:
            print("no webhook deliveries for this organization")
    finally:
        db.dispose()
    return 0


def _resend(settings: Settings, org_id: str, delivery_id: int) -> int:
    # Audited as the console's resend is, with no person as the actor (the system) and the CLI
    # named in the entry, so the resend shows on ops' timeline and audit page.
    db = Database(settings.database_url)
    try:
        with db.uow(org_id=org_id) as uow:
            delivery = resend(uow, delivery_id, utcnow(), actor_id=None, via=VIA_CLI)
            line = f"delivery {delivery.id} ({delivery.event}) will be sent again now"
            uow.commit()
    except DeliveryNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
