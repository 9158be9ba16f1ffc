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

from services.relaying import add_relay_options, relay_flags


def build_parser() -> argparse.ArgumentParser:
    """The command line ``main`` parses (its ``--help`` is checked against it by the tests)."""
    parser = argparse.ArgumentParser(
        prog="python -m services.preprocess",
        description="The photo preparation worker: consumes session.approved, prepares each photo "
        "(orientation, metadata, face alignment, crops, scores) and publishes photos.processed.",
    )
    add_relay_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from services.__main__ import main as services_main  # after --help: the launcher imports a lot

    return services_main(["run", "--only", "preprocess", "--no-web", *relay_flags(args)])


if __name__ == "__main__":
    sys.exit(main())
