"""The embedded mode as a person starts it: `python -m services` serves, answers /healthz, stops on
Ctrl-C or SIGTERM at any moment (exit 0, "Stopped."), and so do `run --only`, `relay` and a service's
own `serve` (those that write events with `--own-relay` on PostgreSQL too)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from services.__main__ import build_parser
from tests.support.cli import help_gaps, subcommands
from tests.support.processes import ROOT, read_until, start_command, stop_with

pytestmark = pytest.mark.integration

SIGINT, SIGTERM = signal.SIGINT, signal.SIGTERM


@pytest.mark.timeout(240)
def test_python_m_services_serves_and_stops_cleanly(tmp_path):
    proc = start_command(["-m", "services"], tmp_path)
    out = read_until(proc, r"Press Ctrl-C to stop")
    health = re.search(r"health\s+(http://\S+/healthz)", out)
    assert health, out
    with urllib.request.urlopen(health.group(1), timeout=10) as r:
        assert r.status == 200 and b'"ok"' in r.read()
    with urllib.request.urlopen(health.group(1).replace("/healthz", "/readyz"), timeout=10) as r:
        assert r.status == 200
    assert re.search(r"employee\s+bea@acme\.example\s+http://\S+/invite/\S+", out), out
    assert re.search(r"org_admin\s+admin@acme\.example\s+http://\S+/review/invite/\S+", out), out
    assert re.search(r"support\s+support@headshots\.example\s+http://\S+/ops/invite/\S+", out), out
    assert (tmp_path / "var" / "headshots.db").exists()
    stop_with(proc, SIGINT, seen=out)


# Moments of `python -m services`: the signal is sent as soon as the line shows, so it lands in the
# step that follows (or the one after, on a slow machine): either way the stop must be clean.
MOMENTS = {
    "first instruction": None,  # sent at once, to a process that starts with the signals blocked
    "threads starting": r"outbox relay started",
    "demo seeding": r"creating the demo data",
    "serving": r"Press Ctrl-C to stop",
}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", [SIGINT, SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_signal_at_any_moment_stops_services_cleanly(tmp_path, moment, sig):
    pattern = MOMENTS[moment]
    proc = start_command(["-m", "services"], tmp_path, signals_blocked=pattern is None)
    seen = read_until(proc, pattern) if pattern else ""
    stop_with(proc, sig, seen=seen)


# Own: run with --own-relay on PostgreSQL, as the distributed layouts run every process that
# writes events (the others run on the embedded mode's SQLite file).
OWN = True


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("args", "pattern", "sig", "own_relay"),
    [
        (["-m", "services", "run", "--only", "intake"], None, SIGTERM, False),
        (["-m", "services", "run", "--only", "intake"], r"Press Ctrl-C", SIGINT, False),
        (["-m", "services", "run", "--only", "review", "--no-web"], r"Press Ctrl-C", SIGTERM, OWN),
        (["-m", "services", "relay"], None, SIGINT, False),
        (["-m", "services", "relay"], r"Press Ctrl-C", SIGTERM, False),
        (["-m", "services.intake", "serve"], None, SIGINT, False),
        (["-m", "services.intake", "serve"], r"intake at http", SIGTERM, False),
        (["-m", "services.intake", "serve"], r"intake at http", SIGINT, OWN),
        (["-m", "services.review", "serve"], r"Ctrl-C", SIGTERM, OWN),
        (["-m", "services.preprocess"], r"Ctrl-C", SIGINT, OWN),
        (["-m", "services.generation", "work"], r"Ctrl-C", SIGTERM, OWN),
        (["-m", "services.notification"], r"Ctrl-C", SIGINT, False),  # serve: the default command
        (["-m", "services.notification", "serve"], r"Ctrl-C", SIGTERM, OWN),
        (["-m", "services.gateway"], r"Ctrl-C", SIGTERM, False),
        (["-m", "services.ops", "serve"], r"Ctrl-C", SIGINT, OWN),
    ],
    ids=[
        "run-only-first",
        "run-only-serving",
        "run-only-own-relay",
        "relay-first",
        "relay-running",
        "intake-first",
        "intake-serving",
        "intake-own-relay",
        "review-own-relay",
        "preprocess-own-relay",
        "generation-own-relay",
        "notification-serving",
        "notification-own-relay",
        "gateway-serving",
        "ops-own-relay",
    ],
)
def test_every_serving_command_stops_cleanly(request, tmp_path, args, pattern, sig, own_relay):
    """And every command that writes events takes ``--own-relay``: its relay then takes only the
    rows the process writes (the relay process publishes the rest)."""
    env = {"DATABASE_URL": request.getfixturevalue("pg_url")} if own_relay else {}
    flags = ["--own-relay"] if own_relay else []
    proc = start_command([*args, *flags], tmp_path, signals_blocked=pattern is None, **env)
    seen = read_until(proc, pattern) if pattern else ""
    output = seen + stop_with(proc, sig, seen=seen)
    if own_relay:
        assert "outbox relay started for this process's rows" in output, output
        assert "outbox relay started (poll" not in output, output


def test_help_lists_every_subcommand_and_option_the_parser_has():
    def help_of(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "services", *args, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    top = help_of()
    assert "embedded mode" in " ".join(top.split())  # what running it without a command does
    parser = build_parser()
    assert set(subcommands(parser)) >= {"run", "relay", "seed"}
    assert help_gaps(parser, top, help_of) == []
