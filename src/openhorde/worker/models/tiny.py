"""``openhorde-tiny``: a small Stable Diffusion pipeline whose weights the code builds, for tests and demos.

It has the real architecture (UNet with cross-attention, KL autoencoder, CLIP text encoder with
the full CLIP vocabulary) at a size that generates a 64×64 image in a tenth of a second on a CPU.
The weights are random but the same on every machine: each component is built under a fixed seed.
Its images are noise-like; what matters is that every code path of a real model runs.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from openhorde.worker.models.tokenizer import CLIP_MAX_LENGTH, CLIP_VOCAB_SIZE, clip_tokenizer

TINY_MODEL_NAME = "openhorde-tiny"
TINY_SEED = 20261126
TINY_CROSS_ATTENTION_DIM = 32


def tiny_unet(in_channels: int = 4) -> UNet2DConditionModel:
    """A two-level UNet (1.4 M parameters); ``in_channels=9`` gives the inpainting variant."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        return UNet2DConditionModel(
            block_out_channels=(32, 64),
            layers_per_block=2,
            sample_size=32,
            in_channels=in_channels,
            out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=TINY_CROSS_ATTENTION_DIM,
            attention_head_dim=8,
        )


def tiny_vae() -> AutoencoderKL:
    """A two-level KL autoencoder: images are twice the latent size."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED + 1)
        return AutoencoderKL(
            block_out_channels=(32, 64),
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=4,
            sample_size=64,
        )


def tiny_text_encoder() -> CLIPTextModel:
    """A five-layer CLIP text encoder over the full CLIP vocabulary."""
    tokenizer = clip_tokenizer()
    config = CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=TINY_CROSS_ATTENTION_DIM,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=5,
        vocab_size=CLIP_VOCAB_SIZE,
        max_position_embeddings=CLIP_MAX_LENGTH,
        projection_dim=TINY_CROSS_ATTENTION_DIM,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED + 2)
        return CLIPTextModel(config).eval()


def tiny_scheduler() -> DDIMScheduler:
    """The SD 1.x noise schedule."""
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def build_tiny_pipeline(inpainting: bool = False) -> StableDiffusionPipeline:
    """The whole tiny pipeline, on the CPU in float32."""
    return StableDiffusionPipeline(
        unet=tiny_unet(in_channels=9 if inpainting else 4),
        vae=tiny_vae(),
        text_encoder=tiny_text_encoder(),
        tokenizer=clip_tokenizer(),
        scheduler=tiny_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
