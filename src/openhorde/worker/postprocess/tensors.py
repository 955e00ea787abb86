"""PIL images to and from the ``(1, 3, H, W)`` float tensors in ``[0, 1]`` the restoration models take."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_tensor(image: Image.Image, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An RGB image as a ``(1, 3, H, W)`` tensor in ``[0, 1]``."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(device=device, dtype=dtype)


def to_image(tensor: torch.Tensor) -> Image.Image:
    """A ``(1, 3, H, W)`` tensor in ``[0, 1]`` as an RGB image (rounded, not truncated)."""
    array = tensor.squeeze(0).permute(1, 2, 0).clamp(0, 1).float().cpu().numpy()
    return Image.fromarray((array * 255.0).round().astype(np.uint8), "RGB")
