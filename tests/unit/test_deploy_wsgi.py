"""services.wsgi (gunicorn's entry) and deploy/gunicorn.conf.py, without starting gunicorn."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from libs.settings import Settings
from services.wsgi import WsgiConfigError, chosen_services, create_wsgi, shutdown
from tests.support.deploy import DEPLOY


def test_web_services_are_read_from_the_setting() -> None:
    assert chosen_services("") is None
    assert chosen_services(" intake ") == {"intake"}
    with pytest.raises(WsgiConfigError, match="opps: not a web service"):
        chosen_services("intake,opps")
    with pytest.raises(WsgiConfigError, match="not a web service"):
        chosen_services("generation")  # a worker: it has no web app to serve


def test_create_wsgi_serves_the_chosen_apps(tmp_path: Path) -> None:
    settings = Settings(VAR_DIR=str(tmp_path / "var"), SECRET_KEY="test-secret", WEB_SERVICES="intake")
    app = create_wsgi(settings=settings)
    try:
        from werkzeug.test import Client

        client = Client(app)
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").json == {"status": "ok", "checks": {"broker": "ok", "database": "ok"}}
        assert client.get("/api/v1/sessions/current").status_code == 401
    finally:
        shutdown()


def test_gunicorn_config_follows_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"HOST": "0.0.0.0", "PORT": "9001", "WEB_WORKERS": "3", "WEB_THREADS": "16"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    config = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert config["bind"] == "0.0.0.0:9001"
    assert (config["worker_class"], config["workers"], config["threads"]) == ("gthread", 3, 16)
    assert config["loglevel"] == "warning" and config["accesslog"] == "-"
    # Requests in flight finish before Kubernetes' grace period (30 s by default) runs out.
    assert 0 < config["graceful_timeout"] < 30 and config["timeout"] >= config["graceful_timeout"]
    assert config["preload_app"] is False  # connections are opened after the fork, per worker
    assert callable(config["worker_exit"])
