"""The generation worker's event handlers, run by libs/messaging's consumer (prefetch 1: one
session at a time per worker).

    HANDLERS[PHOTOS_PROCESSED](message, generation=Generation.build(settings, db, blobs))

``photos.processed`` runs a whole session (person model, every headshot, completion). Unlike most
handlers it commits as it goes, through its own units of work (:mod:`.checkpoints`), not the
consumer's transaction: that one only records the message as processed at the end. A redelivered
message (a crash, a lost connection, RabbitMQ's consumer timeout on a long render) therefore
resumes from the images already stored, and a session already completed is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from libs.contracts import MODELS_RETIRED, PHOTOS_PROCESSED, EventType, Message
from libs.db import Database, UnitOfWork
from libs.settings import Settings
from libs.storage import BlobStore
from services.generation.job import Generation

log = logging.getLogger("headshots.generation")


def handle_photos_processed(message: Message, *, generation: Generation) -> None:
    """Render the session's headshots from its prepared photos.

    ``{"type": "photos.processed", "session_id": "a51b…", "data": {"photo_ids": ["best…", "next…"]}}``
    """
    assert message.session_id is not None  # the contract requires it for this event
    generation.run(message.org_id, message.session_id, list(message.data["photo_ids"]))


def handle_models_retired(message: Message, *, uow: UnitOfWork, generation: Generation) -> None:
    """Delete the files of person models past retention; a replay finds nothing left to delete.

    ``{"type": "models.retired", "session_id": null, "data": {"person_model_ids": ["…"]}}``
    """
    ids = list(message.data["person_model_ids"])
    retired = generation.retire(uow, ids)
    log.info("person models retired: %d of %d named (the others were already)", retired, len(ids))


def build_deps(settings: Settings, db: Database, blobs: BlobStore) -> dict[str, Any]:
    return {"generation": Generation.build(settings, db, blobs)}


HANDLERS: dict[EventType, Callable[..., Any]] = {
    PHOTOS_PROCESSED: handle_photos_processed,
    MODELS_RETIRED: handle_models_retired,
}
