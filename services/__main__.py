"""``python -m services``: start the product. See ``--help`` and services/launcher.py."""

from __future__ import annotations

import argparse
import sys

from services.relaying import add_relay_options, relay_choice
from services.stopping import catch_stop_signals


def build_parser() -> argparse.ArgumentParser:
    """The command line ``main`` parses (its ``--help`` is checked against it by the tests)."""
    parser = argparse.ArgumentParser(
        prog="python -m services",
        description="Start the headshot product. With no command: every service in one process (embedded mode), "
        "with demo data. Settings come from the environment (python -m libs.settings lists them).",
    )
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser(
        "run", help="run every service, or only some (--only), with the environment's settings"
    )
    run.add_argument("--only", help="comma-separated service names, e.g. intake,review")
    run.add_argument("--no-web", action="store_true", help="do not serve HTTP (workers only)")
    run.add_argument("--no-workers", action="store_true", help="do not consume events (web only)")
    add_relay_options(run)
    run.add_argument(
        "--seed", action="store_true", help="create the demo organizations and print sign-in links"
    )
    sub.add_parser("relay", help="run only the outbox relay (distributed mode)")
    sub.add_parser("seed", help="create the demo data and print sign-in links, then exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    # First, before anything heavy is imported or started: Ctrl-C / SIGTERM only ask to stop.
    stop = catch_stop_signals()
    args = build_parser().parse_args(argv)

    from libs.settings import Settings
    from libs.web import configure_logging

    settings = Settings.from_env()
    configure_logging(settings)
    from services import launcher  # imported after logging is set up

    if args.command == "seed":
        from libs.db import Database
        from libs.db.demo import seed_demo
        from libs.db.migrate import upgrade_if_embedded

        upgrade_if_embedded(settings.database_url)
        launcher.print_demo(settings, seed_demo(Database(settings.database_url)))
        return 0
    if args.command == "relay":
        running = launcher.start(settings, web=False, workers=False, relay=True, stop=stop)
    elif args.command == "run":
        only = set(args.only.split(",")) if args.only else None
        running = launcher.start(
            settings,
            only=only,
            web=not args.no_web,
            workers=not args.no_workers,
            seed=args.seed,
            **relay_choice(args),
            stop=stop,
        )
    else:
        running = launcher.start(settings, seed=True, stop=stop)

    if not stop.is_set():
        for name, url in running.urls.items():
            print(f"  {name:<12} {url}")
        if running.server is not None:
            print(f"  {'health':<12} {running.platform.settings.public_url}/healthz")
        print("Press Ctrl-C to stop.", flush=True)

    launcher.run_until_stopped(running)
    return 0


if __name__ == "__main__":
    sys.exit(main())
