"""One POST to a checked address, with a timeout, reading at most the first KB of the answer.

The connection goes to ``target.ip`` (checked by addresses.py) while the Host header and the TLS
certificate check use the name, so a second DNS answer cannot send the request elsewhere.
Redirects are not followed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass

from services.notification.webhooks.addresses import Target

EXCERPT_BYTES = 1024


@dataclass(frozen=True)
class Answer:
    status: int
    excerpt: str  # the first KB of the body, decoded leniently


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._ip = target.ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._tls)
        self._ip = target.ip

    def connect(self) -> None:
        raw = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def post(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """Raises OSError (refused, reset, timeout, TLS) or http.client.HTTPException on no answer."""
    conn: http.client.HTTPConnection = (
        _PinnedHTTPS(target, timeout) if target.scheme == "https" else _PinnedHTTP(target, timeout)
    )
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        excerpt = response.read(EXCERPT_BYTES)
        return Answer(response.status, excerpt.decode("utf-8", errors="replace"))
    finally:
        conn.close()
