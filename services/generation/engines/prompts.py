"""Prompts of the diffusion engine, built from the person's attributes and the style's words.

Kept free of torch so it can be read and tested on its own.

    >>> from libs.catalog import default_catalog
    >>> attrs = PersonAttributes(gender="female", eye_color="green", glasses=True)
    >>> render_prompt("sks", attrs, default_catalog().style("navy:suit"))
    'professional headshot photo of sks woman, green eyes, wearing glasses, wearing a tailored dark
     suit jacket, deep navy blue studio backdrop, rim light, sharp focus, 85mm lens'
"""

from __future__ import annotations

from libs.catalog import Style
from services.generation.engines.base import PersonAttributes

TRIGGER = "sks"  # a rare token the base model has no strong meaning for, bound to the person by the LoRA
NEGATIVE_PROMPT = (
    "blurry, low quality, distorted face, deformed, disfigured, extra limbs, bad anatomy, "
    "watermark, text, logo, cartoon, painting, illustration"
)

_NOUNS = {"female": "woman", "woman": "woman", "male": "man", "man": "man"}


def class_noun(attributes: PersonAttributes) -> str:
    """The class word trained and rendered with the trigger ("woman", "man" or "person")."""
    return _NOUNS.get(attributes.gender.strip().lower(), "person")


def instance_prompt(trigger: str, attributes: PersonAttributes) -> str:
    """The caption of every training photo: the trigger bound to the person's class word."""
    return f"a photo of {trigger} {class_noun(attributes)}"


def render_prompt(trigger: str, attributes: PersonAttributes, style: Style) -> str:
    parts = [f"professional headshot photo of {trigger} {class_noun(attributes)}"]
    if attributes.eye_color.strip():
        parts.append(f"{attributes.eye_color.strip().lower()} eyes")
    if attributes.glasses:
        parts.append("wearing glasses")
    parts += [style.clothing.prompt, style.backdrop.prompt, "sharp focus, 85mm lens"]
    return ", ".join(parts)


def negative_prompt(attributes: PersonAttributes) -> str:
    # Without this, "headshot" photos drift towards spectacles on people who do not wear any.
    return NEGATIVE_PROMPT + ("" if attributes.glasses else ", glasses")
