"""``python -m services.cluster`` as a person runs it: every process starts and says where it
listens, and SIGTERM (Ctrl-C alike) stops them all cleanly — each child exits 0, none is killed."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
import requests

from tests.support.processes import read_until, start_command, stop_with

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(400)
def test_the_cluster_starts_every_process_and_stops_them_all(
    tmp_path: Path, amqp_url: str, pg_url: str
) -> None:
    proc = start_command(
        ["-m", "services.cluster", "--port", "0", "--quiet"],
        tmp_path,
        BROKER_URL=amqp_url,
        DATABASE_URL=pg_url,
    )
    seen = read_until(proc, r"Press Ctrl-C to stop", timeout=300)
    labels = re.findall(r"^\s+([a-z]+-\d)\s+pid", seen, re.MULTILINE)
    assert sorted(labels) == sorted(
        ["relay-1", "intake-1", "review-1", "ops-1", "notification-1", "preprocess-1"]
        + ["generation-1", "generation-2", "gateway-1", "gateway-2"]
    ), seen
    for url in re.findall(
        r"(http://127\.0\.0\.1:\d+/(?:review/|ops/|mail/|gateway/)?)\s*$", seen, re.MULTILINE
    ):
        assert requests.get(f"{url}healthz", timeout=30).status_code == 200, url
    pids = [int(p) for p in re.findall(r"pid (\d+)", seen)]
    rest = stop_with(proc, signal.SIGTERM, seen=seen, timeout=120)
    assert "killed" not in rest and "exit status" not in rest, rest
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        ), pid
