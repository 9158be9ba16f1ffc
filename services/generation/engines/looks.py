"""How the studio engine's shots of one style differ: framing and light, by the shot's index.

A photographer changes the framing and the light between frames of one look; four near-identical
crops are not four headshots. Each index within a style gets one :class:`Look` (cycling when a
package has more headshots per style); the shot's seed then adds a small jitter on top, so two
sessions do not get pixel-identical framings.

    look = look_for(shot.index)
    box = headshot_crop(size, face, aspect, zoom=look.zoom, shift=look.shift)
    cut = relight(cut, look)                    # exposure and warmth of the person
    wall = lit_backdrop(gradient, look)         # where the light falls on the backdrop
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Look:
    name: str
    zoom: float  # > 1 frames tighter
    shift: tuple[float, float]  # frame moved by fractions of its own size (x, y)
    exposure: float  # multiplies the person's pixel values
    warmth: float  # + warmer (red up, blue down), - cooler
    light_x: float  # where the backdrop is brightest, 0 = left edge, 1 = right edge


LOOKS = (
    Look("classic", zoom=1.0, shift=(0.0, 0.0), exposure=1.0, warmth=0.0, light_x=0.5),
    Look("close-up", zoom=1.3, shift=(0.0, -0.02), exposure=1.05, warmth=0.03, light_x=0.3),
    Look("shoulders", zoom=0.8, shift=(0.0, 0.04), exposure=0.97, warmth=-0.02, light_x=0.7),
    Look("off-centre", zoom=1.12, shift=(-0.1, 0.0), exposure=1.02, warmth=0.015, light_x=0.8),
)
JITTER = (0.03, 0.015, 0.01)  # zoom, horizontal and vertical shift added by the seed, as fractions
BACKDROP_LIGHT = 0.14  # how much brighter the backdrop is where the light falls


def look_for(index: int) -> Look:
    return LOOKS[index % len(LOOKS)]


def jittered(look: Look, seed: int) -> tuple[float, tuple[float, float]]:
    """The look's zoom and shift, moved a little by the shot's seed (same seed, same framing)."""
    rng = np.random.default_rng(seed)
    zoom_j, x_j, y_j = JITTER
    zoom = look.zoom * (1.0 + rng.uniform(-zoom_j, zoom_j))
    return zoom, (look.shift[0] + rng.uniform(-x_j, x_j), look.shift[1] + rng.uniform(-y_j, y_j))


def relight(rgba: np.ndarray, look: Look) -> np.ndarray:
    """Exposure and warmth of the person layer (HxWx4 uint8); alpha untouched. A per-channel lookup
    table: a 1.5 MP layer in a few milliseconds."""
    if look.exposure == 1.0 and look.warmth == 0.0:
        return rgba
    gains = (look.exposure * (1 + look.warmth), look.exposure, look.exposure * (1 - look.warmth), 1.0)
    levels = np.arange(256, dtype=np.float32)
    table = np.stack([np.clip(levels * g, 0, 255) for g in gains], axis=-1).astype(np.uint8)
    out: np.ndarray = cv2.LUT(np.ascontiguousarray(rgba), table[None, :, :])
    return out


def lit_backdrop(gradient: np.ndarray, look: Look) -> np.ndarray:
    """The backdrop gradient with a soft pool of light centred at ``look.light_x``, upper third.
    The light is smooth: its gain is computed at 1/8 size and scaled up."""
    height, width = gradient.shape[:2]
    small_h, small_w = max(2, height // 8), max(2, width // 8)
    ys = np.linspace(0.0, 1.0, small_h, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, small_w, dtype=np.float32)[None, :]
    aspect = width / max(height, 1)
    distance = np.sqrt(((xs - look.light_x) * aspect) ** 2 + (ys - 0.35) ** 2)
    gain = (1.0 + BACKDROP_LIGHT * np.exp(-((distance / 0.55) ** 2))).astype(np.float32)
    gain = cv2.resize(gain, (width, height), interpolation=cv2.INTER_LINEAR)
    lit: np.ndarray = cv2.multiply(gradient, cv2.merge([gain, gain, gain]), dtype=cv2.CV_8U)
    return lit
