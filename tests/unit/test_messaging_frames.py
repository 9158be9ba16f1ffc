"""The relay's publish frames are byte for byte what py-amqp writes for the same message."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from amqp import spec
from amqp.method_framing import frame_writer
from amqp.serialization import dumps
from kombu.transport.pyamqp import Channel

from libs.contracts import EXCHANGE, SESSION_PROGRESS, SESSION_SUBMITTED
from libs.messaging.frames import publish_frames
from libs.messaging.publisher import JSON, PERSISTENT

FRAME_MAX = 131072


def py_amqp_frames(channel: int, frame_max: int, routing_key: str, body: bytes, **fields: Any) -> bytes:
    """What py-amqp writes for basic.publish of this message, as the relay published it before."""
    written: list[bytes] = []
    transport = SimpleNamespace(write=lambda data: written.append(bytes(data)))
    connection = SimpleNamespace(frame_max=frame_max, bytes_sent=0)
    write = frame_writer(connection, transport)
    message = Channel.prepare_message(
        None,  # type: ignore[arg-type]
        body,
        content_type=JSON,
        content_encoding="utf-8",
        headers=fields["headers"],
        properties={"delivery_mode": PERSISTENT, "message_id": fields["message_id"], "type": routing_key},
    )
    args = dumps("Bssbb", (0, EXCHANGE, routing_key, False, False))
    write(1, channel, spec.Basic.Publish, args, message)
    return b"".join(written)


def ours(channel: int, frame_max: int, routing_key: str, body: bytes, **fields: Any) -> bytes:
    return publish_frames(
        channel,
        frame_max,
        EXCHANGE,
        routing_key,
        body,
        content_type=JSON,
        content_encoding="utf-8",
        headers=fields["headers"],
        delivery_mode=PERSISTENT,
        message_id=fields["message_id"],
        type=routing_key,
    )


@pytest.mark.parametrize(
    ("body", "headers", "frame_max"),
    [
        (b'{"a": 1}', {"x-outbox-id": 1}, FRAME_MAX),
        (b"", {}, FRAME_MAX),
        ('{"name": "Zoë Ñúñez 名前"}'.encode(), {"x-outbox-id": 2147483647}, FRAME_MAX),
        (b"x" * 5000, {"x-outbox-id": 2147483648, "x-attempts": 3}, FRAME_MAX),
        (b"y" * 300_000, {"x-outbox-id": -2147483648}, FRAME_MAX),  # three body frames
        (b"z" * 4096, {"x-outbox-id": 7, "x-reason": "ünïcode reason"}, 4096),  # body frames at the limit
        (b"w" * 100, {"x-flag": True, "x-list": [1, "a"], "x-float": 1.5}, FRAME_MAX),  # other kinds
    ],
)
def test_the_publish_frames_are_what_py_amqp_writes(
    body: bytes, headers: dict[str, Any], frame_max: int
) -> None:
    fields = {"headers": headers, "message_id": "3f1c0a0e-5b7d-4a51-9d0e-2f4d8c1b6a77"}
    for channel in (1, 7, 65535):
        for routing_key in (SESSION_SUBMITTED.routing_key, SESSION_PROGRESS.routing_key, "é" * 10):
            expected = py_amqp_frames(channel, frame_max, routing_key, body, **fields)
            assert ours(channel, frame_max, routing_key, body, **fields) == expected


def test_a_short_string_over_255_bytes_is_refused_as_py_amqp_refuses_it() -> None:
    with pytest.raises(ValueError, match="255"):
        ours(1, FRAME_MAX, "k" * 256, b"{}", headers={}, message_id="m")
