"""The generation worker's steps and failures, with a fake engine on a real SQLite unit of work."""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select, update

from libs.catalog import default_catalog
from libs.contracts import (
    HEADSHOT_GENERATED,
    MODEL_TRAINED,
    MODELS_RETIRED,
    SESSION_COMPLETED,
    SESSION_FAILED,
    SESSION_PROGRESS,
    SUBSCRIPTIONS,
    EventType,
    new_message,
)
from libs.db import Database, Headshot, HeadshotSession, PersonModel, utcnow
from libs.db.demo import DemoData, seed_demo
from libs.privacy import delete_session_data
from libs.settings import Settings
from libs.storage import LocalBlobStore
from services.generation import checkpoints as cp
from services.generation.__main__ import build_parser, main
from services.generation.engines import OutOfMemory, PersonModelError
from services.generation.handlers import HANDLERS, build_deps, handle_models_retired, handle_photos_processed
from services.generation.job import Generation
from services.generation.plan import plan_shots
from services.generation.results import (
    StoredImages,
    delete_images,
    headshot_keys,
    jpeg,
    store_images,
    thumbnail,
)
from tests.support.cli import help_gaps, subcommands
from tests.support.generation import (
    FakeEngine,
    ReadySession,
    outbox_of,
    photos_processed,
    ready_session,
    session_state,
)

# starter package: the chosen navy:suit + the pre-selected studio-grey:suit, 2 headshots each.
PLAN_SIZE = 4


@pytest.fixture(name="gen_settings")
def gen_settings_fixture(tmp_path: Path, sqlite_url: str) -> Settings:
    return Settings(
        VAR_DIR=str(tmp_path / "var"),
        DATABASE_URL=sqlite_url,
        SECRET_KEY="test-secret",
        RENDER_SIZE="96x64",
        BATCH_SIZE=4,
        LIKENESS_POLICY="off",  # the fake engine draws no faces; the likeness tests set their policy
    )


@pytest.fixture(name="db")
def db_fixture(gen_settings: Settings):
    database = Database(gen_settings.database_url)
    yield database
    database.dispose()


@pytest.fixture(name="blobs")
def blobs_fixture(gen_settings: Settings) -> LocalBlobStore:
    return LocalBlobStore(gen_settings.blob_dir)


@pytest.fixture(name="demo")
def demo_fixture(db: Database) -> DemoData:
    return seed_demo(db)


@pytest.fixture(name="ready")
def ready_fixture(db: Database, blobs: LocalBlobStore, demo: DemoData) -> ReadySession:
    return ready_session(db, blobs, demo.org_id, demo.employees[0].id)


def build(
    settings: Settings, db: Database, blobs: LocalBlobStore, **options
) -> tuple[Generation, FakeEngine]:
    engine = FakeEngine(settings, settings.person_model_dir / "fake", **options)
    return Generation.build(settings, db, blobs, engine=engine), engine


def headshots(db: Database, ready: ReadySession) -> list[Headshot]:
    with db.session(org_id=ready.org_id) as s:
        return list(s.scalars(select(Headshot).where(Headshot.session_id == ready.session_id)))


def models(db: Database, ready: ReadySession) -> list[PersonModel]:
    with db.session(org_id=ready.org_id) as s:
        return list(s.scalars(select(PersonModel).where(PersonModel.session_id == ready.session_id)))


def bodies(db: Database, ready: ReadySession, event: EventType) -> list[dict]:
    return [json.loads(r.body)["data"] for r in outbox_of(db, ready.session_id, event)]


def set_state(db: Database, ready: ReadySession, state: str) -> None:
    with db.uow(org_id=ready.org_id) as uow:
        uow.session.execute(
            update(HeadshotSession).where(HeadshotSession.id == ready.session_id).values(state=state)
        )
        uow.commit()


# --- the whole session -------------------------------------------------------------------------
# The studio engine (and diffusion without a GPU) renders on the CPU: the worker stores each image
# itself; a GPU engine gets the helper thread. Both ways keep every promise.
ON_GPU = pytest.mark.parametrize("on_gpu", [False, True], ids=["cpu-engine", "gpu-engine"])


