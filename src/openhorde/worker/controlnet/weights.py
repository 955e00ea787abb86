"""Loading a ControlNet file into diffusers' ``ControlNetModel``, shaped after the base model's own UNet.

The files the model reference names are in the original ControlNet layout (``control_model.*`` keys, the UNet's
encoder in LDM names plus ``input_hint_block``, ``zero_convs`` and ``middle_block_out``; some SD 2.1 files have the
same keys without the prefix). Most are kohya's
"difference" modules: they carry a ``difference`` key, and their encoder weights are stored as the difference
from the base model, to which the base UNet's weights are added on loading (as ComfyUI and the A1111 extension
do). Files already in diffusers' layout (e.g. QR Code Monster's) load as they are.

The architecture comes from the base UNet (``ControlNetModel.from_unet``) and the hint encoder's channels from
the file, so an SD 1 ControlNet only loads onto an SD 1 UNet: a mismatched file fails with every key named.
The key mapping is the inverse of the one ``checkpoint.py`` writes UNets with, extended by the hint encoder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from openhorde.worker.models.checkpoint import Renames, rename_state, unet_renames

LDM_PREFIX = "control_model."
DIFFERENCE_KEY = "difference"
_ENCODER_PREFIXES = ("time_embedding.", "conv_in", "down_blocks.", "mid_block.", "add_embedding.")
_HINT = re.compile(r"^input_hint_block\.(\d+)\.weight$")
_DIFFUSERS_HINT = re.compile(r"^controlnet_cond_embedding\.blocks\.(\d+)\.weight$")


class ControlNetLoadError(RuntimeError):
    """A ControlNet file cannot be read, or does not fit the base model's UNet."""


def controlnet_renames(unet_config: Mapping[str, Any], hint_levels: int) -> Renames:
    """diffusers module prefix → original ControlNet module prefix, for a ControlNet of this UNet."""
    encoder_only = {**unet_config, "up_block_types": ()}  # a ControlNet config has no decoder
    renames = {key: value for key, value in unet_renames(encoder_only).items() if key.startswith(_ENCODER_PREFIXES)}
    same: Mapping[str, str] = {}
    blocks = 2 * (hint_levels - 1)
    renames["controlnet_cond_embedding.conv_in"] = ("input_hint_block.0", same)
    for index in range(blocks):
        renames[f"controlnet_cond_embedding.blocks.{index}"] = (f"input_hint_block.{2 * (index + 1)}", same)
    renames["controlnet_cond_embedding.conv_out"] = (f"input_hint_block.{2 * (blocks + 1)}", same)
    down = len(unet_config["down_block_types"])
    for index in range(down * (int(unet_config["layers_per_block"]) + 1)):
        renames[f"controlnet_down_blocks.{index}"] = (f"zero_convs.{index}.0", same)
    renames["controlnet_mid_block"] = ("middle_block_out.0", same)
    return renames


def _inverse(renames: Renames) -> Renames:
    return {target: (prefix, {new: old for old, new in parts.items()}) for prefix, (target, parts) in renames.items()}


def controlnet_to_ldm(model: Any) -> dict[str, torch.Tensor]:
    """A diffusers ``ControlNetModel``'s weights in the original layout (``control_model.*``), as the files are."""
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    levels = len(model.config.conditioning_embedding_out_channels)
    converted = rename_state(state, controlnet_renames(model.config, levels), "ControlNet")
    return {LDM_PREFIX + key: tensor for key, tensor in converted.items()}


def save_difference_file(model: Any, base_unet: Any, path: Path) -> Path:
    """Write ``model`` as a kohya-style difference module against ``base_unet`` (what the reference's files are)."""
    unet = {key: value.detach() for key, value in base_unet.state_dict().items()}
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    for key, tensor in state.items():
        if key in unet:
            state[key] = tensor - unet[key].to(tensor.dtype)
    levels = len(model.config.conditioning_embedding_out_channels)
    converted = rename_state(state, controlnet_renames(model.config, levels), "ControlNet")
    ldm = {LDM_PREFIX + key: tensor.contiguous() for key, tensor in converted.items()}
    ldm[DIFFERENCE_KEY] = torch.tensor([])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(ldm, str(path))
    return path


