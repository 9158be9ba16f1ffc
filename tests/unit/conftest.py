"""Fixtures for the unit tests: the intake app on a fresh SQLite database (the first service; the
other services' test modules build their own ``app``).

Defined as ``<name>_fixture`` with ``name="<name>"`` so that no module-level name is shadowed by a
test's parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from libs.db import Database
from libs.db.demo import DemoData, seed_demo
from libs.settings import Settings
from libs.storage import LocalBlobStore
from services.intake.app import create_app
from tests.support.intake import intake_settings_for
from tests.support.openapi import OpenApiCheckedClient


@pytest.fixture(name="intake_settings")
def intake_settings_fixture(tmp_path: Path, sqlite_url: str) -> Settings:
    return intake_settings_for(tmp_path, sqlite_url)


@pytest.fixture(name="db")
def db_fixture(intake_settings: Settings) -> Iterator[Database]:
    database = Database(intake_settings.database_url)
    yield database
    database.dispose()


@pytest.fixture(name="demo")
def demo_fixture(db: Database) -> DemoData:
    return seed_demo(db)


@pytest.fixture(name="blobs")
def blobs_fixture(intake_settings: Settings) -> LocalBlobStore:
    return LocalBlobStore(intake_settings.blob_dir)


@pytest.fixture(name="app")
def app_fixture(intake_settings: Settings, db: Database, blobs: LocalBlobStore) -> Flask:
    app = create_app(intake_settings, db=db, blobs=blobs, checks={})
    app.test_client_class = OpenApiCheckedClient  # every API answer a test sees matches the document
    return app
