"""The gateway web app: Flask-SocketIO in threading mode (simple-websocket), one namespace.

    app = create_app(settings, db=db)          # builds; starts nothing
    gateway = app.extensions["headshots.gateway"]
    gateway.listener.start()                   # the launcher starts "headshots.background" tasks

Mounted at ``/gateway`` (services.WEB_MOUNTS): the Socket.IO endpoint is ``/gateway/socket.io/``
because the path is matched after the mount prefix is taken off. Browsers connect from the same
origin (the intake pages); other origins are refused by Engine.IO's CORS check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, jsonify
from flask_socketio import SocketIO

from libs.db import Database
from libs.settings import Settings
from libs.storage import BlobStore
from libs.web import create_base_app
from libs.web.health import ReadyCheck
from services.gateway.eta import StageTimes
from services.gateway.listener import EventListener
from services.gateway.namespace import ProgressNamespace
from services.gateway.rooms import Rooms
from services.gateway.transport import WithoutCompression, write_directly, written_directly

SOCKETIO_PATH = "socket.io"


@dataclass
class Gateway:
    socketio: SocketIO
    rooms: Rooms
    namespace: ProgressNamespace
    listener: EventListener

    def stats(self) -> dict[str, Any]:
        return {
            "instance": self.listener.instance,
            "connected": self.namespace.connected,
            "refused": self.namespace.refused,
            **self.rooms.stats,
            **self.listener.stats,
            "written_directly": written_directly(self.socketio.server.eio),
            "timings": self.listener.timings.summary(),
        }


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    blobs: BlobStore | None = None,
    checks: Mapping[str, ReadyCheck] | None = None,
    instance: str | None = None,
) -> Flask:
    if checks is None:
        checks = _default_checks(settings)
    app = create_base_app("services.gateway", "gateway", settings, db=db, blobs=blobs, checks=checks)
    database: Database = app.extensions["headshots.db"]
    socketio = SocketIO(app, async_mode="threading", path=SOCKETIO_PATH, logger=False, engineio_logger=False)
    app.wsgi_app = WithoutCompression(app.wsgi_app)  # type: ignore[method-assign]
    write_directly(socketio.server.eio)
    rooms = Rooms(socketio, database, StageTimes(database))
    namespace = ProgressNamespace(rooms)
    socketio.on_namespace(namespace)
    listener = EventListener(settings, database, rooms, instance)
    gateway = Gateway(socketio, rooms, namespace, listener)
    app.extensions["headshots.gateway"] = gateway
    # Started and stopped by whoever runs the app (the launcher): nothing runs at build time.
    app.extensions["headshots.background"] = [listener]

    @app.get("/stats")
    def stats() -> Any:
        """Counters of this instance, for ops and the benchmark:
        ``{"instance": "3f2a…", "connected": 12, "refused": 0, "delivered": 340, ...,
        "timings": {"timed": 340, "lag_ms": {"p50": 6.1, "p99": 14.0}, "handling_ms": {...}}}``"""
        return jsonify(gateway.stats())

    return app


def _default_checks(settings: Settings) -> dict[str, ReadyCheck]:
    from libs.messaging import check_broker

    return {"broker": lambda: check_broker(settings)}
