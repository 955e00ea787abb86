"""Where the models run: device and dtype choice, and the backend switches that make them fast."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Placement:
    """The device the pipelines live on and the dtype of their weights."""

    device: torch.device
    dtype: torch.dtype

    @property
    def is_cuda(self) -> bool:
        """True on an NVIDIA (or ROCm) GPU."""
        return self.device.type == "cuda"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"`` → the first CUDA GPU, else Apple MPS, else the CPU; anything else is taken as a torch device name."""
    if name != "auto":
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, name: str | None = None) -> torch.dtype:
    """fp16 on GPUs (CUDA, MPS), fp32 on the CPU where half precision is slow or unsupported; ``name`` overrides."""
    if name is not None:
        dtype = getattr(torch, name, None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"unknown dtype {name!r}")
        return dtype
    return torch.float16 if device.type in ("cuda", "mps") else torch.float32


CUDA_GIL_SWITCH_INTERVAL_S = 0.0005
"""How long another Python thread may keep the GIL from the generation thread on CUDA (Python's default: 5 ms)."""


def configure_backends(device: torch.device) -> None:
    """Turn on TF32 matmuls and cuDNN autotuning on CUDA: free speed for fp32 parts such as the VAE's upcasts.

    Also shortens the interpreter's thread switch interval: the generation thread launches thousands of small
    kernels per step, and whenever the event loop or an upload thread holds the GIL it waits up to the switch
    interval for it while the GPU runs dry. A bare ``pipe(...)`` loop has no other thread and never waits.
    """
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        sys.setswitchinterval(CUDA_GIL_SWITCH_INTERVAL_S)


def resolve_placement(device: str | torch.device = "auto", dtype: str | torch.dtype | None = None) -> Placement:
    """The placement for a configured device/dtype pair, with the backend switches for it applied."""
    chosen = device if isinstance(device, torch.device) else pick_device(device)
    chosen_dtype = dtype if isinstance(dtype, torch.dtype) else pick_dtype(chosen, dtype)
    configure_backends(chosen)
    return Placement(chosen, chosen_dtype)


def enable_sdpa(pipe: Any) -> None:
    """Make sure UNet and VAE attention uses torch's fused scaled-dot-product kernel (diffusers' default processor).

    Pipelines loaded from old configs or touched by other code may carry the plain processor, which is slower
    and uses more memory; models with custom processors (e.g. IP-adapters) are left alone.
    """
    if not hasattr(F, "scaled_dot_product_attention"):
        return
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    for name in ("unet", "vae"):
        model: Any = getattr(pipe, name, None)
        processors = getattr(model, "attn_processors", None)
        if not processors:
            continue
        if all(type(processor) is AttnProcessor for processor in processors.values()):
            model.set_attn_processor(AttnProcessor2_0())
