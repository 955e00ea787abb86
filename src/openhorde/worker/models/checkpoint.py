"""Writing pipelines to disk: as one original-layout checkpoint file, or as a diffusers folder.

The single-file layout is the one of the original Stable Diffusion code (LDM), which A1111, ComfyUI
and the AI Horde model reference use: ``model.diffusion_model.*`` for the UNet,
``first_stage_model.*`` for the VAE and ``cond_stage_model.transformer.text_model.*`` for the CLIP
text encoder. The key mapping here is the inverse of diffusers' ``convert_ldm_unet_checkpoint`` and
``convert_ldm_vae_checkpoint`` (``diffusers/loaders/single_file_utils.py``), worked out from the
model configs so that any number of blocks works, not only SD 1.5's four.

Its main use is ``export_tiny_model``: it turns the built-in tiny model into a real checkpoint file
plus config folder, so tests and demos exercise the same loading path as downloaded horde models.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch

# From its module rather than `diffusers`, whose lazy __init__ mypy reads as a dummy placeholder class.
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline
from safetensors.torch import save_file

from openhorde.worker.models.tiny import TINY_MODEL_NAME, build_tiny_pipeline

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_ENCODER_PREFIX = "cond_stage_model.transformer."

_UNET_RESNET_PARTS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_VAE_RESNET_PARTS = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTENTION_PARTS = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_DOWN_TYPES = {"DownBlock2D": False, "CrossAttnDownBlock2D": True}
_UP_TYPES = {"UpBlock2D": False, "CrossAttnUpBlock2D": True}
"""The block types SD UNets use, and whether each has attention layers."""

Renames = dict[str, tuple[str, Mapping[str, str]]]
"""diffusers module prefix → (LDM module prefix, renames of the parts below it)."""


def rename_state(state: Mapping[str, torch.Tensor], renames: Renames, what: str) -> dict[str, torch.Tensor]:
    """Every key of ``state`` under its LDM name; an unmapped key is an error, so nothing is silently dropped."""
    converted: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, tensor in state.items():
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in renames:
                target, part_renames = renames[prefix]
                rest = ".".join(parts[cut:])
                for old, new in part_renames.items():
                    if rest.startswith(old + "."):
                        rest = new + rest[len(old) :]
                        break
                converted[f"{target}.{rest}"] = tensor
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise ValueError(f"The {what} has weights the LDM layout has no place for: {', '.join(unmapped[:10])}")
    return converted


def _layers_per_block(config: Mapping[str, Any], what: str) -> int:
    layers = config["layers_per_block"]
    if not isinstance(layers, int):
        raise ValueError(f"The {what} has a per-block layers_per_block ({layers}); only one number is supported.")
    return layers


def unet_renames(config: Mapping[str, Any]) -> Renames:
    """The module renames from a diffusers ``UNet2DConditionModel`` with this config to the LDM UNet."""
    layers = _layers_per_block(config, "UNet")
    resnet: Mapping[str, str] = _UNET_RESNET_PARTS
    same: Mapping[str, str] = {}
    renames: Renames = {
        "time_embedding.linear_1": ("time_embed.0", same),
        "time_embedding.linear_2": ("time_embed.2", same),
        "conv_in": ("input_blocks.0.0", same),
        "conv_norm_out": ("out.0", same),
        "conv_out": ("out.2", same),
        # SDXL's size/crop conditioning and class-conditioned UNets both live in LDM's label_emb.
        "add_embedding.linear_1": ("label_emb.0.0", same),
        "add_embedding.linear_2": ("label_emb.0.2", same),
        "class_embedding.linear_1": ("label_emb.0.0", same),
        "class_embedding.linear_2": ("label_emb.0.2", same),
    }
    # Down: each block is `layers` resnet(+attention) slots, then one slot for its downsampler
    # (every block but the last has one). Slot 0 is conv_in.
    down_types = list(config["down_block_types"])
    slot = 1
    for block, block_type in enumerate(down_types):
        has_attention = _block_kind(block_type, _DOWN_TYPES)
        for layer in range(layers):
            renames[f"down_blocks.{block}.resnets.{layer}"] = (f"input_blocks.{slot}.0", resnet)
            if has_attention:
                renames[f"down_blocks.{block}.attentions.{layer}"] = (f"input_blocks.{slot}.1", same)
            slot += 1
        if block < len(down_types) - 1:
            renames[f"down_blocks.{block}.downsamplers.0.conv"] = (f"input_blocks.{slot}.0.op", same)
            slot += 1
    # Middle: resnet, attention, resnet.
    renames["mid_block.resnets.0"] = ("middle_block.0", resnet)
    renames["mid_block.attentions.0"] = ("middle_block.1", same)
    renames["mid_block.resnets.1"] = ("middle_block.2", resnet)
    # Up: each block is `layers + 1` slots; the upsampler shares the last slot, after the attention if any.
    up_types = list(config["up_block_types"])
    for block, block_type in enumerate(up_types):
        has_attention = _block_kind(block_type, _UP_TYPES)
        for layer in range(layers + 1):
            slot = block * (layers + 1) + layer
            renames[f"up_blocks.{block}.resnets.{layer}"] = (f"output_blocks.{slot}.0", resnet)
            if has_attention:
                renames[f"up_blocks.{block}.attentions.{layer}"] = (f"output_blocks.{slot}.1", same)
        if block < len(up_types) - 1:
            slot = block * (layers + 1) + layers
            renames[f"up_blocks.{block}.upsamplers.0.conv"] = (
                f"output_blocks.{slot}.{2 if has_attention else 1}.conv",
                same,
            )
    return renames


def _block_kind(block_type: str, known: Mapping[str, bool]) -> bool:
    if block_type not in known:
        raise ValueError(f"UNet block type {block_type} has no LDM equivalent here; supported: {', '.join(known)}.")
    return known[block_type]


def vae_renames(config: Mapping[str, Any]) -> Renames:
    """The module renames from a diffusers ``AutoencoderKL`` with this config to the LDM autoencoder."""
    layers = _layers_per_block(config, "VAE")
    same: Mapping[str, str] = {}
    renames: Renames = {"quant_conv": ("quant_conv", same), "post_quant_conv": ("post_quant_conv", same)}
    for side in ("encoder", "decoder"):
        renames[f"{side}.conv_in"] = (f"{side}.conv_in", same)
        renames[f"{side}.conv_out"] = (f"{side}.conv_out", same)
        renames[f"{side}.conv_norm_out"] = (f"{side}.norm_out", same)
        renames[f"{side}.mid_block.resnets.0"] = (f"{side}.mid.block_1", _VAE_RESNET_PARTS)
        renames[f"{side}.mid_block.resnets.1"] = (f"{side}.mid.block_2", _VAE_RESNET_PARTS)
        renames[f"{side}.mid_block.attentions.0"] = (f"{side}.mid.attn_1", _VAE_ATTENTION_PARTS)
    blocks = len(config["down_block_types"])
    for block in range(blocks):
        for layer in range(layers):
            renames[f"encoder.down_blocks.{block}.resnets.{layer}"] = (
                f"encoder.down.{block}.block.{layer}",
                _VAE_RESNET_PARTS,
            )
        renames[f"encoder.down_blocks.{block}.downsamplers.0.conv"] = (f"encoder.down.{block}.downsample.conv", same)
    # LDM numbers decoder levels by resolution like the encoder (0 = full size); diffusers in the order they run.
    blocks = len(config["up_block_types"])
    for block in range(blocks):
        level = blocks - 1 - block
        for layer in range(layers + 1):
            renames[f"decoder.up_blocks.{block}.resnets.{layer}"] = (
                f"decoder.up.{level}.block.{layer}",
                _VAE_RESNET_PARTS,
            )
        renames[f"decoder.up_blocks.{block}.upsamplers.0.conv"] = (f"decoder.up.{level}.upsample.conv", same)
    return renames


def unet_to_ldm(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A diffusers UNet state dict in LDM layout, keys prefixed ``model.diffusion_model.``."""
    converted = rename_state(state, unet_renames(config), "UNet")
    return {UNET_PREFIX + key: tensor for key, tensor in converted.items()}


