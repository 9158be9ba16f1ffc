"""The preprocess worker's settings, read once from :class:`libs.settings.Settings`."""

from __future__ import annotations

from dataclasses import dataclass, field

from libs.imaging import PhotoLimits
from libs.settings import Settings


@dataclass(frozen=True)
class PreprocessOptions:
    keep_best: int = 15  # PREPARE_KEEP_BEST
    min_photos: int = 1  # PREPARE_MIN_PHOTOS
    min_sharpness: float = 0.25  # PREPARE_MIN_SHARPNESS
    training_side: int = 512  # LORA_RESOLUTION
    limits: PhotoLimits = field(default_factory=PhotoLimits)

    def __post_init__(self) -> None:
        # photos.processed needs at least one photo, and keeping fewer than the minimum would fail
        # every session: refuse such settings when the worker starts, not at the first message.
        if self.min_photos < 1:
            raise ValueError(f"PREPARE_MIN_PHOTOS must be at least 1, not {self.min_photos}")
        if self.keep_best < self.min_photos:
            raise ValueError(
                f"PREPARE_KEEP_BEST ({self.keep_best}) must be at least PREPARE_MIN_PHOTOS ({self.min_photos})"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> PreprocessOptions:
        return cls(
            keep_best=settings.PREPARE_KEEP_BEST,
            min_photos=settings.PREPARE_MIN_PHOTOS,
            min_sharpness=settings.PREPARE_MIN_SHARPNESS,
            training_side=settings.LORA_RESOLUTION,
            limits=PhotoLimits.from_settings(settings),
        )
