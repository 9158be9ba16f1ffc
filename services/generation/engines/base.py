"""The engine interface: prepare a person model, render a plan with it, delete it.

The records an engine hands over (:class:`TrainedModel`, :class:`RenderedHeadshot`,
:class:`Progress`) are the engine's own: the database rows the worker keeps for them are
``libs.db.PersonModel`` and ``libs.db.Headshot``, different names for different things.
"""

from __future__ import annotations

import json
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from PIL import Image

from libs.settings import Settings
from services.generation.engines.errors import Cancelled, PersonModelError
from services.generation.plan import Shot, ShotPlan

_PERSON_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


# --- records ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PersonAttributes:
    """What the prompt may say about the person. Personal info: never put it in events or files."""

    gender: str = ""  # "female", "male", or anything else (rendered as "person")
    eye_color: str = ""
    glasses: bool = False


@dataclass(frozen=True)
class TrainedModel:
    """A prepared person model: a file on disk plus what is needed to use it.

    ``base_model`` identifies what it was trained on, so a model from another base is refused
    instead of rendering garbage. ``reference`` is an optional face crop kept next to the model
    (image-to-image renders start from it) and deleted with it.
    """

    path: Path
    engine: str
    trigger: str
    base_model: str
    reference: Path | None = None

    def files(self) -> list[Path]:
        return [self.path] + ([self.reference] if self.reference else [])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form the worker keeps between training and rendering."""
        data = asdict(self)
        data["path"] = str(self.path)
        data["reference"] = str(self.reference) if self.reference else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainedModel:
        reference = data.get("reference")
        return cls(
            path=Path(data["path"]),
            engine=data["engine"],
            trigger=data["trigger"],
            base_model=data["base_model"],
            reference=Path(reference) if reference else None,
        )


@dataclass(frozen=True)
class RenderedHeadshot:
    """One rendered image of a plan."""

    shot: Shot
    image: Image.Image


@dataclass(frozen=True)
class Progress:
    """Where an engine is. ``done``/``total`` count training steps or finished images.

    While generating with denoising steps, ``step``/``steps`` say how far the images currently being
    denoised are (``done`` images are finished); they are 0 on per-image reports.
    """

    stage: Literal["training", "generating"]  # the session states (libs.contracts) they belong to
    done: int
    total: int
    step: int = 0
    steps: int = 0

    @property
    def fraction(self) -> float:
        """Overall fraction of the stage, counting partly denoised images."""
        if self.total == 0:
            return 1.0
        partial = self.step / self.steps if self.steps else 0.0
        return min(1.0, (self.done + partial) / self.total)


ProgressCallback = Callable[[Progress], None]


# --- the interface -------------------------------------------------------------------------------
class Engine(ABC):
    """Prepare a person model, render a plan with it, delete it."""

    name: ClassVar[str]
    model_suffix: ClassVar[str]

    def __init__(self, settings: Settings, *, models_dir: Path | str | None = None) -> None:
        self.settings = settings
        # Person models are working files of the generation worker, not results: under VAR_DIR.
        self.models_dir = Path(models_dir) if models_dir else settings.person_model_dir / self.name

    @property
    def renders_on_cpu(self) -> bool:
        """Whether rendering keeps the CPU busy (the studio engine; diffusion without a GPU). The worker
        then stores each image itself between renders: on a helper thread that work would compete
        for the same cores and for Python's GIL, and cost more than it overlaps."""
        return True

    @abstractmethod
    def prepare(
        self,
        person_id: str,
        photos: Sequence[Path],
        attributes: PersonAttributes,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> TrainedModel:
        """Build the person model from prepared photos; preparing the same id again replaces it."""

    @abstractmethod
    def render(
        self,
        model: TrainedModel,
        plan: ShotPlan,
        attributes: PersonAttributes,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[RenderedHeadshot]:
        """Yield one :class:`RenderedHeadshot` per shot of ``plan``, in plan order."""

    def delete(self, model: TrainedModel) -> None:
        """Remove the person model's files. Deleting twice is fine (the worker may retry)."""
        for path in model.files():
            path.unlink(missing_ok=True)

    # --- helpers shared by the engines -----------------------------------------------------------
    def model_path(self, person_id: str, suffix: str | None = None) -> Path:
        """Where ``person_id``'s model file goes; the id must be a plain file-name stem."""
        if not _PERSON_ID.match(person_id):
            raise PersonModelError(f"person id {person_id!r} must be letters, digits, '.', '_' or '-'")
        self.models_dir.mkdir(parents=True, exist_ok=True)
        return self.models_dir / f"{person_id}{suffix or self.model_suffix}"

    def check_model(self, model: TrainedModel) -> None:
        if model.engine != self.name:
            raise PersonModelError(f"person model {model.path.name} belongs to the {model.engine} engine")
        if not model.path.is_file():
            raise PersonModelError(f"person model file {model.path} is missing (deleted, or never prepared)")


def check_cancel(cancel: threading.Event | None, what: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} was cancelled")


def report(progress: ProgressCallback | None, event: Progress) -> None:
    if progress is not None:
        progress(event)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write-then-rename so a crash never leaves half a file where a model should be."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


__all__ = [
    "Engine",
    "PersonAttributes",
    "Progress",
    "ProgressCallback",
    "RenderedHeadshot",
    "TrainedModel",
    "check_cancel",
    "report",
    "write_json_atomic",
]
