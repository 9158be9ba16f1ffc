"""``python -m services.preprocess`` explains itself and runs the worker alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from libs.contracts import PHOTOS_PROCESSED, SESSION_APPROVED
from services.preprocess.__main__ import build_parser
from tests.support.cli import help_gaps, subcommands

ROOT = Path(__file__).resolve().parents[2]


def test_help_says_what_the_worker_does_and_shows_every_option() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "services.preprocess", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert SESSION_APPROVED.routing_key in out and PHOTOS_PROCESSED.routing_key in out
    parser = build_parser()
    assert subcommands(parser) == {}  # no subcommands: its options are all there is to tell
    assert help_gaps(parser, out, lambda name: "") == []


def test_the_launcher_finds_the_worker_by_convention() -> None:
    from services.launcher import worker_services
    from services.preprocess import handlers

    assert worker_services({"preprocess"}) == {"preprocess": handlers}
