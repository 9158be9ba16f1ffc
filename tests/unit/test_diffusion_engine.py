"""The diffusion engine end to end on tiny random-weight pipelines (SD 1.x and SDXL layouts).

No server and no download: the pipelines are built in code (services/generation/engines/diffusion/tiny.py),
saved to a temporary folder and loaded through the engine's own ``from_pretrained`` path. Renders
are 2 steps at ~64 px, LoRA training a few steps on crops of skimage's astronaut.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported: nothing may be downloaded

import copy  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import skimage.data  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from services.generation.engines import (  # noqa: E402
    Cancelled,
    EngineConfigError,
    ModelLoadError,
    OutOfMemory,
    PersonModelError,
    TrainedModel,
    make_engine,
)
from services.generation.engines.diffusion import DiffusionEngine, model_family  # noqa: E402
from services.generation.engines.diffusion.tiny import build_tiny_pipeline  # noqa: E402
from services.generation.engines.diffusion.training import encode_latents  # noqa: E402
from tests.support.diffusion import ATTRS, make_plan, pixels, settings_for  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """These models are tiny: torch's second thread only contends with the other test worker."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory) -> Path:
    return build_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    astronaut = Image.fromarray(skimage.data.astronaut())
    astronaut.save(folder / "front.png")
    astronaut.crop((64, 0, 448, 384)).save(folder / "closer.png")
    return [folder / "front.png", folder / "closer.png"]


@pytest.fixture(scope="module")
def var(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="module")
def engine(sd_folder, var) -> DiffusionEngine:
    engine = make_engine(settings_for(sd_folder, var))
    assert isinstance(engine, DiffusionEngine)
    return engine


@pytest.fixture(scope="module")
def trained(engine, photos):
    """The person model, and the progress reported while training it."""
    events = []
    model = engine.prepare("person-1", photos, ATTRS, progress=events.append)
    return model, events


def has_lora(engine: DiffusionEngine) -> bool:
    return any("lora" in name for name, _ in engine.pipeline.unet.named_modules())


# --- person model ----------------------------------------------------------------------------------
def test_prepare_trains_a_lora_saved_as_one_small_file(trained, engine, sd_folder):
    model, events = trained

    assert model.engine == "diffusion" and model.trigger == "sks"
    assert model.path.suffix == ".safetensors" and 10_000 < model.path.stat().st_size < 500_000
    assert model.base_model.startswith("tiny-sd@")
    weights = load_file(model.path)
    assert weights and all(key.startswith("unet.") and "lora" in key for key in weights)
    assert [(e.stage, e.done, e.total) for e in events] == [("training", i, 4) for i in range(1, 5)]
    assert not has_lora(engine), "training must leave the base UNet as it found it"


def test_the_trained_lora_changes_the_output(trained, engine, tmp_path):
    model, _ = trained
    # The same LoRA with its up-projections zeroed is a no-op adapter: the base model's output.
    weights = load_file(model.path)
    zeroed = {k: (v * 0 if "lora_B" in k or "lora.up" in k else v) for k, v in weights.items()}
    save_file(zeroed, tmp_path / "zeroed.safetensors")
    base_like = TrainedModel(tmp_path / "zeroed.safetensors", "diffusion", "sks", model.base_model)

    plan = make_plan()
    with_lora = next(iter(engine.render(model, plan, ATTRS))).image
    without = next(iter(engine.render(base_like, plan, ATTRS))).image

    assert np.abs(pixels(with_lora) - pixels(without)).mean() > 0.5
    assert not has_lora(engine), "the person's LoRA must be unloaded after rendering"


def test_delete_removes_the_model_file(engine, photos):
    model = engine.prepare("person-2", photos[:1], ATTRS)
    assert model.path.is_file()

    engine.delete(model)
    assert not model.path.exists()
    with pytest.raises(PersonModelError, match="missing"):
        engine.render(model, make_plan(), ATTRS)  # raised by the call, before any iteration


