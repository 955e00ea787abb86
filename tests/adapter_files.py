"""LoRA, TI and hypernetwork files for tests: random adapters for the tiny model, saved as real ones are."""

from __future__ import annotations

from collections import OrderedDict
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


TINY_SELF_ATTENTION_DIM = 64
"""The width of the tiny UNet's self-attention contexts (its deeper block's channels)."""


def make_hypernetwork(
    path: Path, seed: int, widths: tuple[int, ...] = (TINY_CROSS_ATTENTION_DIM, TINY_SELF_ATTENTION_DIM)
) -> Path:
    """A random hypernetwork saved as AUTOMATIC1111 saves a trained one (``torch.save`` of its dict).

    Its MLPs are [1, 2, 1] with ReLU and 0.3 dropout after the hidden layer and no output activation, so each holds
    ``linear.0`` (Linear), ``linear.1`` (ReLU), ``linear.2`` (Dropout) and ``linear.3`` (Linear): the output layer's
    keys are ``linear.3.*``. Written by hand, not with the worker's own classes, so loading it tests the format.
    """
    generator = torch.Generator().manual_seed(seed)

    def mlp(width: int) -> OrderedDict[str, torch.Tensor]:
        hidden = 2 * width
        return OrderedDict(
            [
                ("linear.0.weight", torch.randn(hidden, width, generator=generator) / width**0.5),
                ("linear.0.bias", torch.randn(hidden, generator=generator) * 0.1),
                ("linear.3.weight", torch.randn(width, hidden, generator=generator) / hidden**0.5),
                ("linear.3.bias", torch.randn(width, generator=generator) * 0.1),
            ]
        )

    state: dict[Any, Any] = {width: (mlp(width), mlp(width)) for width in widths}
    state.update(
        step=1500,
        name="tiny-hypernetwork",
        layer_structure=[1, 2, 1],
        activation_func="relu",
        is_layer_norm=False,
        weight_initialization="Normal",
        sd_checkpoint="0123abcd",
        sd_checkpoint_name="openhorde-tiny",
        activate_output=False,
        use_dropout=True,
        dropout_structure=[0, 0.3, 0],
        last_layer_dropout=False,
        optional_info="made by the tests",
    )
    torch.save(state, path)
    return path
