"""Seamless tiling: every convolution of the UNet and VAE pads circularly for the job, then goes back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

TILED_COMPONENTS = ("unet", "vae")


def pipeline_convolutions(pipe: Any) -> list[nn.Conv2d]:
    """The 2-D convolutions of the pipeline's UNet and VAE (LoRA-wrapped ones included, via their base layer)."""
    found: list[nn.Conv2d] = []
    for name in TILED_COMPONENTS:
        component = getattr(pipe, name, None)
        if isinstance(component, nn.Module):
            found.extend(module for module in component.modules() if isinstance(module, nn.Conv2d))
    return found


@contextmanager
def seamless_tiling(convolutions: list[nn.Conv2d], enabled: bool = True) -> Iterator[None]:
    """Within the block, ``convolutions`` wrap around the image edges so the output tiles without seams.

    Each convolution's own padding mode is restored afterwards, also when generation fails.
    """
    if not enabled:
        yield
        return
    previous = [conv.padding_mode for conv in convolutions]
    try:
        for conv in convolutions:
            conv.padding_mode = "circular"
        yield
    finally:
        for conv, mode in zip(convolutions, previous, strict=True):
            conv.padding_mode = mode
