"""The ``studio`` engine: a non-AI headshot renderer for development and CPU-only installs.

It does what a retoucher does with a few good photos, with classical image processing and no model
weights, fast on a CPU:

1. *prepare*: keep the first ``MAX_PHOTOS`` prepared photos in which dlib's HOG detector
   (``libs.imaging.faces``) finds a face, in the order given (the worker passes them best first,
   ranked by preparation), and write the "person model": a small JSON file naming those photos
   and their face boxes.
2. *render*, once per photo used: cut the person out (:mod:`.matte`: OpenCV GrabCut seeded by the
   face box, then the edge refined at full size into a soft alpha, with the old background's colour
   taken out of part-covered pixels such as loose hair), and apply a light tone correction (levels
   stretched on the person's lightness, exposure nudged towards a well-lit face).
3. *render*, per shot: the shot's index within its style picks the photo (the best one for the
   first shot of every style) and a look (:mod:`.looks`: classic, close-up, wider with more
   shoulders, off-centre, each with its own exposure, warmth and light on the backdrop); the crop
   is face-centred at the format's aspect, scaled to the output size and composited over the
   backdrop, a vertical gradient of the catalog's colours. The seed adds a small jitter, and the
   same seed always gives the same picture.

**It does not change clothing**: the clothing choice is not rendered (the person keeps the clothes
of their photo); only the ``diffusion`` engine renders clothing. See docs/engines.md. ::

    engine = StudioEngine(Settings(VAR_DIR="var"))
    model = engine.prepare("session-42", [Path("photo.jpg")], PersonAttributes())
    images = [h.image for h in engine.render(model, plan, PersonAttributes())]
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from libs.catalog import Backdrop
from libs.imaging.faces import detect_faces
from services.generation.engines.base import (
    Engine,
    PersonAttributes,
    Progress,
    ProgressCallback,
    RenderedHeadshot,
    TrainedModel,
    check_cancel,
    report,
    write_json_atomic,
)
from services.generation.engines.errors import PersonModelError
from services.generation.engines.framing import Box, crop_resize, headshot_crop
from services.generation.engines.looks import jittered, lit_backdrop, look_for, relight
from services.generation.engines.matte import cut_out
from services.generation.plan import Shot, ShotPlan

MODEL_VERSION = 2  # 2: several photos ("photos"), the first one also at the top level as in 1
MAX_PHOTOS = 3  # photos a studio model keeps: shots of one style alternate between them
FACE_LIGHTNESS = 0.62  # LAB lightness of well-exposed skin in a studio portrait, 0-1


class StudioEngine(Engine):
    name = "studio"
    model_suffix = ".json"

    # --- prepare ---------------------------------------------------------------------------------
    def prepare(
        self,
        person_id: str,
        photos: Sequence[Path],
        attributes: PersonAttributes,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> TrainedModel:
        """Keep the first few photos with a face, in the order given (the worker passes them best
        first, ranked by preparation), with their face boxes."""
        if not photos:
            raise PersonModelError("no prepared photos to build a person model from")
        kept: list[dict[str, Any]] = []
        for done, photo in enumerate(photos, start=1):
            check_cancel(cancel, "preparing the person model")
            if len(kept) < MAX_PHOTOS:
                rgb = _load_rgb(Path(photo))
                faces = detect_faces(rgb)
                if faces:
                    face = faces[0]
                    kept.append(
                        {
                            "photo": str(Path(photo).resolve()),
                            "image_size": [rgb.shape[1], rgb.shape[0]],
                            "face": {"x": face.x, "y": face.y, "w": face.w, "h": face.h, "score": face.score},
                        }
                    )
            report(progress, Progress("training", done, len(photos)))
        if not kept:
            raise PersonModelError(f"no face found in any of the {len(photos)} prepared photos")

        path = self.model_path(person_id)
        # The first photo also at the top level: what version 1 models held.
        write_json_atomic(path, {"version": MODEL_VERSION, **kept[0], "photos": kept})
        return TrainedModel(path=path, engine=self.name, trigger="", base_model=f"studio-v{MODEL_VERSION}")

    # --- render ----------------------------------------------------------------------------------
    def render(
        self,
        model: TrainedModel,
        plan: ShotPlan,
        attributes: PersonAttributes,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[RenderedHeadshot]:
        # Checked now, not at the first next(): the caller learns of a bad model where it asks.
        self.check_model(model)
        try:
            data = json.loads(model.path.read_text())
            entries = data.get("photos") or [data]
            sources = [
                _Source(
                    Path(e["photo"]),
                    Box(*(float(e["face"][k]) for k in ("x", "y", "w", "h"))),
                    e["image_size"],
                )
                for e in entries
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise PersonModelError(f"person model {model.path.name} is not a studio model: {exc}") from None
        for source in sources:
            source.load(model)
        return self._headshots(sources, plan, progress, cancel)

    def _headshots(
        self,
        sources: list[_Source],
        plan: ShotPlan,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> Iterator[RenderedHeadshot]:
        # The expensive part (segmentation) is done once per photo; each shot is a crop and a composite.
        backdrops: dict[tuple[str, tuple[int, int], str], Image.Image] = {}
        for done, shot in enumerate(plan.shots):
            check_cancel(cancel, "rendering")
            # The best photo for the first shot of every style, the next ones for the other shots.
            source = sources[shot.index % len(sources)]
            look = look_for(shot.index)
            key = (shot.style.backdrop.id, shot.size, look.name)
            if key not in backdrops:
                wall = lit_backdrop(backdrop_gradient(shot.style.backdrop, shot.size), look)
                backdrops[key] = Image.fromarray(wall).convert("RGBA")
            image = _compose(source.person(), source.face, shot, backdrops[key])
            report(progress, Progress("generating", done + 1, len(plan)))
            yield RenderedHeadshot(shot, image)


class _Source:
    """One kept photo: pixels, face box, and its person layer (matte + retouch), made on first use."""

    def __init__(self, photo: Path, face: Box, size: list[int]) -> None:
        self.photo, self.face, self.size = photo, face, size
        self.rgb: np.ndarray | None = None
        self._person: Image.Image | None = None

    def load(self, model: TrainedModel) -> None:
        self.rgb = _load_rgb(self.photo)
        if [self.rgb.shape[1], self.rgb.shape[0]] != self.size:
            raise PersonModelError(f"the reference photo of {model.path.name} changed since it was prepared")

    def person(self) -> Image.Image:
        if self._person is None:
            assert self.rgb is not None
            alpha, cut = cut_out(self.rgb, self.face)
            colours = tone_correct(cut, alpha, self.face)
            self._person = Image.fromarray(np.dstack([colours, _to_uint8(alpha)]), "RGBA")
        return self._person


def _compose(person: Image.Image, face: Box, shot: Shot, backdrop: Image.Image) -> Image.Image:
    look = look_for(shot.index)
    zoom, shift = jittered(look, shot.seed)
    box = headshot_crop(person.size, face, shot.width / shot.height, zoom=zoom, shift=shift)
    cut = Image.fromarray(relight(np.asarray(crop_resize(person, box, shot.size)), look), "RGBA")
    return Image.alpha_composite(backdrop, cut).convert("RGB")


# --- image processing ------------------------------------------------------------------------------
def backdrop_gradient(backdrop: Backdrop, size: tuple[int, int]) -> np.ndarray:
    """An HxWx3 uint8 vertical gradient through the backdrop's colours, top colour first."""
    width, height = size
    stops = np.asarray(backdrop.rgb, dtype=np.float32)
    if len(stops) == 1:
        stops = np.vstack([stops, stops])
    positions = np.linspace(0.0, 1.0, len(stops))
    rows = np.linspace(0.0, 1.0, height)
    column = np.stack([np.interp(rows, positions, stops[:, c]) for c in range(3)], axis=-1)
    return np.broadcast_to(np.round(column)[:, None, :], (height, width, 3)).astype(np.uint8)


