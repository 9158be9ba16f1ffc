"""Where the diffusion engine runs and what it runs: the device, the base model (a diffusers folder or
a single ``.safetensors`` file, read offline only), its fingerprint, and the settings checks made
before loading anything."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from libs.settings import Settings
from services.generation.engines.errors import EngineConfigError, EngineError, ModelLoadError, OutOfMemory

# Where a single-file checkpoint's component configs live on the Hub, by family. They are looked up
# in the local Hugging Face cache only (never fetched): see load_pipeline.
# Where a single-file checkpoint's component configs live on the Hub, by family. They are looked up
# in the local Hugging Face cache only (never fetched): see load_pipeline.
SINGLE_FILE_CONFIGS = {
    "sd1": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "sd2": "stabilityai/stable-diffusion-2-1",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
}


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


def check_settings(settings: Settings) -> None:
    """Settings that cannot work, refused before the (slow) base model is loaded."""
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


__all__ = [
    "base_model_id",
    "check_settings",
    "choose_device",
    "device_errors",
    "load_pipeline",
    "model_family",
]
