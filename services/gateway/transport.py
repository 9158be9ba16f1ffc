"""How frames reach the pages: uncompressed, and written by the thread that emits them.

**Without compression.** simple-websocket accepts permessage-deflate whenever a client offers it
(browsers always do). A pushed event is ~200 bytes of JSON, so compression saves a few dozen bytes
per event but costs every connection a zlib compressor and decompressor for its lifetime and every
event one compression per page: the per-page work of a fan-out to a room. Taking the offer out of
the handshake makes the server answer without the extension; nothing else changes for the page.

**Direct writes.** In threading mode Engine.IO gives every connection a queue and a writer thread:
an emit to a room of 250 pages is 250 queue puts and 250 thread wake-ups, each thread then framing
the same packet and writing it, one after the other under the GIL. That hand-off is most of a
fan-out's cost. Here a websocket connection's queue writes the frame itself, on the emitting
thread, when nothing is waiting before it: one websocket frame per packet (built once for the
whole room), one non-blocking ``send`` per page. What cannot go at once (a full socket buffer: a
slow page) goes to the queue as bytes, and everything after it too until the writer thread has
written them, so one slow page never holds up the others and a page's frames keep their order.
Long-polling connections, and websockets that negotiated an extension, keep Engine.IO's own path.

    app.wsgi_app = WithoutCompression(app.wsgi_app)   # outside Flask-SocketIO's middleware
    write_directly(socketio.server.eio)               # before the first connection
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

import simple_websocket
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI

OFFER = "HTTP_SEC_WEBSOCKET_EXTENSIONS"
TEXT, BINARY = 0x1, 0x2


class WithoutCompression:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.pop(OFFER, None)
        return self.app(environ, start_response)


def websocket_frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """One unmasked, final websocket frame (RFC 6455 5.2), as a server sends it."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, size))
    elif size < 1 << 16:
        head = bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big")
    return head + payload


class Frame(bytes):
    """A frame waiting in a connection's queue: Engine.IO's writer "encodes" it to itself, and
    :class:`DirectWebSocket` writes it as it is."""

    def encode(self, b64: bool = False) -> Frame:
        return self


# An emit to a room hands the same Engine.IO packet to every page, one after the other: frame it once.
_last: tuple[object, bytes] = (None, b"")


def frame_of(packet: Any) -> bytes:
    global _last
    seen, frame = _last
    if seen is packet:
        return frame
    encoded = packet.encode()
    if isinstance(encoded, str):
        frame = websocket_frame(encoded.encode(), TEXT)
    else:
        frame = websocket_frame(bytes(encoded), BINARY)
    _last = (packet, frame)
    return frame


class DirectQueue(queue.Queue):  # type: ignore[type-arg]
    """An Engine.IO connection's outgoing queue that, once its websocket is up and the writer has
    nothing left to write, writes each packet's frame straight to the socket."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._write_lock = threading.Lock()
        self._engine_socket: Any = None
        self._sock: socket.socket | None = None
        self._direct = False  # the writer has written everything queued before the websocket
        self._pending = 0  # frames queued (or being written by the writer) since then
        self.direct_writes = 0

    def attach(self, engine_socket: Any, sock: socket.socket) -> None:
        """The connection's websocket is open on ``sock`` (a blocking socket, no extension)."""
        with self._write_lock:
            self._engine_socket = engine_socket
            self._sock = sock

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None or self._sock is None:  # the end, or not a websocket (yet)
            super().put(item, block, timeout)
            return
        with self._write_lock:
            if not self._direct:
                super().put(item, block, timeout)
                return
            frame = frame_of(item)
            if self._pending == 0:
                try:
                    sent = self._sock.send(frame, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    sent = 0  # gone: the writer finds out and ends the connection
                if sent == len(frame):
                    self.direct_writes += 1
                    return
                frame = frame[sent:]
            self._pending += 1
            super().put(Frame(frame), block, timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        engine_socket = self._engine_socket
        if block and engine_socket is not None and engine_socket.upgraded and not self._direct:
            # Only the websocket writer waits here once the connection is upgraded, and it waits
            # only after writing all it took: with nothing queued, nothing is left before us.
            with self._write_lock:
                if self.qsize() == 0:
                    self._direct = True
        return super().get(block, timeout)

    def written(self) -> None:
        """The writer has written one queued frame."""
        with self._write_lock:
            self._pending -= 1


class DirectWebSocket(SimpleWebSocketWSGI):  # type: ignore[misc]
    """Engine.IO's websocket for threading mode (simple-websocket), which hands the socket to the
    connection's :class:`DirectQueue`, and writes the frames the queue left to its writer."""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        self.ws = simple_websocket.Server(environ, **self.server_args)
        engine_socket = getattr(self.app, "__self__", None)  # the handler is a method of it
        direct_queue = getattr(engine_socket, "queue", None)
        self.direct_queue: DirectQueue | None = None
        sock = self.ws.sock
        if (
            isinstance(direct_queue, DirectQueue)
            and OFFER not in environ  # no extension: frames are plain
            and isinstance(sock, socket.socket)
            and sock.gettimeout() is None  # MSG_DONTWAIT never waits on it
        ):
            self.direct_queue = direct_queue
            direct_queue.attach(engine_socket, sock)
        ret = self.app(self)
        if self.ws.mode == "gunicorn":
            raise StopIteration()
        if self.ws.mode == "werkzeug":
            raise ConnectionError()
        return ret

    def send(self, message: Any) -> Any:
        if not isinstance(message, Frame) or self.direct_queue is None:
            return super().send(message)
        try:
            self.ws.sock.sendall(message)
        finally:
            self.direct_queue.written()
        return None


def written_directly(eio: Any) -> int:
    """Frames the open connections of this Engine.IO server wrote without their writer thread."""
    sockets = list(eio.sockets.values())
    return sum(s.queue.direct_writes for s in sockets if isinstance(s.queue, DirectQueue))


def write_directly(eio: Any) -> None:
    """Make this Engine.IO server's websocket connections write their frames directly."""
    eio._async = {**eio._async, "queue": DirectQueue, "websocket": DirectWebSocket}
