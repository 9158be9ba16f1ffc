"""The person model of the diffusion engine: a LoRA on the UNet's attention projections, trained
DreamBooth-style on face crops of the person's photos, saved in diffusers' LoRA format."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from services.generation.engines.base import Progress, ProgressCallback, check_cancel, report

LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]  # the UNet's attention projections
TRAINING_SEED = 0  # training is reproducible for the same photos and settings


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
        latents = encode_latents(vae, crops, device)
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


def encode_latents(vae: Any, crops: list[Image.Image], device: torch.device) -> torch.Tensor:
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


def save_lora(pipeline_class: Any, state: dict[str, torch.Tensor], path: Path) -> None:
    """Save through diffusers (so ``load_lora_weights`` reads it back) into a temporary folder, then
    move the file into place: a crash never leaves half a model under the person's name."""
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".lora-") as tmp:
        pipeline_class.save_lora_weights(tmp, unet_lora_layers=state, weight_name=path.name)
        shutil.move(str(Path(tmp) / path.name), path)


__all__ = ["LORA_TARGETS", "encode_latents", "save_lora", "train_lora"]
