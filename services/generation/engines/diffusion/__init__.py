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

Failures are :class:`~services.generation.engines.errors.EngineError` subclasses: ``ModelLoadError``,
``OutOfMemory``, ``Cancelled`` (checked every denoising and training step), ``PersonModelError``.

::

    engine = DiffusionEngine(Settings(ENGINE="diffusion", MODEL_DIR="/models/sd15"))
    model = engine.prepare("session-42", photos, attributes, progress=print)
    for headshot in engine.render(model, plan, attributes, progress=print):
        headshot.image.save(f"{headshot.shot.name}.png")

Not thread-safe: one engine renders one thing at a time (the generation worker has prefetch 1).

Modules: :mod:`.loading` (device, base model, settings checks), :mod:`.training` (the LoRA),
:mod:`.engine` (:class:`DiffusionEngine`: preparing and rendering), :mod:`.tiny` (tiny random-weight
pipelines built in code, for tests and the benchmark).
"""

from services.generation.engines.diffusion.engine import DiffusionEngine, batches
from services.generation.engines.diffusion.loading import (
    base_model_id,
    choose_device,
    device_errors,
    load_pipeline,
    model_family,
)

__all__ = [
    "DiffusionEngine",
    "base_model_id",
    "batches",
    "choose_device",
    "device_errors",
    "load_pipeline",
    "model_family",
]
