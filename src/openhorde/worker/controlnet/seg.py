"""Semantic segmentation (``seg``): each pixel coloured by its ADE20K class, the map ControlNet's seg model reads.

The network is UperNet with a ConvNeXt backbone trained on ADE20K, run through transformers
(``openmmlab/upernet-convnext-small``): the segmenter diffusers' ControlNet documentation pairs with the seg
ControlNet (the original used a UniFormer UperNet through mmcv, which this project does not install). The
colours are ADE20K's standard palette, the ones the seg ControlNet was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

_PALETTE_HEX = (
    "787878 b47878 06e6e6 503232 04c803 787850 8c8c8c cc05ff e6e6e6 04fa07 e005ff ebff07 "
    "96053d 787846 08ff33 ff0652 8fff8c ccff04 ff3307 cc4603 0066c8 3de6fa ff0633 0b66ff "
    "ff0747 ff09e0 0907e6 dcdcdc ff095c 7009ff 08ffd6 07ffe0 ffb806 0aff47 ff290a 07ffff "
    "e0ff08 6608ff ff3d06 ffc207 ff7a08 00ff14 ff0829 ff0599 0633ff eb0cff a09614 00a3ff "
    "8c8c8c fa0a0f 14ff00 1fff00 ff1f00 ffe000 99ff00 0000ff ff4700 00ebff 00adff 1f00ff "
    "0bc8c8 ff5200 00fff5 003dff 00ff70 00ff85 ff0000 ffa300 ff6600 c2ff00 008fff 33ff00 "
    "0052ff 00ff29 00ffad 0a00ff adff00 00ff99 ff5c00 ff00ff ff00f5 ff0066 ffad00 ff0014 "
    "ffb8b8 001fff 00ff3d 0047ff ff00cc 00ffc2 00ff52 000aff 0070ff 3300ff 00c2ff 007aff "
    "00ffa3 ff9900 00ff0a ff7000 8fff00 5200ff a3ff00 ffeb00 08b8aa 8500ff 00ff5c b800ff "
    "ff001f 00b8ff 00d6ff ff0070 5cff00 00e0ff 70e0ff 46b8a0 a300ff 9900ff 47ff00 ff00a3 "
    "ffcc00 ff008f 00ffeb 85ff00 ff00eb f500ff ff007a fff500 0abed4 d6ff00 00ccff 1400ff "
    "ffff00 0099ff 0029ff 00ffcc 2900ff 29ff00 ad00ff 00f5ff 4700ff 7a00ff 00ffb8 005cff "
    "b8ff00 0085ff ffd600 19c2c2 66ff00 5c00ff"
)
ADE20K_PALETTE = np.array([list(bytes.fromhex(code)) for code in _PALETTE_HEX.split()], dtype=np.uint8)
"""The 150 ADE20K class colours (RGB), class 0 first."""
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SEG_SIDE = 512
"""The side the image is resized to (UperNet's image processor's size)."""


def load_seg_model(folder: Path, device: torch.device) -> Any:
    """``UperNetForSemanticSegmentation`` from a transformers folder (``config.json`` plus weights)."""
    from transformers import UperNetForSemanticSegmentation

    model: Any = UperNetForSemanticSegmentation.from_pretrained(str(folder), local_files_only=True)
    return model.to(device).eval()


def segment(model: Any, image: Image.Image) -> np.ndarray:
    """The ADE20K colour map of ``image`` at its size (H×W×3 uint8)."""
    resized = np.asarray(image.convert("RGB").resize((SEG_SIDE, SEG_SIDE), Image.Resampling.BILINEAR), np.float32)
    pixels = torch.from_numpy((resized / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).permute(2, 0, 1)[None]
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(pixel_values=pixels.to(device)).logits.float()
        logits = F.interpolate(logits, size=(image.height, image.width), mode="bilinear", align_corners=False)
    classes = logits[0].argmax(dim=0).cpu().numpy() % len(ADE20K_PALETTE)
    return np.asarray(ADE20K_PALETTE[classes], dtype=np.uint8)
