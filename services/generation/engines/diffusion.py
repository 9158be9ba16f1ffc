"""The ``diffusion`` engine: Stable Diffusion 1.x/2.x or SDXL with a LoRA trained per person.

Everything runs from local files; nothing is ever downloaded.

- **Base model** (``MODEL_DIR``): a diffusers folder, loaded with
  ``from_pretrained(folder, local_files_only=True)``, or a single ``.safetensors`` checkpoint, loaded
  with ``from_single_file`` using component configs found offline (see :func:`load_pipeline`).
  SD vs SDXL is read from ``model_index.json``'s ``_class_name`` (or the UNet config).
- **Device**: ``DEVICE=auto`` takes CUDA in float16 when present, else the CPU in float32.
  ``ATTENTION_SLICING`` and ``CPU_OFFLOAD`` trade speed for memory on small GPUs.
- **Person model** (:meth:`DiffusionEngine.prepare`): a LoRA on the UNet's attention projections
  (peft), trained on face-centred crops of the prepared photos captioned "a photo of sks woman"
  (``LORA_STEPS``, ``LORA_RANK``, ``LORA_LEARNING_RATE``, ``LORA_RESOLUTION``), saved with
  ``save_lora_weights`` as one ``.safetensors`` file.
- **Rendering** (:meth:`DiffusionEngine.render`): the person's LoRA is loaded, every shot of the
  plan is rendered (text-to-image, or image-to-image from the person's reference crop when
  ``IMG2IMG``), in batches of ``BATCH_SIZE`` shots of one size, and the LoRA is unloaded again.
  Each image has its own ``torch.Generator`` seeded with the shot's seed, created on the CPU, so a
  shot looks the same batched or alone, on any device.

Failures are :class:`~services.generation.engines.EngineError` subclasses: ``ModelLoadError``,
``OutOfMemory``, ``Cancelled`` (checked every denoising and training step), ``PersonModelError``.

    >>> engine = DiffusionEngine(Settings(ENGINE="diffusion", MODEL_DIR="/models/sd15"))
    >>> model = engine.prepare("session-42", photos, attributes, progress=print)
    >>> for headshot in engine.render(model, plan, attributes, progress=print):
    ...     headshot.image.save(f"{headshot.shot.name}.png")

Not thread-safe: one engine renders one thing at a time (the generation worker has prefetch 1).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from libs.imaging.faces import detect_faces
from libs.settings import Settings
from services.generation.engines import (
    Engine,
    EngineConfigError,
    EngineError,
    ModelLoadError,
    OutOfMemory,
    PersonAttributes,
    PersonModelError,
    Progress,
    ProgressCallback,
    RenderedHeadshot,
    TrainedModel,
    check_cancel,
    report,
)
from services.generation.engines.framing import Box, centre_box, crop_resize, headshot_crop
from services.generation.engines.prompts import TRIGGER, instance_prompt, negative_prompt, render_prompt
from services.generation.plan import Shot, ShotPlan

log = logging.getLogger(__name__)

LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]  # the UNet's attention projections
ADAPTER = "person"
TRAINING_SEED = 0  # training is reproducible for the same photos and settings
REFERENCE_SIZE = 768  # side of the stored image-to-image reference crop

# Where a single-file checkpoint's component configs live on the Hub, by family. They are looked up
# in the local Hugging Face cache only (never fetched): see load_pipeline.
SINGLE_FILE_CONFIGS = {
    "sd1": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "sd2": "stabilityai/stable-diffusion-2-1",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
}


# --- device and base model -------------------------------------------------------------------------
def choose_device(setting: str) -> tuple[torch.device, torch.dtype]:
    """``auto`` → CUDA in float16 when a GPU is present, else CPU in float32 (CPUs lack fast fp16)."""
    name = ("cuda" if torch.cuda.is_available() else "cpu") if setting == "auto" else setting
    try:
        device = torch.device(name)
    except RuntimeError:
        raise EngineConfigError(
            f"DEVICE={setting!r} is not a torch device (try auto, cpu, cuda, cuda:1)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EngineConfigError(f"DEVICE={setting!r} but this machine has no CUDA GPU torch can use")
    return device, torch.float16 if device.type == "cuda" else torch.float32


def model_family(path: Path) -> str:
    """``"sdxl"`` or ``"sd"`` for a diffusers folder; ModelLoadError for anything else."""
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelLoadError(f"{path} is not a diffusers model folder (no model_index.json)")
    try:
        class_name = json.loads(index_file.read_text()).get("_class_name", "")
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{index_file} cannot be read: {exc}") from None
    if class_name.startswith("StableDiffusionXL"):
        return "sdxl"
    if class_name.startswith("StableDiffusion") and "3" not in class_name:
        return "sd"
    # A generic or unknown class name: the UNet says which family (SDXL conditions on time ids).
    unet_config = path / "unet" / "config.json"
    if unet_config.is_file():
        addition = json.loads(unet_config.read_text()).get("addition_embed_type")
        if addition == "text_time":
            return "sdxl"
        if addition is None:
            return "sd"
    raise ModelLoadError(
        f"{path} holds a {class_name or 'unknown'} pipeline; the diffusion engine supports "
        "Stable Diffusion 1.x/2.x and SDXL"
    )


def _single_file_family(path: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as checkpoint:
        keys = list(checkpoint.keys())
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return "sdxl"
    if any(k.startswith("cond_stage_model.model.") for k in keys):  # OpenCLIP text encoder: SD 2.x
        return "sd2"
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return "sd1"
    raise ModelLoadError(f"{path.name} is not a Stable Diffusion or SDXL checkpoint")


def _single_file_config(path: Path, family: str) -> Path:
    """The component configs (json/txt only) a single-file checkpoint needs, found offline.

    Either a diffusers folder named like the file next to it (``model.safetensors`` →
    ``model/model_index.json``), or the family's configs already in the local Hugging Face cache.
    """
    beside = path.with_suffix("")
    if (beside / "model_index.json").is_file():
        return beside
    from huggingface_hub import snapshot_download

    repo = SINGLE_FILE_CONFIGS[family]
    try:
        return Path(snapshot_download(repo, local_files_only=True, allow_patterns=["*.json", "*.txt"]))
    except Exception:
        raise ModelLoadError(
            f"{path.name} is a single-file checkpoint and its component configs are not available offline: "
            f"put a diffusers folder with the configs of {repo} (json/txt files only) at {beside}"
        ) from None


def _quiet_model_libraries() -> None:
    """diffusers and transformers print progress bars and advice meant for notebooks (a warning per
    LoRA load, torchvision hints): keep the worker's log to what an operator needs."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def load_pipeline(model_dir: str, dtype: torch.dtype) -> Any:
    """The text-to-image pipeline of ``model_dir`` (folder or single file), on the CPU."""
    _quiet_model_libraries()
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if not model_dir:
        raise ModelLoadError("MODEL_DIR is not set: point it at a diffusers folder or a .safetensors file")
    path = Path(model_dir)
    try:
        if path.is_dir():
            cls = StableDiffusionXLPipeline if model_family(path) == "sdxl" else StableDiffusionPipeline
            return cls.from_pretrained(path, dtype=dtype, local_files_only=True)
        if path.is_file() and path.suffix == ".safetensors":
            family = _single_file_family(path)
            cls = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
            config = _single_file_config(path, family)
            return cls.from_single_file(str(path), config=str(config), dtype=dtype, local_files_only=True)
    except EngineError:
        raise
    except Exception as exc:  # diffusers raises anything from OSError to KeyError on a broken folder
        raise ModelLoadError(f"cannot load the base model from {path}: {type(exc).__name__}: {exc}") from exc
    if path.exists():
        raise ModelLoadError(f"MODEL_DIR {path} is neither a diffusers folder nor a .safetensors file")
    raise ModelLoadError(f"MODEL_DIR {path} does not exist")


