"""Depth (``depth``) and normal maps (``normal``) from MiDaS, the depth estimator the original ControlNets used.

MiDaS v3 "DPT-Hybrid" is run through transformers (``Intel/dpt-hybrid-midas``, the same network and weights
as MiDaS's ``dpt_hybrid-midas-501f0c75.pt``), which needs neither timm nor torchvision. Its input is the image
resized to the model's square size (384), scaled to -1…1 as its image processor does. Its output is relative
inverse depth: near is bright. The normal map is derived from that depth with Sobel gradients, the background
(below 40 % of the depth range) left facing the viewer, as ControlNet's normal annotator does, and handed over with
its channels in the order ControlNet's own normal demo feeds the model.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

NORMAL_STRENGTH = math.pi * 2.0
"""ControlNet's ``a``: the z component before normalising; larger flattens the normals."""
NORMAL_BACKGROUND = 0.4
"""ControlNet's default ``bg_th`` for its normal model: relative depth below this faces the viewer."""


def load_depth_model(folder: Path, device: torch.device) -> Any:
    """``DPTForDepthEstimation`` from a transformers folder (``config.json`` plus weights)."""
    from transformers import DPTForDepthEstimation

    model: Any = DPTForDepthEstimation.from_pretrained(str(folder), local_files_only=True)
    return model.to(device).eval()


def estimate_depth(model: Any, image: Image.Image) -> np.ndarray:
    """MiDaS's relative inverse depth of ``image`` at its size (float32, H×W)."""
    side = int(model.config.image_size)
    resized = np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32)
    pixels = torch.from_numpy((resized / 255.0 - 0.5) / 0.5).permute(2, 0, 1)[None]
    device = next(model.parameters()).device
    with torch.inference_mode():
        predicted = model(pixel_values=pixels.to(device)).predicted_depth
        depth = F.interpolate(predicted[:, None].float(), size=(image.height, image.width), mode="bicubic")
    return depth[0, 0].cpu().numpy().astype(np.float32)


def _relative(depth: np.ndarray) -> np.ndarray:
    low, high = float(depth.min()), float(depth.max())
    return (depth - low) / (high - low) if high > low else np.zeros_like(depth)


def depth_map(depth: np.ndarray) -> np.ndarray:
    """The depth as a uint8 grey map stretched over its own range."""
    return (_relative(depth) * 255.0).clip(0, 255).astype(np.uint8)


def normal_map(depth: np.ndarray) -> np.ndarray:
    """The normal map (H×W×3 uint8) of the surface whose inverse depth is ``depth``, as the normal ControlNet reads
    it: z, y, x in R, G, B (ControlNet's demo reverses its annotator's x, y, z before the model sees them)."""
    x = cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3)
    y = cv2.Sobel(depth, cv2.CV_32F, 0, 1, ksize=3)
    z = np.ones_like(x) * NORMAL_STRENGTH
    background = _relative(depth) < NORMAL_BACKGROUND
    x[background] = 0
    y[background] = 0
    normal = np.stack([x, y, z], axis=2)
    normal /= np.sum(normal**2.0, axis=2, keepdims=True) ** 0.5
    return np.ascontiguousarray((normal * 127.5 + 127.5).clip(0, 255).astype(np.uint8)[:, :, ::-1])
