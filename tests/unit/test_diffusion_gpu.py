"""The diffusion engine on a CUDA GPU in float16: what a CPU run (float32) never exercises.

Marked ``gpu``: these run wherever torch sees a CUDA GPU (``pytest -m gpu`` selects them) and are
skipped, with that reason, elsewhere (tests/conftest.py). Same tiny random-weight pipelines as
tests/unit/test_diffusion_engine.py, so they take seconds on any GPU.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported: nothing may be downloaded

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from services.generation.engines import make_engine  # noqa: E402
from services.generation.engines.diffusion import DiffusionEngine  # noqa: E402
from services.generation.engines.diffusion.tiny import build_tiny_pipeline  # noqa: E402
from services.generation.engines.diffusion.training import encode_latents  # noqa: E402
from tests.support.diffusion import ATTRS, make_plan, pixels, settings_for  # noqa: E402

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    import skimage.data

    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage.data.astronaut()).save(folder / "front.png")
    return [folder / "front.png"]


@pytest.fixture(scope="module", params=["sd", "sdxl"])
def gpu_engine(request, tmp_path_factory) -> DiffusionEngine:
    folder = build_tiny_pipeline(
        tmp_path_factory.mktemp("models") / request.param, sdxl=request.param == "sdxl"
    )
    engine = make_engine(settings_for(folder, tmp_path_factory.mktemp("var"), DEVICE="cuda"))
    assert isinstance(engine, DiffusionEngine)
    return engine


def visible(image: Image.Image) -> bool:
    """float16 overflow shows as NaN latents, which the pipeline turns into a black (or flat) image."""
    values = pixels(image)
    return values.std() > 1.0 and values.max() > 0


def test_the_engine_runs_in_float16_on_cuda(gpu_engine):
    assert gpu_engine.device.type == "cuda" and gpu_engine.dtype == torch.float16
    assert gpu_engine.pipeline.unet.dtype == torch.float16
    assert gpu_engine.pipeline.unet.device.type == "cuda"


def test_float16_training_keeps_float32_lora_weights_and_a_clean_half_precision_unet(gpu_engine, photos):
    model = gpu_engine.prepare("gpu-person", photos, ATTRS)

    weights = load_file(model.path)
    assert weights and all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights.values())
    assert any(w.abs().sum() > 0 for k, w in weights.items() if "lora_B" in k or "lora.up" in k), (
        "Adam's updates must survive: the up-projections start at zero and must have moved"
    )
    unet = gpu_engine.pipeline.unet
    assert unet.dtype == torch.float16
    assert not any("lora" in name for name, _ in unet.named_modules())
    gpu_engine.delete(model)


def test_float16_renders_are_visible_and_reproducible_batched_or_alone(gpu_engine, photos):
    model = gpu_engine.prepare("gpu-render", photos, ATTRS)
    plan = make_plan()
    batched = list(gpu_engine.render(model, plan, ATTRS))
    again = list(gpu_engine.render(model, plan, ATTRS))
    gpu_engine.settings = gpu_engine.settings.replace(BATCH_SIZE=1)
    try:
        single = list(gpu_engine.render(model, plan, ATTRS))
    finally:
        gpu_engine.settings = gpu_engine.settings.replace(BATCH_SIZE=2)

    assert all(visible(h.image) for h in batched)
    for a, b in zip(batched, again, strict=True):
        assert np.array_equal(pixels(a.image), pixels(b.image))
    for a, b in zip(batched, single, strict=True):
        # Half precision rounds batched matrix products differently: a few levels of 255, no more.
        assert np.abs(pixels(a.image) - pixels(b.image)).mean() < 2.0
    gpu_engine.delete(model)


def test_the_vae_encodes_upcast_to_float32_and_is_left_in_float16(gpu_engine, photos):
    vae = gpu_engine.pipeline.vae
    assert vae.dtype == torch.float16 and vae.config.force_upcast
    crop = Image.open(photos[0]).convert("RGB").resize((64, 64))

    torch.manual_seed(0)
    latents = encode_latents(vae, [crop], gpu_engine.device)

    assert latents.dtype == torch.float16 and latents.device.type == "cuda"
    assert latents.shape[0] == 2  # the crop and its mirror image
    assert torch.isfinite(latents).all()
    assert vae.dtype == torch.float16, "the VAE goes back to half precision after encoding"
