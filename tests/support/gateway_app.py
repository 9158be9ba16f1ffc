"""The gateway app in a test process, without a server: Flask-SocketIO's test client plays the
page, a Flask test client holds the sign-in cookie (the gateway reads the intake cookie).

    gw = GatewayUnderTest.build(settings, db)
    page = gw.page(session_id, user=bea)          # connected, or refused (page.is_connected() False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask_socketio import SocketIOTestClient

from libs.db import Database, User
from libs.settings import Settings
from services.gateway.app import Gateway, create_app
from services.gateway.rooms import NAMESPACE


@dataclass
class GatewayUnderTest:
    app: Flask
    gateway: Gateway

    @classmethod
    def build(cls, settings: Settings, db: Database) -> GatewayUnderTest:
        app = create_app(settings, db=db, checks={})
        return cls(app, app.extensions["headshots.gateway"])

    def page(
        self, session_id: Any, *, user: User | None = None, token: str | None = None
    ) -> SocketIOTestClient:
        http = self.app.test_client()
        if user is not None:
            with http.session_transaction() as cookie:
                cookie["user_id"] = user.id
        auth: dict[str, Any] = {"session_id": session_id}
        if token is not None:
            auth["token"] = token
        return self.gateway.socketio.test_client(
            self.app, namespace=NAMESPACE, auth=auth, flask_test_client=http
        )


def follow(page: SocketIOTestClient, last_id: int | None = None) -> Any:
    return page.emit(
        "follow", {} if last_id is None else {"last_id": last_id}, namespace=NAMESPACE, callback=True
    )


def received(page: SocketIOTestClient) -> list[tuple[str, dict[str, Any]]]:
    return [(item["name"], item["args"][0]) for item in page.get_received(NAMESPACE)]