def base_weights(unet: Any) -> dict[str, torch.Tensor]:
    """The UNet's own weights by their plain names, without the LoRA layers peft may have wrapped around them."""
    weights = {}
    for key, tensor in unet.state_dict().items():
        if ".lora_" not in key:
            weights[key.replace(".base_layer.", ".")] = tensor
    return weights


def _read(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix in (".safetensors", ".sft"):
            return load_file(str(path))
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors and torch raise plain exceptions for damaged files
        raise ControlNetLoadError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise ControlNetLoadError(f"{path}: holds no state dict")
    return state


def _hint_channels(state: Mapping[str, torch.Tensor], pattern: re.Pattern[str], first: str) -> list[int]:
    """The hint encoder's level widths (SD's is 16, 32, 96, 256), read from its convolutions' shapes."""
    convs = sorted((int(match.group(1)), tensor) for key, tensor in state.items() if (match := pattern.match(key)))
    if pattern is _HINT:
        # input_hint_block: conv_in at 0, then the blocks; every second conv from conv_in starts a level.
        return [int(tensor.shape[0]) for _, tensor in convs[:-1:2]]
    return [int(state[first].shape[0])] + [int(tensor.shape[0]) for index, tensor in convs if index % 2 == 1]


def to_diffusers(state: Mapping[str, torch.Tensor], unet_config: Mapping[str, Any]) -> tuple[dict[str, Any], list[int]]:
    """A ControlNet state dict in diffusers names, and its hint encoder's channels."""
    if "controlnet_cond_embedding.conv_in.weight" in state:
        channels = _hint_channels(state, _DIFFUSERS_HINT, "controlnet_cond_embedding.conv_in.weight")
        return dict(state), channels
    ldm = {key.removeprefix(LDM_PREFIX): value for key, value in state.items() if key.startswith(LDM_PREFIX)}
    if not ldm and "input_hint_block.0.weight" in state:  # some files (SD 2.1 ones) have no ``control_model.``
        ldm = {key: value for key, value in state.items() if key != DIFFERENCE_KEY}
    if "input_hint_block.0.weight" not in ldm:
        raise ControlNetLoadError("not a ControlNet: it has no control_model.input_hint_block weights")
    channels = _hint_channels(ldm, _HINT, "input_hint_block.0.weight")
    try:
        converted = rename_state(ldm, _inverse(controlnet_renames(unet_config, len(channels))), "ControlNet file")
    except ValueError as exc:
        raise ControlNetLoadError(f"it does not fit this model's UNet: {exc}") from exc
    return converted, channels


def load_controlnet(path: Path, base_unet: Any) -> Any:
    """The ControlNet in ``path`` as a ``ControlNetModel`` for ``base_unet`` (on the CPU, in float32)."""
    from accelerate import init_empty_weights
    from diffusers import ControlNetModel

    state = _read(path)
    try:
        converted, channels = to_diffusers(state, base_unet.config)
    except ControlNetLoadError as exc:
        raise ControlNetLoadError(f"{path}: {exc}") from exc
    if DIFFERENCE_KEY in state:
        unet = base_weights(base_unet)
        for key, tensor in converted.items():
            if key in unet and unet[key].shape != tensor.shape:
                raise ControlNetLoadError(f"{path}: does not fit this model's UNet ({key} {tuple(tensor.shape)})")
            if key in unet:
                converted[key] = tensor.float() + unet[key].detach().to("cpu", torch.float32)
    converted = {key: tensor.float() for key, tensor in converted.items()}
    with init_empty_weights():
        model = ControlNetModel.from_unet(
            base_unet,
            conditioning_embedding_out_channels=tuple(channels),
            conditioning_channels=int(converted["controlnet_cond_embedding.conv_in.weight"].shape[1]),
            load_weights_from_unet=False,
        )
    try:
        model.load_state_dict(converted, strict=True, assign=True)
    except RuntimeError as exc:
        raise ControlNetLoadError(f"{path}: does not fit this model's UNet: {str(exc)[:500]}") from exc
    return model.eval()