def tone_correct(rgb: np.ndarray, alpha: np.ndarray, face: Box, strength: float = 0.5) -> np.ndarray:
    """Light retouching, measured on the person only: stretch the levels, then expose for the face.

    Only lightness changes (LAB's L): colours are left alone, since skin and clothing are rarely
    neutral and a grey-world correction would tint the person.
    """
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    on_person = alpha > 0.5
    if on_person.sum() < 100:  # nothing reliable to measure
        return rgb
    lightness = lab[..., 0] / 255.0
    low, high = np.percentile(lightness[on_person], (1.0, 99.0))
    if high - low > 0.05:
        stretched = np.clip((lightness - low) / (high - low) * 0.92 + 0.04, 0.0, 1.0)
        lightness = (1 - strength) * lightness + strength * stretched
    # Move the face's median lightness part of the way towards a well-exposed skin tone.
    left, top, right, bottom = face.rounded()
    face_median = float(np.median(lightness[max(0, top) : bottom, max(0, left) : right]))
    if 0.05 < face_median < 0.95:
        target = face_median + strength * (FACE_LIGHTNESS - face_median)
        lightness = np.power(lightness, np.log(target) / np.log(face_median))
    lab[..., 0] = lightness * 255.0
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def _to_uint8(alpha: np.ndarray) -> np.ndarray:
    return np.round(alpha * 255.0).astype(np.uint8)


def _load_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise PersonModelError(f"photo {path} is missing") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise PersonModelError(f"photo {path.name} cannot be read: {exc}") from None