@ON_GPU
def test_a_session_goes_from_prepared_photos_to_completed(gen_settings, db, blobs, ready, on_gpu):
    gen, engine = build(gen_settings, db, blobs, on_gpu=on_gpu)
    handle_photos_processed(photos_processed(ready), generation=gen)

    assert session_state(db, ready) == "completed"
    # training: the person's attributes came from the database, the photos in preparation's order
    assert engine.attributes_seen[0].gender == "female" and engine.attributes_seen[0].glasses is True
    assert [p.name for p in engine.prepared_from[0]] == ["01.jpg", "02.jpg"]
    [model] = models(db, ready)
    assert model.engine == "fake" and Path(model.path).is_file()
    assert bodies(db, ready, MODEL_TRAINED)[0]["person_model_id"] == model.id

    stored = sorted(headshots(db, ready), key=lambda h: h.position)
    assert [(h.style_id, h.index_in_style) for h in stored] == [
        ("navy:suit", 0),
        ("navy:suit", 1),
        ("studio-grey:suit", 0),
        ("studio-grey:suit", 1),
    ]
    for h in stored:
        full = Image.open(blobs.path(h.blob_key))
        thumb = Image.open(blobs.path(h.thumb_key))
        assert full.size == (96, 64) == (h.width, h.height)
        assert full.format == thumb.format == "JPEG"
    generated = bodies(db, ready, HEADSHOT_GENERATED)
    assert [g["done"] for g in generated] == [1, 2, 3, 4] and {g["total"] for g in generated} == {PLAN_SIZE}
    progress = [(p["stage"], p["done"], p["total"]) for p in bodies(db, ready, SESSION_PROGRESS)]
    assert progress[0] == ("training", 0, 2) and ("generating", 0, PLAN_SIZE) in progress
    assert progress[-1] == ("generating", PLAN_SIZE, PLAN_SIZE)
    assert bodies(db, ready, SESSION_COMPLETED) == [{"headshot_count": PLAN_SIZE}]
    # no event carries personal info
    for row in outbox_of(db, ready.session_id):
        assert "Bea" not in row.body and "female" not in row.body and "brown" not in row.body


def test_a_redelivered_message_after_completion_changes_nothing(gen_settings, db, blobs, ready):
    gen, engine = build(gen_settings, db, blobs)
    handle_photos_processed(photos_processed(ready), generation=gen)
    rendered = len(engine.rendered)
    handle_photos_processed(photos_processed(ready), generation=gen)
    assert len(engine.rendered) == rendered
    assert len(headshots(db, ready)) == PLAN_SIZE
    assert len(outbox_of(db, ready.session_id, SESSION_COMPLETED)) == 1


@ON_GPU
def test_a_crash_mid_render_resumes_from_the_stored_images(gen_settings, db, blobs, ready, on_gpu):
    gen, engine = build(gen_settings, db, blobs, fail_at=(3, RuntimeError("worker died")), on_gpu=on_gpu)
    with pytest.raises(RuntimeError):  # the consumer retries the message
        handle_photos_processed(photos_processed(ready), generation=gen)
    assert session_state(db, ready) == "generating"
    assert len(headshots(db, ready)) == 2

    again, engine2 = build(gen_settings, db, blobs)
    handle_photos_processed(photos_processed(ready), generation=again)
    assert session_state(db, ready) == "completed"
    assert [(s, i) for s, i, _ in engine2.rendered] == [("studio-grey:suit", 0), ("studio-grey:suit", 1)]
    assert engine2.prepared_from == []  # the recorded person model was reused
    assert len(headshots(db, ready)) == PLAN_SIZE
    assert len(models(db, ready)) == 1
    assert len(outbox_of(db, ready.session_id, SESSION_COMPLETED)) == 1


