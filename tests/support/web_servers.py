"""Start and stop server processes in tests and benchmarks: free ports, bounded waits."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from libs.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(**settings: str) -> dict[str, str]:
    """The current environment with the product's settings given (strings, as in an env file)."""
    names = {f.name for f in dataclasses.fields(Settings)}
    env = {k: v for k, v in os.environ.items() if k not in names}  # nothing leaks from the shell
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    env.update(settings)
    return env


def gunicorn(env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """gunicorn as the image runs it (deploy/gunicorn.conf.py, services.wsgi), output to ``log``."""
    binary = Path(sys.executable).with_name("gunicorn")
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(binary), "--config", "deploy/gunicorn.conf.py", "services.wsgi:create_wsgi()"],
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    """Poll ``url`` until it answers 2xx; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    """SIGTERM, then wait (bounded) for the exit code; kill only if it never stops."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"server did not stop within {timeout:.0f} s of SIGTERM") from None
