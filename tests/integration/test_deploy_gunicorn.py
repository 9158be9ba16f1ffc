"""gunicorn serving intake as the distributed web tier does (deploy/gunicorn.conf.py,
services.wsgi), on the real PostgreSQL and RabbitMQ: it answers health and readiness (also to the
compose file's own healthcheck command), serves the intake API, reloads its workers on SIGHUP and
stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from time import monotonic, sleep

import pytest

from tests.support.deploy import load_compose
from tests.support.web_servers import free_port, gunicorn, server_env, stop, wait_for_http


def _compose_healthcheck(port: int) -> int:
    """Run docker-compose.yml's healthcheck of intake (the image's own Python) against ``port``."""
    test = load_compose()["services"]["intake"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    command = [sys.executable, *[arg.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for arg in test[2:]]]
    return subprocess.run(command, capture_output=True, timeout=60).returncode


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.integration
def test_gunicorn_serves_intake_reloads_and_stops_on_sigterm(
    pg_url: str, amqp_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = server_env(
        WEB_SERVICES="intake",
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_WORKERS="2",
        WEB_THREADS="8",
        DATABASE_URL=pg_url,
        BROKER_URL=amqp_url,
        VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY="test-secret",
    )
    log = tmp_path / "gunicorn.log"
    process = gunicorn(env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/healthz", process)
        assert _get(f"{base}/healthz") == (200, {"status": "ok"})
        status, ready = _get(f"{base}/readyz")
        assert status == 200, ready
        assert ready["checks"] == {"broker": "ok", "database": "ok"}
        # The intake API itself, not only the platform's health: no sign-in, a clear 401.
        status, body = _get(f"{base}/api/v1/sessions/current")
        assert status == 401 and body["error"]["status"] == 401
        assert _compose_healthcheck(port) == 0
        assert _compose_healthcheck(free_port()) != 0  # nothing listens there: unhealthy

        # Graceful reload (SIGHUP): new workers boot, the old ones finish and leave, no downtime.
        process.send_signal(signal.SIGHUP)
        deadline = monotonic() + 90
        while log.read_text().count("Booting worker") < 4 or log.read_text().count("Worker exiting") < 2:
            assert monotonic() < deadline, log.read_text()
            assert process.poll() is None, log.read_text()
            sleep(0.2)
        wait_for_http(f"{base}/readyz", process)
    finally:
        code = stop(process)
    output = log.read_text()
    assert code == 0, output
    assert "Using worker: gthread" in output
    assert output.count("Worker exiting") == 4  # two replaced on reload, two at the stop; none killed
    assert "Handling signal: hup" in output
    assert '"GET /readyz HTTP/1.1" 200' in output  # the access log
    assert "Shutting down: Master" in output