# A worker process killed (SIGKILL: nothing runs after it) once the files of its first two images are
# written and held for their checkpoint, none of them recorded yet.
KILLED_WHILE_HOLDING = """
import os, signal, sys
from libs.db import Database
from libs.settings import Settings
from libs.storage import LocalBlobStore
from services.generation import checkpoints
from services.generation.job import Generation
from tests.support.generation import FakeEngine, ReadySession

settings = Settings(VAR_DIR=sys.argv[1], DATABASE_URL=sys.argv[2], SECRET_KEY="test-secret",
                    RENDER_SIZE="96x64", LIKENESS_POLICY="off")
hold = checkpoints.Checkpoint.hold

def hold_then_die(self, rendered):
    hold(self, rendered)
    if len(self) == 2:
        os.kill(os.getpid(), signal.SIGKILL)

checkpoints.Checkpoint.hold = hold_then_die
db = Database(settings.database_url)
engine = FakeEngine(settings, settings.person_model_dir / "fake")
gen = Generation.build(settings, db, LocalBlobStore(settings.blob_dir), engine=engine)
gen.checkpoint_images, gen.checkpoint_seconds = 100, 3600.0
gen.run(sys.argv[3], sys.argv[4], sys.argv[5:])
"""


def headshot_files(settings: Settings) -> set[str]:
    root = settings.blob_dir
    return {str(p.relative_to(root)) for p in root.glob("headshot*/**/*") if p.is_file()}


def kill_while_holding_two_images(gen_settings: Settings, ready: ReadySession) -> None:
    """A worker process killed (SIGKILL) with two images written but not yet recorded."""
    args = [gen_settings.VAR_DIR, gen_settings.database_url, ready.org_id, ready.session_id]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_HOLDING, *args, *ready.photo_ids],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr.decode()


def test_a_worker_killed_with_images_written_but_not_recorded_resumes_without_duplicates_or_orphans(
    gen_settings, db, blobs, ready
):
    kill_while_holding_two_images(gen_settings, ready)
    assert headshots(db, ready) == [] and session_state(db, ready) == "generating"
    written = headshot_files(gen_settings)
    assert len(written) == 4  # two images, full size and thumbnail, without rows

    gen, engine = build(gen_settings, db, blobs)
    handle_photos_processed(photos_processed(ready), generation=gen)
    assert session_state(db, ready) == "completed"
    assert engine.prepared_from == []  # the person model recorded before the kill was reused
    stored = headshots(db, ready)
    assert len({(h.style_id, h.index_in_style) for h in stored}) == len(stored) == PLAN_SIZE
    assert [g["done"] for g in bodies(db, ready, HEADSHOT_GENERATED)] == [1, 2, 3, 4]
    assert len(outbox_of(db, ready.session_id, SESSION_COMPLETED)) == 1
    # The images rendered again went onto the files written before the kill: nothing is left over.
    referenced = {key for h in stored for key in (h.blob_key, h.thumb_key)}
    assert headshot_files(gen_settings) == referenced and written < referenced


def test_a_session_deleted_after_a_worker_was_killed_with_unrecorded_images_loses_those_files_too(
    gen_settings, db, blobs, ready
):
    kill_while_holding_two_images(gen_settings, ready)
    assert len(headshot_files(gen_settings)) == 4  # written, never recorded: no row names them
    with db.uow(org_id=ready.org_id) as uow:  # the person deletes the session before any resume
        hs = uow.session.get(HeadshotSession, ready.session_id)
        delete_session_data(uow, hs)
        uow.commit()

    gen, engine = build(gen_settings, db, blobs)
    handle_photos_processed(photos_processed(ready), generation=gen)  # the redelivery
    assert headshot_files(gen_settings) == set()
    assert engine.rendered == [] and session_state(db, ready) == "deleted"


