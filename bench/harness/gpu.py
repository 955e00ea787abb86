"""Timing one call of GPU (or CPU) work: wall seconds and the peak GPU memory it reached."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def timed(device: torch.device, run: Callable[[], object]) -> tuple[float, float | None]:
    """Seconds of one call, and the peak GPU memory it reached in GiB (None off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter() - started, torch.cuda.max_memory_allocated() / 2**30
    return time.perf_counter() - started, None


def best(device: torch.device, run: Callable[[], object], repeat: int) -> tuple[float, float | None]:
    """One warm-up call (kernels, allocator), then the fastest of ``repeat`` timed calls and the highest peak."""
    run()
    timings = [timed(device, run) for _ in range(repeat)]
    peaks = [peak for _, peak in timings if peak is not None]
    return min(seconds for seconds, _ in timings), max(peaks) if peaks else None
