"""Small ControlNet and annotator weights with random values, written in the files' real formats and layouts.

The ControlNet is a kohya-style difference module (``control_model.*`` keys plus ``difference``) for the tiny
model's UNet, with a one-level hint encoder so its output matches the tiny VAE's factor of 2. HED uses the real
key layout at smaller widths; M-LSD and OpenPose are the real networks (their layers have fixed sizes),
OpenPose's saved in half precision to halve its file; MiDaS (DPT) and UperNet are tiny transformers configs saved
as ``config.json`` plus ``pytorch_model.bin``, the files the worker downloads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from openhorde.worker.controlnet import names
from openhorde.worker.controlnet.hed import HEDNetwork
from openhorde.worker.controlnet.mlsd import MLSDNetwork
from openhorde.worker.controlnet.openpose import BodyPoseNetwork
from openhorde.worker.controlnet.weights import save_difference_file

TINY_HED_LAYOUT = ((3, 8, 2), (8, 16, 2), (16, 16, 3), (16, 16, 3), (16, 16, 3))
REFERENCE_FILE = "diff_control_sd15_{kind}_fp16.safetensors"


def _randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return module


def tiny_controlnet(unet: Any, seed: int = 3) -> Any:
    """A ControlNet for ``unet`` with random weights (zero convolutions included, so it changes the image)."""
    from diffusers import ControlNetModel

    model = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
    return _randomise(model, seed)


def write_controlnet(path: Path, unet: Any, seed: int = 3) -> Path:
    """A difference-module ControlNet file for ``unet`` at ``path``."""
    return save_difference_file(tiny_controlnet(unet, seed), unet, path)


def write_hed(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_randomise(HEDNetwork(TINY_HED_LAYOUT), 5).state_dict(), path)
    return path


def write_mlsd(path: Path) -> Path:
    """``mlsd_large_512_fp32.pth``: M-LSD large's state dict at its real size (1.5 M parameters)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_randomise(MLSDNetwork(), 9).state_dict(), path)
    return path


def write_openpose(path: Path) -> Path:
    """``body_pose_model.pth``'s layout: the layers' own names, no module prefixes."""
    network = _randomise(BodyPoseNetwork(), 7)
    flat = {".".join(key.split(".")[-2:]): value.half() for key, value in network.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(flat, path)
    return path


def _save_transformers(model: Any, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def write_depth(folder: Path) -> Path:
    from transformers import DPTConfig, DPTForDepthEstimation

    config = DPTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=64,
        patch_size=16,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[16, 16, 32, 32],
        fusion_hidden_size=16,
        head_in_index=-1,
        readout_type="project",
    )
    torch.manual_seed(11)
    return _save_transformers(DPTForDepthEstimation(config).eval(), folder)


def write_seg(folder: Path) -> Path:
    from transformers import ConvNextConfig, UperNetConfig, UperNetForSemanticSegmentation

    backbone = ConvNextConfig(
        hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], out_features=["stage1", "stage2", "stage3", "stage4"]
    )
    config = UperNetConfig(backbone_config=backbone, hidden_size=16, num_labels=150, use_auxiliary_head=False)
    torch.manual_seed(13)
    return _save_transformers(UperNetForSemanticSegmentation(config).eval(), folder)


def write_annotators(folder: Path) -> Path:
    """Every annotator's weights under ``folder`` (the model store's annotator folder), at the worker's paths."""
    write_hed(folder / names.HED_FILES[0].path)
    write_mlsd(folder / names.MLSD_FILES[0].path)
    write_openpose(folder / names.OPENPOSE_FILES[0].path)
    write_depth((folder / names.DEPTH_FILES[0].path).parent)
    write_seg((folder / names.SEG_FILES[0].path).parent)
    return folder


def write_reference(path: Path, files: dict[str, str]) -> Path:
    """A ``controlnet.json`` naming ``files`` (control type → file name) for SD 1, without digests or URLs."""
    records = {
        f"control_{kind}": {
            "name": f"control_{kind}",
            "type": f"control_{kind}",
            "config": {"files": [{"path": file}, {"path": "cldm_v15.yaml"}], "download": []},
        }
        for kind, file in files.items()
    }
    path.write_text(json.dumps(records))
    return path


def write_store(store: Path, unet: Any) -> Path:
    """A model store with a ControlNet for every control type and every annotator; returns its controlnet.json."""
    files = {}
    for kind in names.CONTROL_TYPES:
        files[kind] = REFERENCE_FILE.format(kind=kind)
        write_controlnet(store / names.CONTROLNET_FOLDER / files[kind], unet, seed=len(files))
    write_annotators(store / names.ANNOTATOR_FOLDER)
    return write_reference(store / "controlnet.json", files)