@ON_GPU
def test_headshots_are_recorded_a_few_per_transaction_and_each_is_announced(
    gen_settings, db, blobs, ready, on_gpu
):
    gen, _ = build(gen_settings, db, blobs, on_gpu=on_gpu)
    gen.checkpoint_images, gen.checkpoint_seconds = 2, 3600.0
    handle_photos_processed(photos_processed(ready), generation=gen)
    assert [g["done"] for g in bodies(db, ready, HEADSHOT_GENERATED)] == [1, 2, 3, 4]
    generating = [p["done"] for p in bodies(db, ready, SESSION_PROGRESS) if p["stage"] == "generating"]
    assert generating == [0, 2, 4]  # one progress event per checkpoint of two


def checkpoint_for(db: Database, blobs: LocalBlobStore, ready: ReadySession, **options) -> cp.Checkpoint:
    set_state(db, ready, "generating")
    return cp.Checkpoint(cp.Ref(db, ready.org_id, ready.session_id), blobs, PLAN_SIZE, **options)


def rendered_shot(blobs: LocalBlobStore, ready: ReadySession, index: int, *, at) -> cp.Rendered:
    plan = plan_shots(
        default_catalog(), package_id="starter", format_id="standard", styles=["navy:suit"],
        session_key=ready.session_id, size=(96, 64),
    )  # fmt: skip
    shot = plan.shots[index]
    keys = headshot_keys(ready.session_id, shot.style_id, shot.index, at=at)
    return cp.Rendered(shot, index, store_images(blobs, Image.new("RGB", shot.size), keys), None)


def test_a_checkpoint_falls_due_after_enough_images_or_enough_time(db, blobs, ready):
    now = [0.0]
    checkpoint = checkpoint_for(db, blobs, ready, images=2, seconds=0.5, clock=lambda: now[0])
    at = utcnow()
    checkpoint.hold(rendered_shot(blobs, ready, 0, at=at))
    checkpoint.tick()
    assert len(checkpoint) == 1 and headshots(db, ready) == []  # neither two images nor 0.5 s yet
    now[0] = 0.5
    checkpoint.tick()
    assert len(checkpoint) == 0 and len(headshots(db, ready)) == 1  # 0.5 s: recorded alone
    checkpoint.hold(rendered_shot(blobs, ready, 1, at=at))
    checkpoint.tick()
    assert len(checkpoint) == 1
    checkpoint.hold(rendered_shot(blobs, ready, 2, at=at))
    checkpoint.tick()
    assert len(checkpoint) == 0 and len(headshots(db, ready)) == 3  # two images: recorded together
    assert [g["done"] for g in bodies(db, ready, HEADSHOT_GENERATED)] == [1, 2, 3]
    assert [p["done"] for p in bodies(db, ready, SESSION_PROGRESS)] == [1, 3]


def test_a_shot_another_worker_stored_keeps_its_row_and_our_extra_files_are_deleted(db, blobs, ready):
    checkpoint = checkpoint_for(db, blobs, ready)
    at = utcnow()
    theirs = rendered_shot(blobs, ready, 0, at=at)
    other_keys = [
        blobs.put(b"theirs", kind="headshots", ext="jpg"),
        blobs.put(b"t", kind="headshot-thumbs", ext="jpg"),
    ]
    checkpoint.hold(dataclasses.replace(theirs, images=StoredImages(*other_keys)))  # an older worker's keys
    checkpoint.flush()
    same = rendered_shot(blobs, ready, 1, at=at)
    checkpoint.hold(same)
    checkpoint.flush()
    # Another run renders both again: shot 0 onto keys no row uses (deleted), shot 1 onto its own row's.
    again = [rendered_shot(blobs, ready, 0, at=at), rendered_shot(blobs, ready, 1, at=at)]
    recorded = cp.record_headshots(checkpoint.ref, again, PLAN_SIZE)
    assert recorded.done == [None, None] and recorded.unused == [again[0].images]
    for images in recorded.unused:
        delete_images(blobs, images.keys())
    assert all(blobs.exists(k) for k in (*other_keys, *same.images.keys()))
    dropped = again[0].images
    assert not blobs.exists(dropped.blob_key) and not blobs.exists(dropped.thumb_key)
    assert len(headshots(db, ready)) == 2 and len(bodies(db, ready, HEADSHOT_GENERATED)) == 2


