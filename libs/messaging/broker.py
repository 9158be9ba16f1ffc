"""Connections to the broker, the same way on ``amqp://`` (RabbitMQ) and ``memory://`` (in-process).

    conn = connect(settings, name="review consumer")   # not yet connected: kombu connects lazily
    check_broker(settings)                              # /readyz: raises BrokerUnavailable within ~2 s

On RabbitMQ every connection has heartbeats (``HEARTBEAT``), a bounded connect timeout, publisher
confirms on every channel (``confirm_publish``) and a name that ``rabbitmqctl list_connections
client_properties`` shows. On ``memory://`` those options mean nothing; the only one that matters
is how often an idle consumer polls its queues.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from queue import Empty
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from amqp.transport import TCPTransport
from kombu import Connection
from kombu.transport import memory, pyamqp

from libs.messaging.errors import BrokerUnavailable
from libs.messaging.frames import FRAME_HEADER
from libs.settings import Settings

# kombu's virtual transports sleep this long between polls of empty queues (default 1 s). Ours
# (below) is woken by every put instead, so this is only the safety net behind that wake-up.
MEMORY_POLL_SECONDS = 0.02

# Connecting is bounded by this (and by PUBLISH_TIMEOUT when shorter): a dead broker must fail fast.
CONNECT_TIMEOUT = 2.0


class _Arrivals:
    """Counts the messages put on any in-process queue and wakes the consumers waiting for one."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def put(self) -> None:
        with self.changed:
            self.count += 1
            self.changed.notify_all()

    def wait_after(self, seen: int, timeout: float) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.count != seen, timeout)


_ARRIVALS = _Arrivals()


class _WakingMemoryChannel(memory.Channel):
    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        super()._put(queue, message, **kwargs)
        _ARRIVALS.put()


class WakingMemoryTransport(memory.Transport):  # type: ignore[misc]
    """kombu's memory:// transport, except that an idle consumer is woken by the next message put
    on any queue rather than finding it at its next poll (kombu sleeps between polls of empty
    queues: every hop of the embedded mode waited up to MEMORY_POLL_SECONDS for nothing). Queues,
    exchanges and bindings are kombu's own, shared by the whole process as before."""

    Channel = _WakingMemoryChannel

    def drain_events(self, connection: Any, timeout: Any = None) -> Any:  # type: ignore[override]
        started = time.monotonic()
        cycle: Any = self.cycle
        while True:
            seen = _ARRIVALS.count  # read before looking, so a put in between is not slept through
            try:
                cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                remaining = None if timeout is None else timeout - (time.monotonic() - started)
                if remaining is not None and remaining <= 0:
                    raise TimeoutError from None
                pause = self.polling_interval or MEMORY_POLL_SECONDS
                _ARRIVALS.wait_after(seen, pause if remaining is None else min(pause, remaining))


# What one read from the broker's socket may take beyond the bytes the frame in hand needs.
READ_AHEAD_BYTES = 256 * 1024


class _ReadAheadTCPTransport(TCPTransport):  # type: ignore[misc]
    """py-amqp's TCP transport, except that a read takes whatever has already arrived (up to
    READ_AHEAD_BYTES) into the transport's buffer instead of exactly the bytes asked for. py-amqp
    asks for every frame in three reads (its header, payload and end byte), and a delivered
    message is three frames: nine system calls per message, each letting go of the GIL that the
    other threads of the process then contend for. With the buffer, a batch of deliveries or of
    confirms that arrived together is read in one call and parsed from memory.

    Everything else is py-amqp's: frames are still read by ``read_frame``, and a timeout in the
    middle of a frame keeps what was read (the buffer is the transport's own ``_read_buffer``).
    Safe because every reader of this connection goes through ``drain_events``; nothing waits on
    the socket's readiness, which buffered bytes would not show.

    A read with a timeout (every drain of the consumer and of the publisher's confirms) sets the
    socket's timeout and puts it back: two calls into the kernel for each frame. When the next
    frame is already whole in the buffer no socket read follows, and the connection reads it
    without them (:meth:`_ReadAheadConnection.blocking_read`)."""

    _poller: Any = None  # a poll object for the socket, made at the first input_waiting()

    def input_waiting(self) -> bool:
        """Whether a read now would find something: bytes already in the buffer (a frame, or
        part of one), or on the socket (a poll with no wait: one call into the kernel)."""
        if self._read_buffer:  # type: ignore[has-type]
            return True
        if self.sock is None:
            return True  # closed: py-amqp's own read raises what that means
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(self.sock, select.POLLIN)
        return bool(self._poller.poll(0))

    def whole_frame_buffered(self) -> bool:
        buffered: bytes = self._read_buffer  # type: ignore[has-type]
        if len(buffered) < FRAME_HEADER.size:
            return False
        _type, _channel, size = FRAME_HEADER.unpack_from(buffered)
        return len(buffered) >= FRAME_HEADER.size + size + 1  # header, payload, end byte

    def _read(self, n: int, initial: bool = False) -> bytes:
        """Exactly ``n`` bytes: from the buffer, topped up by reads of whatever has arrived.
        ``initial``: the first read of a frame, where "nothing yet" on a socket without
        blocking is a timeout (py-amqp's contract for ``drain_events(timeout=0)``)."""
        buffered: bytes = self._read_buffer  # type: ignore[has-type]
        try:
            while len(buffered) < n:
                buffered += self._receive(max(n - len(buffered), READ_AHEAD_BYTES), initial)
        except BaseException:
            self._read_buffer = buffered  # a timeout or an error keeps what was read
            raise
        self._read_buffer = buffered[n:]
        return buffered[:n]

    def _receive(self, size: int, initial: bool) -> bytes:
        while True:
            try:
                chunk: bytes = self._quick_recv(size)
            except (BlockingIOError, InterruptedError):
                if initial and self.raise_on_initial_eintr:
                    raise TimeoutError("nothing to read yet") from None
                continue
            if not chunk:
                raise OSError("the broker closed the connection")
            return chunk


