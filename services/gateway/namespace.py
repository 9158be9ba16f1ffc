"""The Socket.IO namespace a waiting page talks to: ``/progress``.

A page connects with ``auth = {"session_id": "a51b…", "token": "<progress token>"}`` (the token
is optional when the intake session cookie comes along), then asks to follow::

    emit("follow", {"last_id": 1234})   # replay what came after 1234, then live events
    emit("follow", {})                  # no cursor: the session's state at once, then live events
    emit("refresh")                     # the state again (a queued page asks now and then)

and receives ``state`` (see state.py) and ``event`` (see timeline.py) messages. A connection that
may not listen is refused at the handshake (``connect_error`` "unauthorized") and logged.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import request
from flask_socketio import ConnectionRefusedError, Namespace

from libs.db import MAX_ROW_ID
from libs.web import current_user, get_db, get_settings
from services.gateway.access import Listener, Refused, authorize
from services.gateway.rooms import NAMESPACE, Rooms

log = logging.getLogger("headshots.gateway")


class ProgressNamespace(Namespace):
    def __init__(self, rooms: Rooms) -> None:
        super().__init__(NAMESPACE)
        self.rooms = rooms
        self._listeners: dict[str, Listener] = {}
        self._lock = threading.Lock()
        self.refused = 0

    def on_connect(self, auth: Any = None) -> None:
        claims = auth if isinstance(auth, dict) else {}
        sid: str = request.sid  # type: ignore[attr-defined]
        try:
            listener = authorize(
                get_db(),
                get_settings(),
                session_id=claims.get("session_id"),
                token=claims.get("token"),
                user=current_user(),
            )
        except Refused as exc:
            self.refused += 1
            log.warning(
                "refused a progress connection from %s for session %r: %s",
                request.remote_addr,
                str(claims.get("session_id"))[:64],
                exc.reason,
            )
            raise ConnectionRefusedError("unauthorized") from None
        with self._lock:
            self._listeners[sid] = listener
        log.info("page connected for session %s (%s)", listener.session_id, listener.via)

    def on_disconnect(self, *_reason: Any) -> None:
        sid: str = request.sid  # type: ignore[attr-defined]
        with self._lock:
            listener = self._listeners.pop(sid, None)
        if listener is not None:
            self.rooms.leave(sid, listener.session_id)

    def on_follow(self, data: Any = None) -> dict[str, Any]:
        listener = self._listener()
        if listener is None:
            return {"ok": False}
        last_id = data.get("last_id") if isinstance(data, dict) else None
        # Anything but an outbox id (a number no row can have included) counts as no cursor.
        valid = isinstance(last_id, int) and not isinstance(last_id, bool) and 0 <= last_id <= MAX_ROW_ID
        cursor = last_id if valid else None
        self.rooms.follow(request.sid, listener, cursor)  # type: ignore[attr-defined]
        return {"ok": True}

    def on_refresh(self, *_args: Any) -> dict[str, Any]:
        listener = self._listener()
        if listener is None:
            return {"ok": False}
        self.rooms.send_state(request.sid, listener)  # type: ignore[attr-defined]
        return {"ok": True}

    def _listener(self) -> Listener | None:
        with self._lock:
            return self._listeners.get(request.sid)  # type: ignore[attr-defined]

    @property
    def connected(self) -> int:
        with self._lock:
            return len(self._listeners)