def test_completion_orders_each_styles_headshots_by_likeness_and_keeps_the_styles_order(db, blobs, ready):
    checkpoint = checkpoint_for(db, blobs, ready)
    at = utcnow()
    # navy:suit 0, 1 then studio-grey:suit 0, 1 (plan positions 0-3); the second style's first
    # shot was not scored (no face): it goes after its scored neighbour.
    for index, likeness in zip(range(PLAN_SIZE), (0.52, 0.91, None, 0.40), strict=True):
        checkpoint.hold(dataclasses.replace(rendered_shot(blobs, ready, index, at=at), likeness=likeness))
    checkpoint.flush()
    assert cp.complete(checkpoint.ref, PLAN_SIZE) == PLAN_SIZE

    ordered = sorted(headshots(db, ready), key=lambda h: h.position)
    assert [(h.style_id, h.index_in_style, h.likeness) for h in ordered] == [
        ("navy:suit", 1, 0.91),
        ("navy:suit", 0, 0.52),
        ("studio-grey:suit", 1, 0.40),
        ("studio-grey:suit", 0, None),
    ]
    assert [h.position for h in ordered] == [0, 1, 2, 3]
    assert session_state(db, ready) == "completed"
    [completed] = bodies(db, ready, SESSION_COMPLETED)
    assert completed["headshot_count"] == PLAN_SIZE


# --- failures ----------------------------------------------------------------------------------
def test_out_of_memory_is_retried_once_with_half_the_batch(gen_settings, db, blobs, ready):
    gen, engine = build(gen_settings, db, blobs, oom=1, oom_error=OutOfMemory("CUDA out of memory"))
    handle_photos_processed(photos_processed(ready), generation=gen)
    assert engine.batch_sizes == [4, 2]
    assert engine.settings.BATCH_SIZE == 4  # restored afterwards
    assert session_state(db, ready) == "completed"


def test_out_of_memory_twice_fails_the_session_with_stage_and_reason(gen_settings, db, blobs, ready):
    gen, engine = build(gen_settings, db, blobs, oom=2, oom_error=OutOfMemory("rendering ran out of memory"))
    handle_photos_processed(photos_processed(ready), generation=gen)
    assert session_state(db, ready) == "failed"
    [failed] = bodies(db, ready, SESSION_FAILED)
    assert failed["stage"] == "generating" and "ran out of memory" in failed["reason"]
    assert not outbox_of(db, ready.session_id, SESSION_COMPLETED)


def test_a_permanent_engine_error_fails_at_once_with_a_readable_reason(gen_settings, db, blobs, ready):
    gen, engine = build(gen_settings, db, blobs, fail_prepare=PersonModelError("no face found in any photo"))
    handle_photos_processed(photos_processed(ready), generation=gen)
    assert session_state(db, ready) == "failed"
    [failed] = bodies(db, ready, SESSION_FAILED)
    assert failed == {"stage": "training", "reason": "PersonModelError: no face found in any photo"}
    with db.session(org_id=ready.org_id) as s:
        assert s.get(HeadshotSession, ready.session_id).failure_reason == failed["reason"]
    assert models(db, ready) == []
    assert not any((gen_settings.person_model_dir / "photos").glob("*/*"))  # copies removed


@ON_GPU
def test_a_session_deleted_while_rendering_stops_within_one_image_and_loses_its_files(
    gen_settings, db, blobs, ready, on_gpu
):
    gen, engine = build(gen_settings, db, blobs, on_gpu=on_gpu)
    engine.after_image = lambda n: set_state(db, ready, "deleted") if n == 1 else None
    handle_photos_processed(photos_processed(ready), generation=gen)
    # The state is read before each image is stored: image 2 is the last one rendered, its files are
    # never written, and image 1's (held for its checkpoint) are deleted.
    assert len(engine.rendered) == 2
    assert headshots(db, ready) == []
    assert not any(p.is_file() for p in gen_settings.blob_dir.glob("headshot*/**/*"))
    [model] = models(db, ready)
    assert model.retired_at is not None and not Path(model.path).exists()
    assert not outbox_of(db, ready.session_id, SESSION_COMPLETED)