def vae_to_ldm(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A diffusers VAE state dict in LDM layout, keys prefixed ``first_stage_model.``."""
    converted = rename_state(state, vae_renames(config), "VAE")
    for key, tensor in converted.items():
        # LDM's VAE attention uses 1×1 convolutions where diffusers uses linear layers.
        if ".mid.attn_1." in key and key.endswith(".weight") and tensor.ndim == 2:
            converted[key] = tensor[:, :, None, None]
    return {VAE_PREFIX + key: tensor for key, tensor in converted.items()}


def text_encoder_to_ldm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers ``CLIPTextModel`` state dict under ``cond_stage_model.transformer.text_model.``."""
    # transformers ≥ 5.6 dropped the `text_model.` level from CLIPTextModel; earlier versions have it.
    return {
        TEXT_ENCODER_PREFIX + (key if key.startswith("text_model.") else "text_model." + key): tensor
        for key, tensor in state.items()
    }


def pipeline_to_ldm(pipe: StableDiffusionPipeline) -> dict[str, torch.Tensor]:
    """All weights of an SD pipeline (UNet, VAE, CLIP text encoder) in the single-file layout."""
    if getattr(pipe, "text_encoder_2", None) is not None:
        raise ValueError("Only single-text-encoder (SD 1/2 style) pipelines can be written as one file here.")
    return {
        **unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config),
        **vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config),
        **text_encoder_to_ldm(pipe.text_encoder.state_dict()),
    }


