"""The WSGI entry of the distributed web tier, served by gunicorn (deploy/gunicorn.conf.py)::

    WEB_SERVICES=intake gunicorn --config deploy/gunicorn.conf.py 'services.wsgi:create_wsgi()'

Each gunicorn worker process calls :func:`create_wsgi` once after it forks, so every process has
its own database pool and broker connections (none is shared across a fork). The apps are the
launcher's: the same mounts (``WEB_MOUNTS``), health, readiness and metrics as the embedded mode.
Web only: consumers run in their own processes (``python -m services run --no-web``). On
PostgreSQL each process publishes the events its requests write itself (a relay of its own rows,
as ``--own-relay`` runs one: a submission's event leaves as soon as it is committed); the relay
process (``python -m services relay``) publishes the rest. The gateway stays on ``python -m
services run --only gateway``: Socket.IO keeps per-connection state inside one process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from libs.db.migrate import upgrade_if_embedded
from libs.settings import Settings
from libs.web import configure_logging
from services import WEB_MOUNTS
from services.launcher import Platform, build_wsgi, start_relay, web_services

log = logging.getLogger("headshots.wsgi")

_platforms: list[Platform] = []
RELAY_STOP_SECONDS = 10.0  # it waits in 0.1 s steps; a publish in hand is bounded by PUBLISH_TIMEOUT
# The relays of this process's own rows: the event that stops them, their threads, their closers.
_relays: list[tuple[threading.Event, threading.Thread, Callable[[], None]]] = []


class WsgiConfigError(ValueError):
    pass


def chosen_services(names: str) -> set[str] | None:
    """``"intake,review"`` -> ``{"intake", "review"}``; empty -> None (every web service)."""
    chosen = {n.strip() for n in names.split(",") if n.strip()}
    if not chosen:
        return None
    unknown = chosen - set(WEB_MOUNTS)
    if unknown:
        raise WsgiConfigError(
            f"WEB_SERVICES names {', '.join(sorted(unknown))}: not a web service "
            f"(choose from {', '.join(sorted(WEB_MOUNTS))})"
        )
    missing = chosen - set(web_services(chosen))
    if missing:
        raise WsgiConfigError(f"no web app for {', '.join(sorted(missing))} (services/<name>/app.py)")
    return chosen


def create_wsgi(services: str | None = None, settings: Settings | None = None) -> Any:
    """Build the WSGI app for ``services`` (default: the ``WEB_SERVICES`` setting)."""
    settings = settings or Settings.from_env()
    configure_logging(settings)
    only = chosen_services(settings.WEB_SERVICES if services is None else services)
    upgrade_if_embedded(settings.database_url)
    platform = Platform(settings)
    app, urls = build_wsgi(platform, only)
    _platforms.append(platform)
    if platform.db.dialect == "postgresql":
        stop = threading.Event()
        _relays.append((stop, *start_relay(platform, stop, own_rows_only=True)))
    for name, url in urls.items():
        log.info("serving %s at %s", name, url)
    return app


def shutdown() -> None:
    """Close what :func:`create_wsgi` opened (gunicorn's ``worker_exit`` hook calls this): the
    relay lets go of the rows it has not published (the relay process takes them at once)."""
    while _relays:
        stop, thread, close = _relays.pop()
        stop.set()
        thread.join(RELAY_STOP_SECONDS)
        close()
    while _platforms:
        _platforms.pop().db.dispose()
