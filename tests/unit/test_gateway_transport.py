"""Direct writes (services/gateway/transport.py): once a page's websocket is up and its writer thread
has nothing left to write, a packet's frame goes straight to the socket from the emitting thread;
what cannot go at once waits in the queue for the writer, with everything after it, in order."""

from __future__ import annotations

import queue as queues
import socket
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from engineio import packet as eio_packet
from wsproto.frame_protocol import FrameProtocol, Opcode

from services.gateway.transport import DirectQueue, Frame, frame_of, websocket_frame


def _frames(data: bytes) -> list[tuple[Opcode, bytes | str]]:
    """Decode server frames the way a websocket client does (wsproto)."""
    reader = FrameProtocol(client=True, extensions=[])
    reader.receive_bytes(data)
    return [(frame.opcode, frame.payload) for frame in reader.received_frames()]


@pytest.mark.parametrize("size", [0, 5, 125, 126, 200, 65535, 65536, 70000])
def test_a_frame_reads_back_as_one_final_message(size: int) -> None:
    text = "x" * size
    assert _frames(websocket_frame(text.encode())) == [(Opcode.TEXT, text)]
    assert _frames(websocket_frame(b"\x01" * size, opcode=0x2)) == [(Opcode.BINARY, b"\x01" * size)]


def test_one_packet_is_framed_once_for_a_whole_room() -> None:
    pkt = eio_packet.Packet(eio_packet.MESSAGE, '2/progress,["event",{"id":1}]')
    first = frame_of(pkt)
    assert frame_of(pkt) is first
    assert _frames(first) == [(Opcode.TEXT, '42/progress,["event",{"id":1}]')]
    other = eio_packet.Packet(eio_packet.MESSAGE, b"\x00\x01")
    assert _frames(frame_of(other)) == [(Opcode.BINARY, b"\x00\x01")]


@pytest.fixture(name="pair")
def pair_fixture() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def _message(n: int) -> eio_packet.Packet:
    return eio_packet.Packet(eio_packet.MESSAGE, f"event {n}")


def _writer_waits(queue: DirectQueue) -> None:
    """Engine.IO's writer thread, having written all it took, waits for more (here: briefly)."""
    with pytest.raises(queues.Empty):
        queue.get(timeout=0.01)


def _read(client: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += client.recv(size - len(data))
    return data


def test_packets_go_straight_to_the_socket_once_the_writer_is_idle(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    queue = DirectQueue()
    queue.put(_message(0))  # before the websocket: Engine.IO's own path
    engine_socket = SimpleNamespace(upgraded=False)
    queue.attach(engine_socket, server)
    queue.put(_message(1))  # the websocket is there, but the writer has not caught up yet
    assert queue.qsize() == 2 and queue.direct_writes == 0
    engine_socket.upgraded = True
    assert [queue.get().data, queue.get(block=False).data] == ["event 0", "event 1"]
    queue.task_done()
    queue.task_done()
    # The writer, having written both, waits again with nothing queued: from now on, direct.
    _writer_waits(queue)
    queue.put(_message(2))
    queue.put(_message(3))
    assert queue.qsize() == 0 and queue.direct_writes == 2
    expected = websocket_frame(b"4event 2") + websocket_frame(b"4event 3")
    assert _read(client, len(expected)) == expected


def test_a_full_socket_queues_the_rest_in_order_and_direct_writes_resume_after(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    queue = DirectQueue()
    queue.attach(SimpleNamespace(upgraded=True), server)
    _writer_waits(queue)  # the writer waited once with nothing queued: direct from here
    big = eio_packet.Packet(eio_packet.MESSAGE, "y" * 400_000)  # more than the socket takes at once
    queue.put(big)
    queue.put(_message(1))  # behind a partly written frame: must not overtake it
    assert queue.direct_writes == 0
    left, after = queue.get(), queue.get()
    assert isinstance(left, Frame) and isinstance(after, Frame)
    assert left.encode() is left  # Engine.IO's writer hands it to the websocket as it is
    # The writer writes what is left, in order, while the page reads.
    whole = websocket_frame(b"4" + b"y" * 400_000) + websocket_frame(b"4event 1")
    sent_part = len(whole) - len(left) - len(after)
    assert 0 < sent_part < len(whole) - len(after)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(_read(client, len(whole))))
    reader.start()
    for frame in (left, after):
        server.sendall(frame)
        queue.written()
    reader.join(30)
    assert received == [whole]
    assert _frames(whole) == [(Opcode.TEXT, "4" + "y" * 400_000), (Opcode.TEXT, "4event 1")]
    queue.put(_message(2))  # nothing pending any more: direct again
    assert queue.direct_writes == 1 and queue.qsize() == 0
    assert _read(client, len(websocket_frame(b"4event 2"))) == websocket_frame(b"4event 2")


def test_a_closed_socket_leaves_the_frame_to_the_writer(pair: tuple[socket.socket, socket.socket]) -> None:
    server, _client = pair
    queue = DirectQueue()
    queue.attach(SimpleNamespace(upgraded=True), server)
    _writer_waits(queue)
    server.close()
    queue.put(_message(1))  # no exception for the emitter: the writer finds the socket gone
    assert queue.direct_writes == 0 and isinstance(queue.get(block=False), Frame)
    queue.put(None)  # the end of the connection still reaches the writer
    assert queue.get(block=False) is None


def test_the_end_and_packets_before_the_websocket_take_engineio_s_own_path() -> None:
    queue = DirectQueue()
    queue.put(_message(1))
    queue.put(None)
    assert queue.get(block=False).data == "event 1" and queue.get(block=False) is None
