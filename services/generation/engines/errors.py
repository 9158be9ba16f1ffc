"""What can go wrong in an engine. Every failure is an :class:`EngineError` whose message a person
can read (it ends up in ``session.failed`` and on the ops dashboard); the worker decides what each
one means for the session (:mod:`services.generation.job`)."""

from __future__ import annotations


class EngineError(Exception):
    """Generation failed; ``str(error)`` says why in words fit for the ops dashboard."""


class EngineConfigError(EngineError):
    """The settings cannot work (unknown engine, img2img strength that leaves no step...)."""


class ModelLoadError(EngineError):
    """The base model (MODEL_DIR) is missing, incomplete or not a supported pipeline."""


class PersonModelError(EngineError):
    """A person model cannot be prepared (no usable face) or used (missing, other engine/base)."""


class OutOfMemory(EngineError):
    """The device ran out of memory; a smaller BATCH_SIZE or CPU_OFFLOAD may help."""


class Cancelled(EngineError):
    """The caller set the cancel event; whatever was in progress was abandoned."""


__all__ = [
    "Cancelled",
    "EngineConfigError",
    "EngineError",
    "ModelLoadError",
    "OutOfMemory",
    "PersonModelError",
]
