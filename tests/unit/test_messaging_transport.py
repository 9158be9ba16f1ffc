"""The broker connection's read-ahead: frames parsed from what one read took, a timeout in the
middle of a frame losing nothing (libs/messaging/broker.py)."""

from __future__ import annotations

import struct

import pytest

from libs.messaging.broker import READ_AHEAD_BYTES, _ReadAheadTCPTransport


def frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + b"\xce"


class Socket:
    """Hands out the chunks it is given, one per recv; ``None`` is a timeout. Records the sizes asked."""

    def __init__(self, *chunks: bytes | None) -> None:
        self.chunks = list(chunks)
        self.asked: list[int] = []

    def recv(self, size: int) -> bytes:
        self.asked.append(size)
        chunk = self.chunks.pop(0)
        if chunk is None:
            raise TimeoutError("timed out")
        assert len(chunk) <= size
        return chunk


def transport_on(sock: Socket) -> _ReadAheadTCPTransport:
    transport = _ReadAheadTCPTransport.__new__(_ReadAheadTCPTransport)  # no connection
    transport._read_buffer = b""
    transport._quick_recv = sock.recv
    transport.raise_on_initial_eintr = True
    transport.connected = True
    return transport


def test_frames_that_arrived_together_are_read_with_one_call():
    frames = [frame(1, 1, b"method"), frame(2, 1, b"header" * 3), frame(3, 1, b'{"a": 1}')]
    sock = Socket(b"".join(frames))
    transport = transport_on(sock)
    got = [transport.read_frame() for _ in frames]
    assert got == [(1, 1, b"method"), (2, 1, b"header" * 3), (3, 1, b'{"a": 1}')]
    assert len(sock.asked) == 1 and sock.asked[0] >= READ_AHEAD_BYTES


def test_a_frame_split_across_reads_and_a_timeout_in_its_middle_lose_nothing():
    body = bytes(range(256)) * 40
    whole = frame(3, 2, body) + frame(8, 0, b"")
    sock = Socket(whole[:5], None, whole[5:100], None, whole[100:])
    transport = transport_on(sock)
    with pytest.raises(TimeoutError):
        transport.read_frame()  # the header's first 5 bytes, then nothing more for now
    with pytest.raises(TimeoutError):
        transport.read_frame()  # more of the payload, then a pause
    assert transport.read_frame() == (3, 2, body)
    assert transport.read_frame() == (8, 0, b"")  # the heartbeat behind it, from the same read
    assert sock.chunks == []


def test_a_closed_socket_is_an_error_not_an_empty_frame():
    transport = transport_on(Socket(frame(1, 1, b"x")[:4], b""))
    with pytest.raises(OSError, match="closed"):
        transport.read_frame()


class NothingYet(Socket):
    """A socket without blocking that has nothing to read: what ``drain_events(timeout=0)`` meets."""

    def recv(self, size: int) -> bytes:
        self.asked.append(size)
        if not self.chunks:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        chunk = self.chunks.pop(0)
        assert chunk is not None
        return chunk


def test_nothing_to_read_on_a_socket_without_blocking_is_a_timeout_and_keeps_the_buffer():
    transport = transport_on(NothingYet())
    with pytest.raises(TimeoutError):
        transport.read_frame()  # no frame has begun: a timeout, as py-amqp's own transport says
    sock = NothingYet(frame(1, 1, b"abc"))
    transport = transport_on(sock)
    assert transport.read_frame() == (1, 1, b"abc")
    with pytest.raises(TimeoutError):
        transport.read_frame()
    assert transport._read_buffer == b""


def test_a_frame_counts_as_buffered_only_once_it_is_whole_end_byte_included():
    whole = frame(3, 1, b'{"a": 1}')
    transport = transport_on(Socket())
    for part, buffered in ((b"", False), (whole[:6], False), (whole[:-1], False), (whole, True)):
        transport._read_buffer = part
        assert transport.whole_frame_buffered() is buffered, part
    transport._read_buffer = whole + frame(8, 0, b"")[:3]  # a whole frame, then part of the next
    assert transport.whole_frame_buffered()
    assert transport.read_frame() == (3, 1, b'{"a": 1}')
    assert not transport.whole_frame_buffered()
