"""How much a headshot looks like the person: face-embedding distance to their uploads.

    judge = LikenessJudge.from_settings(settings, references)
    score = judge.score(image)          # 1 - distance to the closest upload (1 = identical), None: no face
    judge.acceptable(score)             # False: render the shot again with a new seed (policy "retry")

The embeddings are intake's (dlib ResNet, ``libs.imaging``), so "the same person" means what it
means at upload: a distance of at most SAME_PERSON_DISTANCE, i.e. a likeness of at least
1 - SAME_PERSON_DISTANCE.

Policies (LIKENESS_POLICY):

- ``retry``: score every headshot; no face, or too little likeness, renders it again with a new
  seed, up to LIKENESS_TRIES renders; the best-scoring try is kept (never a failed session).
- ``score-only``: score and store, never re-render. For engines that cannot produce faces (the
  tiny test pipeline), or to save GPU time.
- ``off``: no scoring (the likeness stays null).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from libs.imaging import detect_faces, face_distance, face_embedding
from libs.settings import Settings

POLICIES = ("retry", "score-only", "off")

# Headshots are scored on a copy this big, without the detector's upsampling: a headshot's face is
# a third of the frame, far above HOG's 80 px window, and the ResNet looks at a 150 px chip anyway.
# Full size cost ~5x more per image for the same answer.
SCORE_SIDE = 512


@dataclass(frozen=True)
class LikenessJudge:
    policy: str
    tries: int
    min_likeness: float
    references: tuple[tuple[float, ...], ...]

    @classmethod
    def from_settings(cls, settings: Settings, references: Sequence[Sequence[float]]) -> LikenessJudge:
        check_policy(settings)
        return cls(
            settings.LIKENESS_POLICY,
            max(1, settings.LIKENESS_TRIES),
            1.0 - settings.SAME_PERSON_DISTANCE,
            tuple(tuple(r) for r in references),
        )

    @property
    def scoring(self) -> bool:
        return self.policy != "off"

    @property
    def max_renders(self) -> int:
        return self.tries if self.policy == "retry" else 1

    def score(self, image: Image.Image) -> float | None:
        """Likeness of the best-detected face to the closest upload; None without a face or uploads."""
        if not self.scoring or not self.references:
            return None
        small = image.convert("RGB")
        small.thumbnail((SCORE_SIDE, SCORE_SIDE), Image.Resampling.BILINEAR)
        rgb = np.asarray(small, dtype=np.uint8)
        # Upsampling (4x the cost) only when the quick look finds nothing: small or odd frames.
        faces = detect_faces(rgb, upsample=0) or detect_faces(rgb)
        if not faces:
            return None
        vector = face_embedding(rgb, faces[0])
        distance = min(face_distance(vector, ref) for ref in self.references)
        return round(max(0.0, 1.0 - distance), 4)

    def acceptable(self, score: float | None) -> bool:
        if self.policy != "retry" or not self.references:
            return True
        return score is not None and score >= self.min_likeness


def check_policy(settings: Settings) -> None:
    if settings.LIKENESS_POLICY not in POLICIES:
        raise ValueError(f"LIKENESS_POLICY={settings.LIKENESS_POLICY!r} must be one of {', '.join(POLICIES)}")


def better(a: float | None, b: float | None) -> bool:
    """Is score ``a`` strictly better than ``b``? Any score beats no face."""
    if a is None:
        return False
    return b is None or a > b
