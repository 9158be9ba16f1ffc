"""Queue figures: RabbitMQ's management API when configured (a stand-in HTTP server answering in its
format: the API is not ours), passive declares when it is not there or does not answer."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from libs.db import Database
from libs.messaging import Bus
from libs.settings import Settings
from services.ops.queues import queue_stats

ANSWER = [
    {
        "name": "preprocess.session.approved",
        "messages_ready": 4,
        "messages_unacknowledged": 2,
        "consumers": 3,
        "message_stats": {"publish_details": {"rate": 1.5}, "deliver_get_details": {"rate": 1.25}},
    },
    {
        "name": "preprocess.session.approved.dead",
        "messages_ready": 1,
        "messages_unacknowledged": 0,
        "consumers": 0,
    },
]


@pytest.fixture
def management() -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            seen.append((self.path, self.headers.get("Authorization")))
            body = json.dumps(ANSWER).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://guest:guest@127.0.0.1:{server.server_port}", seen
    server.shutdown()
    thread.join(5)


def test_management_api_figures(management: tuple[str, list[tuple[str, str | None]]]) -> None:
    url, seen = management
    settings = Settings(
        BROKER_URL="amqp://guest:guest@127.0.0.1:5672/test%2Fvhost", RABBITMQ_MANAGEMENT_URL=url
    )
    stats = queue_stats(settings)
    assert [(s.name, s.ready, s.unacked, s.consumers, s.publish_rate, s.deliver_rate) for s in stats] == [
        ("preprocess.session.approved", 4, 2, 3, 1.5, 1.25),
        ("preprocess.session.approved.dead", 1, 0, 0, 0.0, 0.0),
    ]
    assert stats[1].kind == "dead" and stats[0].kind == "work"
    assert seen == [("/api/queues/test%2Fvhost", "Basic Z3Vlc3Q6Z3Vlc3Q=")]


def test_passive_declares_when_there_is_no_management_api(settings: Settings, sqlite_url: str) -> None:
    embedded = settings.replace(
        BROKER_URL="memory://queues/", DATABASE_URL=sqlite_url, RABBITMQ_MANAGEMENT_URL="http://127.0.0.1:9/"
    )
    Bus(embedded, Database(sqlite_url)).declare()
    stats = {s.name: s for s in queue_stats(embedded)}
    assert (
        "ops.session.failed" in stats and "ops.session.failed.dead" in stats
    )  # no retry queues on memory://
    assert stats["ops.session.failed"].ready == 0 and stats["ops.session.failed"].unacked is None
