"""The embedded mode as a person starts it: `python -m services` serves, answers /healthz, stops on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def read_until(proc: subprocess.Popen, pattern: str, timeout: float = 90) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if re.search(pattern, line):
            return "".join(seen)
    raise AssertionError(f"never saw {pattern!r}; output was:\n{''.join(seen)}")


@pytest.mark.timeout(180)
def test_python_m_services_serves_and_stops_cleanly(tmp_path):
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path / "var"),
        "PORT": "0",
        "SECRET_KEY": "launcher-test",
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = read_until(proc, r"Press Ctrl-C to stop")
        health = re.search(r"health\s+(http://\S+/healthz)", out)
        assert health, out
        with urllib.request.urlopen(health.group(1), timeout=10) as r:
            assert r.status == 200 and b'"ok"' in r.read()
        with urllib.request.urlopen(health.group(1).replace("/healthz", "/readyz"), timeout=10) as r:
            assert r.status == 200
        assert re.search(r"employee\s+bea@acme\.example\s+http://\S+/invite/\S+", out), out
        assert (tmp_path / "var" / "headshots.db").exists()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, rest
        assert "Stopped." in rest
        assert "Traceback" not in out + rest
    finally:
        if proc.poll() is None:
            proc.kill()


def test_help_describes_the_commands():
    out = subprocess.run(
        [sys.executable, "-m", "services", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    for word in ("run", "relay", "seed", "embedded"):
        assert word in out