class _ReadAheadConnection(pyamqp.Connection):  # type: ignore[misc]
    def blocking_read(self, timeout: float | None = None) -> Any:
        """py-amqp's, except that a frame already whole in the buffer is read without setting the
        socket's timeout (and putting it back) around a read that does not happen; and a read
        that must not wait (``timeout=0``: the consumer taking what else has arrived into its
        batch, py-amqp looking for a ``connection.blocked`` before each publish) finds out with
        one poll that nothing has, instead of the timeout set to zero, a read and the timeout
        put back. Either way it is the same timeout error py-amqp raises."""
        transport = self.transport
        if timeout is not None and isinstance(transport, _ReadAheadTCPTransport):
            if transport.whole_frame_buffered():
                return self.on_inbound_frame(transport.read_frame())
            if timeout == 0 and not transport.input_waiting():
                raise TimeoutError("nothing to read yet")
        return super().blocking_read(timeout)

    def Transport(  # noqa: N802 (py-amqp's name and arguments)
        self,
        host: str,
        connect_timeout: float | None,
        ssl: Any = False,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        socket_settings: Any = None,
        **kwargs: Any,
    ) -> Any:
        options = dict(
            read_timeout=read_timeout, write_timeout=write_timeout, socket_settings=socket_settings
        )
        if ssl:
            return super().Transport(host, connect_timeout, ssl, **options, **kwargs)
        return _ReadAheadTCPTransport(host, connect_timeout=connect_timeout, ssl=ssl, **options, **kwargs)


class ReadAheadAMQPTransport(pyamqp.Transport):  # type: ignore[misc]
    """kombu's py-amqp transport on :class:`_ReadAheadTCPTransport` (TLS connections keep
    py-amqp's own)."""

    Connection = _ReadAheadConnection


def is_memory(settings: Settings) -> bool:
    return settings.BROKER_URL.startswith("memory://")


def safe_url(url: str) -> str:
    """The broker URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def connect(
    settings: Settings, *, name: str = "headshots", connect_timeout: float | None = None
) -> Connection:
    """A kombu Connection configured for this package (not connected yet)."""
    if is_memory(settings):
        return Connection(
            settings.BROKER_URL,
            transport=WakingMemoryTransport,
            transport_options={"polling_interval": MEMORY_POLL_SECONDS},
        )
    timeout = (
        connect_timeout if connect_timeout is not None else min(CONNECT_TIMEOUT, settings.PUBLISH_TIMEOUT)
    )
    transport_options: dict[str, Any] = {
        "confirm_publish": True,
        # py-amqp takes these as Connection keyword arguments: the name shows in rabbitmqctl.
        "client_properties": {"connection_name": name},
    }
    return Connection(
        settings.BROKER_URL,
        transport=ReadAheadAMQPTransport if urlsplit(settings.BROKER_URL).scheme == "amqp" else None,
        heartbeat=settings.HEARTBEAT,
        connect_timeout=timeout,
        transport_options=transport_options,
    )


def open_connection(
    settings: Settings, *, name: str = "headshots", deadline: float | None = None, attempts: int = 3
) -> Connection:
    """Connect now, retrying a few times with a short backoff, but never past ``deadline``
    (a ``time.monotonic()`` value). Raises :class:`BrokerUnavailable` with the reason."""
    last: BaseException | None = None
    delay = 0.1
    for attempt in range(1, attempts + 1):
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            break
        timeout = CONNECT_TIMEOUT if remaining is None else max(0.1, min(CONNECT_TIMEOUT, remaining))
        conn = connect(settings, name=name, connect_timeout=timeout)
        try:
            # kombu's connect() retries once after a 2 s sleep; we do our own bounded retries.
            conn.ensure_connection(max_retries=0, reraise_as_library_errors=False)
            return conn
        except Exception as exc:  # kombu wraps socket/amqp errors in several types: all mean "not reachable"
            last = exc
            release_quietly(conn)
        if attempt < attempts:
            pause = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            delay *= 3
    raise BrokerUnavailable(f"broker at {safe_url(settings.BROKER_URL)} is unreachable: {last}")


def release_quietly(conn: Connection) -> None:
    """Close a connection that may already be dead (closing one may raise; it is gone anyway)."""
    with contextlib.suppress(Exception):
        conn.release()


def check_broker(settings: Settings, timeout: float = 2.0) -> None:
    """Readiness probe: connect and close within ``timeout`` seconds or raise BrokerUnavailable."""
    if is_memory(settings):
        return
    conn = connect(settings, name="readiness check", connect_timeout=timeout)
    try:
        conn.ensure_connection(max_retries=0, reraise_as_library_errors=False)
    except Exception as exc:
        raise BrokerUnavailable(f"broker at {safe_url(settings.BROKER_URL)} is unreachable: {exc}") from exc
    finally:
        release_quietly(conn)


def reset_memory_broker() -> None:
    """Forget every queue, exchange and binding of the in-process ``memory://`` broker.

    kombu keeps them in class-level state shared by the whole process (the vhost in the URL is
    ignored), so tests that run one after another in a process call this between them.
    """
    memory.Channel.queues.clear()
    memory.Channel.events.clear()
    memory.Transport.global_state.clear()
