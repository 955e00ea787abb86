"""``openhorde-tiny``: a small Stable Diffusion pipeline whose weights the code builds, for tests and demos.

It has the real architecture (UNet with cross-attention, KL autoencoder, CLIP text encoder with
the full CLIP vocabulary) at a size that generates a 64×64 image in a tenth of a second on a CPU.
The weights are random but the same on every machine: each component is built under a fixed seed.
Its images are noise-like; what matters is that every code path of a real model runs.

``build_tiny_sdxl_pipeline`` and ``build_tiny_sd2_pipeline`` do the same for the other two baselines, with
what sets them apart from SD 1 (SDXL: two text encoders, pooled and size/crop conditioning; SD 2: linear
attention projections, "!" padding, v-prediction), so that their code paths can be tested without a hub.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from openhorde.worker.models.tokenizer import CLIP_MAX_LENGTH, CLIP_VOCAB_SIZE, EOS_TOKEN, clip_tokenizer

TINY_MODEL_NAME = "openhorde-tiny"
TINY_SEED = 20261126
TINY_CROSS_ATTENTION_DIM = 32
TINY_SDXL_TEXT_DIM = 32
"""Hidden size of each tiny SDXL text encoder, and the size of the second one's pooled projection."""
TINY_SDXL_TIME_EMBED_DIM = 8
"""Width of each of SDXL's six size/crop numbers once embedded (real SDXL: 256)."""
# Seeds of the SDXL and SD 2 components start here, apart from the SD 1 ones (TINY_SEED + 0…2).
_SDXL_SEED = TINY_SEED + 10
_SD2_SEED = TINY_SEED + 20


def _two_level_unet(seed: int, **architecture: Any) -> UNet2DConditionModel:
    """The UNet layout every tiny model shares (two levels, cross-attention in the deeper one), built under
    ``seed``; ``architecture`` adds or overrides what sets a baseline apart."""
    layout: dict[str, Any] = {
        "block_out_channels": (32, 64),
        "layers_per_block": 2,
        "sample_size": 32,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DConditionModel(**{**layout, **architecture})


def tiny_unet(in_channels: int = 4) -> UNet2DConditionModel:
    """A two-level UNet (1.4 M parameters); ``in_channels=9`` gives the inpainting variant."""
    return _two_level_unet(
        TINY_SEED, in_channels=in_channels, cross_attention_dim=TINY_CROSS_ATTENTION_DIM, attention_head_dim=8
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


def tiny_text_config(pad_token: str = EOS_TOKEN, hidden_act: str = "quick_gelu") -> CLIPTextConfig:
    """The config of a five-layer CLIP text encoder over the full CLIP vocabulary.

    ``pad_token`` is the tokenizer's padding (default: the end token, as SD 1); ``hidden_act`` is CLIP's
    ``quick_gelu`` unless given (OpenCLIP encoders, SD 2's and SDXL's second, use ``gelu``). Both left out give
    exactly the config of the SD 1 tiny encoder, whose weights existing tests and exported checkpoints depend on.
    """
    tokenizer = clip_tokenizer(pad_token)
    return CLIPTextConfig(
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
        hidden_act=hidden_act,
    )


def tiny_text_encoder() -> CLIPTextModel:
    """A five-layer CLIP text encoder over the full CLIP vocabulary."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED + 2)
        return CLIPTextModel(tiny_text_config()).eval()


def tiny_scheduler(prediction_type: str = "epsilon") -> DDIMScheduler:
    """The SD 1.x noise schedule; SD 2's 768-v models use the same one with ``prediction_type="v_prediction"``."""
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type=prediction_type,
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


# SDXL


def tiny_sdxl_unet() -> UNet2DConditionModel:
    """An SDXL-style two-level UNet (2 M parameters) with SDXL's ``text_time`` added conditioning.

    As in SDXL: linear attention projections, more transformer layers in the deeper block, and the pooled text
    embedding plus six embedded size/crop numbers added to the time embedding.
    """
    return _two_level_unet(
        _SDXL_SEED,
        attention_head_dim=(2, 4),  # diffusers reads this as the number of heads per block
        use_linear_projection=True,
        transformer_layers_per_block=(1, 2),
        addition_embed_type="text_time",
        addition_time_embed_dim=TINY_SDXL_TIME_EMBED_DIM,
        # original size, crop top-left and target size (2 numbers each), plus the second encoder's pooled output.
        projection_class_embeddings_input_dim=6 * TINY_SDXL_TIME_EMBED_DIM + TINY_SDXL_TEXT_DIM,
        # The pipeline concatenates both encoders' hidden states.
        cross_attention_dim=2 * TINY_SDXL_TEXT_DIM,
    )


def tiny_sdxl_text_encoders() -> tuple[CLIPTextModel, CLIPTextModelWithProjection]:
    """SDXL's pair: a CLIP-L-like encoder and an OpenCLIP-G-like one with a projection (its pooled output)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SDXL_SEED + 1)
        first = CLIPTextModel(tiny_text_config()).eval()
        torch.manual_seed(_SDXL_SEED + 2)
        second = CLIPTextModelWithProjection(tiny_text_config("!", hidden_act="gelu")).eval()
    return first, second


def tiny_sdxl_scheduler() -> EulerDiscreteScheduler:
    """SDXL's noise schedule: SD's betas, stepped by Euler on "leading" timesteps (as the shipped config)."""
    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )


def build_tiny_sdxl_pipeline() -> StableDiffusionXLPipeline:
    """A tiny SDXL pipeline, on the CPU in float32; native size 64 px, like the SD 1 tiny model."""
    text_encoder, text_encoder_2 = tiny_sdxl_text_encoders()
    return StableDiffusionXLPipeline(
        vae=tiny_vae(),  # SDXL's autoencoder has SD's architecture (retrained weights)
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer("!"),
        unet=tiny_sdxl_unet(),
        scheduler=tiny_sdxl_scheduler(),
        force_zeros_for_empty_prompt=True,
    )


# SD 2


def build_tiny_sd2_pipeline() -> StableDiffusionPipeline:
    """A tiny SD 2 (768-v style) pipeline: linear projections, "!" padding, GELU encoder, v-prediction."""
    unet = _two_level_unet(
        _SD2_SEED, cross_attention_dim=TINY_CROSS_ATTENTION_DIM, attention_head_dim=(2, 4), use_linear_projection=True
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SD2_SEED + 1)
        text_encoder = CLIPTextModel(tiny_text_config("!", hidden_act="gelu")).eval()
    # The VAE is SD 1's (SD 2 kept the same autoencoder).
    return StableDiffusionPipeline(
        unet=unet,
        vae=tiny_vae(),
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer("!"),
        scheduler=tiny_scheduler("v_prediction"),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
