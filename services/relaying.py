"""Where a command's outbox rows get published: the ``--no-relay`` / ``--own-relay`` choice that
every command running a service offers, written once.

    add_relay_options(parser)                       # the two flags, mutually exclusive
    launcher.start(settings, ..., **relay_choice(args))
    services_main(["run", "--only", "preprocess", *relay_flags(args)])   # handing the choice on

- neither flag: a full relay runs in the process (it publishes every unsent row: alone, or in
  the embedded mode);
- ``--own-relay``: it publishes only the rows this process writes, as soon as they are committed;
  the relay process (``python -m services relay``) publishes the rest (how the distributed
  layouts run every service that writes events; PostgreSQL, ignored on SQLite);
- ``--no-relay``: nothing is published from here (another process relays the outbox).

Standard library only: the commands' ``--help`` stays quick.
"""

from __future__ import annotations

import argparse


def add_relay_options(parser: argparse.ArgumentParser, *, writer: str = "this process") -> None:
    """``--no-relay`` and ``--own-relay`` on ``parser``; ``writer`` names who writes the rows."""
    relaying = parser.add_mutually_exclusive_group()
    relaying.add_argument("--no-relay", action="store_true", help="do not publish the outbox here")
    relaying.add_argument(
        "--own-relay",
        action="store_true",
        help=f"publish only the outbox rows {writer} writes, as soon as they are committed; "
        "the relay process (python -m services relay) publishes the rest (PostgreSQL)",
    )


def relay_choice(args: argparse.Namespace) -> dict[str, bool]:
    """The keyword arguments of ``launcher.start`` the parsed flags ask for."""
    return {"relay": not args.no_relay, "own_rows_only": args.own_relay}


def relay_flags(args: argparse.Namespace) -> list[str]:
    """The parsed choice as ``python -m services run`` flags, to hand it on."""
    return ["--no-relay"] if args.no_relay else ["--own-relay"] if args.own_relay else []
