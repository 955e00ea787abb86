"""Seconds and peak GPU memory of ControlNet on the worker: every annotator, loading a ControlNet, and a
denoising step with and without it, at full size (random weights, real architectures).

    .venv/bin/python bench/controlnet.py [--size 512] [--device cuda] [--repeat 3] [--tiny-unet]

Builds the annotator networks at their published sizes (M-LSD large, ControlNet's HED, OpenPose's body model,
MiDaS DPT-Hybrid, UperNet-ConvNeXt-small), saves them as their files are and loads them through the worker's
``Annotators.load``; builds an SD 1.5-sized UNet and a ControlNet shaped after it, saves the ControlNet as a
kohya difference module (what the model reference downloads) and times the worker's loader on it; then times
one classifier-free-guided UNet step (batch 2) at ``--size``² with and without the ControlNet's residuals.
``--tiny-unet`` uses the tiny test model's UNet instead (a quick check of the script on a CPU). Prints one line
per measure and a final ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from harness.gpu import best
from openhorde.worker.controlnet import names
from openhorde.worker.controlnet.annotators import Annotators
from openhorde.worker.controlnet.hed import HEDNetwork
from openhorde.worker.controlnet.mlsd import MLSDNetwork
from openhorde.worker.controlnet.openpose import BodyPoseNetwork
from openhorde.worker.controlnet.weights import load_controlnet, save_difference_file

SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}


def _best(device: torch.device, run: Callable[[], object], repeat: int) -> dict[str, float | None]:
    seconds, peak = best(device, run, repeat)
    return {"seconds": round(seconds, 4), "peak_gib": round(peak, 2) if peak is not None else None}


def _save_transformers(model: Any, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")


def _write_annotators(folder: Path) -> None:
    """The four networks at their published sizes, in the worker's annotator folder layout."""
    from transformers import (
        ConvNextConfig,
        DPTConfig,
        DPTForDepthEstimation,
        UperNetConfig,
        UperNetForSemanticSegmentation,
    )

    torch.manual_seed(0)
    torch.save(HEDNetwork().state_dict(), folder / names.HED_FILES[0].path)
    torch.save(MLSDNetwork().state_dict(), folder / names.MLSD_FILES[0].path)
    body = BodyPoseNetwork().state_dict()
    torch.save({".".join(key.split(".")[-2:]): value for key, value in body.items()}, folder / "body_pose_model.pth")
    depth = DPTConfig(
        is_hybrid=True,
        neck_hidden_sizes=[256, 512, 768, 768],
        backbone_out_indices=[2, 5, 8, 11],
        readout_type="project",
        reassemble_factors=[1, 1, 1, 0.5],
    )
    _save_transformers(DPTForDepthEstimation(depth), (folder / names.DEPTH_FILES[0].path).parent)
    backbone = ConvNextConfig(
        depths=[3, 3, 27, 3], hidden_sizes=[96, 192, 384, 768], out_features=["stage1", "stage2", "stage3", "stage4"]
    )
    seg = UperNetConfig(backbone_config=backbone, hidden_size=512, num_labels=150, auxiliary_in_channels=384)
    _save_transformers(UperNetForSemanticSegmentation(seg), (folder / names.SEG_FILES[0].path).parent)


def _unet(tiny: bool) -> Any:
    from diffusers import UNet2DConditionModel

    if tiny:
        from openhorde.worker.models.tiny import build_tiny_pipeline

        return build_tiny_pipeline().unet
    torch.manual_seed(0)
    return UNet2DConditionModel(**SD15_UNET)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="side of the image in pixels")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs after one warm-up")
    parser.add_argument("--tiny-unet", action="store_true", help="the tiny test UNet instead of SD 1.5's")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    image = Image.effect_noise((args.size, args.size), 40).convert("RGB")
    figures: dict[str, Any] = {"annotators": {}}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _write_annotators(root)
        annotators = Annotators.load(root, device)
        for kind in names.CONTROL_TYPES:
            figures["annotators"][kind] = _best(device, lambda kind=kind: annotators(kind, image), args.repeat)
            print(f"annotator {kind:<14} {figures['annotators'][kind]}", flush=True)

        unet = _unet(args.tiny_unet)
        from diffusers import ControlNetModel

        # SD's hint encoder downsamples 8× like its VAE; the tiny model's VAE downsamples 2×.
        hint_levels = (16, 32) if args.tiny_unet else (16, 32, 96, 256)
        model = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=hint_levels)
        path = save_difference_file(model, unet, root / "diff_control.safetensors")
        unet = unet.to(device, dtype)
        started = time.perf_counter()
        controlnet = load_controlnet(path, unet).to(device, dtype)
        figures["load_controlnet_seconds"] = round(time.perf_counter() - started, 3)
        print(f"loading the ControlNet     {figures['load_controlnet_seconds']} s", flush=True)

        factor = 8 if not args.tiny_unet else 2
        side = args.size // factor
        latents = torch.randn(2, 4, side, side, device=device, dtype=dtype)
        hint = torch.rand(2, 3, args.size, args.size, device=device, dtype=dtype)
        text = torch.randn(2, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
        step = torch.tensor(500, device=device)

        def plain() -> object:
            with torch.inference_mode():
                return unet(latents, step, encoder_hidden_states=text).sample

        def controlled() -> object:
            with torch.inference_mode():
                down, mid = controlnet(
                    latents, step, encoder_hidden_states=text, controlnet_cond=hint, return_dict=False
                )
                return unet(
                    latents, step, encoder_hidden_states=text, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid,
                ).sample  # fmt: skip

        figures["step"] = _best(device, plain, args.repeat)
        figures["step_with_controlnet"] = _best(device, controlled, args.repeat)
        print(f"UNet step                  {figures['step']}", flush=True)
        print(f"UNet step with ControlNet  {figures['step_with_controlnet']}", flush=True)
    print("RESULT " + json.dumps({"device": str(device), "size": args.size, "tiny_unet": args.tiny_unet, **figures}))


if __name__ == "__main__":
    main()
