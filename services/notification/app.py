"""The mail page: the e-mails the embedded mode wrote (read in the browser) and the sends that
need support's attention, mounted at ``/mail``.

    app = create_app(settings)                 # its own database
    app = create_app(settings, db=db)          # shared (the launcher, tests)
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask, Response

from libs.db import Database
from libs.settings import Settings
from libs.storage import BlobStore
from libs.web import create_base_app, error_response
from libs.web.health import ReadyCheck
from services.notification import views
from services.notification.mailbox import MailNotFound


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    blobs: BlobStore | None = None,
    checks: Mapping[str, ReadyCheck] | None = None,
) -> Flask:
    app = create_base_app(
        "services.notification", "notification", settings, db=db, blobs=blobs, checks=checks
    )

    @app.errorhandler(MailNotFound)
    def _no_mail(_exc: MailNotFound) -> Response:
        return error_response(404, "not_found", "No such e-mail.")

    app.register_blueprint(views.bp)
    return app
