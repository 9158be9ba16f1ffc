"""One room per session: live events go to everyone in it, in outbox order, none missed.

A page joins its room and gets what it missed (or the state) while holding the session's lock;
a live event for that session is emitted while holding the same lock. So a live event is either
emitted before the page joined (and then it is already in the outbox, so in the replay) or after
the replay: never lost, never ahead of older ones. A duplicate (in the replay and then live) is
possible, and pages drop ids they have already seen.
"""

from __future__ import annotations

import logging
import threading
import zlib
from typing import Any

from flask_socketio import SocketIO

from libs.db import Database
from services.gateway.access import Listener
from services.gateway.eta import StageTimes
from services.gateway.state import snapshot
from services.gateway.timeline import MAX_REPLAY, events_after

log = logging.getLogger("headshots.gateway")

NAMESPACE = "/progress"
STRIPES = 64  # locks shared by sessions: bounded memory, rare contention


class Rooms:
    def __init__(self, socketio: SocketIO, db: Database, stage_times: StageTimes) -> None:
        self.socketio = socketio
        self.db = db
        self.stage_times = stage_times
        self._locks = [threading.Lock() for _ in range(STRIPES)]
        self._last_sent: dict[str, int] = {}  # newest id emitted live per session (for catch-up)
        self._members: dict[str, set[str]] = {}  # session id -> socket ids following it
        self._orgs: dict[str, str] = {}  # session id -> its org (for catch-up reads)
        self._members_lock = threading.Lock()
        self.stats = {"delivered": 0, "replayed": 0}

    def _lock(self, session_id: str) -> threading.Lock:
        return self._locks[zlib.crc32(session_id.encode()) % STRIPES]

    def followed(self, session_id: str) -> bool:
        return session_id in self._members

    # --- pages -------------------------------------------------------------------------------
    def follow(self, sid: str, listener: Listener, last_id: int | None) -> None:
        """Join the session's room; send what came after ``last_id``, or the state when None."""
        session_id = listener.session_id
        with self._lock(session_id):
            self.socketio.server.enter_room(sid, session_id, namespace=NAMESPACE)
            with self._members_lock:
                self._members.setdefault(session_id, set()).add(sid)
                self._orgs[session_id] = listener.org_id
            missed = None
            if last_id is not None:
                with self.db.session(org_id=listener.org_id) as db_session:
                    missed = events_after(db_session, session_id, last_id, limit=MAX_REPLAY + 1)
            if missed is not None and len(missed) <= MAX_REPLAY:
                for event in missed:
                    self._emit("event", event, sid)
                self.stats["replayed"] += len(missed)
                cursor = int(missed[-1]["id"]) if missed else (last_id or 0)
            else:
                cursor = self.send_state(sid, listener)
            self._last_sent[session_id] = max(cursor, self._last_sent.get(session_id, 0))

    def send_state(self, sid: str, listener: Listener) -> int:
        """Emit the session's state to one page; return its cursor (0 when the session is gone)."""
        state = snapshot(self.db, listener, self.stage_times)
        if state is None:
            return 0
        self._emit("state", state, sid)
        return int(state["id"])

    def leave(self, sid: str, session_id: str) -> None:
        with self._members_lock:
            members = self._members.get(session_id)
            if members is not None:
                members.discard(sid)
                if not members:
                    del self._members[session_id]
                    self._last_sent.pop(session_id, None)
                    self._orgs.pop(session_id, None)

    # --- live events -------------------------------------------------------------------------
    def deliver(self, session_id: str, event: dict[str, Any]) -> None:
        with self._lock(session_id):
            self._emit("event", event, session_id)
            self._last_sent[session_id] = max(event["id"], self._last_sent.get(session_id, 0))
            self.stats["delivered"] += 1

    def catch_up(self) -> None:
        """After the broker connection was lost: send each room what it may have missed."""
        with self._members_lock:
            followed = list(self._orgs.items())
        for session_id, org_id in followed:
            with self._lock(session_id), self.db.session(org_id=org_id) as db_session:
                events = events_after(db_session, session_id, self._last_sent.get(session_id, 0))
                for event in events:
                    self._emit("event", event, session_id)
                    self._last_sent[session_id] = event["id"]
        if followed:
            log.info("caught up %d followed sessions from the outbox", len(followed))

    def _emit(self, name: str, payload: dict[str, Any], to: str) -> None:
        self.socketio.emit(name, payload, to=to, namespace=NAMESPACE)
