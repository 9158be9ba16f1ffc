"""Preprocess's event handler: an approved session's photos become training-ready crops.

    HANDLERS[SESSION_APPROVED](message, uow=uow, db=db, blobs=blobs, options=options)

Run by libs/messaging's consumer inside one transaction (``uow``), which also records the message
as processed. The photos are prepared one by one, each committed on its own through ``db``
(services/preprocess/photos.py), so a worker killed mid-session resumes where it stopped; the
decision and ``photos.processed`` are written in the consumer's transaction, so they happen once.

Safe to receive twice: a redelivered approval after success finds ``photos.processed`` already in
the session's timeline and changes nothing; a session deleted, unknown or in another state is
logged and acknowledged, never retried into the dead-letter queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from libs.contracts import SESSION_APPROVED, EventType, Message
from libs.db import Database, UnitOfWork
from libs.settings import Settings
from libs.storage import BlobStore
from services.preprocess import steps
from services.preprocess.options import PreprocessOptions
from services.preprocess.photos import prepare_one

log = logging.getLogger("headshots.preprocess")


def handle_session_approved(
    message: Message, *, uow: UnitOfWork, db: Database, blobs: BlobStore, options: PreprocessOptions
) -> None:
    """Prepare the session's photos, choose the best, publish ``photos.processed``.

    ``{"type": "session.approved", "session_id": "a51b…", "data": {"auto": true, "reviewer_id": null}}``
    """
    pending = steps.begin(db, message)
    if pending is None:
        return
    for source in pending:
        if prepare_one(db, blobs, options, message, source) == "stopped":
            return  # the session was deleted or failed meanwhile: nothing more to do
    steps.finish(uow, message, options)


def build_deps(settings: Settings, db: Database, blobs: BlobStore) -> dict[str, Any]:
    return {"db": db, "blobs": blobs, "options": PreprocessOptions.from_settings(settings)}


HANDLERS: dict[EventType, Callable[..., Any]] = {SESSION_APPROVED: handle_session_approved}
