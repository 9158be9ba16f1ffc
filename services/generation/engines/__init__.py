"""The generation engines: turn a person's prepared photos into the headshots of a shot plan.

Two engines implement the interface of :mod:`.base`, chosen by ``settings.engine``:

- ``studio`` (:mod:`.studio`): a non-AI photo pipeline (face-centred crop, backdrop replaced,
  light tone correction). CPU only, no weights; the default when no model is configured.
- ``diffusion`` (:mod:`.diffusion`): Stable Diffusion / SDXL from a local folder, with a LoRA
  trained per person. Imports torch and diffusers, so it is only imported when chosen.

Usage (what the generation worker does)::

    engine = make_engine(settings)
    attributes = PersonAttributes("female", "brown", glasses=False)
    model = engine.prepare("session-42", photos, attributes, progress=report, cancel=stop)
    for headshot in engine.render(model, plan, attributes, progress=report, cancel=stop):
        store(headshot.shot.name, headshot.image)      # one PIL image per planned shot
    engine.delete(model)

``render`` is a generator: each image is handed over as soon as it exists, so the worker can store
and announce it while the next one renders. Every failure is an :class:`EngineError` subclass with a
message a person can read (:mod:`.errors`); a cancelled or failed render raises, it never ends
early silently.

Where things are: :mod:`.base` (the interface and its records), :mod:`.errors`, :mod:`.factory`
(``make_engine``), one module or package per engine, and what they share (:mod:`.framing`,
:mod:`.prompts`, :mod:`.looks`). Code outside the engines imports from this package; the engines
import the modules they need directly.
"""

from services.generation.engines.base import (
    Engine,
    PersonAttributes,
    Progress,
    ProgressCallback,
    RenderedHeadshot,
    TrainedModel,
    write_json_atomic,
)
from services.generation.engines.errors import (
    Cancelled,
    EngineConfigError,
    EngineError,
    ModelLoadError,
    OutOfMemory,
    PersonModelError,
)
from services.generation.engines.factory import ENGINES, make_engine

__all__ = [
    "ENGINES",
    "Cancelled",
    "Engine",
    "EngineConfigError",
    "EngineError",
    "ModelLoadError",
    "OutOfMemory",
    "PersonAttributes",
    "PersonModelError",
    "Progress",
    "ProgressCallback",
    "RenderedHeadshot",
    "TrainedModel",
    "make_engine",
    "write_json_atomic",
]
