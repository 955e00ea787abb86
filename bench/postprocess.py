"""Seconds and peak GPU memory of the worker's post-processors at full size (random weights, real architectures).

    .venv/bin/python bench/postprocess.py [--size 1024] [--device cuda] [--repeat 3]

Builds RealESRGAN_x4plus (RRDBNet, 64 features, 23 blocks), RealESRGAN_x2plus, GFPGAN v1.4 and CodeFormer with
random weights, saves each as the published files are (``torch.save`` of ``params_ema``), loads them through
the worker's own loaders (spandrel's detection included) and times each on a ``--size``² image: the upscalers
over their 512-pixel tiles, the face fixers on one face filling a quarter of the image. Prints one line per
post-processor and a final ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from PIL import Image

from harness.gpu import best
from openhorde.worker.postprocess.facefix import FaceFixer
from openhorde.worker.postprocess.spandrel_models import import_spandrel
from openhorde.worker.postprocess.upscale import Upscaler


def _save(path: Path, model: torch.nn.Module) -> Path:
    torch.save({"params_ema": model.state_dict()}, path)
    return path


def _build_files(folder: Path) -> dict[str, Path]:
    """Full-size models of each architecture, saved under the model reference's file names."""
    spandrel = import_spandrel()
    from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

    torch.manual_seed(0)
    esrgan = spandrel.architectures.ESRGAN.ESRGAN
    gfpgan = spandrel.architectures.GFPGAN.GFPGAN
    return {
        "RealESRGAN_x4plus": _save(folder / "RealESRGAN_x4plus.pth", esrgan(scale=4)),
        "RealESRGAN_x2plus": _save(folder / "RealESRGAN_x2plus.pth", esrgan(scale=2, shuffle_factor=2)),
        "GFPGAN": _save(folder / "GFPGANv1.4.pth", gfpgan(out_size=512, channel_multiplier=2, sft_half=True)),
        "CodeFormers": _save(folder / "CodeFormers.pth", CodeFormer()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="side of the test image in pixels")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs after one warm-up")
    args = parser.parse_args()
    device = torch.device(args.device)
    image = Image.effect_noise((args.size, args.size), 40).convert("RGB")
    face = (args.size // 4, args.size // 4, args.size // 2, args.size // 2)
    figures: dict[str, dict[str, float | None]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, path in _build_files(Path(folder)).items():
            run: Callable[[], object]
            if name.startswith("RealESRGAN"):
                run = partial(Upscaler.load(name, path, device), image)
            else:
                run = partial(FaceFixer.load(name, path, device).restore, image, [face], 0.5)

            seconds, peak = best(device, run, args.repeat)
            figures[name] = {"seconds": round(seconds, 3), "peak_gib": round(peak, 2) if peak is not None else None}
            print(f"{name:<20} {seconds:8.3f} s   peak GPU {figures[name]['peak_gib']} GiB", flush=True)
    print("RESULT " + json.dumps({"device": str(device), "size": args.size, "post_processors": figures}))


if __name__ == "__main__":
    main()
