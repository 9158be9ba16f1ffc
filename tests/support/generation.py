"""Shared setup for the generation worker's tests: sessions ready for generation, fake engines.

    ids = ready_session(db, blobs, org_id, user_id, full_name="Zoë Unique-7f3a")
    message = photos_processed(org_id, ids)        # what the preparation worker publishes
    engine = FakeEngine(settings, models_dir=tmp)  # renders plain images; failures on demand

A ready session is what preparation leaves behind: state ``preprocessing``, the person's choices,
and Photo rows with a prepared crop, a training crop, a quality score, the verdict ``kept`` and
intake's face embedding, all from skimage's astronaut (a real portrait, no download).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select

from libs.contracts import PHOTOS_PROCESSED, EventType, Message, new_message
from libs.db import ChosenStyle, Database, HeadshotSession, OutboxMessage, Photo
from libs.imaging import crop_face, detect_faces, encode_jpeg, face_embedding
from libs.settings import Settings
from libs.storage import BlobStore
from services.generation.engines.base import (
    Engine,
    PersonAttributes,
    Progress,
    ProgressCallback,
    RenderedHeadshot,
    TrainedModel,
    check_cancel,
    report,
    write_json_atomic,
)
from services.generation.engines.errors import PersonModelError
from services.generation.plan import ShotPlan, shot_seed


@cache
def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@cache
def astronaut_crops() -> tuple[bytes, bytes, tuple[float, ...]]:
    """(prepared JPEG, training JPEG, embedding) of the astronaut, computed once per process."""
    rgb = astronaut()
    face = detect_faces(rgb)[0]
    return encode_jpeg(rgb), encode_jpeg(crop_face(rgb, face, size=256)), face_embedding(rgb, face)


@dataclass(frozen=True)
class ReadySession:
    org_id: str
    session_id: str
    photo_ids: tuple[str, ...]


def ready_session(
    db: Database,
    blobs: BlobStore,
    org_id: str,
    user_id: str,
    *,
    package: str = "starter",
    format_id: str = "standard",
    styles: Sequence[str] = ("navy:suit",),
    photos: int = 2,
    full_name: str = "Bea Employee",
    state: str = "preprocessing",
) -> ReadySession:
    prepared, training, embedding = astronaut_crops()
    with db.uow(org_id=org_id) as uow:
        hs = HeadshotSession(
            org_id=org_id,
            user_id=user_id,
            state=state,
            package_id=package,
            format_id=format_id,
            full_name=full_name,
            gender="female",
            eye_color="brown",
            glasses="glasses",
        )
        uow.session.add(hs)
        uow.flush()
        for position, style in enumerate(styles):
            uow.session.add(ChosenStyle(org_id=org_id, session_id=hs.id, style_id=style, position=position))
        rows = []
        for n in range(photos):
            row = Photo(
                org_id=org_id,
                session_id=hs.id,
                original_key=blobs.put(prepared, kind="originals", ext="jpg"),
                clean_key=blobs.put(prepared, kind="photos", ext="jpg"),
                prepared_key=blobs.put(prepared, kind="prepared", ext="jpg"),
                training_key=blobs.put(training, kind="training", ext="jpg"),
                quality_score=0.9 - n / 10,
                decision="kept",
                width=512,
                height=512,
                embedding=list(embedding),
            )
            uow.session.add(row)
            rows.append(row)
        uow.commit()
        return ReadySession(org_id, hs.id, tuple(r.id for r in rows))


def photos_processed(ready: ReadySession) -> Message:
    return new_message(
        PHOTOS_PROCESSED, org_id=ready.org_id, session_id=ready.session_id, photo_ids=list(ready.photo_ids)
    )


def outbox_of(db: Database, session_id: str, event: EventType | None = None) -> list[OutboxMessage]:
    with db.session(all_orgs=True) as db_session:
        query = select(OutboxMessage).where(OutboxMessage.session_id == session_id).order_by(OutboxMessage.id)
        rows = list(db_session.scalars(query))
    return [r for r in rows if event is None or r.routing_key == event.routing_key]


def session_state(db: Database, ready: ReadySession) -> str:
    with db.session(org_id=ready.org_id) as db_session:
        hs = db_session.get(HeadshotSession, ready.session_id)
        assert hs is not None
        return hs.state


class FakeEngine(Engine):
    """An engine that renders plain grey images (or a real face) and fails when told to.

    - ``fail_prepare``: raised by prepare;
    - ``fail_at``: ``(n, error)`` raised instead of the n-th image rendered (1-based, whole life);
    - ``oom``: how many renders raise ``oom_error`` (an OutOfMemory) before their first image;
    - ``face_on_retry``: first renders are blank, re-renders with another seed show the astronaut;
      ``always_face``: every image shows the astronaut;
    - ``after_image``: called with the count of images so far after each one is taken;
    - ``on_gpu``: renders as a GPU engine would (the worker then stores on its helper thread).
    """

    name = "fake"
    model_suffix = ".json"

    def __init__(self, settings: Settings, models_dir: Path, **options: Any) -> None:
        super().__init__(settings, models_dir=models_dir)
        self.fail_prepare: Exception | None = options.pop("fail_prepare", None)
        self.fail_at: tuple[int, Exception] | None = options.pop("fail_at", None)
        self.oom: int = options.pop("oom", 0)
        self.oom_error: Exception | None = options.pop("oom_error", None)
        self.face_on_retry: bool = options.pop("face_on_retry", False)
        self.always_face: bool = options.pop("always_face", False)
        self.after_image: Callable[[int], None] | None = options.pop("after_image", None)
        self.on_gpu: bool = options.pop("on_gpu", False)
        if options:
            raise TypeError(f"unknown options {sorted(options)}")
        self.rendered: list[tuple[str, int, int]] = []  # (style, index, seed) of every image
        self.batch_sizes: list[int] = []
        self.attributes_seen: list[PersonAttributes] = []
        self.prepared_from: list[list[Path]] = []

    @property
    def renders_on_cpu(self) -> bool:
        return not self.on_gpu

    def prepare(
        self,
        person_id: str,
        photos: Sequence[Path],
        attributes: PersonAttributes,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> TrainedModel:
        self.attributes_seen.append(attributes)
        self.prepared_from.append(list(photos))
        if self.fail_prepare is not None:
            raise self.fail_prepare
        if not photos:
            raise PersonModelError("no photos")
        for done in range(1, len(photos) + 1):
            check_cancel(cancel, "preparing")
            report(progress, Progress("training", done, len(photos)))
        path = self.model_path(person_id)
        write_json_atomic(path, {"photos": [str(p) for p in photos]})
        return TrainedModel(path=path, engine=self.name, trigger="", base_model="fake-1")

    def render(
        self,
        model: TrainedModel,
        plan: ShotPlan,
        attributes: PersonAttributes,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[RenderedHeadshot]:
        self.check_model(model)
        self.attributes_seen.append(attributes)
        self.batch_sizes.append(self.settings.BATCH_SIZE)
        if self.oom > 0:
            self.oom -= 1
            assert self.oom_error is not None
            raise self.oom_error
        return self._images(plan, progress, cancel)

    def _images(
        self, plan: ShotPlan, progress: ProgressCallback | None, cancel: threading.Event | None
    ) -> Iterator[RenderedHeadshot]:
        for done, shot in enumerate(plan.shots, start=1):
            check_cancel(cancel, "rendering")
            if self.fail_at is not None and len(self.rendered) + 1 == self.fail_at[0]:
                raise self.fail_at[1]
            self.rendered.append((shot.style_id, shot.index, shot.seed))
            first_try = shot.seed == shot_seed(plan.session_key, shot.style_id, shot.index)
            if self.always_face or (self.face_on_retry and not first_try):
                image = Image.fromarray(astronaut()).resize(shot.size)
            else:
                image = Image.new("RGB", shot.size, (128, 128, 128))
            report(progress, Progress("generating", done, len(plan)))
            yield RenderedHeadshot(shot, image)
            if self.after_image is not None:
                self.after_image(len(self.rendered))
