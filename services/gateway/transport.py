"""Websocket frames go out uncompressed.

simple-websocket accepts permessage-deflate whenever a client offers it (browsers always do).
A pushed event is ~200 bytes of JSON, so compression saves a few dozen bytes per event but costs
every connection a zlib compressor and decompressor for its lifetime and every event one
compression per page: the per-page work of a fan-out to a room. Taking the offer out of the
handshake makes the server answer without the extension; nothing else changes for the page.

    app.wsgi_app = WithoutCompression(app.wsgi_app)   # outside Flask-SocketIO's middleware
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

OFFER = "HTTP_SEC_WEBSOCKET_EXTENSIONS"


class WithoutCompression:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.pop(OFFER, None)
        return self.app(environ, start_response)
