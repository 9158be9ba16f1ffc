"""``python -m services.gateway``: run the websocket gateway alone (live progress for waiting pages).

    python -m services.gateway --port 8010

The Socket.IO endpoint is ``http://HOST:PORT/gateway/socket.io/`` (namespace ``/progress``).
Run as many as you like: each instance has its own queue and sees every event. Settings come from
the environment (``python -m libs.settings`` lists them); it delegates to
``python -m services run --only gateway --no-relay``.
"""

from __future__ import annotations

import argparse
import sys

from libs.settings import Settings
from libs.web import configure_logging
from services.stopping import catch_stop_signals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.gateway",
        description="The websocket gateway: pushes every step of a session to its waiting page. "
        "Each instance consumes its own queue of every per-session event.",
    )
    parser.add_argument("--host", help="address to listen on (default: HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (default: PORT)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    overrides = {k: v for k, v in (("HOST", args.host), ("PORT", args.port)) if v is not None}
    settings = settings.replace(**overrides)
    configure_logging(settings)
    from services import launcher  # after logging is configured; it imports the messaging stack

    # The gateway writes nothing to the outbox: it runs no relay of its own.
    running = launcher.start(
        settings, stop=catch_stop_signals(), only={"gateway"}, web=True, workers=False, relay=False
    )
    print(f"gateway at {running.urls.get('gateway', '?')}socket.io/  (Ctrl-C to stop)", flush=True)
    launcher.run_until_stopped(running)
    return 0


if __name__ == "__main__":
    sys.exit(main())