def base_model_id(model_dir: str) -> str:
    """Names the base weights a LoRA was trained on: the folder name plus a fingerprint of its
    configs and the start of its weight files (cheap, yet differs between fine-tunes)."""
    path = Path(model_dir)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if file.suffix in {".json", ".txt", ".safetensors", ".bin"}:
            digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
            digest.update(str(file.stat().st_size).encode())
            with open(file, "rb") as fh:
                digest.update(fh.read(1 << 20))
    return f"{path.stem}@{digest.hexdigest()[:12]}"


@contextmanager
def device_errors(what: str) -> Iterator[None]:
    """Turn the device's out-of-memory errors into :class:`OutOfMemory` naming what failed."""
    try:
        yield
    except EngineError:
        raise
    except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is a RuntimeError too
        if not isinstance(exc, torch.cuda.OutOfMemoryError) and "out of memory" not in str(exc).lower():
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise OutOfMemory(
            f"{what} ran out of device memory: lower BATCH_SIZE, or set ATTENTION_SLICING / CPU_OFFLOAD"
        ) from exc


# --- the engine ------------------------------------------------------------------------------------
class DiffusionEngine(Engine):
    name = "diffusion"
    model_suffix = ".safetensors"

    def __init__(self, settings: Settings, *, models_dir: Path | str | None = None) -> None:
        super().__init__(settings, models_dir=models_dir)
        _check_settings(settings)
        self.device, self.dtype = choose_device(settings.DEVICE)
        with device_errors("loading the base model"):
            self.pipeline = load_pipeline(settings.MODEL_DIR, self.dtype)
            self._place(self.pipeline)
        self.base_model = base_model_id(settings.MODEL_DIR)
        self.sdxl = type(self.pipeline).__name__.startswith("StableDiffusionXL")
        self.img2img = None
        if settings.IMG2IMG:
            from diffusers import AutoPipelineForImage2Image

            # Shares every component (and so the loaded LoRA) with the text-to-image pipeline.
            self.img2img = AutoPipelineForImage2Image.from_pipe(self.pipeline)
            self.img2img.set_progress_bar_config(disable=True)

    def _place(self, pipe: Any) -> None:
        pipe.set_progress_bar_config(disable=True)  # progress leaves through our callback instead
        if self.settings.CPU_OFFLOAD and self.device.type == "cuda":
            pipe.enable_model_cpu_offload(device=self.device)  # moves each part to the GPU only while it runs
        else:
            if self.settings.CPU_OFFLOAD:
                log.info("CPU_OFFLOAD ignored: the model already runs on the CPU")
            pipe.to(self.device)
        if self.settings.ATTENTION_SLICING:
            pipe.enable_attention_slicing()

    @property
    def vae_scale(self) -> int:
        return int(self.pipeline.vae_scale_factor)

    # --- person model ----------------------------------------------------------------------------
    def prepare(
        self,
        person_id: str,
        photos: Sequence[Path],
        attributes: PersonAttributes,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> TrainedModel:
        """Train the person's LoRA on their photos and save it (plus a reference crop for img2img)."""
        if not photos:
            raise PersonModelError("no prepared photos to train a person model on")
        path = self.model_path(person_id)
        images = [_load_photo(Path(p)) for p in photos]
        resolution = max(self.vae_scale, self.settings.LORA_RESOLUTION // self.vae_scale * self.vae_scale)
        crops = [crop_resize(img, _face_framing(img, 1.0), (resolution, resolution)) for img in images]

        with device_errors("training the person model"):
            state = train_lora(
                self.pipeline,
                crops,
                instance_prompt(TRIGGER, attributes),
                steps=self.settings.LORA_STEPS,
                rank=self.settings.LORA_RANK,
                learning_rate=self.settings.LORA_LEARNING_RATE,
                sdxl=self.sdxl,
                progress=progress,
                cancel=cancel,
            )
        _save_lora(type(self.pipeline), state, path)

        reference = None
        if self.settings.IMG2IMG:
            # A looser square crop: each shot re-crops it to its own aspect.
            reference = path.with_name(f"{person_id}.reference.png")
            box = _face_framing(images[0], 1.0, zoom=0.8)
            crop_resize(images[0], box, (REFERENCE_SIZE, REFERENCE_SIZE)).save(reference)
        return TrainedModel(
            path=path, engine=self.name, trigger=TRIGGER, base_model=self.base_model, reference=reference
        )

    # --- rendering -------------------------------------------------------------------------------
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
        if model.base_model != self.base_model:
            raise PersonModelError(
                f"person model {model.path.name} was trained on {model.base_model}, this engine runs {self.base_model}"
            )
        pipe = self.img2img if self.img2img is not None else self.pipeline
        reference = self._reference(model) if self.img2img is not None else None
        return self._headshots(pipe, model, plan, attributes, reference, progress, cancel)

    def _headshots(
        self,
        pipe: Any,
        model: TrainedModel,
        plan: ShotPlan,
        attributes: PersonAttributes,
        reference: Image.Image | None,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> Iterator[RenderedHeadshot]:
        try:
            pipe.load_lora_weights(str(model.path.parent), weight_name=model.path.name, adapter_name=ADAPTER)
        except Exception as exc:  # diffusers raises OSError, ValueError, KeyError... on a bad file
            pipe.unload_lora_weights()  # whatever part of it got in
            raise PersonModelError(f"person model {model.path.name} cannot be loaded: {exc}") from exc
        try:
            done = 0
            for batch in batches(plan.shots, self.settings.BATCH_SIZE):
                check_cancel(cancel, "rendering")
                images = self._render_batch(
                    pipe, batch, model, attributes, reference, plan, done, progress, cancel
                )
                for shot, image in zip(batch, images, strict=True):
                    done += 1
                    report(progress, Progress("generating", done, len(plan)))
                    yield RenderedHeadshot(shot, image)
        finally:
            # Also when the caller stops iterating or an error escapes: the next person must not
            # inherit this person's LoRA.
            pipe.unload_lora_weights()

    def _render_batch(
        self,
        pipe: Any,
        batch: list[Shot],
        model: TrainedModel,
        attributes: PersonAttributes,
        reference: Image.Image | None,
        plan: ShotPlan,
        done: int,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> list[Image.Image]:
        width, height = (
            max(self.vae_scale, side // self.vae_scale * self.vae_scale) for side in batch[0].size
        )

        def on_step(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            report(
                progress, Progress("generating", done, len(plan), step=step + 1, steps=pipeline.num_timesteps)
            )
            # Raising here stops the denoising loop at once; the partial batch is thrown away.
            check_cancel(cancel, "rendering")
            return tensors

        kwargs: dict[str, Any] = dict(
            prompt=[render_prompt(model.trigger, attributes, shot.style) for shot in batch],
            negative_prompt=[negative_prompt(attributes)] * len(batch),
            num_inference_steps=self.settings.INFERENCE_STEPS,
            guidance_scale=self.settings.GUIDANCE_SCALE,
            # One CPU generator per image: the same seed gives the same latents batched or alone,
            # on CPU or GPU (CUDA generators draw different numbers).
            generator=[torch.Generator("cpu").manual_seed(shot.seed) for shot in batch],
            callback_on_step_end=on_step,
            output_type="pil",
        )
        if reference is not None:
            start = crop_resize(reference, centre_box(reference.size, width / height), (width, height))
            kwargs.update(image=[start] * len(batch), strength=self.settings.IMG2IMG_STRENGTH)
        else:
            kwargs.update(width=width, height=height)
        with device_errors(f"rendering {len(batch)} headshot(s) at {width}x{height}"), torch.inference_mode():
            return list(pipe(**kwargs).images)

    def _reference(self, model: TrainedModel) -> Image.Image:
        if model.reference is None or not model.reference.is_file():
            raise PersonModelError(
                f"person model {model.path.name} has no reference crop: it was prepared with IMG2IMG off"
            )
        return _load_photo(model.reference)


# --- LoRA training ---------------------------------------------------------------------------------
def train_lora(
    pipe: Any,
    crops: list[Image.Image],
    prompt: str,
    *,
    steps: int,
    rank: int,
    learning_rate: float,
    sdxl: bool,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, torch.Tensor]:
    """Fit a LoRA on ``pipe.unet`` to the crops (DreamBooth-style, one caption); return its weights
    in diffusers' LoRA format. The UNet is left as it was found (adapter removed) whatever happens."""
    from diffusers import DDPMScheduler
    from diffusers.training_utils import cast_training_params
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet, vae = pipe.unet, pipe.vae
    device = pipe._execution_device  # the GPU even when CPU offload keeps weights elsewhere
    dtype = unet.dtype
    generator = torch.Generator("cpu").manual_seed(TRAINING_SEED)
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)

    # 1. Everything the loop reuses is computed once, without gradients: the latents of each crop
    #    and its mirror image (cheap augmentation), and the caption's text embeddings.
    with torch.no_grad():
        latents = _encode_latents(vae, crops, device)
        if sdxl:
            text, _, pooled, _ = pipe.encode_prompt(prompt, device=device, do_classifier_free_guidance=False)
            side = crops[0].size[1]
            time_ids = torch.tensor([[side, side, 0, 0, side, side]], device=device, dtype=dtype)
            added = {"text_embeds": pooled.to(dtype), "time_ids": time_ids}
        else:
            text, _ = pipe.encode_prompt(prompt, device, 1, False)
            added = None
    text = text.to(dtype)

    # 2. A fresh adapter on the attention projections; only its weights train (in float32 even on
    #    a float16 GPU: Adam's small updates vanish in half precision).
    pipe.unload_lora_weights()
    unet.requires_grad_(False)
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=LORA_TARGETS)
    )
    try:
        if dtype == torch.float16:
            cast_training_params(unet, dtype=torch.float32)
        params = [p for p in unet.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=1e-2)
        unet.train()
        # 3. The denoising objective: predict the noise (or velocity) added at a random timestep.
        for step in range(steps):
            check_cancel(cancel, "training the person model")
            clean = latents[torch.randint(len(latents), (1,), generator=generator)]
            noise = torch.randn(clean.shape, generator=generator).to(device, clean.dtype)
            t = torch.randint(noise_scheduler.config.num_train_timesteps, (1,), generator=generator).to(
                device
            )
            noisy = noise_scheduler.add_noise(clean, noise, t)
            if noise_scheduler.config.prediction_type == "v_prediction":
                target = noise_scheduler.get_velocity(clean, noise, t)
            else:
                target = noise
            with torch.autocast(device.type, dtype=dtype, enabled=dtype == torch.float16):
                predicted = unet(noisy.to(dtype), t, text, added_cond_kwargs=added).sample
            loss = torch.nn.functional.mse_loss(predicted.float(), target.float())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            report(progress, Progress("training", step + 1, steps))
        return {
            k: v.detach().to("cpu", torch.float32).contiguous()
            for k, v in convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)).items()
        }
    finally:
        unet.eval()
        unet.unload_lora()


def _encode_latents(vae: Any, crops: list[Image.Image], device: torch.device) -> torch.Tensor:
    """Latents of each crop and of its mirror image (a free second view of the face)."""
    pixels = [np.asarray(c.convert("RGB"), dtype=np.float32) / 127.5 - 1.0 for c in crops]
    batch = torch.from_numpy(np.stack(pixels + [p[:, ::-1] for p in pixels])).permute(0, 3, 1, 2)
    # SDXL's VAE overflows in float16 (its config says force_upcast): encode in float32 then.
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    if upcast:
        vae.to(torch.float32)
    try:
        latents = [
            vae.encode(image[None].to(device, vae.dtype)).latent_dist.sample() * vae.config.scaling_factor
            for image in batch  # one at a time: the peak memory of one image, not of all of them
        ]
    finally:
        if upcast:
            vae.to(torch.float16)
    return torch.cat(latents).to(torch.float16 if upcast else vae.dtype)


def _save_lora(pipeline_class: Any, state: dict[str, torch.Tensor], path: Path) -> None:
    """Save through diffusers (so ``load_lora_weights`` reads it back) into a temporary folder, then
    move the file into place: a crash never leaves half a model under the person's name."""
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".lora-") as tmp:
        pipeline_class.save_lora_weights(tmp, unet_lora_layers=state, weight_name=path.name)
        shutil.move(str(Path(tmp) / path.name), path)


