"""The shot plan: which headshots a session gets, at what size, from which seed.

A session's plan is the person's chosen styles (backdrop × clothing) followed by the package's
pre-selected styles they did not already choose, each rendered ``headshots_per_style`` times at the
chosen format's size. Every image has its own seed, derived from the session key, the style and the
index with SHA-256, so a retried or resumed render produces the same pictures on any machine
(Python's ``hash()`` is salted per process and would not).

    >>> from libs.catalog import default_catalog
    >>> plan = plan_shots(default_catalog(), package_id="starter", format_id="standard",
    ...                   styles=["navy:suit"], session_key="org-1/session-42")
    >>> [s.id for s in plan.styles]
    ['navy:suit', 'studio-grey:suit']
    >>> len(plan), plan.size
    (4, (1536, 1024))
    >>> plan.shots[0].name
    'navy_suit_01'
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from libs.catalog import Catalog, CatalogError, Style

SEED_LIMIT = 2**31  # seeds stay below this so every generator (numpy, torch, CUDA) accepts them


class PlanError(CatalogError):
    """The choices do not fit the package (a format it does not offer, too many styles)."""


@dataclass(frozen=True)
class Shot:
    """One headshot to render."""

    style: Style
    index: int  # 0-based position within the style
    seed: int
    width: int
    height: int

    @property
    def style_id(self) -> str:
        return self.style.id

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    @property
    def name(self) -> str:
        """A stable file-name stem, e.g. ``navy_suit_01`` (ids never contain ``_``)."""
        return f"{self.style.backdrop.id}_{self.style.clothing.id}_{self.index + 1:02d}"


@dataclass(frozen=True)
class ShotPlan:
    """Every shot of a session, in render order (style by style)."""

    session_key: str
    package_id: str
    format_id: str
    width: int
    height: int
    styles: tuple[Style, ...]
    shots: tuple[Shot, ...]

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    def __len__(self) -> int:
        return len(self.shots)

    def __iter__(self) -> Iterator[Shot]:
        return iter(self.shots)


def shot_seed(session_key: str, style_id: str, index: int) -> int:
    """A seed in ``[0, 2**31)`` that depends only on its inputs (same on every machine and run)."""
    digest = hashlib.sha256(f"{session_key}\n{style_id}\n{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_LIMIT


def plan_shots(
    catalog: Catalog,
    *,
    package_id: str,
    format_id: str,
    styles: Sequence[str],
    session_key: str,
    size: tuple[int, int] | None = None,
) -> ShotPlan:
    """Plan a session's headshots.

    ``styles`` are the person's choices as ``"backdrop:clothing"`` ids; repeats and choices the
    package already pre-selects count once. ``size`` replaces the format's output size (previews,
    tests); the format must still be one the package offers. Raises :class:`CatalogError` for an
    unknown package, format or style and :class:`PlanError` when the choices break the package.
    """
    package = catalog.package(package_id)
    fmt = catalog.format(format_id)
    if not package.allows_format(format_id):
        raise PlanError(
            f"package {package_id!r} does not offer format {format_id!r} (it offers {package.formats})"
        )

    chosen = _unique([catalog.style(sid).id for sid in styles])
    if len(chosen) > package.max_styles:
        raise PlanError(
            f"package {package_id!r} allows {package.max_styles} styles, {len(chosen)} were chosen"
        )
    ordered = _unique([*chosen, *package.preselected])

    width, height = size if size is not None else fmt.size
    if width < 1 or height < 1:
        raise PlanError(f"output size must be positive, got {width}x{height}")
    plan_styles = tuple(catalog.style(sid) for sid in ordered)
    shots = tuple(
        Shot(style, index, shot_seed(session_key, style.id, index), width, height)
        for style in plan_styles
        for index in range(package.headshots_per_style)
    )
    return ShotPlan(session_key, package.id, fmt.id, width, height, plan_styles, shots)


def styles_from_choices(backdrops: Sequence[str], clothing: Sequence[str]) -> list[str]:
    """Every backdrop × clothing combination as style ids, backdrop-major, in the given order.

    >>> styles_from_choices(["navy", "office"], ["suit"])
    ['navy:suit', 'office:suit']
    """
    return [f"{b}:{c}" for b in backdrops for c in clothing]


def _unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))
