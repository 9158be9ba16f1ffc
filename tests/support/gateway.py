"""Helpers for the gateway's tests: sessions in a given state, events written the way workers
write them (state change + outbox row in one transaction), and a waiting page played by a raw
python-socketio client.

    page = ProgressPage(base_url, session_id, token=token)
    page.connect(); page.follow()
    wait_for(lambda: page.types() == ["session.approved"], "the approval to arrive")
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import requests
import socketio

from libs.contracts import Message, SessionState, new_message
from libs.db import Database, Headshot, HeadshotSession, User
from libs.settings import Settings
from libs.storage import BlobStore
from libs.web import invite_url, progress_token

SOCKETIO_PATH = "/gateway/socket.io"
NAMESPACE = "/progress"


def new_session(
    db: Database, user: User, state: str = SessionState.SUBMITTED, package: str = "executive"
) -> str:
    assert user.org_id is not None
    with db.uow(org_id=user.org_id) as uow:
        hs = HeadshotSession(org_id=user.org_id, user_id=user.id, state=str(state), package_id=package)
        uow.session.add(hs)
        uow.commit()
        return hs.id


def token_for(settings: Settings, db: Database, session_id: str) -> str:
    with db.session(all_orgs=True) as db_session:
        hs = db_session.get(HeadshotSession, session_id)
        assert hs is not None
        return progress_token(settings, session_id=hs.id, org_id=hs.org_id, user_id=hs.user_id)


def record(
    db: Database,
    message: Message,
    *,
    state: str | None = None,
    progress: tuple[int, int] | None = None,
    headshot: Headshot | None = None,
) -> None:
    """What a worker does: change the session (state, progress, a new headshot) and write the
    event to the outbox in the same transaction; the relay publishes it."""
    with db.uow(org_id=message.org_id) as uow:
        hs = uow.session.get(HeadshotSession, message.session_id)
        assert hs is not None
        if state is not None:
            hs.state = str(state)  # set directly: tests jump between stages workers would walk
        if progress is not None:
            hs.progress_done, hs.progress_total = progress
        if headshot is not None:
            uow.session.add(headshot)
        uow.add_message(message)
        uow.commit()


def event(kind: Any, hs_org: str, session_id: str, **data: Any) -> Message:
    return new_message(kind, org_id=hs_org, session_id=session_id, **data)


def stored_headshot(blobs: BlobStore, org_id: str, session_id: str, index: int, image: bytes) -> Headshot:
    key = blobs.put(image, kind="headshots", ext="jpg")
    return Headshot(
        id=str(uuid.uuid4()),
        org_id=org_id,
        session_id=session_id,
        style_id="navy:suit",
        index_in_style=index,
        position=index,
        blob_key=key,
        width=400,
        height=500,
        seed=index,
    )


def signed_in_cookie(settings: Settings, user: User) -> str:
    """Open the person's invite link over HTTP and return the session cookie a browser keeps."""
    http = requests.Session()
    response = http.get(invite_url(settings, user), timeout=10, allow_redirects=False)
    assert response.status_code == 303, response.text[:300]
    value = http.cookies.get("headshots_session")
    assert value, "no session cookie after the invite link"
    return f"headshots_session={value}"


class ProgressPage:
    """A waiting page without a browser: connects, follows, and keeps what it receives."""

    def __init__(
        self, base_url: str, session_id: str, *, token: str | None = None, cookie: str | None = None
    ):
        self.base_url = base_url
        self.session_id = session_id
        self.token = token
        self.cookie = cookie
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.client = socketio.Client(reconnection=False)
        self.client.on("event", self._on("event"), namespace=NAMESPACE)
        self.client.on("state", self._on("state"), namespace=NAMESPACE)

    def _on(self, name: str) -> Any:
        def handler(payload: dict[str, Any]) -> None:
            with self._lock:
                self.received.append((name, payload))

        return handler

    def connect(self, *, auth: Any = None, transports: list[str] | None = None, wait: bool = True) -> None:
        """Connect as a page would (``wait=False``: return once the transport is up, before the
        gateway has answered for the namespace)."""
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if auth is None:
            auth = {"session_id": self.session_id, **({"token": self.token} if self.token else {})}
        self.client.connect(
            self.base_url,
            headers=headers,
            auth=auth,
            transports=transports or ["websocket"],
            namespaces=[NAMESPACE],
            socketio_path=SOCKETIO_PATH,
            wait=wait,
            wait_timeout=15,
        )

    def refusal(self, *, transports: list[str] | None = None) -> Any:
        """Connect, expecting the gateway to refuse: what its ``connect_error`` said (None if it
        let the page in or said nothing within 15 s). The connection is then dropped without
        waiting for its long poll: python-engineio's client can miss sending its close when the
        refusal arrives while a POST is in flight, and would then wait for the server's next
        ping (25 s) to end that poll."""
        said: list[Any] = []
        answered = threading.Event()

        def refused(data: Any = None) -> None:
            said.append(data)
            answered.set()

        def connected(*_args: Any) -> None:
            answered.set()

        self.client.on("connect_error", refused, namespace=NAMESPACE)
        self.client.on("connect", connected, namespace=NAMESPACE)
        self.connect(transports=transports, wait=False)
        answered.wait(15)
        self.client.eio.disconnect(abort=True)
        return said[0] if said else None

    def follow(self, last_id: int | None = None) -> None:
        answer = self.client.call(
            "follow", {} if last_id is None else {"last_id": last_id}, namespace=NAMESPACE, timeout=15
        )
        assert answer == {"ok": True}, answer

    def events(self) -> list[dict[str, Any]]:
        """The events as a page keeps them: an id seen before (in a replay, then live) is dropped."""
        seen: set[int] = set()
        kept = []
        with self._lock:
            for name, payload in self.received:
                if name == "event" and payload["id"] not in seen:
                    seen.add(payload["id"])
                    kept.append(payload)
        return kept

    def states(self) -> list[dict[str, Any]]:
        with self._lock:
            return [payload for name, payload in self.received if name == "state"]

    def types(self) -> list[str]:
        return [e["type"] for e in self.events()]

    def ids(self) -> list[int]:
        return [e["id"] for e in self.events()]

    def close(self) -> None:
        if self.client.connected:
            self.client.disconnect()


def start_product(settings: Settings, only: frozenset[str] = frozenset({"intake", "gateway"})) -> Any:
    """The launcher's server with intake and the gateway, once the gateway consumes its queue."""
    from services import launcher

    running = launcher.start(settings.replace(HOST="127.0.0.1", PORT=0), only=set(only))
    for task in running.platform.background:
        if not task.wait_ready(30):
            running.shutdown()
            raise AssertionError("the gateway did not start listening")
    return running