@pytest.mark.parametrize("state", ["completed", "failed", "deleted", "onboarding"])
def test_a_session_out_of_the_workers_hands_is_left_alone(gen_settings, db, blobs, ready, state):
    set_state(db, ready, state)
    gen, engine = build(gen_settings, db, blobs)
    handle_photos_processed(photos_processed(ready), generation=gen)
    assert session_state(db, ready) == state
    assert engine.prepared_from == [] and outbox_of(db, ready.session_id) == []


def test_photos_of_another_session_fail_it_with_a_reason(gen_settings, db, blobs, demo, ready):
    other = ready_session(db, blobs, demo.org_id, demo.employees[1].id)
    gen, _ = build(gen_settings, db, blobs)
    message = photos_processed(ReadySession(ready.org_id, ready.session_id, other.photo_ids))
    handle_photos_processed(message, generation=gen)
    assert session_state(db, ready) == "failed"
    assert "none of the 2 prepared photos" in bodies(db, ready, SESSION_FAILED)[0]["reason"]


# --- likeness ----------------------------------------------------------------------------------
def test_faceless_renders_are_rendered_again_and_the_likeness_is_stored(gen_settings, db, blobs, ready):
    settings = gen_settings.replace(RENDER_SIZE="256x256", LIKENESS_POLICY="retry", LIKENESS_TRIES=2)
    gen, engine = build(settings, db, blobs, face_on_retry=True)
    handle_photos_processed(photos_processed(ready), generation=gen)
    assert len(engine.rendered) == 2 * PLAN_SIZE  # every first try was blank
    seeds = {(s, i): seed for s, i, seed in engine.rendered[PLAN_SIZE:]}
    for h in headshots(db, ready):
        assert h.likeness is not None and h.likeness > 0.5
        assert h.seed == seeds[(h.style_id, h.index_in_style)]  # the row says which render it is


def test_after_the_last_try_the_best_render_is_kept(gen_settings, db, blobs, ready):
    settings = gen_settings.replace(LIKENESS_POLICY="retry", LIKENESS_TRIES=2)
    gen, engine = build(settings, db, blobs)  # never a face
    handle_photos_processed(photos_processed(ready), generation=gen)
    assert len(engine.rendered) == 2 * PLAN_SIZE
    assert session_state(db, ready) == "completed"
    assert [h.likeness for h in headshots(db, ready)] == [None] * PLAN_SIZE


@pytest.mark.parametrize(("policy", "scored"), [("score-only", True), ("off", False)])
def test_other_policies_never_render_again(gen_settings, db, blobs, ready, policy, scored):
    settings = gen_settings.replace(LIKENESS_POLICY=policy, RENDER_SIZE="256x256")
    gen, engine = build(settings, db, blobs, always_face=True)
    handle_photos_processed(photos_processed(ready), generation=gen)
    assert len(engine.rendered) == PLAN_SIZE
    assert all((h.likeness is not None) is scored for h in headshots(db, ready))


# --- models.retired and settings ----------------------------------------------------------------
def test_retiring_person_models_deletes_their_files_once(gen_settings, db, blobs, demo, ready):
    gen, _ = build(gen_settings, db, blobs)
    handle_photos_processed(photos_processed(ready), generation=gen)
    [model] = models(db, ready)
    files = [Path(model.path), *(gen_settings.person_model_dir / "photos" / model.id).iterdir()]
    assert all(f.exists() for f in files)
    message = new_message(MODELS_RETIRED, org_id=demo.org_id, session_id=None, person_model_ids=[model.id])
    for _ in range(2):  # a replay finds nothing left to do
        with db.uow(org_id=demo.org_id) as uow:
            handle_models_retired(message, uow=uow, generation=gen)
            uow.commit()
    assert not any(f.exists() for f in files)
    [model] = models(db, ready)
    assert model.retired_at is not None
    # another organization cannot retire it (its id is simply not found there)
    other = new_message(
        MODELS_RETIRED, org_id=demo.other_org_id, session_id=None, person_model_ids=[model.id]
    )
    with db.uow(org_id=demo.other_org_id) as uow:
        handle_models_retired(other, uow=uow, generation=gen)