def save_single_file(pipe: StableDiffusionPipeline, path: Path) -> Path:
    """Write the pipeline's UNet, VAE and text encoder as one LDM-layout ``.safetensors`` file."""
    tensors = {key: tensor.detach().contiguous() for key, tensor in pipeline_to_ldm(pipe).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def save_folder(pipe: StableDiffusionPipeline, path: Path) -> Path:
    """Write the pipeline as a diffusers folder (``save_pretrained`` with safetensors weights)."""
    pipe.save_pretrained(str(path), safe_serialization=True)
    return path


def save_config_folder(pipe: StableDiffusionPipeline, path: Path, pipeline_class: str | None = None) -> Path:
    """Write only the pipeline's configs (``model_index.json`` and one per component), no weights.

    With such a folder as ``config=``, ``from_single_file`` builds the pipeline without a hub.
    ``pipeline_class`` overrides the class the index names (by default the pipeline's own).
    """
    path.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {"_class_name": pipeline_class or type(pipe).__name__}
    index.update({key: _jsonable(value) for key, value in dict(pipe.config).items() if not key.startswith("_")})
    (path / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    pipe.unet.save_config(str(path / "unet"))
    pipe.vae.save_config(str(path / "vae"))
    pipe.scheduler.save_config(str(path / "scheduler"))
    pipe.text_encoder.config.save_pretrained(str(path / "text_encoder"))
    return path


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def export_tiny_model(directory: Path, inpainting: bool = False) -> tuple[Path, Path]:
    """Write the built-in tiny model as ``openhorde-tiny[-inpainting].safetensors`` plus its config folder.

    Returns ``(checkpoint_path, config_dir)``, ready for a catalogue entry's ``file`` and ``config``.
    """
    name = TINY_MODEL_NAME + ("-inpainting" if inpainting else "")
    pipe = cast(StableDiffusionPipeline, build_tiny_pipeline(inpainting=inpainting))
    checkpoint = save_single_file(pipe, directory / f"{name}.safetensors")
    # The tiny builder makes a plain SD pipeline; an inpainting checkpoint's index names the inpainting one.
    pipeline_class = "StableDiffusionInpaintPipeline" if inpainting else None
    config_dir = save_config_folder(pipe, directory / f"{name}-config", pipeline_class)
    return checkpoint, config_dir
