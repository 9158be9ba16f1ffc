"""What a person may answer and choose: the fixed choice lists, and the rules that depend on their
organization and package (:class:`Rules`, from ``sessions.rules_for``), checked in plain words.

    errors = style_errors(["navy:suit", "outdoor:casual"], rules, at_least_one=True)
    # ["“Green outdoors · Smart casual” isn't available for your organization."]

The request schemas (schemas.py) and the domain read them from here; nothing here knows about
requests or marshmallow.
"""

from __future__ import annotations

from dataclasses import dataclass

from libs.catalog import Catalog, CatalogError, Package

# --- the fixed choice lists (value stored in the database -> label shown to people) ------------------
GENDERS: dict[str, str] = {
    "female": "Female",
    "male": "Male",
    "non_binary": "Non-binary",
}
EYE_COLORS: dict[str, str] = {
    "brown": "Brown",
    "hazel": "Hazel",
    "amber": "Amber",
    "green": "Green",
    "blue": "Blue",
    "grey": "Grey",
}
# Whether the headshots should show the person with glasses (as in their photos) or without.
GLASSES: dict[str, str] = {
    "glasses": "With glasses, as in my photos",
    "no_glasses": "Without glasses",
}


@dataclass(frozen=True)
class Rules:
    """What one session may choose: derived from its organization and package by sessions.rules_for."""

    catalog: Catalog
    package: Package
    allowed: frozenset[str]  # style ids the person may pick (the org's list; pre-selected ones excluded)
    photo_count: int = 0  # accepted photos so far


def style_errors(styles: list[str], rules: Rules, *, at_least_one: bool) -> list[str]:
    """Everything wrong with a list of chosen style ids, in plain words (empty when fine)."""
    errors: list[str] = []
    catalog, package = rules.catalog, rules.package
    for sid in styles:
        try:
            label = catalog.style(sid).label
        except CatalogError:
            errors.append(f"We don't offer a style called “{sid}”.")
            continue
        if sid in package.preselected:
            errors.append(f"“{label}” is already included with your package.")
        elif sid not in rules.allowed:
            errors.append(f"“{label}” isn't available for your organization.")
    if len(styles) > package.max_styles:
        errors.append(
            f"Your package allows up to {package.max_styles} styles; you chose {len(styles)}. "
            f"Please remove {len(styles) - package.max_styles}."
        )
    if at_least_one and not styles:
        errors.append("Please choose at least one style.")
    return errors


def format_errors(format_id: str, rules: Rules) -> list[str]:
    try:
        fmt = rules.catalog.format(format_id)
    except CatalogError:
        return ["Please choose a format from the list."]
    if not rules.package.allows_format(format_id):
        return [f"{fmt.label} isn't offered with the {rules.package.label} package."]
    return []


NO_PHOTOS = "Please add at least one photo of yourself."


def submission_errors(styles: list[str], format_id: str | None, rules: Rules) -> dict[str, list[str]]:
    """What the session's rules refuse in a submission (photos, styles, format), by field."""
    errors = {
        "photos": [NO_PHOTOS] if rules.photo_count < 1 else [],
        "styles": style_errors(styles, rules, at_least_one=True),
        "format": format_errors(format_id, rules) if format_id is not None else ["Please choose a format."],
    }
    return {name: messages for name, messages in errors.items() if messages}
