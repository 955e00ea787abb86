"""Small random weights in the layouts of the real post-processing files, written in their real formats.

The upscalers are built key by key as the published files store them (BasicSR's ``params_ema`` RRDBNet for
Real-ESRGAN; the original ESRGAN ``model.N`` layout for NMKD_Siax and 4x_AnimeSharp), only narrower (8 features
instead of 64; the growth width of 32 is not read from the file, so it stays) and with one block instead of 23,
so spandrel's architecture detection runs on them exactly as on the real files.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

SEED = 1234


def _conv(state: dict[str, torch.Tensor], key: str, out: int, into: int, generator: torch.Generator) -> None:
    state[f"{key}.weight"] = torch.randn(out, into, 3, 3, generator=generator) * 0.05
    state[f"{key}.bias"] = torch.randn(out, generator=generator) * 0.01


def realesrgan_state(scale: int = 4, features: int = 8, blocks: int = 1, grow: int = 32) -> dict[str, torch.Tensor]:
    """A Real-ESRGAN RRDBNet state dict (``conv_first``, ``body.N.rdbM``…); ×2 models unshuffle their input by 2."""
    generator = torch.Generator().manual_seed(SEED)
    state: dict[str, torch.Tensor] = {}
    inputs = 3 * {4: 1, 2: 4, 1: 16}[scale]
    _conv(state, "conv_first", features, inputs, generator)
    for block in range(blocks):
        for rdb in (1, 2, 3):
            prefix = f"body.{block}.rdb{rdb}"
            for index in range(1, 5):
                _conv(state, f"{prefix}.conv{index}", grow, features + (index - 1) * grow, generator)
            _conv(state, f"{prefix}.conv5", features, features + 4 * grow, generator)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        _conv(state, name, features, features, generator)
    _conv(state, "conv_last", 3, features, generator)
    return state


def esrgan_old_state(features: int = 8, blocks: int = 1, grow: int = 32) -> dict[str, torch.Tensor]:
    """An original-ESRGAN ×4 state dict (``model.0``, ``model.1.sub.N.RDBM.convK.0``…), as NMKD's models store it."""
    generator = torch.Generator().manual_seed(SEED)
    state: dict[str, torch.Tensor] = {}
    _conv(state, "model.0", features, 3, generator)
    for block in range(blocks):
        for rdb in (1, 2, 3):
            prefix = f"model.1.sub.{block}.RDB{rdb}"
            for index in range(1, 5):
                _conv(state, f"{prefix}.conv{index}.0", grow, features + (index - 1) * grow, generator)
            _conv(state, f"{prefix}.conv5.0", features, features + 4 * grow, generator)
    _conv(state, f"model.1.sub.{blocks}", features, features, generator)
    for index in (3, 6, 8):
        _conv(state, f"model.{index}", features, features, generator)
    _conv(state, "model.10", 3, features, generator)
    return state


def write_pth(path: Path, state: dict[str, torch.Tensor], wrap: str | None = None) -> Path:
    """``state`` saved with ``torch.save`` (under ``wrap``, e.g. ``params_ema``, as BasicSR saves)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({wrap: state} if wrap else state, path)
    return path


def write_safetensors(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """``state`` saved as safetensors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in state.items()}, str(path))
    return path


def codeformer_state() -> dict[str, torch.Tensor]:
    """A CodeFormer state dict with the smallest transformer the loader reads back (1 layer, 32 wide, 16 codes).

    Its VQ encoder and decoder have no size knobs in the file, so it is still 68 M parameters (270 MB).
    """
    from openhorde.worker.postprocess.spandrel_models import import_spandrel

    import_spandrel()
    from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

    torch.manual_seed(SEED)
    model = CodeFormer(dim_embd=32, n_head=2, n_layers=1, codebook_size=16, latent_size=256, connect_list=["32"])
    return {key: value.contiguous() for key, value in model.state_dict().items()}


def gfpgan_state() -> dict[str, torch.Tensor]:
    """A GFPGAN v1.4 ("clean") state dict; spandrel reads no size from it, so it has the real model's 86 M."""
    from openhorde.worker.postprocess.spandrel_models import import_spandrel

    import_spandrel()
    from spandrel.architectures.GFPGAN import GFPGAN

    torch.manual_seed(SEED)
    model = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, different_w=True, sft_half=True)
    return {key: value.contiguous() for key, value in model.state_dict().items()}


def u2net_shaped_onnx(path: Path) -> Path:
    """An ONNX model with U²-Net's interface (``1×3×320×320`` in, ``1×1×320×320`` mask first out): the mask is
    the mean of the normalised colour channels, so bright regions are kept and dark ones removed."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 320, 320])
    mask = helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, 320, 320])
    mean = helper.make_node("ReduceMean", ["input.1"], ["mask"], axes=[1], keepdims=1)
    graph = helper.make_graph([mean], "u2net_shaped", [image], [mask])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
