"""What the diffusion engine's tests share: a small catalog, plans, settings for tiny pipelines.

engine = make_engine(settings_for(build_tiny_pipeline(tmp / "sd"), tmp / "var", BATCH_SIZE=1))
headshots = list(engine.render(model, make_plan("tall"), ATTRS))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from libs.catalog import parse_catalog
from libs.settings import Settings
from services.generation.engines import PersonAttributes
from services.generation.plan import ShotPlan, plan_shots

ATTRS = PersonAttributes("female", "brown", glasses=False)

# Small formats keep renders fast; "tall" is not a multiple of 8 (the VAE factor) on purpose.
TEST_CATALOG = parse_catalog(
    {
        "formats": [
            {"id": "wide", "label": "Wide", "ratio": [3, 2], "width": 96, "height": 64},
            {"id": "tall", "label": "Tall", "ratio": [4, 5], "width": 68, "height": 85},
        ],
        "backdrops": [
            {
                "id": "navy",
                "label": "Navy",
                "prompt": "deep navy blue studio backdrop",
                "colors": ["#2a3b5c"],
            },
            {
                "id": "white",
                "label": "White",
                "prompt": "seamless white studio backdrop",
                "colors": ["#fbfbfb"],
            },
        ],
        "clothing": [
            {"id": "suit", "label": "Suit", "prompt": "wearing a tailored dark suit jacket"},
            {"id": "knit", "label": "Knit", "prompt": "wearing a smart fine-knit sweater"},
        ],
        "packages": [
            {
                "id": "test",
                "label": "Test",
                "max_styles": 2,
                "headshots_per_style": 2,
                "formats": ["wide", "tall"],
                "preselected": ["navy:suit"],
            }
        ],
    }
)


def make_plan(
    format_id: str = "wide", styles: tuple[str, ...] = ("white:knit",), session_key: str = "session-1"
) -> ShotPlan:
    return plan_shots(
        TEST_CATALOG, package_id="test", format_id=format_id, styles=list(styles), session_key=session_key
    )


def settings_for(folder: Path, var: Path, **changes: object) -> Settings:
    base = dict(
        VAR_DIR=str(var),
        ENGINE="diffusion",
        MODEL_DIR=str(folder),
        DEVICE="auto",  # the CPU here; CUDA float16 on a GPU box
        INFERENCE_STEPS=2,
        GUIDANCE_SCALE=5.0,
        BATCH_SIZE=2,
        LORA_STEPS=4,
        LORA_RANK=4,
        LORA_LEARNING_RATE=1e-2,  # big enough for 4 steps to visibly move a random model
        LORA_RESOLUTION=64,
    )
    return Settings(**(base | changes))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)