# --- rendering -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("format_id", "size"), [("wide", (96, 64)), ("tall", (64, 80))])
def test_a_full_plan_renders_every_shot_at_the_format_size_rounded_to_8(trained, engine, format_id, size):
    plan = make_plan(format_id)
    headshots = list(engine.render(trained[0], plan, ATTRS))

    assert len(plan) == 4  # white:knit chosen + navy:suit pre-selected, 2 each
    assert [h.shot for h in headshots] == list(plan.shots)
    assert {h.image.size for h in headshots} == {size}


def test_the_same_seed_gives_the_same_image(trained, engine):
    first = list(engine.render(trained[0], make_plan(), ATTRS))
    again = list(engine.render(trained[0], make_plan(), ATTRS))
    other_session = list(engine.render(trained[0], make_plan(session_key="session-2"), ATTRS))

    for a, b in zip(first, again, strict=True):
        assert np.array_equal(pixels(a.image), pixels(b.image))
    assert not np.array_equal(pixels(first[0].image), pixels(first[1].image))
    assert not np.array_equal(pixels(first[0].image), pixels(other_session[0].image))


def test_batched_renders_match_one_by_one_renders(trained, engine, sd_folder, var):
    one_by_one = make_engine(settings_for(sd_folder, var, BATCH_SIZE=1))
    batched = list(engine.render(trained[0], make_plan(), ATTRS))
    single = list(one_by_one.render(trained[0], make_plan(), ATTRS))

    for a, b in zip(batched, single, strict=True):
        # Batched matrix products round differently in the last bit: at most a level or two of 255.
        assert np.abs(pixels(a.image) - pixels(b.image)).max() <= 2


def test_progress_arrives_in_order_per_step_and_per_image(trained, engine):
    events = []
    list(engine.render(trained[0], make_plan(), ATTRS, progress=events.append))

    # BATCH_SIZE 2, 4 shots, 2 steps: per batch two step reports then two image reports.
    expected = []
    for first in (0, 2):
        expected += [(first, 1, 2), (first, 2, 2), (first + 1, 0, 0), (first + 2, 0, 0)]
    assert [(e.done, e.step, e.steps) for e in events] == expected
    assert {(e.stage, e.total) for e in events} == {("generating", 4)}
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_cancel_stops_denoising_with_an_error_and_no_partial_result(trained, engine):
    cancel = threading.Event()
    rendered = []

    def on_progress(event):
        if event.step == 1:
            cancel.set()

    with pytest.raises(Cancelled, match="cancelled"):
        for headshot in engine.render(trained[0], make_plan(), ATTRS, progress=on_progress, cancel=cancel):
            rendered.append(headshot)
    assert rendered == []
    assert not has_lora(engine)


