"""``python -m services.preprocess``: run the photo preparation worker alone.

    python -m services.preprocess                 # consume session.approved, relay the outbox
    python -m services.preprocess --own-relay     # publish only what it writes (the relay process the rest)
    python -m services.preprocess --no-relay      # when another process relays the outbox

Settings come from the environment (``python -m libs.settings`` lists them). Same as
``python -m services run --only preprocess --no-web``. Run one process per core for throughput:
dlib's models are not thread-safe, so a process prepares one photo at a time.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    """The command line ``main`` parses (its ``--help`` is checked against it by the tests)."""
    parser = argparse.ArgumentParser(
        prog="python -m services.preprocess",
        description="The photo preparation worker: consumes session.approved, prepares each photo "
        "(orientation, metadata, face alignment, crops, scores) and publishes photos.processed.",
    )
    relaying = parser.add_mutually_exclusive_group()
    relaying.add_argument(
        "--no-relay", action="store_true", help="do not publish the outbox from this process"
    )
    relaying.add_argument(
        "--own-relay",
        action="store_true",
        help="publish only the outbox rows this process writes; the relay process publishes the rest",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from services.__main__ import main as services_main  # after --help: the launcher imports a lot

    relaying = ["--no-relay"] if args.no_relay else ["--own-relay"] if args.own_relay else []
    return services_main(["run", "--only", "preprocess", "--no-web", *relaying])


if __name__ == "__main__":
    sys.exit(main())
