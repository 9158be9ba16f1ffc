"""One session's generation, from prepared photos to completed: the flow, with the engine.

    Generation.build(settings, db, blobs).run(org_id, session_id, photo_ids)

1. **training**: the person model is prepared from the prepared photos (best first) and the
   personal info read from the database; a model recorded by an earlier, interrupted run is reused.
2. **generating**: the shots not stored yet are rendered; each image is scored for likeness
   (:mod:`.likeness`), stored (full size + thumbnail, under keys derived from the shot) and
   recorded with the next checkpoint (:class:`.checkpoints.Checkpoint`: a transaction every few
   images or half a second), so a crash loses at most the images since the last one, and a resumed
   run writes those again onto the same files.
3. **completed** once every shot is stored.

Failures: running out of memory is retried once with half the batch, then fails the session like
any other :class:`EngineError` (``session.failed`` with the stage and the engine's readable reason).
A session deleted meanwhile is noticed within one image (a read before each image is stored, or a
progress report) and its files are removed, those not recorded yet included. Anything else (the database, a bug) propagates: the consumer retries the message, and the
retry resumes from what is stored.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import select

from libs.catalog import Catalog, CatalogError, default_catalog
from libs.contracts import SessionState
from libs.db import Database, Headshot, HeadshotSession, PersonModel, UnitOfWork, new_id, utcnow
from libs.settings import Settings
from libs.storage import BlobStore
from services.generation import checkpoints as cp
from services.generation.engines import (
    Cancelled,
    Engine,
    EngineError,
    OutOfMemory,
    Progress,
    RenderedHeadshot,
    TrainedModel,
    make_engine,
)
from services.generation.inputs import SessionInputs, load_inputs, parse_size, session_plan
from services.generation.likeness import LikenessJudge, better, check_policy
from services.generation.model_files import ModelFiles
from services.generation.pipeline import StoreAhead
from services.generation.plan import PlanError, Shot, ShotPlan, shot_seed
from services.generation.results import headshot_keys, store_images

log = logging.getLogger("headshots.generation")

S = SessionState
T = TypeVar("T")

REPORT_EVERY = 2.0  # seconds between training progress events (and deletion checks while training)


@dataclass
class Generation:
    """What the worker needs, built once per process (the engine loads its base model here)."""

    settings: Settings
    db: Database
    blobs: BlobStore
    engine: Engine
    catalog: Catalog = field(default_factory=default_catalog)
    checkpoint_images: int = 4  # headshots recorded per transaction, at most...
    checkpoint_seconds: float = 0.5  # ...and at most this late
    files: ModelFiles = field(init=False)

    def __post_init__(self) -> None:
        self.files = ModelFiles(self.settings.person_model_dir)

    @classmethod
    def build(
        cls, settings: Settings, db: Database, blobs: BlobStore, engine: Engine | None = None
    ) -> Generation:
        check_policy(settings)
        parse_size(settings.RENDER_SIZE)  # a bad value fails at start, not in the middle of a session
        return cls(settings, db, blobs, engine or make_engine(settings))

    def run(self, org_id: str, session_id: str, photo_ids: list[str]) -> None:
        SessionJob(self, cp.Ref(self.db, org_id, session_id)).run(photo_ids)

    def retire(self, uow: UnitOfWork, model_ids: list[str]) -> int:
        """Delete these person models' files (idempotent); returns how many rows were retired now.
        Ids of another organization are simply not found (``uow`` is tenant-scoped)."""
        retired = 0
        for model in uow.session.scalars(select(PersonModel).where(PersonModel.id.in_(model_ids))):
            self.files.remove(model.path)
            if model.retired_at is None:
                model.retired_at = utcnow()
                retired += 1
        return retired


class SessionJob:
    def __init__(self, gen: Generation, ref: cp.Ref) -> None:
        self.gen, self.ref = gen, ref
        self.engine = gen.engine
        self.cancel = threading.Event()
        self.stage: str = S.TRAINING
        self.inputs: SessionInputs | None = None
        self.checkpoint: cp.Checkpoint | None = None
        self._last_report = 0.0

    def run(self, photo_ids: list[str]) -> None:
        try:
            inputs, self.stage = self._begin(photo_ids)
            self.inputs = inputs
        except cp.SessionGone as gone:
            log.info("photos.processed for %s: nothing to do (%s)", self.ref.session_id, gone)
            if gone.state == S.DELETED:
                self._forget_unrecorded()
            return
        except (PlanError, CatalogError) as exc:
            cp.fail(self.ref, S.TRAINING, f"the session cannot be rendered: {exc}")
            return
        try:
            trained = self._person_model(inputs)
            self.stage = S.GENERATING
            self._render(trained, inputs)
            count = cp.complete(self.ref, len(inputs.plan))
            log.info("session %s completed with %d headshots", self.ref.session_id, count)
        except (cp.SessionGone, Cancelled) as stopped:
            self._stopped(stopped)
        except EngineError as exc:
            cp.fail(self.ref, self.stage, f"{type(exc).__name__}: {exc}")

    # --- steps -----------------------------------------------------------------------------------
    def _begin(self, photo_ids: list[str]) -> tuple[SessionInputs, str]:
        with self.gen.db.uow(org_id=self.ref.org_id) as uow:
            hs = self.ref.lock(uow, S.PREPROCESSING, *cp.WORKING)
            inputs = load_inputs(uow, hs, photo_ids, self.gen.catalog, self.gen.settings)
            return inputs, cp.start_training(self.ref, uow, hs, len(inputs.photos))

    def _person_model(self, inputs: SessionInputs) -> TrainedModel:
        return self._recorded_model(inputs) or self._prepare_model(inputs)

    def _recorded_model(self, inputs: SessionInputs) -> TrainedModel | None:
        """The model an earlier run of this session recorded, if its files are all still there."""
        existing = cp.current_model(self.ref, self.engine.name)
        recorded = self.gen.files.load_record(existing.path) if existing is not None else None
        if existing is None or recorded is None:
            return None
        log.info("session %s resumes with person model %s", self.ref.session_id, existing.id)
        if self.stage == S.TRAINING:  # a failed session queued again: its model is still good
            cp.record_model(self.ref, existing, 0.0, len(inputs.plan), new=False)
        return recorded

    def _prepare_model(self, inputs: SessionInputs) -> TrainedModel:
        model_id = new_id()
        started = time.monotonic()
        paths = self.gen.files.write_photos(model_id, self.gen.blobs, [p.blob_key for p in inputs.photos])
        trained: TrainedModel | None = None
        try:
            trained = self._oom_retry(
                lambda: self.engine.prepare(
                    model_id, paths, inputs.attributes, progress=self._on_progress, cancel=self.cancel
                )
            )
            record = self.gen.files.save_record(model_id, trained)
            row = PersonModel(
                id=model_id,
                org_id=self.ref.org_id,
                session_id=self.ref.session_id,
                engine=self.engine.name,
                path=str(record),
            )
            cp.record_model(self.ref, row, time.monotonic() - started, len(inputs.plan))
        except BaseException:
            # Nothing recorded it: remove the photo copies and whatever the engine wrote.
            self.gen.files.remove(self.gen.files.record_path(model_id))
            if trained is not None:
                self.engine.delete(trained)
            raise
        return trained

    def _render(self, trained: TrainedModel, inputs: SessionInputs) -> None:
        judge = LikenessJudge.from_settings(self.gen.settings, inputs.references)
        self.checkpoint = cp.Checkpoint(
            self.ref,
            self.gen.blobs,
            len(inputs.plan),
            images=self.gen.checkpoint_images,
            seconds=self.gen.checkpoint_seconds,
        )
        self._oom_retry(lambda: self._render_missing(trained, inputs, judge))

    def _render_missing(self, trained: TrainedModel, inputs: SessionInputs, judge: LikenessJudge) -> None:
        """Render every shot not stored yet; re-render poor likenesses with new seeds (policy retry).

        Per image, on this thread: the check that the session is still generating, then the image
        stored (scoring, JPEGs, files: :class:`StoreAhead`, one image behind the engine on a helper
        thread when the engine renders on a GPU, at once when it keeps the CPU busy itself), then
        the checkpoint if one is due. The database conversation stays on this thread, where it does
        not compete with the engine for the GIL. Leaving on an error records what is held first, so a retry (the out-of-memory
        one, or the message's) resumes after it; leaving because the session was stopped deletes
        it instead."""
        plan = inputs.plan
        stored = cp.stored_shots(self.ref)
        pending = [s for s in plan.shots if (s.style_id, s.index) not in stored]
        tries = _Tries(plan, judge)
        held = self._held()
        try:
            with StoreAhead(depth=0 if self.engine.renders_on_cpu else 1) as ahead:
                for attempt in range(judge.max_renders):
                    tries.start(attempt)
                    for rendered in self._images(
                        trained, dataclasses.replace(plan, shots=tuple(pending)), inputs
                    ):
                        cp.check_generating(self.ref)  # deleted: stop before this image's files
                        ahead.submit(self._judge_and_store, tries, rendered, inputs)
                        held.tick()
                    ahead.drain()
                    held.flush()
                    pending = tries.again
                    if not pending:
                        return
                    log.info(
                        "session %s: %d headshots rendered again for likeness",
                        self.ref.session_id,
                        len(pending),
                    )
        except (cp.SessionGone, Cancelled):
            held.discard()
            raise
        except BaseException:
            self._keep_held()
            raise

    def _judge_and_store(self, tries: _Tries, rendered: RenderedHeadshot, inputs: SessionInputs) -> None:
        """On the store thread: score, keep the best try, write its files, hold it for the checkpoint."""
        keep = tries.judge(rendered)
        if keep is None:
            return
        best, likeness = keep
        shot = best.shot
        keys = headshot_keys(self.ref.session_id, shot.style_id, shot.index, at=inputs.created_at)
        images = store_images(self.gen.blobs, best.image, keys)
        position = tries.positions[(shot.style_id, shot.index)]
        self._held().hold(cp.Rendered(shot, position, images, likeness))

    def _images(
        self, trained: TrainedModel, plan: ShotPlan, inputs: SessionInputs
    ) -> Iterator[RenderedHeadshot]:
        if not plan.shots:
            return iter(())
        return self.engine.render(
            trained, plan, inputs.attributes, progress=self._on_progress, cancel=self.cancel
        )

    def _held(self) -> cp.Checkpoint:
        assert self.checkpoint is not None, "rendering without a checkpoint"
        return self.checkpoint

    def _keep_held(self) -> None:
        """Leaving on an error: record the headshots held (their files are written) so nothing is
        rendered twice; if that fails too, delete their files (a retry renders them again)."""
        held = self._held()
        try:
            held.flush()
        except Exception as exc:  # the error that made us leave is the one that counts
            log.warning("session %s: %d headshots not recorded (%r)", self.ref.session_id, len(held), exc)
            held.discard()

    # --- failures and cancellation -----------------------------------------------------------------
    def _oom_retry(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except OutOfMemory as exc:
            log.warning(
                "session %s ran out of memory (%s); trying once with half the batch", self.ref.session_id, exc
            )
            with smaller_batches(self.engine):
                return call()

    def _on_progress(self, progress: Progress) -> None:
        """Training progress reaches the waiting page every few seconds; a deleted session cancels."""
        now = time.monotonic()
        if now - self._last_report < REPORT_EVERY and progress.done < progress.total:
            return
        self._last_report = now
        try:
            if progress.stage == S.TRAINING and self.stage == S.TRAINING:
                cp.report_training(self.ref, progress.done, progress.total)
            else:
                with self.gen.db.session(org_id=self.ref.org_id) as db_session:
                    hs = db_session.get(HeadshotSession, self.ref.session_id)
                    if hs is None or hs.state not in cp.WORKING:
                        raise cp.SessionGone(self.ref.session_id, hs.state if hs else None)
        except cp.SessionGone:
            self.cancel.set()  # the engine raises Cancelled at its next check

    def _forget_unrecorded(self) -> None:
        """A session deleted while no worker held it, after a worker was killed with images written
        but not yet recorded: its erasure could not know those files; they lie at its plan's keys."""
        with self.gen.db.session(org_id=self.ref.org_id) as db_session:
            hs = db_session.get(HeadshotSession, self.ref.session_id)
            if hs is None:
                return
            try:
                plan = session_plan(hs, self.gen.catalog, self.gen.settings)
            except (PlanError, CatalogError):
                return  # nothing could have been rendered for it
            created_at = hs.created_at
        planned = [
            headshot_keys(self.ref.session_id, s.style_id, s.index, at=created_at).keys() for s in plan.shots
        ]
        removed = forget_session(self.gen, self.ref, planned)
        if removed:
            log.info(
                "session %s was deleted: %d files left by an earlier run removed",
                self.ref.session_id,
                removed,
            )

    def _stopped(self, why: BaseException) -> None:
        with self.gen.db.session(org_id=self.ref.org_id) as db_session:
            hs = db_session.get(HeadshotSession, self.ref.session_id)
            state = hs.state if hs else None
        if state not in (None, S.DELETED):
            log.info("session %s stopped: %s", self.ref.session_id, why)
            return
        planned = (
            [
                headshot_keys(self.ref.session_id, s.style_id, s.index, at=self.inputs.created_at).keys()
                for s in self.inputs.plan.shots
            ]
            if self.inputs is not None
            else []
        )
        removed = forget_session(self.gen, self.ref, planned)
        log.info(
            "session %s was deleted while %s: stopped, %d files removed",
            self.ref.session_id,
            self.stage,
            removed,
        )


class _Tries:
    """The best render of each shot so far, and which shots to render again after this pass."""

    def __init__(self, plan: ShotPlan, judge: LikenessJudge) -> None:
        self.plan, self.likeness = plan, judge
        self.positions = {(s.style_id, s.index): n for n, s in enumerate(plan.shots)}
        self.best: dict[tuple[str, int], tuple[RenderedHeadshot, float | None]] = {}
        self.attempt, self.again = 0, list[Shot]()

    def start(self, attempt: int) -> None:
        self.attempt, self.again = attempt, []

    def judge(self, rendered: RenderedHeadshot) -> tuple[RenderedHeadshot, float | None] | None:
        """What to store now (the best try), or None when the shot goes round again."""
        key = (rendered.shot.style_id, rendered.shot.index)
        score = self.likeness.score(rendered.image)
        if key not in self.best or better(score, self.best[key][1]):
            self.best[key] = (rendered, score)
        if self.likeness.acceptable(self.best[key][1]) or self.attempt == self.likeness.max_renders - 1:
            return self.best.pop(key)
        self.again.append(_retry_shot(self.plan, rendered.shot, self.attempt + 1))
        return None


def forget_session(gen: Generation, ref: cp.Ref, planned: Iterable[tuple[str, str]] = ()) -> int:
    """Remove a deleted session's headshots (files and rows) and person models (files). ``planned``:
    the keys every shot of its plan may have been written to (files whose row was never recorded:
    a worker killed before its checkpoint)."""
    removed = 0
    for keys in planned:
        removed += sum(gen.blobs.delete(key) for key in keys)
    with gen.db.uow(org_id=ref.org_id) as uow:
        for headshot in uow.session.scalars(select(Headshot).where(Headshot.session_id == ref.session_id)):
            removed += sum(gen.blobs.delete(key) for key in (headshot.blob_key, headshot.thumb_key) if key)
            uow.session.delete(headshot)
        for model in uow.session.scalars(select(PersonModel).where(PersonModel.session_id == ref.session_id)):
            gen.files.remove(model.path)
            model.retired_at = model.retired_at or utcnow()
            removed += 1
        uow.commit()
    return removed


@contextmanager
def smaller_batches(engine: Engine) -> Iterator[None]:
    """Halve the engine's batch for one call (the engine reads BATCH_SIZE at each render)."""
    original = engine.settings
    engine.settings = original.replace(BATCH_SIZE=max(1, original.BATCH_SIZE // 2))
    try:
        yield
    finally:
        engine.settings = original


def _retry_shot(plan: ShotPlan, shot: Shot, attempt: int) -> Shot:
    """The same shot with another seed, still reproducible: a resumed session draws the same ones."""
    return dataclasses.replace(
        shot, seed=shot_seed(f"{plan.session_key}/retry-{attempt}", shot.style_id, shot.index)
    )
