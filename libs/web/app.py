"""What every Flask app of the product shares, in one factory helper.

    def create_app(settings, *, db=None, checks=None):
        app = create_base_app(__name__, "intake", settings, db=db, checks=checks)
        app.register_blueprint(views.bp)
        return app

Nothing here does I/O: the database object is created lazily by SQLAlchemy on first use.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from flask import Flask

from libs.db import Database
from libs.settings import Settings
from libs.storage import BlobStore, make_blob_store
from libs.web.csrf import install_csrf
from libs.web.errors import register_error_handlers
from libs.web.health import ReadyCheck, install_health
from libs.web.metrics import install_metrics
from libs.web.security import install_security_headers
from libs.web.text import install_nul_check


def configure_logging(settings: Settings) -> None:
    """Readable one-line logs: time, level, logger, message."""
    root = logging.getLogger()
    if not any(getattr(h, "_headshots", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
        handler._headshots = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(settings.LOG_LEVEL.upper())
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def create_base_app(
    import_name: str,
    service: str,
    settings: Settings,
    *,
    db: Database | None = None,
    blobs: BlobStore | None = None,
    checks: Mapping[str, ReadyCheck] | None = None,
) -> Flask:
    app = Flask(import_name)
    app.logger.name = f"headshots.{service}"
    app.config.update(
        SECRET_KEY=settings.SECRET_KEY,
        SESSION_COOKIE_NAME="headshots_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.SECURE_COOKIES,
        PERMANENT_SESSION_LIFETIME=timedelta(days=7),
        # Uploads larger than the photo limit (plus form overhead) are refused before reading.
        MAX_CONTENT_LENGTH=settings.MAX_UPLOAD_BYTES + 1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    db = db or Database(settings.database_url)
    app.extensions["headshots.db"] = db
    blobs = blobs or make_blob_store(settings)
    app.extensions["headshots.blobs"] = blobs
    app.extensions["headshots.settings"] = settings
    app.extensions["headshots.service"] = service
    register_error_handlers(app)
    install_nul_check(app)  # first: no later check or handler sees a NUL
    install_security_headers(app, blobs)
    install_csrf(app)
    install_metrics(app, service)
    all_checks: dict[str, ReadyCheck] = {"database": db.ping}
    all_checks.update(checks or {})
    install_health(app, all_checks)
    return app
