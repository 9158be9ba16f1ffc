"""Gateway processes for tests and the benchmark: ``python -m services.gateway`` on a free port,
with the environment's settings replaced by the ones given.

    with gateway_process(settings) as gateway:      # gateway.url: http://127.0.0.1:<port>
        ...                                          # gateway.pid: for memory figures
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests

from libs.settings import Settings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def settings_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BROKER_URL=settings.BROKER_URL,
        DATABASE_URL=settings.database_url,
        SECRET_KEY=settings.SECRET_KEY,
        VAR_DIR=settings.VAR_DIR,
        HOST="127.0.0.1",
        PORT="0",
        LOG_LEVEL="WARNING",
        PYTHONPATH=ROOT,
    )
    return env


@dataclass(frozen=True)
class RunningGateway:
    url: str
    pid: int


@contextmanager
def gateway_process(settings: Settings, timeout: float = 60.0) -> Iterator[RunningGateway]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.gateway"],
        cwd=ROOT,
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = _wait_for_url(proc, timeout)
        _wait_listening(url, timeout)
        yield RunningGateway(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_for_url(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"gateway process ended: {''.join(seen)[-2000:]}")
        seen.append(line)
        if line.startswith("gateway at "):
            # "gateway at http://127.0.0.1:PORT/gateway/socket.io/  (Ctrl-C to stop)"
            address = line.split()[2]
            return address.split("/gateway/")[0]
    raise AssertionError(f"gateway process did not start within {timeout:g} s: {''.join(seen)[-2000:]}")


def _wait_listening(url: str, timeout: float) -> None:
    """Until the instance consumes its queue (an event published before would be missed live)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/gateway/stats", timeout=2).json().get("connections", 0) >= 1:
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"gateway at {url} did not start listening within {timeout:g} s")
