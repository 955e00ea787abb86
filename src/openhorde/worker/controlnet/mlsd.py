"""Straight lines (``hough``) with M-LSD, the line detector behind the AI Horde's ``hough`` (its ``mlsd`` annotator).

The network is M-LSD "large" (``mlsd_large_512_fp32.pth`` in lllyasviel's Annotators collection, Apache 2.0):
a MobileNetV2 front cut after its 96-channel stage, reading RGB plus a channel of ones, and a small
U-Net-like decoder to half resolution. Its first output channel scores line centres; the next four are the
displacements from a centre to the segment's two ends. Segments whose centre scores above ``score_threshold``
and that are longer than ``distance_threshold`` are drawn one pixel wide, white on black, as ControlNet's
M-LSD annotator does (thresholds 0.1 and 0.1, as the AI Horde's worker sets them).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SCORE_THRESHOLD = 0.1
DISTANCE_THRESHOLD = 0.1
TOP_K = 200
PEAK_WINDOW = 3


def _conv_bn(
    c_in: int, c_out: int, kernel: int, *, padding: int = 0, dilation: int = 1, relu: bool = True
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, padding=padding, dilation=dilation),
        nn.BatchNorm2d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _ConvBNReLU6(nn.Sequential):
    """MobileNetV2's convolution, batch norm and ReLU6; a stride-2 one pads right and bottom only (as TFLite)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        padding = 0 if stride == 2 else (kernel - 1) // 2
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU6(inplace=True),
        )
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block, after padding for a stride of two."""
        if self.stride == 2:
            x = F.pad(x, (0, 1, 0, 1), "constant", 0)
        return super().forward(x)


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        layers: list[nn.Module] = [_ConvBNReLU6(c_in, hidden, kernel=1)] if expand != 1 else []
        layers += [
            _ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, 1, 0, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block, with the shortcut when shapes allow."""
        return x + self.conv(x) if self.residual else self.conv(x)


class _Backbone(nn.Module):
    """MobileNetV2 up to its 96-channel stage; features 1, 3, 6, 10 and 13 feed the decoder."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
    """(expansion, channels, repeats, first stride) of each stage."""
    TAPS = (1, 3, 6, 10, 13)

    def __init__(self) -> None:
        super().__init__()
        features: list[nn.Module] = [_ConvBNReLU6(4, 32, stride=2)]
        channels = 32
        for expand, out, repeats, stride in self.SETTINGS:
            for index in range(repeats):
                features.append(_InvertedResidual(channels, out, stride if index == 0 else 1, expand))
                channels = out
        self.features = nn.Sequential(*features)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The tapped features, finest first."""
        taps = []
        for index, feature in enumerate(self.features):
            x = feature(x)
            if index in self.TAPS:
                taps.append(x)
        return taps


class _Merge(nn.Module):
    """Decoder block A: a skip feature and the coarser one, each projected, the coarser upsampled, concatenated."""

    def __init__(self, skip: int, coarse: int, out_skip: int, out_coarse: int, upscale: bool = True) -> None:
        super().__init__()
        self.conv1 = _conv_bn(coarse, out_coarse, 1)
        self.conv2 = _conv_bn(skip, out_skip, 1)
        self.upscale = upscale

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """Both inputs at the skip feature's resolution, side by side."""
        coarse = self.conv1(coarse)
        if self.upscale:
            coarse = F.interpolate(coarse, scale_factor=2.0, mode="bilinear", align_corners=True)
        return torch.cat((self.conv2(skip), coarse), dim=1)


class _Refine(nn.Module):
    """Decoder block B: a residual 3×3 convolution, then one to the output width."""

    def __init__(self, channels: int, out: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(channels, channels, 3, padding=1)
        self.conv2 = _conv_bn(channels, out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The refined map."""
        return self.conv2(self.conv1(x) + x)


class _Head(nn.Module):
    """Decoder block C: a dilated and a plain 3×3 convolution, then the 1×1 to the output maps."""

    def __init__(self, channels: int, out: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(channels, channels, 3, padding=5, dilation=5)
        self.conv2 = _conv_bn(channels, channels, 3, padding=1)
        self.conv3 = nn.Conv2d(channels, out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The output maps."""
        return self.conv3(self.conv2(self.conv1(x)))


class MLSDNetwork(nn.Module):
    """M-LSD large: input RGB and ones in -1…1 (4 channels), output 9 maps at half size (centre, 4 displacements…)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = _Backbone()
        self.block15 = _Merge(64, 96, 64, 64, upscale=False)
        self.block16 = _Refine(128, 64)
        self.block17 = _Merge(32, 64, 64, 64)
        self.block18 = _Refine(128, 64)
        self.block19 = _Merge(24, 64, 64, 64)
        self.block20 = _Refine(128, 64)
        self.block21 = _Merge(16, 64, 64, 64)
        self.block22 = _Refine(128, 64)
        self.block23 = _Head(64, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The centre score and displacement maps (and four more the decoder keeps)."""
        c1, c2, c3, c4, c5 = self.backbone(x)
        x = self.block16(self.block15(c4, c5))
        x = self.block18(self.block17(c3, x))
        x = self.block20(self.block19(c2, x))
        x = self.block22(self.block21(c1, x))
        return self.block23(x)[:, 7:, :, :]


def load_mlsd(path: Path, device: torch.device) -> MLSDNetwork:
    """The network in ``mlsd_large_512_fp32.pth``."""
    network = MLSDNetwork()
    network.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True), strict=True)
    return network.to(device).eval()


def segments(
    maps: np.ndarray, score_threshold: float = SCORE_THRESHOLD, distance_threshold: float = DISTANCE_THRESHOLD
) -> np.ndarray:
    """Line segments (x1, y1, x2, y2) at the maps' resolution from the network's output (C×H×W, C ≥ 5)."""
    centre = torch.sigmoid(torch.from_numpy(maps[0]))[None]
    peaks = F.max_pool2d(centre, PEAK_WINDOW, stride=1, padding=PEAK_WINDOW // 2)
    heat = (centre * (peaks == centre)).reshape(-1)
    scores, indices = torch.topk(heat, min(TOP_K, heat.numel()))
    width = maps.shape[2]
    found = []
    for score, index in zip(scores.tolist(), indices.tolist(), strict=True):
        y, x = divmod(index, width)
        dx1, dy1, dx2, dy2 = maps[1:5, y, x]
        if score > score_threshold and np.hypot(dx1 - dx2, dy1 - dy2) > distance_threshold:
            found.append((x + dx1, y + dy1, x + dx2, y + dy2))
    return np.array(found, dtype=np.float32).reshape(-1, 4)


def line_map(network: MLSDNetwork, image: np.ndarray) -> np.ndarray:
    """The straight lines of an RGB uint8 image (H×W×3), white and one pixel wide on black (H×W uint8)."""
    height, width = image.shape[:2]
    pixels = np.concatenate([image.astype(np.float32), np.ones((height, width, 1), np.float32)], axis=2)
    tensor = torch.from_numpy(pixels / 127.5 - 1.0).permute(2, 0, 1)[None]
    device = next(network.parameters()).device
    with torch.inference_mode():
        maps = network(tensor.to(device))[0].float().cpu().numpy()
    canvas = np.zeros((height, width), dtype=np.uint8)
    for x1, y1, x2, y2 in segments(maps) * 2:  # the maps are at half the image's size
        cv2.line(canvas, (int(x1), int(y1)), (int(x2), int(y2)), 255, 1)
    return canvas
