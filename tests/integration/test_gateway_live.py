"""The gateway mounted in the launcher's server (embedded: memory:// + SQLite; distributed:
RabbitMQ + PostgreSQL): a page played by a raw python-socketio client gets the state at once,
every event live with its outbox id, and on reconnection what it missed, in order."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import requests

from libs.contracts import HEADSHOT_GENERATED, MODEL_TRAINED, PHOTOS_PROCESSED, SESSION_APPROVED, SessionState
from libs.db import Database
from libs.db.demo import DemoData, seed_demo
from libs.messaging.testing import wait_for
from libs.settings import Settings
from tests.support.gateway import (
    ProgressPage,
    event,
    new_session,
    record,
    signed_in_cookie,
    start_product,
    token_for,
)

S = SessionState


@dataclass
class Stack:
    settings: Settings
    db: Database
    demo: DemoData
    url: str


@pytest.fixture
def stack(backend: Settings) -> Iterator[Stack]:
    running = start_product(backend)
    settings = running.platform.settings
    try:
        yield Stack(settings, running.platform.db, seed_demo(running.platform.db), settings.public_url)
    finally:
        running.shutdown()


def test_state_at_once_live_events_and_replay_after_reconnection(stack: Stack) -> None:
    bea = stack.demo.employees[0]
    sid = new_session(stack.db, bea, S.SUBMITTED)
    page = ProgressPage(stack.url, sid, cookie=signed_in_cookie(stack.settings, bea))
    page.connect()
    page.follow()
    wait_for(lambda: page.states(), "the state at once")
    assert page.states()[0]["state"] == "submitted"
    assert page.states()[0]["id"] == 0

    org = bea.org_id
    assert org is not None
    record(stack.db, event(SESSION_APPROVED, org, sid, auto=True, reviewer_id=None), state=S.QUEUED)
    wait_for(lambda: page.types() == [SESSION_APPROVED.routing_key], "the approval, live")
    first = page.ids()[0]
    assert "reviewer_id" not in page.events()[0]["data"]
    page.close()

    # Away for two steps: they are replayed in order when the page comes back with its cursor.
    record(stack.db, event(PHOTOS_PROCESSED, org, sid, photo_ids=["p1"]), state=S.TRAINING)
    record(
        stack.db,
        event(MODEL_TRAINED, org, sid, person_model_id="m", engine="studio", seconds=1.0),
        state=S.GENERATING,
    )
    back = ProgressPage(stack.url, sid, token=token_for(stack.settings, stack.db, sid))
    back.connect()
    back.follow(last_id=first)
    wait_for(lambda: len(back.events()) == 2, "the two missed events")
    assert back.types() == [PHOTOS_PROCESSED.routing_key, MODEL_TRAINED.routing_key]
    assert back.ids() == sorted(back.ids()) and back.ids()[0] > first
    record(
        stack.db,
        event(HEADSHOT_GENERATED, org, sid, headshot_id="h1", style="navy:suit", done=1, total=4),
        progress=(1, 4),
    )
    wait_for(lambda: len(back.events()) == 3, "the live event after the replay")
    assert back.types()[-1] == HEADSHOT_GENERATED.routing_key
    assert back.states() == []  # a page with a cursor gets what it missed, not a state
    back.close()


def test_only_the_owner_or_a_token_for_that_session_may_listen(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    bea, carl = stack.demo.employees[0], stack.demo.employees[1]
    mine = new_session(stack.db, bea)
    theirs = new_session(stack.db, carl)
    other_org = new_session(stack.db, stack.demo.other_employee)
    cookie = signed_in_cookie(stack.settings, bea)
    refused = [
        ProgressPage(stack.url, mine),  # no credentials at all
        ProgressPage(stack.url, mine, token="forged.token.value"),
        ProgressPage(stack.url, mine, token=token_for(stack.settings, stack.db, theirs)),  # another session's
        ProgressPage(stack.url, theirs, cookie=cookie),  # a colleague's session
        ProgressPage(stack.url, other_org, cookie=cookie),  # another organization's session
        ProgressPage(stack.url, "x" * 100, cookie=cookie),
        ProgressPage(stack.url, "a\x00b", cookie=cookie),  # PostgreSQL cannot be asked about it
    ]
    for page in refused:
        # polling: the same handshake, and it closes faster than a websocket
        assert page.refusal(transports=["polling"]) == {"message": "unauthorized"}
        assert not page.client.connected
    assert caplog.text.count("refused a progress connection") == len(refused)
    ok = ProgressPage(stack.url, mine, cookie=cookie)
    ok.connect(transports=["polling"])
    ok.follow(last_id=2**70)  # a cursor no row can have: as if none, not a database error
    wait_for(lambda: ok.states(), "the owner's state")
    ok.close()


def test_websocket_frames_are_not_compressed(stack: Stack) -> None:
    """Browsers offer permessage-deflate; the gateway answers without it (services/gateway/transport.py):
    no zlib state per page, no compression per page per event."""
    address = urlsplit(stack.url)
    request = (
        "GET /gateway/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
        f"Host: {address.netloc}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=30) as conn:
        conn.sendall(request.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(4096)
            assert chunk, f"connection closed during the handshake: {answer!r}"
            answer += chunk
    head = answer.split(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("http/1.1 101"), head
    assert "sec-websocket-extensions" not in head, head


@pytest.mark.parametrize(
    "transports", [["websocket"], ["polling", "websocket"]], ids=["websocket", "upgraded"]
)
def test_frames_written_directly_arrive_whole_and_in_order(stack: Stack, transports: list[str]) -> None:
    """Once a page's websocket is up, the gateway writes its frames from the emitting thread
    (services/gateway/transport.py), for a page that opened a websocket at once and for one that
    polled first and upgraded (as browsers do): every event arrives, in outbox order."""
    bea = stack.demo.employees[0]
    org = bea.org_id
    assert org is not None
    sid = new_session(stack.db, bea, S.GENERATING)
    pages = [ProgressPage(stack.url, sid, token=token_for(stack.settings, stack.db, sid)) for _ in range(3)]
    for page in pages:
        page.connect(transports=transports)
        page.follow()
    wait_for(lambda: all(page.client.transport() == "websocket" for page in pages), "websockets")
    stats_url = f"{stack.url.rstrip('/')}/gateway/stats"
    before = requests.get(stats_url, timeout=10).json()
    for done in range(1, 21):
        record(
            stack.db,
            event(
                HEADSHOT_GENERATED, org, sid, headshot_id=f"h{done}", style="navy:suit", done=done, total=20
            ),
            progress=(done, 20),
        )
    for page in pages:
        wait_for(lambda page=page: len(page.events()) == 20, "every event on every page")
        assert [e["data"]["done"] for e in page.events()] == list(range(1, 21))
        assert page.ids() == sorted(page.ids())
    after = requests.get(stats_url, timeout=10).json()
    # (an event may beat a page's writer thread to its first wait: then that one goes through it)
    assert after["written_directly"] - before["written_directly"] >= 19 * len(pages)
    assert after["timings"]["timed"] >= 20
    assert after["timings"]["handling_ms"]["p50"] >= 0 and after["timings"]["lag_ms"] is not None
    for page in pages:
        page.close()
