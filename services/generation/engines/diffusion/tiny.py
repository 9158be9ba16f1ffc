"""Tiny diffusion pipelines with random weights, built in code, for tests and the benchmark.

No model hub is reachable, so every part (tokenizer included) is constructed here and saved with
``save_pretrained``; the engine then loads the folder through the same
``from_pretrained(folder, local_files_only=True)`` path production uses. The shapes follow a real
Stable Diffusion (a VAE that downscales by 8, a UNet with cross-attention, a CLIP text encoder),
only with a few channels, so a 2-step render at 64 px takes milliseconds::

    folder = build_tiny_pipeline(tmp_path / "sd")             # Stable Diffusion 1.x layout
    folder = build_tiny_pipeline(tmp_path / "xl", sdxl=True)  # SDXL layout (two text encoders)
    engine = make_engine(Settings(MODEL_DIR=str(folder), ENGINE="diffusion", INFERENCE_STEPS=2))

This module imports diffusers, so only tests and benchmarks import it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from libs.catalog import default_catalog
from services.generation.engines.base import PersonAttributes
from services.generation.engines.prompts import NEGATIVE_PROMPT, TRIGGER, render_prompt

_ANY_STYLE = default_catalog().all_styles()[0]

HIDDEN = 32  # text encoder width = UNet cross-attention width (SD); SDXL concatenates two


def _byte_characters() -> list[str]:
    """The 256 printable stand-ins CLIP's byte-level BPE uses for raw bytes (GPT-2's table)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def _prompt_words() -> list[str]:
    """Every word the engine's prompts can contain (catalog styles, templates, attributes)."""
    texts = [NEGATIVE_PROMPT, render_prompt(TRIGGER, PersonAttributes("female", "brown", True), _ANY_STYLE)]
    texts += ["a photo of man woman person blue green grey hazel"]
    catalog = default_catalog()
    texts += [b.prompt for b in catalog.backdrops] + [c.prompt for c in catalog.clothing]
    return sorted({w for text in texts for w in re.findall(r"[a-z]+|[0-9]", text.lower())})


def tiny_tokenizer() -> CLIPTokenizer:
    """A byte-level CLIP BPE with merges built from the prompt words, so every headshot prompt fits
    CLIP's 77 tokens (byte by byte it is ~150 and gets truncated, dropping the style words)."""
    chars = _byte_characters()
    vocab = {c: i for i, c in enumerate([*chars, *(c + "</w>" for c in chars)])}
    merges: list[tuple[str, str]] = []
    for word in _prompt_words():
        symbols = [*word[:-1], word[-1] + "</w>"]
        while len(symbols) > 1:  # merge left to right: "sks" = s+k, then sk+s</w>
            pair = (symbols[0], symbols[1])
            symbols[:2] = ["".join(pair)]
            if pair not in merges and pair[0] + pair[1] not in vocab:
                merges.append(pair)
                vocab[pair[0] + pair[1]] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    # merges as (left, right) pairs: the tokenizers backend refuses "left right" strings here.
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)  # type: ignore[arg-type]


def _text_config(tokenizer: CLIPTokenizer) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=HIDDEN,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        projection_dim=HIDDEN,
    )


def _vae() -> AutoencoderKL:
    # Four blocks: downscales by 8 like a real SD VAE. With two blocks the latents are 4x larger
    # and a 512 px render takes a minute instead of half a second.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )


def _scheduler() -> DDIMScheduler:
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def build_tiny_pipeline(folder: Path | str, *, sdxl: bool = False, seed: int = 0) -> Path:
    """Build a random-weight pipeline (SD 1.x layout, or SDXL with ``sdxl=True``) into ``folder``."""
    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    unet_kwargs = dict(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        norm_num_groups=32,
    )
    pipe: Any
    if sdxl:
        unet = UNet2DConditionModel(
            **unet_kwargs,
            cross_attention_dim=2 * HIDDEN,  # the two encoders' hidden states are concatenated
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + HIDDEN,  # 6 time ids + pooled text
        )
        pipe = StableDiffusionXLPipeline(
            vae=_vae(),
            text_encoder=CLIPTextModel(_text_config(tokenizer)),
            text_encoder_2=CLIPTextModelWithProjection(_text_config(tokenizer)),
            tokenizer=tokenizer,
            tokenizer_2=tiny_tokenizer(),
            unet=unet,
            scheduler=_scheduler(),
        )
    else:
        pipe = StableDiffusionPipeline(
            vae=_vae(),
            text_encoder=CLIPTextModel(_text_config(tokenizer)),
            tokenizer=tokenizer,
            unet=UNet2DConditionModel(**unet_kwargs, cross_attention_dim=HIDDEN),
            scheduler=_scheduler(),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipe.save_pretrained(folder)
    return folder
