"""The diffusion engine: a person's LoRA trained from their photos (:mod:`.training`), and every shot
of a plan rendered with it on the base model (:mod:`.loading`), in batches of ``BATCH_SIZE``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from libs.imaging.faces import detect_faces
from libs.settings import Settings
from services.generation.engines.base import (
    Engine,
    PersonAttributes,
    Progress,
    ProgressCallback,
    RenderedHeadshot,
    TrainedModel,
    check_cancel,
    report,
)
from services.generation.engines.diffusion.loading import (
    base_model_id,
    check_settings,
    choose_device,
    device_errors,
    load_pipeline,
)
from services.generation.engines.diffusion.training import save_lora, train_lora
from services.generation.engines.errors import PersonModelError
from services.generation.engines.framing import Box, centre_box, crop_resize, headshot_crop
from services.generation.engines.prompts import TRIGGER, instance_prompt, negative_prompt, render_prompt
from services.generation.plan import Shot, ShotPlan

log = logging.getLogger(__name__)

ADAPTER = "person"
REFERENCE_SIZE = 768  # side of the stored image-to-image reference crop


@dataclass(frozen=True)
class RenderJob:
    """One render of a plan: what each of its batches shares."""

    pipe: Any  # the text-to-image pipeline, or the image-to-image one when ``reference`` is set
    model: TrainedModel
    plan: ShotPlan
    attributes: PersonAttributes
    reference: Image.Image | None = None  # the person's reference crop (IMG2IMG)
    progress: ProgressCallback | None = None
    cancel: threading.Event | None = None

    def report(self, done: int, *, step: int = 0, steps: int = 0) -> None:
        """``done`` images of the plan finished; ``step`` of ``steps`` denoising steps into the next ones."""
        report(self.progress, Progress("generating", done, len(self.plan), step=step, steps=steps))


# --- the engine ------------------------------------------------------------------------------------
class DiffusionEngine(Engine):
    name = "diffusion"
    model_suffix = ".safetensors"

    def __init__(self, settings: Settings, *, models_dir: Path | str | None = None) -> None:
        super().__init__(settings, models_dir=models_dir)
        check_settings(settings)
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

    @property
    def renders_on_cpu(self) -> bool:
        return self.device.type == "cpu"

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
        save_lora(type(self.pipeline), state, path)

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
        job = RenderJob(
            pipe=self.img2img if self.img2img is not None else self.pipeline,
            model=model,
            plan=plan,
            attributes=attributes,
            reference=self._reference(model) if self.img2img is not None else None,
            progress=progress,
            cancel=cancel,
        )
        return self._headshots(job)

    def _headshots(self, job: RenderJob) -> Iterator[RenderedHeadshot]:
        pipe, model = job.pipe, job.model
        try:
            pipe.load_lora_weights(str(model.path.parent), weight_name=model.path.name, adapter_name=ADAPTER)
        except Exception as exc:  # diffusers raises OSError, ValueError, KeyError... on a bad file
            pipe.unload_lora_weights()  # whatever part of it got in
            raise PersonModelError(f"person model {model.path.name} cannot be loaded: {exc}") from exc
        try:
            done = 0
            for batch in batches(job.plan.shots, self.settings.BATCH_SIZE):
                check_cancel(job.cancel, "rendering")
                images = self._render_batch(job, batch, done)
                for shot, image in zip(batch, images, strict=True):
                    done += 1
                    job.report(done)
                    yield RenderedHeadshot(shot, image)
        finally:
            # Also when the caller stops iterating or an error escapes: the next person must not
            # inherit this person's LoRA.
            pipe.unload_lora_weights()

    def _render_batch(self, job: RenderJob, batch: list[Shot], done: int) -> list[Image.Image]:
        """The images of ``batch`` (shots of one size), ``done`` images of the plan being finished."""
        width, height = (
            max(self.vae_scale, side // self.vae_scale * self.vae_scale) for side in batch[0].size
        )

        def on_step(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            job.report(done, step=step + 1, steps=pipeline.num_timesteps)
            # Raising here stops the denoising loop at once; the partial batch is thrown away.
            check_cancel(job.cancel, "rendering")
            return tensors

        kwargs: dict[str, Any] = dict(
            prompt=[render_prompt(job.model.trigger, job.attributes, shot.style) for shot in batch],
            negative_prompt=[negative_prompt(job.attributes)] * len(batch),
            num_inference_steps=self.settings.INFERENCE_STEPS,
            guidance_scale=self.settings.GUIDANCE_SCALE,
            # One CPU generator per image: the same seed gives the same latents batched or alone,
            # on CPU or GPU (CUDA generators draw different numbers).
            generator=[torch.Generator("cpu").manual_seed(shot.seed) for shot in batch],
            callback_on_step_end=on_step,
            output_type="pil",
        )
        if job.reference is not None:
            reference = job.reference
            start = crop_resize(reference, centre_box(reference.size, width / height), (width, height))
            kwargs.update(image=[start] * len(batch), strength=self.settings.IMG2IMG_STRENGTH)
        else:
            kwargs.update(width=width, height=height)
        with device_errors(f"rendering {len(batch)} headshot(s) at {width}x{height}"), torch.inference_mode():
            return list(job.pipe(**kwargs).images)

    def _reference(self, model: TrainedModel) -> Image.Image:
        if model.reference is None or not model.reference.is_file():
            raise PersonModelError(
                f"person model {model.path.name} has no reference crop: it was prepared with IMG2IMG off"
            )
        return _load_photo(model.reference)


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


__all__ = ["DiffusionEngine", "RenderJob", "batches"]
