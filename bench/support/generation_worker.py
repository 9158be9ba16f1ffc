"""What the generation worker costs on top of its engine, for the same plan.

Measured side by side, the engine and the worker taking turns, the ratios being the median of the
per-repeat ratios (each repeat renders one plan on both sides, one run after the other):

- **engine**: ``engine.prepare`` on the photo files, then ``engine.render`` of the whole plan, each
  image written as a JPEG file (the least any caller does with it). Each run renders the plan of the
  session the worker runs next to it (the same shots, sizes and seeds: the studio engine's framing
  jitter comes from the seed, and so does its cost);
- **worker**: the real handler from ``photos.processed`` to ``completed`` on the embedded mode's
  SQLite database and blob folder: photo copies, the PersonModel row, per image a check that the
  session is still generating, a full-size and a thumbnail blob, a Headshot row and its
  ``headshot.generated`` (recorded a few images per commit, with a ``session.progress``), then
  completion. The thumbnail is counted as the worker's overhead (the engine side writes none).
  Likeness scoring off (``LIKENESS_POLICY=off``), so the ratio is the worker's own bookkeeping;
- **likeness** (after the pairs): the same worker with ``score-only`` (dlib face detection + embedding per image),
  reported separately because it is a feature with its own price, not overhead.

Ratio worker / engine; the target is at most 1.05x. Reported two ways: **paired** (each worker run
against the engine run next to it), and **in-run** (each worker run against the time spent inside
the engine's calls *during that same run* plus the engine side's own work per image, its JPEG file,
measured in its run: :class:`TimedEngine`). The engine is nearly all of either run and its speed
drifts by ±10 % from one run to the next on a shared machine, which the paired ratio carries and
the in-run one does not; the paired ratio is kept as the check that the engine runs as fast inside
the worker as alone. Run by ``python bench/generation.py`` (it is a
helper of that benchmark, kept out of ``bench/*.py`` so ``make bench`` does not run it twice).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

from sqlalchemy import select

from libs.contracts import MODEL_TRAINED, SESSION_COMPLETED
from libs.db import Database, Headshot, OutboxMessage
from libs.db.demo import seed_demo
from libs.db.migrate import upgrade
from libs.settings import Settings
from libs.storage import LocalBlobStore
from services.generation.engines import Engine, PersonAttributes, make_engine
from services.generation.inputs import parse_size
from services.generation.job import Generation
from services.generation.plan import ShotPlan, plan_shots
from services.generation.results import FULL_QUALITY, jpeg
from tests.support.generation import ReadySession, astronaut_crops, ready_session, session_state

ATTRS = PersonAttributes("female", "brown", glasses=True)  # what ready_session stores


class TimedEngine:
    """The engine, with the time spent inside its calls (``prepare``, each step of ``render``)
    added up: what a run spent in the engine, measured in that run.

    The paired ratio compares two runs made one after the other, and one run of the same work
    costs ±10 % more or less than the next on this machine; the engine is nearly all of either
    run, so that drift lands on the ratio. Within a run, the time outside the engine calls is the
    caller's own, measured while the engine ran at that run's speed."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def prepare(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.engine.prepare(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start

    def render(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        images = self.engine.render(*args, **kwargs)
        while True:
            start = time.perf_counter()
            try:
                image = next(images)
            except StopIteration:
                return
            finally:
                self.seconds += time.perf_counter() - start
            yield image

    def take(self) -> float:
        """Seconds inside the engine since the last call."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds


def _after_the_warm_up(run: Callable[[int], Any]) -> Callable[[int], Any]:
    """``run`` numbered from 1: run 0 was the warm-up."""
    return lambda i: run(i + 1)


def _alternated(
    runs: dict[str, Callable[[int], Any]], repeats: int, engine: TimedEngine
) -> dict[str, list[float]]:
    """Seconds of each run per repeat, the runs taking turns (a b a b ...): wall under ``<name>``,
    ``<name>_cpu``: CPU seconds of this process (all threads), the steadier figure when other
    processes load the machine, and ``<name>_in_engine``: wall seconds inside the engine's calls. Run ``i`` of each is called with ``i`` (the engine and the worker
    then render the same plan). Strict turns: what ran just before a run can change its cost (with
    the likeness run, dlib's, in between, the pairs leaned by their order), so each kind always
    follows the same thing."""
    kinds = ("", "_cpu", "_in_engine")
    times: dict[str, list[float]] = {f"{name}{kind}": [] for name in runs for kind in kinds}
    for i in range(repeats):
        for name, run in runs.items():
            engine.take()
            start, cpu = time.perf_counter(), time.process_time()
            run(i)
            times[name].append(time.perf_counter() - start)
            times[f"{name}_cpu"].append(time.process_time() - cpu)
            times[f"{name}_in_engine"].append(engine.take())
    return times


def _ratio(times: dict[str, list[float]], top: str, bottom: str) -> float:
    """The median of the per-repeat ratios: each compares two runs made side by side, on the same plan,
    so the machine's drift between repeats (a run takes 15% longer a minute later) cancels out."""
    return statistics.median(a / b for a, b in zip(times[top], times[bottom], strict=True))


def bench_worker(
    settings: Settings, work: Path, repeats: int, package: str = "professional"
) -> dict[str, Any]:
    """``settings``: the engine's (ENGINE, RENDER_SIZE...); everything else is set here."""
    url = f"sqlite:///{work / 'worker.db'}"
    upgrade(url)
    db = Database(url)
    blobs = LocalBlobStore(work / "blobs")
    demo = seed_demo(db)
    base = settings.replace(VAR_DIR=str(work / "var"), DATABASE_URL=url, LIKENESS_POLICY="off")
    engine = TimedEngine(make_engine(base))
    styles = ("navy:suit", "white:shirt", "outdoor:knit", "warm-beige:blazer")[
        : 4 if package != "starter" else 1
    ]
    format_id = "standard"
    catalog = Generation.build(base, db, blobs, engine=cast(Engine, engine)).catalog
    photo = work / "photo.jpg"
    photo.write_bytes(astronaut_crops()[0])

    def ready_sessions(count: int) -> list[ReadySession]:
        # What preparation leaves behind (rows, photo blobs) is made before the clock starts: it is
        # not the generation worker's work.
        return [
            ready_session(
                db,
                blobs,
                demo.org_id,
                demo.employees[0].id,
                package=package,
                format_id=format_id,
                styles=styles,
            )
            for _ in range(count)
        ]

    # Run 0 is the warm-up (imports, dlib models, first allocations), then one per repeat.
    paired = ready_sessions(repeats + 1)  # the worker's sessions; the engine renders the same plans
    scored = ready_sessions(repeats + 1)  # the likeness runs'
    plans = [
        plan_shots(
            catalog,
            package_id=package,
            format_id=format_id,
            styles=list(styles),
            session_key=ready.session_id,  # the key session_plan() gives the worker: the same seeds
            size=parse_size(base.RENDER_SIZE),
        )
        for ready in paired
    ]

    def direct(i: int, out: Path = work / "direct") -> None:
        out.mkdir(exist_ok=True)
        model = engine.prepare("direct", [photo, photo], ATTRS)
        for headshot in engine.render(model, plans[i], ATTRS):
            (out / f"{headshot.shot.name}.jpg").write_bytes(jpeg(headshot.image, FULL_QUALITY))
        engine.delete(model)

    def through_worker(policy: str, sessions: list[ReadySession]) -> Callable[[int], None]:
        generation = Generation.build(
            base.replace(LIKENESS_POLICY=policy), db, blobs, engine=cast(Engine, engine)
        )

        def run(i: int) -> None:
            ready = sessions[i]
            generation.run(ready.org_id, ready.session_id, list(ready.photo_ids))

        return run

    runs = {
        "engine": direct,
        "worker": through_worker("off", paired),
        "likeness": through_worker("score-only", scored),
    }
    for run in runs.values():
        run(0)
    pairs = {name: runs[name] for name in ("engine", "worker")}
    each = _alternated({name: _after_the_warm_up(run) for name, run in pairs.items()}, repeats, engine)
    # Likeness after the pairs, on its own: it would change the runs that follow it.
    each |= _alternated({"likeness": _after_the_warm_up(runs["likeness"])}, repeats, engine)
    in_run = _in_run_ratios(each)
    times = {name: statistics.median(values) for name, values in each.items()}
    made = paired + scored
    assert all(session_state(db, ready) == "completed" for ready in made), "a worker run did not complete"
    assert all(_rendered(db, r) == _shots(p) for r, p in zip(paired, plans, strict=True)), "plans differ"
    stages = _stages(db, blobs, demo, base.replace(LIKENESS_POLICY="retry"), engine, package, styles)
    db.dispose()
    return {
        "engine": engine.name,
        "package": package,
        "shots": len(plans[0]),
        "size": list(plans[0].size),
        "engine_seconds": round(times["engine"], 4),
        "worker_seconds": round(times["worker"], 4),
        "worker_with_likeness_seconds": round(times["likeness"], 4),
        "worker_overhead_ratio": round(_ratio(each, "worker", "engine"), 3),
        "worker_overhead_ratios": [
            round(w / e, 3) for w, e in zip(each["worker"], each["engine"], strict=True)
        ],
        "worker_in_run_ratio": round(statistics.median(in_run), 3),
        "worker_in_run_ratios": [round(r, 3) for r in in_run],
        "worker_own_ms_per_image": round(
            statistics.median(w - e for w, e in zip(each["worker"], each["worker_in_engine"], strict=True))
            / len(plans[0])
            * 1000,
            1,
        ),
        "engine_side_own_ms_per_image": round(
            statistics.median(w - e for w, e in zip(each["engine"], each["engine_in_engine"], strict=True))
            / len(plans[0])
            * 1000,
            1,
        ),
        "engine_cpu_seconds": round(times["engine_cpu"], 4),
        "worker_cpu_seconds": round(times["worker_cpu"], 4),
        "worker_cpu_ratio": round(_ratio(each, "worker_cpu", "engine_cpu"), 3),
        "worker_cpu_ratios": [
            round(w / e, 3) for w, e in zip(each["worker_cpu"], each["engine_cpu"], strict=True)
        ],
        "worker_cpu_ms_per_image": round(
            statistics.median(w - e for w, e in zip(each["worker_cpu"], each["engine_cpu"], strict=True))
            / len(plans[0])
            * 1000,
            1,
        ),
        "stage_seconds_default_settings": stages,
        "likeness_cpu_seconds_per_image": round(
            (times["likeness_cpu"] - times["worker_cpu"]) / len(plans[0]), 4
        ),
    }


def _in_run_ratios(each: dict[str, list[float]]) -> list[float]:
    """Per pair: the worker's run against the engine's cost *in that same run* plus what the engine
    side does with each image (its JPEG file, measured in its own run). The engine's speed drifting
    between runs cancels out: only the small parts outside the engine come from different runs."""
    return [
        worker / (in_engine + (engine - engine_in_engine))
        for worker, in_engine, engine, engine_in_engine in zip(
            each["worker"], each["worker_in_engine"], each["engine"], each["engine_in_engine"], strict=True
        )
    ]


def _shots(plan: ShotPlan) -> set[tuple[str, int, int]]:
    return {(shot.style_id, shot.index, shot.seed) for shot in plan.shots}


def _rendered(db: Database, ready: ReadySession) -> set[tuple[str, int, int]]:
    """What the worker stored for this session: (style, index, seed) of each headshot."""
    with db.session(org_id=ready.org_id) as s:
        rows = s.execute(
            select(Headshot.style_id, Headshot.index_in_style, Headshot.seed).where(
                Headshot.session_id == ready.session_id
            )
        )
        return {(style, index, seed) for style, index, seed in rows}


def _stages(
    db: Database, blobs: LocalBlobStore, demo: Any, settings: Settings, engine: Any, package: str, styles: Any
) -> dict[str, float]:
    """One session with the default likeness policy: seconds per stage, from the outbox timeline."""
    ready = ready_session(db, blobs, demo.org_id, demo.employees[0].id, package=package, styles=styles)
    Generation.build(settings, db, blobs, engine=engine).run(
        ready.org_id, ready.session_id, list(ready.photo_ids)
    )
    with db.session(all_orgs=True) as s:
        rows = s.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.session_id == ready.session_id)
            .order_by(OutboxMessage.id)
        ).all()
    first = {r.routing_key: r.created_at for r in reversed(rows)}
    return {
        "training": round((first[MODEL_TRAINED.routing_key] - rows[0].created_at).total_seconds(), 3),
        "generating": round(
            (first[SESSION_COMPLETED.routing_key] - first[MODEL_TRAINED.routing_key]).total_seconds(), 3
        ),
    }


