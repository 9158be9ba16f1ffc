"""``python -m services.generation``: the generation service's command line.

Subcommands (each one a ``cmd_*`` function registered in :func:`build_parser`):

- ``work``: run the generation worker alone (its consumer and the outbox relay), as
  ``python -m services run --only generation --no-web`` does::

      BROKER_URL=amqp://... DATABASE_URL=postgresql+psycopg://... python -m services.generation work

- ``render``: render a session's plan from a folder of photos, outside the pipeline (try an
  engine, a model folder, a style)::

      python -m services.generation render --photos photos/ --engine studio \\
          --styles navy:suit,office:blazer --package executive --format portrait --out out/

  ``--package`` defaults to the catalog's default package and ``--format`` to the package's
  default format. The photos must show one person (the check intake makes at upload); a folder
  mixing people is refused naming the odd photo out, unless ``--allow-mixed`` is given.

  Settings not given as options come from the environment (``libs.settings``), e.g.
  ``INFERENCE_STEPS=20 python -m services.generation render ... --engine diffusion --model-dir m/``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from libs.catalog import CatalogError, default_catalog
from libs.imaging import PhotoLimits
from libs.settings import Settings
from services.generation.engines import ENGINES, EngineError, PersonAttributes, Progress, make_engine
from services.generation.identity import different_people
from services.generation.plan import plan_shots
from services.relaying import add_relay_options, relay_choice
from services.stopping import catch_stop_signals

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


class ProgressBar:
    """A one-line progress bar on stderr, one line per stage: ``generating [#####-----] 8/16``."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30, *, enabled: bool = True) -> None:
        self.stream, self.width, self.enabled = stream, width, enabled
        self.stage: str | None = None
        self.started = time.monotonic()

    def __call__(self, progress: Progress) -> None:
        if not self.enabled:
            return
        if progress.stage != self.stage:
            self.finish()
            self.stage, self.started = progress.stage, time.monotonic()
        filled = round(self.width * progress.fraction)
        step = f" step {progress.step}/{progress.steps}" if progress.steps else ""
        elapsed = time.monotonic() - self.started
        self.stream.write(
            f"\r{progress.stage:>10} [{'#' * filled}{'-' * (self.width - filled)}] "
            f"{progress.done}/{progress.total}{step} {elapsed:5.1f}s "
        )
        self.stream.flush()

    def finish(self) -> None:
        if self.stage is not None:
            self.stream.write("\n")
            self.stage = None


def cmd_render(args: argparse.Namespace) -> int:
    photos = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        print(f"error: no photos ({', '.join(sorted(PHOTO_SUFFIXES))}) in {args.photos}", file=sys.stderr)
        return 2
    overrides: dict[str, Any] = {"ENGINE": args.engine}
    if args.model_dir:
        overrides["MODEL_DIR"] = args.model_dir
    if args.steps:
        overrides["INFERENCE_STEPS"] = args.steps
    settings = Settings.from_env(**overrides)
    if not args.allow_mixed:
        odd = different_people(photos, PhotoLimits.from_settings(settings).same_person_distance)
        if odd:
            print(f"error: {odd}; render one person at a time, or pass --allow-mixed", file=sys.stderr)
            return 2
    catalog = default_catalog()
    package = catalog.package(args.package) if args.package else catalog.default_package()
    plan = plan_shots(
        catalog,
        package_id=package.id,
        format_id=args.format or package.default_format,
        styles=[s.strip() for s in args.styles.split(",") if s.strip()],
        session_key=args.session_key,
        size=args.size,
    )
    attributes = PersonAttributes(gender=args.gender, eye_color=args.eye_color, glasses=args.glasses)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bar = ProgressBar(enabled=not args.quiet)

    # The person model only lives for this command: a throwaway folder, deleted at the end.
    with tempfile.TemporaryDirectory(prefix="person-model-") as models_dir:
        engine = make_engine(settings, models_dir=models_dir)
        model = engine.prepare("cli", photos, attributes, progress=bar)
        try:
            for headshot in engine.render(model, plan, attributes, progress=bar):
                headshot.image.save(out / f"{headshot.shot.name}.png")
        finally:
            bar.finish()
            engine.delete(model)
    print(f"{len(plan)} headshots ({plan.width}x{plan.height}, {settings.engine}) written to {out}")
    return 0


def cmd_work(args: argparse.Namespace) -> int:
    from libs.web import configure_logging

    settings = Settings.from_env()
    configure_logging(settings)
    from services import launcher  # after logging is configured; it imports the messaging stack

    running = launcher.start(
        settings,
        stop=catch_stop_signals(),
        only={"generation"},
        web=False,
        workers=True,
        **relay_choice(args),
    )
    print(f"generation worker running ({settings.engine} engine); Ctrl-C to stop", flush=True)
    launcher.run_until_stopped(running)
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 512x640") from None
    return width, height


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.generation",
        description="The generation service: person models and headshots.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    work = commands.add_parser(
        "work",
        help="run the generation worker alone",
        description="Run the generation worker: it renders the headshots of every session whose photos "
        "are prepared, and deletes retired person models. Settings come from the environment "
        "(python -m libs.settings lists them).",
    )
    add_relay_options(work, writer="this worker")
    work.set_defaults(func=cmd_work)

    render = commands.add_parser("render", help="render a plan from a folder of photos")
    render.add_argument("--photos", required=True, help="folder of prepared photos of one person")
    render.add_argument("--engine", choices=ENGINES, default="studio", help="(default: studio)")
    render.add_argument("--styles", default="", help="chosen styles, e.g. navy:suit,office:blazer")
    render.add_argument(
        "--package",
        help=f"catalog package id, e.g. executive (default: {default_catalog().default_package().id})",
    )
    render.add_argument("--format", help="catalog format id, e.g. portrait (default: the package's first)")
    render.add_argument(
        "--allow-mixed", action="store_true", help="render even if the photos seem to show different people"
    )
    render.add_argument("--out", required=True, help="folder the PNG headshots are written to")
    render.add_argument("--model-dir", help="diffusion base model folder or .safetensors (MODEL_DIR)")
    render.add_argument("--size", type=_size, help="override the format's size, e.g. 256x320")
    render.add_argument("--steps", type=int, help="denoising steps (INFERENCE_STEPS)")
    render.add_argument("--session-key", default="cli", help="seeds the images (default: cli)")
    render.add_argument("--gender", default="", help="female, male, or empty")
    render.add_argument("--eye-color", default="", help="e.g. brown")
    render.add_argument("--glasses", action="store_true", help="the person wears glasses")
    render.add_argument("--quiet", action="store_true", help="no progress bar")
    render.set_defaults(func=cmd_render)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (EngineError, CatalogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
