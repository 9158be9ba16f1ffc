"""Packages, backdrops, clothing and formats: the data in catalog.toml, typed lookups.

A *style* is a backdrop × clothing pair with the id ``"<backdrop>:<clothing>"``. The catalog is
validated when it is loaded: an unknown id anywhere (a package's format or pre-selected style) is
a :class:`CatalogError`, so a bad edit fails at start, never in the middle of a session.

    >>> cat = load_catalog()
    >>> cat.package("executive").allows_format("portrait")
    True
    >>> cat.style("navy:suit").backdrop.label
    'Deep navy'
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CATALOG_FILE = Path(__file__).with_name("catalog.toml")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


class CatalogError(ValueError):
    """The catalog data is invalid, or a lookup names something it does not hold."""


@dataclass(frozen=True)
class Format:
    id: str
    label: str
    ratio: tuple[int, int]
    width: int
    height: int

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


@dataclass(frozen=True)
class Backdrop:
    id: str
    label: str
    prompt: str
    colors: tuple[str, ...]

    @property
    def rgb(self) -> tuple[tuple[int, int, int], ...]:
        return tuple((int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)) for c in self.colors)


@dataclass(frozen=True)
class Clothing:
    id: str
    label: str
    prompt: str


@dataclass(frozen=True)
class Style:
    backdrop: Backdrop
    clothing: Clothing

    @property
    def id(self) -> str:
        return style_id(self.backdrop.id, self.clothing.id)

    @property
    def label(self) -> str:
        return f"{self.backdrop.label} · {self.clothing.label}"


@dataclass(frozen=True)
class Package:
    id: str
    label: str
    max_styles: int
    headshots_per_style: int
    formats: tuple[str, ...]
    preselected: tuple[str, ...]

    def allows_format(self, format_id: str) -> bool:
        return format_id in self.formats

    @property
    def default_format(self) -> str:
        """The first format listed: what a session gets until the person picks another."""
        return self.formats[0]


def style_id(backdrop_id: str, clothing_id: str) -> str:
    return f"{backdrop_id}:{clothing_id}"


@dataclass(frozen=True)
class Catalog:
    formats: tuple[Format, ...]
    backdrops: tuple[Backdrop, ...]
    clothing: tuple[Clothing, ...]
    packages: tuple[Package, ...]
    default_package_id: str = ""  # `default_package` in the TOML; empty: the first package

    # --- lookups (each raises CatalogError naming what is unknown) ------------------------------
    def format(self, format_id: str) -> Format:
        return _find(self.formats, format_id, "format")

    def backdrop(self, backdrop_id: str) -> Backdrop:
        return _find(self.backdrops, backdrop_id, "backdrop")

    def clothing_item(self, clothing_id: str) -> Clothing:
        return _find(self.clothing, clothing_id, "clothing")

    def package(self, package_id: str) -> Package:
        return _find(self.packages, package_id, "package")

    def style(self, sid: str) -> Style:
        backdrop_id, sep, clothing_id = sid.partition(":")
        if not sep:
            raise CatalogError(f"unknown style {sid!r}: a style is written 'backdrop:clothing'")
        return Style(self.backdrop(backdrop_id), self.clothing_item(clothing_id))

    def is_style(self, sid: str) -> bool:
        try:
            self.style(sid)
        except CatalogError:
            return False
        return True

    def default_package(self) -> Package:
        """The package an organization gets unless it chose another."""
        return self.package(self.default_package_id) if self.default_package_id else self.packages[0]

    def all_styles(self) -> list[Style]:
        return [Style(b, c) for b in self.backdrops for c in self.clothing]

    def preselected_styles(self, package_id: str) -> list[Style]:
        return [self.style(s) for s in self.package(package_id).preselected]


def _find(items: Iterable[Any], item_id: str, kind: str) -> Any:
    for item in items:
        if item.id == item_id:
            return item
    raise CatalogError(f"unknown {kind} {item_id!r}")


def _require(entry: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in entry:
        raise CatalogError(f"{where}: missing {key!r}")
    value = entry[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CatalogError(f"{where}: {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _ids(entries: list[dict[str, Any]], section: str) -> None:
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"{section}[{i}]"
        item_id = _require(entry, "id", str, where)
        if not _ID.match(item_id):
            raise CatalogError(f"{where}: id {item_id!r} must be lower-case letters, digits and '-'")
        if item_id in seen:
            raise CatalogError(f"{where}: duplicate id {item_id!r}")
        seen.add(item_id)


def parse_catalog(data: dict[str, Any]) -> Catalog:
    """Build and validate a catalog from parsed TOML data."""
    for section in ("formats", "backdrops", "clothing", "packages"):
        if not data.get(section):
            raise CatalogError(f"the catalog needs at least one entry in [[{section}]]")
        _ids(data[section], section)

    formats = []
    for i, f in enumerate(data["formats"]):
        where = f"formats[{i}]"
        ratio = _require(f, "ratio", list, where)
        width, height = _require(f, "width", int, where), _require(f, "height", int, where)
        if len(ratio) != 2 or width <= 0 or height <= 0 or width * ratio[1] != height * ratio[0]:
            raise CatalogError(f"{where}: size {width}x{height} does not match ratio {ratio}")
        formats.append(Format(f["id"], _require(f, "label", str, where), (ratio[0], ratio[1]), width, height))

    backdrops = []
    for i, b in enumerate(data["backdrops"]):
        where = f"backdrops[{i}]"
        colors = _require(b, "colors", list, where)
        if not colors or not all(isinstance(c, str) and _HEX.match(c) for c in colors):
            raise CatalogError(f"{where}: colors must be a non-empty list of '#rrggbb'")
        backdrops.append(
            Backdrop(
                b["id"], _require(b, "label", str, where), _require(b, "prompt", str, where), tuple(colors)
            )
        )

    clothing = [
        Clothing(
            c["id"], _require(c, "label", str, f"clothing[{i}]"), _require(c, "prompt", str, f"clothing[{i}]")
        )
        for i, c in enumerate(data["clothing"])
    ]
    partial = Catalog(tuple(formats), tuple(backdrops), tuple(clothing), ())

    packages = []
    for i, p in enumerate(data["packages"]):
        where = f"packages[{i}]"
        max_styles = _require(p, "max_styles", int, where)
        per_style = _require(p, "headshots_per_style", int, where)
        if max_styles < 1 or per_style < 1:
            raise CatalogError(f"{where}: max_styles and headshots_per_style must be at least 1")
        fmts = tuple(_require(p, "formats", list, where))
        pre = tuple(_require(p, "preselected", list, where))
        try:
            for fid in fmts:
                partial.format(fid)
            for sid in pre:
                partial.style(sid)
        except CatalogError as exc:
            raise CatalogError(f"{where}: {exc}") from None
        if not fmts:
            raise CatalogError(f"{where}: a package needs at least one format")
        packages.append(Package(p["id"], _require(p, "label", str, where), max_styles, per_style, fmts, pre))

    default = data.get("default_package", "")
    if not isinstance(default, str) or (default and default not in {p.id for p in packages}):
        raise CatalogError(f"default_package {default!r} is not one of the [[packages]]")
    return Catalog(tuple(formats), tuple(backdrops), tuple(clothing), tuple(packages), default)


def load_catalog(path: Path | str = CATALOG_FILE) -> Catalog:
    with open(path, "rb") as fh:
        return parse_catalog(tomllib.load(fh))


@functools.cache
def default_catalog() -> Catalog:
    """The catalog shipped with the product, loaded once."""
    return load_catalog()


__all__ = [
    "Backdrop",
    "Catalog",
    "CatalogError",
    "Clothing",
    "Format",
    "Package",
    "Style",
    "default_catalog",
    "load_catalog",
    "parse_catalog",
    "style_id",
]