def describe(r: dict[str, Any]) -> str:
    return (
        f"worker vs {r['engine']} engine ({r['package']}: {r['shots']} shots at {r['size'][0]}x{r['size'][1]})\n"
        f"  worker / engine            {r['worker_overhead_ratio']:.3f}x  "
        f"({r['worker_seconds']:.3f}s vs {r['engine_seconds']:.3f}s wall, likeness off)\n"
        f"  worker / engine, CPU time  {r['worker_cpu_ratio']:.3f}x  "
        f"({r['worker_cpu_seconds']:.3f}s vs {r['engine_cpu_seconds']:.3f}s; "
        f"{r['worker_cpu_ms_per_image']:.1f} ms CPU per image on top of the engine)\n"
        f"  each repeat, wall / CPU    {' '.join(f'{x:.3f}' for x in r['worker_overhead_ratios'])} / "
        f"{' '.join(f'{x:.3f}' for x in r['worker_cpu_ratios'])}\n"
        f"  in-run (engine timed inside each run) {r['worker_in_run_ratio']:.3f}x: the worker's own "
        f"{r['worker_own_ms_per_image']:.1f} ms per image vs the engine side's "
        f"{r['engine_side_own_ms_per_image']:.1f} (its JPEG file)\n"
        f"  each repeat, in-run        {' '.join(f'{x:.3f}' for x in r['worker_in_run_ratios'])}\n"
        f"  likeness scoring           {r['likeness_cpu_seconds_per_image'] * 1000:.0f} ms CPU per image "
        f"({r['worker_with_likeness_seconds']:.3f}s per session with it)\n"
        f"  stages, default settings   training {r['stage_seconds_default_settings']['training']:.2f}s, "
        f"generating {r['stage_seconds_default_settings']['generating']:.2f}s (likeness retry)"
    )