def test_out_of_memory_becomes_a_clear_error(trained, engine, monkeypatch):
    def exhausted(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(engine.pipeline.unet, "forward", exhausted)
    with pytest.raises(OutOfMemory, match="BATCH_SIZE"):
        list(engine.render(trained[0], make_plan(), ATTRS))
    monkeypatch.undo()
    assert not has_lora(engine)


def test_a_model_trained_on_another_base_is_refused(trained, engine):
    foreign = TrainedModel(trained[0].path, "diffusion", "sks", "other-model@123456789abc")
    with pytest.raises(PersonModelError, match="trained on other-model"):
        engine.render(foreign, make_plan(), ATTRS)


def test_an_unreadable_person_model_is_a_person_model_error(trained, engine, tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(trained[0].path.read_bytes()[:1000])
    model = TrainedModel(corrupt, "diffusion", "sks", trained[0].base_model)

    with pytest.raises(PersonModelError, match="cannot be loaded"):
        list(engine.render(model, make_plan(), ATTRS))
    assert not has_lora(engine)


def test_cancel_during_training_leaves_no_model_and_a_clean_unet(engine, photos):
    cancel = threading.Event()

    def on_progress(event):
        if event.done == 2:
            cancel.set()

    with pytest.raises(Cancelled, match="training"):
        engine.prepare("person-cancelled", photos[:1], ATTRS, progress=on_progress, cancel=cancel)
    assert not list(engine.models_dir.glob("person-cancelled*"))
    assert not has_lora(engine)


def test_image_to_image_starts_from_the_reference_crop(sd_folder, var, photos):
    engine = make_engine(settings_for(sd_folder, var, IMG2IMG=True, IMG2IMG_STRENGTH=0.5, INFERENCE_STEPS=4))
    model = engine.prepare("person-3", photos[:1], ATTRS)
    events = []
    headshots = list(engine.render(model, make_plan("tall"), ATTRS, progress=events.append))

    assert model.reference is not None and model.reference.is_file()
    assert {h.image.size for h in headshots} == {(64, 80)}
    assert {e.steps for e in events if e.step} == {2}  # int(4 steps x 0.5 strength)
    engine.delete(model)
    assert not model.path.exists() and not model.reference.exists()


# --- configuration and broken models ---------------------------------------------------------------
def test_img2img_settings_that_leave_no_step_are_refused_before_loading(sd_folder, var):
    with pytest.raises(EngineConfigError, match=r"leaves no denoising step"):
        make_engine(settings_for(sd_folder, var, IMG2IMG=True, IMG2IMG_STRENGTH=0.3, INFERENCE_STEPS=2))


def test_broken_model_folders_give_a_clear_error(sd_folder, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        make_engine(settings_for(tmp_path / "nowhere", tmp_path))
    with pytest.raises(ModelLoadError, match="no model_index.json"):
        make_engine(settings_for(tmp_path, tmp_path))

    # A copy of the model whose UNet weights were lost.
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in sd_folder.iterdir():
        if item.name != "unet":
            (broken / item.name).symlink_to(item)
    (broken / "unet").mkdir()
    (broken / "unet" / "config.json").write_text((sd_folder / "unet" / "config.json").read_text())
    with pytest.raises(ModelLoadError, match="cannot load the base model"):
        make_engine(settings_for(broken, tmp_path))

    not_a_checkpoint = tmp_path / "model.safetensors"
    not_a_checkpoint.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(ModelLoadError):
        make_engine(settings_for(not_a_checkpoint, tmp_path))

    flux = tmp_path / "flux"
    flux.mkdir()
    (flux / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(ModelLoadError, match="supports Stable Diffusion"):
        make_engine(settings_for(flux, tmp_path))


def test_sdxl_pipelines_train_and_render_too(tmp_path, photos):
    folder = build_tiny_pipeline(tmp_path / "tiny-sdxl", sdxl=True)
    assert model_family(folder) == "sdxl"
    engine = make_engine(settings_for(folder, tmp_path, LORA_STEPS=2))
    assert isinstance(engine, DiffusionEngine) and engine.sdxl

    model = engine.prepare("person-xl", photos[:1], ATTRS)
    headshots = list(engine.render(model, make_plan("tall"), ATTRS))

    assert {h.image.size for h in headshots} == {(64, 80)} and len(headshots) == 4
    assert load_file(model.path), "an SDXL LoRA file was written"


def test_a_half_precision_vae_that_asks_for_it_encodes_in_float32(engine, photos):
    """The upcast path of training's encoder, on the CPU: SDXL's VAE overflows in float16, so a
    float16 VAE whose config says ``force_upcast`` encodes in float32 and goes back to float16."""
    vae16 = copy.deepcopy(engine.pipeline.vae).to("cpu", torch.float16)  # the CPU even on a GPU box
    assert vae16.config.force_upcast
    vae32 = copy.deepcopy(vae16).to(torch.float32)  # the same (rounded) weights in float32
    crop = Image.open(photos[0]).convert("RGB").resize((64, 64))

    torch.manual_seed(0)  # latent_dist.sample() draws from torch's global generator
    upcast = encode_latents(vae16, [crop], torch.device("cpu"))
    torch.manual_seed(0)
    reference = encode_latents(vae32, [crop], torch.device("cpu"))

    assert vae16.dtype == torch.float16, "the VAE is left in half precision"
    assert upcast.dtype == torch.float16 and reference.dtype == torch.float32
    assert upcast.shape == reference.shape and upcast.shape[0] == 2  # the crop and its mirror
    # Encoded in float32, only the result rounded to float16 (an encoder in float16 would differ more).
    assert torch.allclose(upcast.float(), reference, atol=1e-2, rtol=1e-2)
