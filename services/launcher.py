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
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from flask import Flask, jsonify
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import BaseWSGIServer, make_server

from libs.db import Database
from libs.db.demo import DemoData, seed_demo
from libs.db.migrate import upgrade
from libs.messaging import Bus, check_broker
from libs.settings import Settings
from libs.storage import BlobStore, make_blob_store
from libs.web import create_base_app, invite_url
from services import SERVICE_NAMES, WEB_MOUNTS

log = logging.getLogger("headshots.launcher")


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

    def shutdown(self) -> None:
        self.stop.set()
        for stopper in self.stoppers:
            stopper()
        if self.server is not None:
            self.server.shutdown()
        for t in self.threads:
            t.join(timeout=10)
        self.platform.db.dispose()


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
    base = platform.settings.public_url
    urls = {name: f"{base}{WEB_MOUNTS[name]}/" for name in apps}
    root = apps.pop("intake", None) if WEB_MOUNTS.get("intake") == "" else None
    if root is None:
        root = platform_app(platform, urls)
    mounts: dict[str, Any] = {WEB_MOUNTS[name]: app for name, app in apps.items()}
    return (DispatcherMiddleware(root, mounts) if mounts else root), urls


def start(
    settings: Settings,
    *,
    only: set[str] | None = None,
    web: bool = True,
    workers: bool = True,
    relay: bool = True,
    seed: bool = False,
) -> Running:
    """Start the chosen parts in background threads and return a handle to stop them."""
    platform = Platform(settings)
    if settings.database_url.startswith("sqlite"):
        upgrade(settings.database_url)  # the embedded database is ours to create
    stop = threading.Event()
    threads: list[threading.Thread] = []
    stoppers: list[Callable[[], None]] = []

    platform.bus.declare()
    if relay:
        outbox = platform.bus.relay()
        t = threading.Thread(target=outbox.run_forever, args=(stop,), name="outbox-relay", daemon=True)
        t.start()
        threads.append(t)
    if workers:
        for name, module in worker_services(only).items():
            build_deps = getattr(module, "build_deps", None)
            deps = build_deps(settings, platform.db, platform.blobs) if build_deps else {}
            consumer = platform.bus.consumer(name, module.HANDLERS, deps)
            threads.append(consumer.start_in_thread())
            stoppers.append(consumer.stop)
            log.info("worker %s consuming %s", name, ", ".join(str(e) for e in module.HANDLERS))
            background = getattr(module, "run_background", None)
            if background is not None:  # a loop of the worker beside its consumer (e.g. webhook retries)
                t = threading.Thread(
                    target=background,
                    args=(settings, platform.db, stop),
                    name=f"{name}-background",
                    daemon=True,
                )
                t.start()
                threads.append(t)

    server = None
    urls: dict[str, str] = {}
    if web:
        # Bind first so that port 0 (any free port, used by tests) is known before links are built.
        server = make_server(settings.HOST, settings.PORT, _not_ready, threaded=True)
        if settings.PORT == 0:
            settings = platform.settings = settings.replace(PORT=server.server_port)
        server.app, urls = build_wsgi(platform, only)
        t = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        t.start()
        threads.append(t)

    running = Running(platform, server, stop, threads, stoppers, urls)
    if seed:
        print_demo(settings, seed_demo(platform.db))
    return running


def run_until_stopped(running: Running) -> None:
    """Block until Ctrl-C or SIGTERM, then stop everything cleanly (messages in hand are finished)."""
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    print("Stopping…", flush=True)
    running.shutdown()
    print("Stopped.", flush=True)


def _not_ready(environ: Any, start_response: Any) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


def print_demo(settings: Settings, demo: DemoData) -> None:
    print(f"\nDemo sign-in links (valid for {settings.INVITE_TTL_SECONDS // 60} minutes):")
    for user in (demo.admin, *demo.employees, demo.other_employee):
        print(f"  {user.role:<10} {user.email:<28} {invite_url(settings, user)}")
    ops = f"{WEB_MOUNTS['ops']}/invite/"  # support staff sign in to the ops dashboard
    print(f"  {demo.support.role:<10} {demo.support.email:<28} {invite_url(settings, demo.support, ops)}")
    print()
