"""Run the product: every service in one process (embedded), or a chosen few (distributed).

    python -m services                      # embedded: memory:// broker, SQLite, folders under var/
    python -m services run --only intake    # one service, with whatever settings the environment gives
    python -m services relay                # the outbox relay alone

It finds the services that exist by convention:

- ``services/<name>/app.py`` with ``create_app(settings, *, db=None, blobs=None, checks=None)`` is a web
  app, mounted at ``WEB_MOUNTS[name]`` under one WSGI server;
- ``services/<name>/handlers.py`` with ``HANDLERS = {EventType: handler}`` (and optionally
  ``build_deps(settings, db, blobs) -> dict`` for the handlers' keyword arguments) is a worker,
  run as a consumer thread; its optional ``run_background(settings, db, stop_event)`` runs in one
  more thread until the stop event is set.

The outbox relay runs as one more thread, woken after each commit in the embedded mode.

Stopping: a command's ``main`` calls :func:`services.stopping.catch_stop_signals` first, so Ctrl-C
and SIGTERM only set the ``stop`` event it passes to :func:`start`. ``start`` checks it between its
steps (migrations, topology, threads, demo data) and :func:`run_until_stopped` then stops whatever
was started, within one overall deadline: every thread is joined before the process exits. (Before,
Ctrl-C was only caught once the final wait began and SIGTERM killed the process outright until
then; a KeyboardInterrupt escaping from ``start`` let the interpreter exit with the relay, consumer
and HTTP threads still running, which Python stops abruptly wherever they are; and the HTTP
server's ``shutdown()`` had no bound at all.) If a part is still stuck at the deadline, the process
says which and exits anyway, rather than leave the interpreter to wait on it.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from flask import Flask, jsonify
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import BaseWSGIServer, make_server

from libs.db import Database
from libs.db.demo import DemoData, seed_demo
from libs.db.migrate import upgrade_if_embedded
from libs.messaging import Bus, check_broker
from libs.settings import Settings
from libs.storage import BlobStore, make_blob_store
from libs.web import create_base_app, invite_url
from services import SERVICE_NAMES, WEB_MOUNTS, stopping

log = logging.getLogger("headshots.launcher")

# How long stopping may take in all. Each part stops within a second (consumers drain in 0.25 s
# steps, the relay waits in 0.1 s steps, the HTTP server polls every 0.5 s); this bound is only
# for a part stuck in something we do not control (a handler in a long call, a dead socket).
STOP_SECONDS = 20.0


def _optional_module(name: str) -> ModuleType | None:
    """Import services.<name> if that file exists. A broken module raises: it is never hidden."""
    if importlib.util.find_spec(name.rsplit(".", 1)[0]) is None or importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def web_services(only: set[str] | None = None) -> dict[str, Callable[..., Flask]]:
    found = {}
    for name in SERVICE_NAMES:
        if only is not None and name not in only:
            continue
        module = _optional_module(f"services.{name}.app")
        if module is not None and name in WEB_MOUNTS:
            found[name] = module.create_app
    return found


def worker_services(only: set[str] | None = None) -> dict[str, ModuleType]:
    found = {}
    for name in SERVICE_NAMES:
        if only is not None and name not in only:
            continue
        module = _optional_module(f"services.{name}.handlers")
        if module is not None and getattr(module, "HANDLERS", None):
            found[name] = module
    return found


@dataclass
class Platform:
    """Everything the services share in one process, built from settings."""

    settings: Settings
    db: Database = field(init=False)
    blobs: BlobStore = field(init=False)
    bus: Bus = field(init=False)
    # Tasks a web app needs running beside it (the gateway's event listener): objects with
    # start() -> Thread and stop(), listed by the app in app.extensions["headshots.background"].
    background: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.db = Database(self.settings.database_url)
        self.blobs = make_blob_store(self.settings)
        self.bus = Bus(self.settings, self.db)

    def checks(self) -> dict[str, Callable[[], None]]:
        return {"broker": lambda: check_broker(self.settings)}


@dataclass
class Running:
    platform: Platform
    server: BaseWSGIServer | None
    stop: threading.Event
    threads: list[threading.Thread]
    stoppers: list[Callable[[], None]]
    urls: dict[str, str]
    closers: list[Callable[[], None]] = field(default_factory=list)  # after the threads ended
    # The outbox relay stops last, with an event of its own: what the consumers' messages in hand
    # and the last requests commit while they finish is still published by this process.
    relay: tuple[threading.Event, threading.Thread] | None = None

    def shutdown(self) -> list[str]:
        """Stop every part; return the names of threads still running after STOP_SECONDS."""
        self.stop.set()
        for stopper in self.stoppers:
            stopper()
        deadline = time.monotonic() + STOP_SECONDS
        if self.server is not None:
            self._stop_http(deadline)
        for t in self.threads:
            if self.relay is None or t is not self.relay[1]:
                t.join(max(0.0, deadline - time.monotonic()))
        if self.relay is not None:
            relay_stop, relay_thread = self.relay
            relay_stop.set()
            relay_thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self.threads if t.is_alive()]
        if not stuck:  # never under a thread still using them
            for close in self.closers:
                close()
            self.platform.db.dispose()
        return stuck

    def _stop_http(self, deadline: float) -> None:
        assert self.server is not None
        http = next((t for t in self.threads if t.name == "http"), None)
        if http is None:  # bound, never served (stopped during start): just close the socket
            self.server.server_close()
            return
        # socketserver's shutdown() waits without a bound for serve_forever to notice; serve_forever
        # checks every 0.5 s, so ask from a helper thread and wait for the loop itself, bounded.
        threading.Thread(target=self.server.shutdown, name="http-shutdown", daemon=True).start()
        http.join(max(0.0, deadline - time.monotonic()))


def platform_app(platform: Platform, mounted: dict[str, str]) -> Flask:
    """The root app when no service claims '/': health, readiness, metrics and a list of services."""
    app = create_base_app(
        __name__,
        "platform",
        platform.settings,
        db=platform.db,
        blobs=platform.blobs,
        checks=platform.checks(),
    )

    @app.get("/")
    def index() -> Any:
        return jsonify({"services": {name: url for name, url in mounted.items()}})

    return app


def build_wsgi(platform: Platform, only: set[str] | None = None) -> tuple[Any, dict[str, str]]:
    apps = {
        name: factory(platform.settings, db=platform.db, blobs=platform.blobs, checks=platform.checks())
        for name, factory in web_services(only).items()
    }
    for app in apps.values():
        platform.background.extend(app.extensions.get("headshots.background", ()))
    base = platform.settings.public_url
    urls = {name: f"{base}{WEB_MOUNTS[name]}/" for name in apps}
    root = apps.pop("intake", None) if WEB_MOUNTS.get("intake") == "" else None
    if root is None:
        root = platform_app(platform, urls)
    mounts: dict[str, Any] = {WEB_MOUNTS[name]: app for name, app in apps.items()}
    return (DispatcherMiddleware(root, mounts) if mounts else root), urls


def start_relay(
    platform: Platform, stop: threading.Event, *, own_rows_only: bool = False
) -> tuple[threading.Thread, Callable[[], None]]:
    """The outbox relay in a thread of its own until ``stop`` is set; returns the thread and what
    closes the relay once the thread has ended."""
    outbox = platform.bus.relay()
    t = threading.Thread(
        target=outbox.run_forever,
        args=(stop,),
        kwargs={"own_rows_only": own_rows_only},
        name="outbox-relay",
        daemon=True,
    )
    t.start()
    return t, outbox.close


def start(
    settings: Settings,
    *,
    only: set[str] | None = None,
    web: bool = True,
    workers: bool = True,
    relay: bool = True,
    own_rows_only: bool = False,
    seed: bool = False,
    stop: threading.Event | None = None,
) -> Running:
    """Start the chosen parts in background threads and return a handle to stop them.

    ``stop`` (usually from :func:`services.stopping.catch_stop_signals`) is checked between the
    steps: once it is set nothing more is started, and the handle stops what already runs.
    ``own_rows_only``: the relay publishes only the outbox rows this process writes (PostgreSQL;
    the relay process publishes the rest, libs/messaging/relay.py)."""
    platform = Platform(settings)
    running = Running(platform, None, stop or threading.Event(), [], [], {})
    stop = running.stop
    upgrade_if_embedded(settings.database_url)
    if stop.is_set():
        return running
    platform.bus.declare()
    if relay and not stop.is_set():
        relay_stop = threading.Event()  # set by shutdown() once everything else has stopped
        t, close = start_relay(platform, relay_stop, own_rows_only=own_rows_only)
        running.closers.append(close)  # unhooks its commit listeners from SQLAlchemy
        running.threads.append(t)
        running.relay = (relay_stop, t)
    for name, module in (worker_services(only) if workers else {}).items():
        if stop.is_set():
            break
        build_deps = getattr(module, "build_deps", None)
        deps = build_deps(settings, platform.db, platform.blobs) if build_deps else {}
        consumer = platform.bus.consumer(name, module.HANDLERS, deps)
        running.stoppers.append(consumer.stop)  # before the thread starts: stop() is never missed
        running.threads.append(consumer.start_in_thread())
        log.info("worker %s consuming %s", name, ", ".join(str(e) for e in module.HANDLERS))
        background = getattr(module, "run_background", None)
        if background is not None:  # a loop of the worker beside its consumer (e.g. webhook retries)
            t = threading.Thread(
                target=background, args=(settings, platform.db, stop), name=f"{name}-background", daemon=True
            )
            t.start()
            running.threads.append(t)

    if web and not stop.is_set():
        # Bind first so that port 0 (any free port, used by tests) is known before links are built.
        server = running.server = make_server(settings.HOST, settings.PORT, _not_ready, threaded=True)
        if settings.PORT == 0:
            settings = platform.settings = settings.replace(PORT=server.server_port)
        server.app, running.urls = build_wsgi(platform, only)
        for task in platform.background:
            if stop.is_set():
                break
            running.stoppers.append(task.stop)
            running.threads.append(task.start())
        if not stop.is_set():
            t = threading.Thread(target=server.serve_forever, name="http", daemon=True)
            t.start()
            running.threads.append(t)

    if seed and not stop.is_set():
        log.info("creating the demo data")
        print_demo(settings, seed_demo(platform.db))
    return running


def run_until_stopped(running: Running) -> None:
    """Block until Ctrl-C or SIGTERM, then stop everything cleanly (messages in hand are finished).

    The caller should have called :func:`services.stopping.catch_stop_signals` first thing and
    passed its event to :func:`start`; if it did not, the signals are caught from here on."""
    signalled = stopping.catch_stop_signals()  # idempotent: the same process-wide event
    while not (running.stop.is_set() or signalled.is_set()):
        running.stop.wait(0.2)
    print("Stopping…", flush=True)
    stuck = running.shutdown()
    print("Stopped.", flush=True)
    if stuck:
        # Exiting the interpreter normally would wait on (or deadlock in) these threads.
        log.error("still running after %.0f s, left behind: %s", STOP_SECONDS, ", ".join(stuck))
        _exit_now(0)


def _exit_now(code: int) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _not_ready(environ: Any, start_response: Any) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


def print_demo(settings: Settings, demo: DemoData) -> None:
    print(f"\nDemo sign-in links (valid for {settings.INVITE_TTL_SECONDS // 60} minutes):")
    admin = f"{WEB_MOUNTS['review']}/invite/"  # org admins sign in to the review console
    print(f"  {demo.admin.role:<10} {demo.admin.email:<28} {invite_url(settings, demo.admin, admin)}")
    for user in (*demo.employees, demo.other_employee):
        print(f"  {user.role:<10} {user.email:<28} {invite_url(settings, user)}")
    ops = f"{WEB_MOUNTS['ops']}/invite/"  # support staff sign in to the ops dashboard
    print(f"  {demo.support.role:<10} {demo.support.email:<28} {invite_url(settings, demo.support, ops)}")
    print()
