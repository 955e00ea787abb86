"""HED soft edges (``hed``) and fake scribbles (``fakescribbles``) with ControlNet's own HED network.

The network is lllyasviel's re-implementation of HED (``ControlNetHED.pth`` in his Annotators collection, Apache
2.0): five VGG-like blocks, each with a 1×1 projection to an edge map; the five maps are averaged at the input's
size and squashed with a sigmoid. Fake scribbles thin and threshold that map as the original ControlNet does.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

_LAYOUT = ((3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3))
"""(in, out, convolutions) of each block."""


class _Block(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, layers: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            *(nn.Conv2d(channels_in if i == 0 else channels_out, channels_out, 3, padding=1) for i in range(layers))
        )
        self.projection = nn.Conv2d(channels_out, 1, 1)

    def forward(self, x: torch.Tensor, down: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if down:
            x = F.max_pool2d(x, kernel_size=2, stride=2)
        for conv in self.convs:
            x = F.relu(conv(x))
        return x, self.projection(x)


class HEDNetwork(nn.Module):
    """ControlNet's HED: takes RGB in 0–255 (it subtracts its learnt mean), gives five edge logit maps."""

    def __init__(self, layout: tuple[tuple[int, int, int], ...] = _LAYOUT) -> None:
        super().__init__()
        self.norm = nn.Parameter(torch.zeros(1, 3, 1, 1))
        for index, (channels_in, channels_out, layers) in enumerate(layout, start=1):
            self.add_module(f"block{index}", _Block(channels_in, channels_out, layers))
        self.blocks = len(layout)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five blocks' edge logits, each at its block's resolution."""
        h = x - self.norm
        projections = []
        for index in range(1, self.blocks + 1):
            block = getattr(self, f"block{index}")
            h, projection = block(h, down=index > 1)
            projections.append(projection)
        return projections


def load_hed(path: Path, device: torch.device) -> HEDNetwork:
    """The network in ``ControlNetHED.pth`` (its layout read from the file, so smaller test copies load too)."""
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    layout = []
    index = 1
    while f"block{index}.projection.weight" in state:
        convs = sorted(key for key in state if key.startswith(f"block{index}.convs.") and key.endswith(".weight"))
        first = state[f"block{index}.convs.0.weight"]
        layout.append((int(first.shape[1]), int(first.shape[0]), len(convs)))
        index += 1
    network = HEDNetwork(tuple(layout))
    network.load_state_dict(state, strict=True)
    return network.to(device).eval()


def hed_edges(network: HEDNetwork, image: np.ndarray) -> np.ndarray:
    """Soft edges of an RGB uint8 image (H×W×3) as a uint8 map (H×W), white on black."""
    height, width = image.shape[:2]
    device = network.norm.device
    with torch.inference_mode():
        tensor = torch.from_numpy(image.copy()).float().to(device).permute(2, 0, 1)[None]
        maps = [projection[0, 0].float().cpu().numpy() for projection in network(tensor)]
    resized = [cv2.resize(edge, (width, height), interpolation=cv2.INTER_LINEAR) for edge in maps]
    edge = 1 / (1 + np.exp(-np.mean(np.stack(resized, axis=2), axis=2)))
    return (edge * 255.0).clip(0, 255).astype(np.uint8)


def thin_edges(edges: np.ndarray, threshold: int, sigma: float) -> np.ndarray:
    """Non-maximum suppression along four directions, then a threshold: 1-pixel edges (ControlNet's ``nms``)."""
    blurred = cv2.GaussianBlur(edges.astype(np.float32), (0, 0), sigma)
    kernels = (
        np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=np.uint8),
        np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0]], dtype=np.uint8),
        np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.uint8),
        np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=np.uint8),
    )
    peaks = np.zeros_like(blurred)
    for kernel in kernels:
        np.putmask(peaks, cv2.dilate(blurred, kernel=kernel) == blurred, blurred)
    thinned = np.zeros_like(peaks, dtype=np.uint8)
    thinned[peaks > threshold] = 255
    return thinned


def fake_scribble(edges: np.ndarray) -> np.ndarray:
    """HED edges turned into bold strokes, as a user's scribble would be (ControlNet's fake scribble)."""
    strokes = cv2.GaussianBlur(thin_edges(edges, 127, 3.0), (0, 0), 3.0)
    return np.where(strokes > 4, 255, 0).astype(np.uint8)