@pytest.mark.parametrize(
    ("name", "value"), [("LIKENESS_POLICY", "sometimes"), ("RENDER_SIZE", "big"), ("RENDER_SIZE", "4x4")]
)
def test_bad_generation_settings_fail_at_worker_start(gen_settings, db, blobs, name, value):
    with pytest.raises(ValueError, match=name):
        build_deps(gen_settings.replace(**{name: value}), db, blobs)


def test_the_worker_is_found_by_the_launcher_with_its_dependencies(gen_settings, db, blobs):
    deps = build_deps(gen_settings, db, blobs)
    assert deps["generation"].engine.name == "studio"
    # The worker's queues are derived from the subscriptions: the table must handle exactly those.
    assert set(HANDLERS) == set(SUBSCRIPTIONS["generation"])


def dispatch(message, db: Database, deps: dict) -> None:
    """What the consumer does with a message: the table picks the handler, whose keyword
    parameters are filled by name from the unit of work and the worker's dependencies."""
    handler = HANDLERS[message.event]
    params = inspect.signature(handler).parameters.values()
    wanted = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
    with db.uow(org_id=message.org_id) as uow:
        available = {"uow": uow, "publish": uow.add_message, **deps}
        handler(message, **{name: available[name] for name in wanted})
        uow.commit()


def test_the_table_routes_each_event_to_the_handler_that_does_its_work(gen_settings, db, blobs, demo, ready):
    gen, _ = build(gen_settings, db, blobs)

    dispatch(photos_processed(ready), db, {"generation": gen})
    assert session_state(db, ready) == "completed"
    assert len(headshots(db, ready)) == PLAN_SIZE
    [model] = models(db, ready)
    assert model.retired_at is None and Path(model.path).is_file()

    retired = new_message(MODELS_RETIRED, org_id=demo.org_id, session_id=None, person_model_ids=[model.id])
    dispatch(retired, db, {"generation": gen})
    [model] = models(db, ready)
    assert model.retired_at is not None and not Path(model.path).exists()
    assert session_state(db, ready) == "completed" and len(headshots(db, ready)) == PLAN_SIZE


def test_help_lists_every_subcommand_and_option_the_parser_has(capsys):
    top = subprocess.run(
        [sys.executable, "-m", "services.generation", "--help"], capture_output=True, text=True, check=True
    ).stdout

    def sub_help(name: str) -> str:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        return capsys.readouterr().out

    parser = build_parser()
    assert set(subcommands(parser)) >= {"work", "render"}
    assert help_gaps(parser, top, sub_help) == []
    assert "whose photos are prepared" in " ".join(sub_help("work").split())


@pytest.mark.parametrize(
    ("size", "mode", "expected"),
    [
        ((1536, 1024), "RGB", (308, 205)),  # a box average by 5
        ((1024, 1280), "RGBA", (256, 320)),  # by 4
        ((400, 300), "RGB", (320, 240)),  # by 2 would give 200 px: bilinear to 320 instead
        ((200, 100), "RGB", (200, 100)),
        ((100, 50), "L", (100, 50)),
    ],
)
def test_thumbnails_keep_the_aspect_within_320_px_and_are_never_enlarged(size, mode, expected):
    colour = (200, 100, 50, 255)[: len(mode)] if mode != "L" else 120
    image = Image.new(mode, size, colour)
    thumb = thumbnail(image)
    assert thumb.size == expected and thumb.mode == "RGB"
    assert thumb.getpixel((0, 0)) == ((200, 100, 50) if mode != "L" else (120, 120, 120))
    assert Image.open(io.BytesIO(jpeg(image, 85))).size == size
