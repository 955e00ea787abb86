"""LoRA and textual-inversion files for tests: random adapters for the tiny model, saved as real ones are."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch

from openhorde.worker.models.tiny import TINY_CROSS_ATTENTION_DIM, tiny_text_encoder, tiny_unet


def make_lora(folder: Path, seed: int, with_text_encoder: bool = True) -> Path:
    """A random rank-4 LoRA for the tiny UNet (and text encoder), saved as diffusers would save a trained one."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    def config(targets: list[str]) -> LoraConfig:
        # init_lora_weights=False: random A and B, so the LoRA changes outputs (trained LoRAs start B at zero).
        return LoraConfig(r=4, lora_alpha=4, target_modules=targets, init_lora_weights=False)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = inject_adapter_in_model(config(["to_q", "to_k", "to_v", "to_out.0"]), cast(Any, tiny_unet()))
        layers: dict[str, Any] = {"unet_lora_layers": get_peft_model_state_dict(unet)}
        if with_text_encoder:
            encoder = inject_adapter_in_model(config(["q_proj", "k_proj", "v_proj", "out_proj"]), tiny_text_encoder())
            layers["text_encoder_lora_layers"] = get_peft_model_state_dict(encoder)
    folder.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(str(folder), weight_name="lora.safetensors", **layers)
    return folder / "lora.safetensors"


def make_ti(path: Path, seed: int, vectors: int = 2) -> Path:
    """A textual inversion in the kohya/CivitAI layout (``emb_params``), ``vectors`` tokens long."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    save_file({"emb_params": torch.randn(vectors, TINY_CROSS_ATTENTION_DIM, generator=generator)}, str(path))
    return path
