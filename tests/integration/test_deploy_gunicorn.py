"""gunicorn serving intake as the distributed web tier does (deploy/gunicorn.conf.py,
services.wsgi), on the real PostgreSQL and RabbitMQ: it answers health and readiness, serves the
intake API, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import free_port, gunicorn, server_env, stop, wait_for_http


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.integration
def test_gunicorn_serves_intake_and_stops_on_sigterm(pg_url: str, amqp_url: str, tmp_path: Path) -> None:
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
    finally:
        code = stop(process)
    output = log.read_text()
    assert code == 0, output
    assert "Using worker: gthread" in output
    assert output.count("Worker exiting") == 2  # both workers finished, none was killed
    assert '"GET /readyz HTTP/1.1" 200' in output  # the access log
    assert "Shutting down: Master" in output