# --- helpers ---------------------------------------------------------------------------------------
def batches(shots: Sequence[Shot], size: int) -> Iterator[list[Shot]]:
    """Consecutive shots of the same output size, at most ``size`` at a time, in plan order."""
    batch: list[Shot] = []
    for shot in shots:
        if batch and (len(batch) == size or shot.size != batch[0].size):
            yield batch
            batch = []
        batch.append(shot)
    if batch:
        yield batch


def _check_settings(settings: Settings) -> None:
    problems = []
    if settings.INFERENCE_STEPS < 1:
        problems.append(f"INFERENCE_STEPS={settings.INFERENCE_STEPS} must be at least 1")
    if settings.BATCH_SIZE < 1:
        problems.append(f"BATCH_SIZE={settings.BATCH_SIZE} must be at least 1")
    if settings.LORA_STEPS < 1 or settings.LORA_RANK < 1 or settings.LORA_LEARNING_RATE <= 0:
        problems.append("LORA_STEPS, LORA_RANK and LORA_LEARNING_RATE must be positive")
    if settings.IMG2IMG:
        strength = settings.IMG2IMG_STRENGTH
        if not 0 < strength <= 1:
            problems.append(f"IMG2IMG_STRENGTH={strength} must be in (0, 1]")
        elif int(settings.INFERENCE_STEPS * strength) == 0:
            # diffusers would fail deep inside the pipeline with an empty timestep list.
            problems.append(
                f"IMG2IMG_STRENGTH={strength} x INFERENCE_STEPS={settings.INFERENCE_STEPS} leaves no denoising "
                "step: image-to-image runs int(steps x strength) steps, which must be at least 1"
            )
    if problems:
        raise EngineConfigError("; ".join(problems))


def _face_framing(image: Image.Image, aspect: float, zoom: float = 1.0) -> Box:
    """A face-centred crop box, or the centre of the photo when no face is found."""
    faces = detect_faces(np.asarray(image))
    if not faces:
        log.warning("no face found in a prepared photo; training on its centre")
        return centre_box(image.size, aspect)
    face = faces[0]
    return headshot_crop(image.size, Box(face.x, face.y, face.w, face.h), aspect, zoom=zoom)


def _load_photo(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return ImageOps.exif_transpose(image).convert("RGB")
    except FileNotFoundError:
        raise PersonModelError(f"photo {path} is missing") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise PersonModelError(f"photo {path.name} cannot be read: {exc}") from None


__all__ = ["DiffusionEngine", "batches", "choose_device", "device_errors", "load_pipeline", "model_family"]
