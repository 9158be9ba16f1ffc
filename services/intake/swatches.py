"""Colour swatches as a stylesheet built from the catalog (``GET /swatches.css``).

The pages show each backdrop's colours and each eye colour as a small swatch. Under the strict
Content-Security-Policy (libs/web/security.py) a ``style="background: …"`` attribute is refused,
so the colours live in a stylesheet instead, one class per backdrop and per eye colour::

    .bd-navy { background: linear-gradient(160deg, #2a3b5c, #16223a); }
    .eye-brown { background: #6b4226; }

Templates name the class with ``backdrop_class(backdrop.id)`` / ``eye_class(value)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from libs.catalog import Catalog

# Display-only colours for the eye-colour choices.
EYE_SWATCHES = {
    "brown": "#6b4226",
    "hazel": "#8e7618",
    "amber": "#c68a12",
    "green": "#3f7d3a",
    "blue": "#3b6fb6",
    "grey": "#8a949e",
}

_COLOR = re.compile(r"^#[0-9a-fA-F]{3,8}$")  # anything else would be CSS we did not mean to write
_NOT_IN_CLASS = re.compile(r"[^a-z0-9-]")
FALLBACK = "#cccccc"


def backdrop_class(backdrop_id: str) -> str:
    return "bd-" + _NOT_IN_CLASS.sub("-", backdrop_id.lower())


def eye_class(value: str) -> str:
    return "eye-" + _NOT_IN_CLASS.sub("-", value.lower())


def stylesheet(catalog: Catalog, eyes: Mapping[str, str] = EYE_SWATCHES) -> str:
    lines = ["/* Swatch colours from the catalog (services/intake/swatches.py). */"]
    for backdrop in catalog.backdrops:
        colors = [c for c in backdrop.colors if _COLOR.match(c)] or [FALLBACK]
        if len(colors) == 1:
            colors *= 2  # a gradient needs two stops
        lines.append(
            f".{backdrop_class(backdrop.id)} {{ background: linear-gradient(160deg, {', '.join(colors)}); }}"
        )
    for value, color in eyes.items():
        lines.append(f".{eye_class(value)} {{ background: {color if _COLOR.match(color) else FALLBACK}; }}")
    return "\n".join(lines) + "\n"
