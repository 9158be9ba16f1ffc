"""Which engine a worker runs: ``settings.engine`` (``ENGINE``, with ``auto`` resolved by the settings)."""

from __future__ import annotations

from typing import Any

from libs.settings import Settings
from services.generation.engines.base import Engine
from services.generation.engines.errors import EngineConfigError

ENGINES = ("studio", "diffusion")


def make_engine(settings: Settings, **kwargs: Any) -> Engine:
    """The engine ``settings.engine`` names. The diffusion engine loads its base model here, so a
    bad MODEL_DIR fails at worker start (:class:`ModelLoadError`), not in the middle of a session."""
    name = settings.engine
    if name == "studio":
        from services.generation.engines.studio import StudioEngine

        return StudioEngine(settings, **kwargs)
    if name == "diffusion":
        # Imported here only: it pulls in torch and diffusers (~5 s, ~0.5 GB).
        from services.generation.engines.diffusion import DiffusionEngine

        return DiffusionEngine(settings, **kwargs)
    raise EngineConfigError(f"unknown engine {name!r}: ENGINE must be one of {', '.join(ENGINES)} or auto")


__all__ = ["ENGINES", "make_engine"]
